"""SWIM membership on real agent processes: crash, return, graceful leave, bad claims."""

from __future__ import annotations

import pytest
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import started_federation, wait_for

pytestmark = pytest.mark.integration

ALIVE, DEAD, LEFT = (client_pb2.MEMBER_STATE_ALIVE, client_pb2.MEMBER_STATE_DEAD,
                     client_pb2.MEMBER_STATE_LEFT)
NAMES = ["m1", "m2", "m3", "m4"]


@pytest.fixture
async def four(tmp_path):
    async with started_federation(tmp_path, {n: {} for n in NAMES}) as fed:
        yield fed


async def _views(fed, subject):
    """{observer: (state, incarnation)} of `subject` at every running agent."""
    out = {}
    for observer in list(fed.procs):
        if observer == subject:
            continue
        members = await fed.members(observer)
        m = next((m for m in members if m.domain == subject), None)
        out[observer] = (m.state, m.incarnation) if m is not None else (None, 0)
    return out


async def test_killed_agent_is_dead_everywhere_then_alive_with_a_new_incarnation(four):
    before = await _views(four, "m4")
    old_incarnation = max(inc for _, inc in before.values())
    four.kill("m4")

    async def dead_everywhere():
        return all(state == DEAD for state, _ in (await _views(four, "m4")).values())

    await wait_for(dead_everywhere, 30, "every agent to mark m4 DEAD")
    await four.close_channels()
    await four.start("m4")

    async def alive_again():
        views = await _views(four, "m4")
        return all(state == ALIVE and inc > old_incarnation for state, inc in views.values())

    await wait_for(alive_again, 30, "m4 ALIVE again with a higher incarnation everywhere")


async def test_graceful_stop_is_left_not_dead(four):
    four.stop("m3")  # SIGTERM: the agent announces its leave

    async def left_everywhere():
        return all(state == LEFT for state, _ in (await _views(four, "m3")).values())

    await wait_for(left_everywhere, 20, "every agent to mark m3 LEFT")


async def test_members_show_incarnation_and_last_heard(four):
    async def every_member_heard_directly():
        members = await four.members("m1")
        return members if all(m.last_heard_ms > 0 for m in members) else None

    # Round-robin probing reaches every member within a few probe periods.
    members = await wait_for(every_member_heard_directly, 20, "m1 to hear every member")
    assert {m.domain for m in members} == set(NAMES)
    assert all(m.incarnation > 0 and m.address for m in members)
