"""No step process outlives its agent, and a restarted agent resolves what it was running.

The step (tests/integration/steps/nap.py) naps with `sleep SECONDS`, SECONDS a number
unique to the test, so its processes are found by their command line.
"""

from __future__ import annotations

import pathlib
import sys

import pytest
from fedorch.runtime.node_engine.step_processes import GROUPS_DIR, StepGroups

from tests.integration.federation import (
    naps_running,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

NAP = pathlib.Path(__file__).parent / "steps" / "nap.py"
# The nap step as a capability, for the tests that need a long-running step process.
NAPS = [{"name": "test.nap", "capacity": 2,
         "executor": {"type": "command", "argv": [sys.executable, str(NAP)]}}]
# These tests are about a restart resolving what its agent was running, not about the
# loss of a domain: a long suspicion (30 s) keeps the worker from being declared DEAD
# (its steps then fail at the coordinator: tests/integration/test_domain_loss.py)
# while it restarts.
PATIENT_GOSSIP = {"profile": "local", "tuning": {"suspicion_alpha": 60}}
DOMAINS = {
    "home": {"gossip": PATIENT_GOSSIP, "capabilities": [
        {"name": "test.echo", "capacity": 2, "executor": {"type": "builtin", "name": "echo"}},
    ]},
    "worker": {"gossip": PATIENT_GOSSIP, "capabilities": [
        {"name": "test.nap", "capacity": 2,
         "executor": {"type": "command", "argv": [sys.executable, str(NAP)]}},
    ]},
}


def _spec(seconds: str, *, escape: bool = False, idempotent: bool = False,
          retries: int = 0) -> str:
    return f"""
name: napper
steps:
  - id: nap
    capability: test.nap
    params: {{seconds: "{seconds}", escape: {str(escape).lower()}}}
    retries: {retries}
    idempotent: {str(idempotent).lower()}
    constraints: {{domains: [worker]}}
"""


@pytest.fixture
async def fed(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        yield fed


async def _kill_worker_mid_step(fed, seconds: str, naps: int) -> str:
    """Submit, wait until the step's naps run, SIGKILL the worker agent."""
    wid = await fed.submit("home", _spec(seconds, escape=naps == 2))

    async def napping():
        return len(naps_running(seconds)) == naps

    await wait_for(napping, 30, f"{naps} naps to run")
    fed.kill("worker")
    await fed.close_channels()
    return wid


def _attempts(fed, name: str, wid: str, step: str = "nap") -> list[tuple]:
    """(attempt, state, process group) of each attempt of `step` that `name` started, as
    node.db keeps them: its starts (`runs`) and the step's final result (`results`),
    the group from the side file of an attempt whose processes may run (an attempt
    followed by a later one, or by a failed result, ended without success: failed)."""
    started = sorted(run[2] for run in fed.node_table(name, "runs") if run[:2] == (wid, step))
    results = {step_id: result for (wf, step_id), result
               in fed.node_table(name, "results").items() if wf == wid}  # a row per step
    groups = StepGroups(fed.workdir / "data" / name / GROUPS_DIR).recorded()
    ended = results.get(step)  # (attempt, state, outputs, error)
    rows = []
    for attempt in started:
        if ended is not None and ended[0] == attempt:
            state = ended[1].name.lower()
        elif ended is not None or attempt < started[-1]:
            state = "failed"
        else:
            state = "running"
        rows.append((attempt, state, groups.get(f"{name}/{wid}/{step}/{attempt}")))
    return rows


async def _worker_step(fed, wid):
    status = await fed.wait_state("home", wid)
    return state_name(status), step_states(status)["nap"], status


async def test_step_processes_die_with_their_agent(fed, seconds):
    await _kill_worker_mid_step(fed, seconds, naps=1)

    async def gone():
        return not naps_running(seconds)

    await wait_for(gone, 2, "the step's processes to die with their agent", interval=0.05)


async def test_restart_stops_leftovers_and_fails_a_step_that_is_not_idempotent(fed, seconds):
    wid = await fed.submit("home", _spec(seconds, escape=True, retries=2))

    async def napping():
        return len(naps_running(seconds)) == 2

    await wait_for(napping, 30, "both naps to run")
    fed.kill("worker")
    await fed.close_channels()

    async def one_left():  # the group went with the agent; the escaped nap did not
        return len(naps_running(seconds)) == 1

    await wait_for(one_left, 2, "the step's group to die with its agent", interval=0.05)
    assert state_name(await fed.status("home", wid)) == "RUNNING"
    runs = _attempts(fed, "worker", wid)
    assert len(runs) == 1 and runs[0][:2] == (1, "running") and runs[0][2], runs

    await fed.start("worker")

    async def none_left():
        return not naps_running(seconds)

    await wait_for(none_left, 20, "the restarted agent to stop the escaped nap")
    state, (step_state, domain, attempts), status = await _worker_step(fed, wid)
    assert (state, step_state, domain, attempts) == ("FAILED", "FAILED", "worker", 1), status
    error = next(s.error for s in status.steps if s.id == "nap")
    assert "interrupted by an agent restart" in error and "not idempotent" in error, error
    assert [run[:2] for run in _attempts(fed, "worker", wid)] == [(1, "failed")]


async def test_restart_retries_an_idempotent_step(fed, seconds):
    wid = await fed.submit("home", _spec(seconds, idempotent=True, retries=1))

    async def napping():
        return len(naps_running(seconds)) == 1

    await wait_for(napping, 30, "the nap to run")
    fed.kill("worker")
    await fed.close_channels()
    await fed.start("worker")
    state, (step_state, domain, attempts), status = await _worker_step(fed, wid)
    assert (state, step_state, domain, attempts) == ("SUCCEEDED", "SUCCEEDED", "worker", 2), \
        status
    assert not naps_running(seconds)
    assert [run[:2] for run in _attempts(fed, "worker", wid)] == [
        (1, "failed"), (2, "succeeded")]
