"""Change notification: a workflow's change wakes its own watchers, nobody else's."""

from __future__ import annotations

import asyncio

from fedorch.runtime.changes import Changes

from tests.unit.loop_turns import until


async def test_a_change_wakes_the_watchers_of_that_workflow_only():
    changes = Changes()
    a1 = asyncio.create_task(changes.wait_past("a", 0, 10))
    a2 = asyncio.create_task(changes.wait_past("a", 0, 10))
    b = asyncio.create_task(changes.wait_past("b", 0, 10))
    await until(lambda: changes._waiting == {"a": 2, "b": 1})
    await changes.bump("a")
    assert await a1 == 1 and await a2 == 1
    assert changes._waiting == {"b": 1} and not b.done()  # b still waits, unwoken
    await changes.bump("b")
    assert await b == 2  # one counter for every workflow
    assert changes._next == {} and changes._waiting == {}  # nothing left behind


async def test_a_version_already_past_returns_at_once_and_timeouts_return_the_version():
    changes = Changes()
    await changes.bump("a")
    await changes.bump("a")
    assert await changes.wait_past("a", 1, 10) == 2  # no wait: already past
    assert await changes.wait_past("a", 2, 0.01) == 2  # nothing new: the timeout ends it
    assert changes._next == {} and changes._waiting == {}


async def test_a_watcher_that_gives_up_does_not_disturb_the_others():
    changes = Changes()
    patient = asyncio.create_task(changes.wait_past("a", 0, 10))
    await until(lambda: changes._waiting == {"a": 1})
    assert await changes.wait_past("a", 0, 0.01) == 0
    assert not patient.done()
    await changes.bump("a")
    assert await patient == 1


async def test_a_forgotten_version_is_dropped_and_never_goes_back():
    """A watcher that saw version v of a workflow since forgotten must still be woken by
    its next change: the version never falls back to where v would hide that change."""
    changes = Changes()
    for _ in range(3):
        await changes.bump("a")
    await changes.bump("b")
    seen = changes.version("a")
    changes.forget("a")
    assert len(changes) == 1  # only b is held
    assert changes.version("a") >= seen
    watcher = asyncio.create_task(changes.wait_past("a", seen, 10))
    await until(lambda: changes._waiting == {"a": 1})
    await changes.bump("a")
    assert await watcher > seen
    changes.forget("a")
    changes.forget("b")
    assert len(changes) == 0


async def test_a_cancelled_watcher_leaves_nothing_behind_and_others_still_wake():
    changes = Changes()
    gone = asyncio.create_task(changes.wait_past("a", 0, 10))
    stays = asyncio.create_task(changes.wait_past("a", 0, 10))
    await until(lambda: changes._waiting == {"a": 2})
    gone.cancel()
    await until(lambda: gone.done())
    assert gone.cancelled() and changes._waiting == {"a": 1} and len(changes._next["a"]) == 1
    await changes.bump("a")
    assert await stays == 1
    assert changes._next == {} and changes._waiting == {}
