"""Sagas on three real agents: a workflow that fails or is cancelled compensates what had
succeeded, in reverse dependency order, in the domains that ran it (docs/sagas.md).

Steps and compensations run tests/integration/steps/saga.py, which appends one line per
run to a log file shared by the agents: the order of its lines is the order of the runs.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys

import pytest
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2

from tests.integration.federation import (
    RPC_TIMEOUT_S,
    naps_running,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.node_tables import node_table

pytestmark = pytest.mark.integration

SAGA = pathlib.Path(__file__).parent / "steps" / "saga.py"
_COMMAND = {"type": "command", "argv": [sys.executable, str(SAGA)]}
DOMAINS = {
    "alpha": {"capabilities": [{"name": "saga.step", "capacity": 4, "executor": _COMMAND}]},
    "beta": {"capabilities": [{"name": "saga.step", "capacity": 4, "executor": _COMMAND}]},
    "gamma": {"capabilities": [
        {"name": "saga.fail", "capacity": 4,
         "executor": {"type": "builtin", "name": "fail"}},
        {"name": "saga.nap", "capacity": 4, "executor": {"type": "builtin", "name": "sleep"}},
    ]},
}


def _spec(log: pathlib.Path, *, last: str = "fail", second_compensate: str = "",
          second_nap: float = 0) -> str:
    second_nap_param = f", nap: {second_nap}" if second_nap else ""
    last_step = ("capability: saga.fail\n    params: {message: third step broke}" if
                 last == "fail" else "capability: saga.nap\n    params: {seconds: 120}")
    return f"""
name: saga
steps:
  - id: first
    capability: saga.step
    params: {{log: "{log}"}}
    constraints: {{domains: [alpha]}}
    compensate: {{params: {{log: "{log}"}}}}
  - id: second
    capability: saga.step
    needs: [first]
    params: {{log: "{log}"{second_nap_param}}}
    constraints: {{domains: [beta]}}
    compensate: {{params: {{log: "{log}"{second_compensate}}}, retries: 1}}
  - id: third
    needs: [second]
    {last_step}
    constraints: {{domains: [gamma]}}
"""


def _log(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _compensations(path: pathlib.Path) -> list[tuple[str, str, int]]:
    return [(e["step"], e["domain"], e["attempt"]) for e in _log(path)
            if e["kind"] == "compensate"]


async def _compensation_ended(fed, wid: str) -> status_pb2.WorkflowStatus:
    """Poll the coordinator until the workflow's compensation has ended."""
    async def ended():
        status = await fed.status("alpha", wid)
        return status if status.compensation in (
            status_pb2.COMPENSATION_SUMMARY_DONE,
            status_pb2.COMPENSATION_SUMMARY_FAILED) else None

    return await wait_for(ended, 60, f"the compensation of {wid} to end")


def _planned(fed, name: str, wid: str) -> list[tuple[str, str, int]]:
    """(step, state, attempts) of each compensation the coordinator `name` planned for
    `wid`, as node.db keeps its saga's plan."""
    plan = node_table(fed, name, "compensations") or {}
    return sorted((step, row.state, row.attempts) for (w, step), row in plan.items()
                  if w == wid)


def _runs(fed, name: str) -> list[tuple[str, int, str, str]]:
    """(step, attempt, state, error) of each compensation attempt run at `name`, as
    node.db records it before it starts and at its end."""
    runs = node_table(fed, name, "comp_runs") or {}
    return sorted((step, attempt, state, error)
                  for (_, step, attempt), (state, error, _) in runs.items())


@pytest.fixture
async def fed(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        yield fed


# The tests that kill an agent and start it again check what a restart resumes, so the
# restart must come before its peers act on the death: a DEAD verdict that stands for
# `loss_grace` makes the saga's driver judge the compensations owed there FAILED
# (core/node/saga_loss.py), which a restart slowed by a loaded machine can miss with
# the local profile's 3 s. What a loss does is tested by
# tests/unit/core/node/test_saga_loss.py.
RESTART_DOMAINS = {name: {**body, "gossip": {"profile": "local",
                                             "tuning": {"loss_grace": 20}}}
                   for name, body in DOMAINS.items()}


@pytest.fixture
async def restart_fed(tmp_path):
    async with started_federation(tmp_path, RESTART_DOMAINS) as fed:
        yield fed


async def test_a_failed_third_step_compensates_the_first_two_in_reverse(fed, tmp_path):
    log = tmp_path / "saga.log"
    wid = await fed.submit("alpha", _spec(log))
    status = await _compensation_ended(fed, wid)
    assert state_name(status) == "FAILED", status
    assert status.compensation == status_pb2.COMPENSATION_SUMMARY_DONE, status
    states = step_states(status)
    assert states["first"][0] == "COMPENSATED" and states["second"][0] == "COMPENSATED"
    assert states["third"][0] == "FAILED", states
    # The second first, then the first, each in the domain that ran it.
    assert _compensations(log) == [("second", "beta", 1), ("first", "alpha", 1)]
    entry = next(e for e in _log(log) if e["kind"] == "compensate")
    assert entry["outputs"] == {"made": "second", "n": 7}  # its step's outputs, typed
    assert entry["keys"] == ["attempt", "compensation", "outputs", "params", "step",
                             "workflow"]
    # Durable at both ends: the coordinator's plan, each domain's run record.
    assert _planned(fed, "alpha", wid) == [
        ("first", "COMPENSATED", 1), ("second", "COMPENSATED", 1)]
    assert _runs(fed, "beta") == [("second", 1, "succeeded", "")]
    # Any agent answers the same (a non-coordinator forwards to the coordinator).
    assert (await fed.status("gamma", wid)).compensation == \
        status_pb2.COMPENSATION_SUMMARY_DONE


async def test_a_compensation_that_fails_after_its_retries(fed, tmp_path):
    log = tmp_path / "saga.log"
    wid = await fed.submit("alpha", _spec(log, second_compensate=", fail: true"))
    status = await _compensation_ended(fed, wid)
    assert status.compensation == status_pb2.COMPENSATION_SUMMARY_FAILED, status
    second = next(s for s in status.steps if s.id == "second")
    assert status_pb2.StepState.Name(second.state) == "STEP_STATE_COMPENSATION_FAILED"
    assert "cannot undo second" in second.error, second.error
    assert step_states(status)["first"][0] == "COMPENSATED"
    # Two attempts (retries: 1), and the first step only after both had ended.
    assert _compensations(log) == [("second", "beta", 1), ("second", "beta", 2),
                                   ("first", "alpha", 1)]


async def test_a_cancel_mid_run_compensates_what_succeeded(fed, tmp_path):
    log = tmp_path / "saga.log"
    wid = await fed.submit("alpha", _spec(log, last="nap"))

    async def third_running():  # as its own domain shows it
        status = await fed.local_status("gamma", wid)
        return status is not None and step_states(status)["third"][0] == "RUNNING"

    await wait_for(third_running, 30, "the third step to run")
    await fed.client("alpha").Cancel(client_pb2.CancelRequest(id=wid, reason="enough"),
                                     timeout=RPC_TIMEOUT_S)
    status = await _compensation_ended(fed, wid)
    assert state_name(status) == "CANCELLED", status
    assert status.compensation == status_pb2.COMPENSATION_SUMMARY_DONE, status
    states = step_states(status)
    assert (states["first"][0], states["second"][0], states["third"][0]) == (
        "COMPENSATED", "COMPENSATED", "CANCELLED"), states
    assert _compensations(log) == [("second", "beta", 1), ("first", "alpha", 1)]


async def test_a_participant_killed_during_a_compensation_still_ends_it(restart_fed, tmp_path, seconds):
    fed = restart_fed
    log = tmp_path / "saga.log"
    wid = await fed.submit("alpha", _spec(log, second_compensate=f", nap: \"{seconds}\""))

    async def compensating():
        return len(naps_running(seconds)) == 1

    await wait_for(compensating, 60, "the second step's compensation to run")
    assert [(a, state) for _, a, state, _ in _runs(fed, "beta")] == [(1, "running")]
    fed.kill("beta")
    await fed.close_channels()
    await fed.start("beta")
    status = await _compensation_ended(fed, wid)
    assert status.compensation == status_pb2.COMPENSATION_SUMMARY_DONE, status
    # Attempt 1 was resolved as interrupted; attempt 2 ran; then the first step.
    assert _compensations(log) == [("second", "beta", 2), ("first", "alpha", 1)]
    runs = [(a, state, error) for _, a, state, error in _runs(fed, "beta")]
    assert runs[1:] == [(2, "succeeded", "")] and runs[0][:2] == (1, "failed"), runs
    assert runs[0][2].startswith("interrupted by"), runs  # an agent restart
    assert not naps_running(seconds)


async def test_a_restarted_coordinator_resumes_unfinished_compensation(restart_fed, tmp_path, seconds):
    fed = restart_fed
    log = tmp_path / "saga.log"
    wid = await fed.submit("alpha", _spec(log, second_compensate=f", nap: \"{seconds}\""))

    async def compensating():
        return len(naps_running(seconds)) == 1

    await wait_for(compensating, 60, "the second step's compensation to run")
    fed.kill("alpha")
    await fed.close_channels()
    # beta's attempt 1 runs on; kill its nap so it ends (failed), as a slow undo might.
    for pid in naps_running(seconds):
        os.kill(pid, signal.SIGKILL)
    await fed.start("alpha")
    status = await _compensation_ended(fed, wid)
    assert status.compensation == status_pb2.COMPENSATION_SUMMARY_DONE, status
    assert _compensations(log) == [("second", "beta", 2), ("first", "alpha", 1)]
