"""A domain that LEFT (its agent stopped gracefully) stops no workflow, as a DEAD one.

Real agents on 127.0.0.1. Two domains offer the step's capability (label pool: work);
the one the step is first placed on is stopped with SIGTERM, by its pid: the daemon
announces its leave (LEFT, not DEAD), kills its steps' processes and exits 0. The
coordinator resolves that domain's steps as for a death: a started idempotent step is
run again on the other domain, a step not started yet is placed there, a started step
that is not idempotent fails naming the domain. The deadlines
are behaviour bounds (the workflow ends without the stopped agent; before this, it
waited for its return), not speed benchmarks: LEFT spreads within a gossip round, a
round takes well under a second, and each bound is several times what the path needs
on an idle machine.
"""

from __future__ import annotations

import os
import signal

import pytest
from fedorch.core.workflow import values
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.durable_facts import attempt_closed, started_attempts
from tests.integration.federation import (
    TERMINAL,
    Federation,
    naps_running,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_domain_loss import DOMAINS as ONE_WORKER
from tests.integration.test_domain_loss import _spec as nap_spec
from tests.integration.test_replacement import DOMAINS, _effects, _placed, _work, gated_work

pytestmark = pytest.mark.integration

# From the SIGTERM: the leave (about a second), one round, the step's short nap, two
# results.
ENDED_WITHIN_S = 40
# The daemon's own shutdown: its leave's grace, the server's drain, the audit checkpoint.
STOPPED_WITHIN_S = 20


async def _stop_gracefully(fed: Federation, name: str) -> int:
    """SIGTERM agent `name` by its pid and wait for it to exit; its exit code. SIGKILLed
    (by its pid) if it does not exit in time, and the test fails."""
    proc = fed.procs.pop(name)
    try:
        os.kill(proc.pid, signal.SIGTERM)

        async def exited():
            return proc.popen.poll() is not None

        await wait_for(exited, STOPPED_WITHIN_S, f"{name} to stop on SIGTERM")
    finally:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait(timeout=10)
    await fed.close_channels()
    return proc.popen.returncode


async def _members_see_left(fed: Federation, name: str) -> None:
    async def left_everywhere():
        views = [await fed.members(other) for other in fed.procs]
        seen = [m.state for view in views for m in view if m.domain == name]
        return len(seen) == len(views) and all(s == client_pb2.MEMBER_STATE_LEFT
                                               for s in seen)

    await wait_for(left_everywhere, 20, f"every agent to see {name} LEFT")


async def test_a_started_idempotent_step_of_a_domain_that_left_runs_again_elsewhere(
        tmp_path, seconds):
    spec = "name: left-started\nsteps:" + _work(tmp_path, seconds, idempotent=True)
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("home", spec)
        first = await _placed(fed, wid, "work")
        other = ({"w1", "w2"} - {first}).pop()

        async def napping():
            return len(naps_running(seconds)) == 1

        await wait_for(napping, 30, "the step to run its first (endless) nap")
        assert await _stop_gracefully(fed, first) == 0  # a graceful stop, not a kill
        # The agent killed its step's process group on its way out.
        assert not naps_running(seconds)
        await _members_see_left(fed, first)

        status = await fed.wait_state("home", wid, deadline_s=ENDED_WITHIN_S)
        assert state_name(status) == "SUCCEEDED", status
        steps = step_states(status)
        assert steps["work"][:2] == ("SUCCEEDED", other), steps
        assert steps["after"][0] == "SUCCEEDED", steps
        work = next(s for s in status.steps if s.id == "work")
        assert list(work.replaced_from) == [first]
        assert values.read_object(work, "outputs")["runs"] == 2
        # Two runs started, exactly one completed: the stopped one never wrote `done`.
        assert _effects(tmp_path) == ["start", "start", "done"]
        # Its attempt is on record as started, once.
        assert started_attempts(fed, first, wid) == [("work", 1)]

        # Back (a restart: ALIVE, a new incarnation), as a DEAD domain that returns: it
        # ends its interrupted attempt there and runs nothing again. It learns the end
        # (the coordinator's end notices go to the domains a step was taken from too,
        # and the answer to a report of its lost placement carries it): its own record
        # of the workflow ends, RUNNING there no more. A report it sends first is
        # refused, never applied.
        await fed.start(first)

        async def ended_there():
            mine = await fed.local_status(first, wid)
            return mine is not None and state_name(mine) in TERMINAL \
                and attempt_closed(fed, first, wid, "work", 1)

        await wait_for(ended_there, 30, f"the restarted {first} to learn the end")
        assert state_name(await fed.local_status(first, wid)) == "SUCCEEDED"
        assert _effects(tmp_path) == ["start", "start", "done"]
        assert started_attempts(fed, first, wid) == [("work", 1)]  # nothing started again
        assert not naps_running(seconds)
        after = await fed.status("home", wid)
        assert state_name(after) == "SUCCEEDED"
        assert step_states(after)["work"][:2] == ("SUCCEEDED", other)


async def test_a_step_not_started_on_a_domain_that_left_is_placed_again(tmp_path):
    gate, spec = gated_work(tmp_path, "left-early")
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("home", spec)
        await fed.wait_state("home", wid, states={"RUNNING"}, deadline_s=30)  # committed
        first = await _placed(fed, wid, "work")
        other = ({"w1", "w2"} - {first}).pop()
        # While upstream still waits at its gate: work never started.
        assert await _stop_gracefully(fed, first) == 0

        async def moved():
            return step_states(await fed.status("home", wid))["work"][1] == other

        await wait_for(moved, ENDED_WITHIN_S, f"work to be placed again on {other}")
        gate.touch()
        status = await fed.wait_state("home", wid, deadline_s=ENDED_WITHIN_S)
        assert state_name(status) == "SUCCEEDED", status
        steps = step_states(status)
        assert steps["work"][:2] == ("SUCCEEDED", other), steps
        work = next(s for s in status.steps if s.id == "work")
        assert list(work.replaced_from) == [first]
        assert _effects(tmp_path) == ["start", "done"]  # it ran once, on its new domain


async def test_a_started_step_that_is_not_idempotent_fails_naming_the_domain_that_left(
        tmp_path, seconds):
    async with started_federation(tmp_path, ONE_WORKER) as fed:
        wid = await fed.submit("home", nap_spec(seconds, retries=2))

        async def napping():
            return len(naps_running(seconds)) == 1

        await wait_for(napping, 30, "the nap to run on worker")
        assert await _stop_gracefully(fed, "worker") == 0
        assert not naps_running(seconds)
        status = await fed.wait_state("home", wid, deadline_s=ENDED_WITHIN_S)
        assert state_name(status) == "FAILED", status
        steps = step_states(status)
        assert steps["nap"][:2] == ("FAILED", "worker") and steps["after"][0] == "SKIPPED"
        error = next(s.error for s in status.steps if s.id == "nap")
        # A graceful stop is named as one, not as a death.
        assert error.startswith("domain worker was lost (LEFT) while the step ran"), error
        assert "not idempotent" in error, error
        assert "worker" in status.reason, status.reason
