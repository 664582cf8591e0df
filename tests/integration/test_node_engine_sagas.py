"""Sagas on real agents on `engine: node` (core/node/compensating.py): a workflow
whose last step fails compensates the steps that had succeeded, in reverse dependency
order, each in the domain that ran it, driven by the workflow's coordinator; and by
its successor when the coordinator is SIGKILLed (never restarted) before the failure,
or after its end, mid-saga (a successor is elected for the saga's plan).

Steps and compensations run tests/integration/steps/saga.py, which appends one line per
run to a log file shared by the agents: the order of its lines is the order of the runs.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest
from fedorch.cli.render import status_to_dict
from fedorch.gen.fedorch.v1 import status_pb2

from tests.integration.federation import (
    TEST_TIMINGS,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_sagas import DOMAINS as SHELL_DOMAINS
from tests.integration.test_sagas import _compensations, _log, _spec

pytestmark = pytest.mark.integration

DOMAINS = {
    name: {
        **config,
        "engine": "node",
        "gossip": {"profile": "local", "tuning": {"suspicion_alpha": 60}},
        # The node engine runs Paxos Commit only, whatever FEDORCH_TEST_COMMIT says.
        "negotiation": {**TEST_TIMINGS["negotiation"]},
    }
    for name, config in SHELL_DOMAINS.items()
}


@pytest.fixture
async def fed(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        yield fed


async def _compensation_ended(fed, wid: str) -> status_pb2.WorkflowStatus:
    """Poll the coordinator until the workflow's compensation has ended."""
    async def ended():
        status = await fed.status("alpha", wid)
        return status if status.compensation in (
            status_pb2.COMPENSATION_SUMMARY_DONE,
            status_pb2.COMPENSATION_SUMMARY_FAILED) else None

    return await wait_for(ended, 60, f"the compensation of {wid} to end")


async def test_a_failed_last_step_compensates_the_others_in_reverse(fed, tmp_path):
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
    shown = json.loads(json.dumps(status_to_dict(status)))  # the CLI's status JSON
    assert shown["compensation"] == "DONE", shown


async def test_a_compensation_that_fails_after_its_retries(fed, tmp_path):
    log = tmp_path / "saga.log"
    wid = await fed.submit("alpha", _spec(log, second_compensate=", fail: true"))
    status = await _compensation_ended(fed, wid)
    assert status.compensation == status_pb2.COMPENSATION_SUMMARY_FAILED, status
    states = step_states(status)
    assert states["second"][0] == "COMPENSATION_FAILED", states
    # Two attempts (retries: 1) in beta; the first compensated after them all the same.
    assert _compensations(log) == [("second", "beta", 1), ("second", "beta", 2),
                                   ("first", "alpha", 1)]
    assert states["first"][0] == "COMPENSATED", states


FAIL_AT_GATE = str(pathlib.Path(__file__).parent / "steps" / "fail_at_gate.py")
SAGA_STEP = {"name": "saga.step", "capacity": 4,
             "executor": {"type": "command", "argv": [sys.executable, str(
                 pathlib.Path(__file__).parent / "steps" / "saga.py")]}}
# coord coordinates and runs nothing; alpha and beta run the compensated steps, gamma
# the last one, which fails when the test opens its gate.
TAKEOVER_DOMAINS = {
    name: {
        "engine": "node",
        "gossip": {"profile": "local"},
        "negotiation": {**TEST_TIMINGS["negotiation"],
                        "takeover_after_s": 3},
        "capabilities": {
            "coord": [],
            "alpha": [SAGA_STEP],
            "beta": [SAGA_STEP],
            "gamma": [{"name": "test.fail_at_gate", "capacity": 4,
                       "executor": {"type": "command", "argv": [sys.executable,
                                                                FAIL_AT_GATE]}}],
        }[name],
    }
    for name in ("coord", "alpha", "beta", "gamma")
}


def _takeover_spec(log, runs, gate) -> str:
    return f"""
name: saga-taken-over
steps:
  - id: first
    capability: saga.step
    params: {{log: "{log}"}}
    constraints: {{domains: [alpha]}}
    compensate: {{params: {{log: "{log}"}}}}
  - id: second
    capability: saga.step
    needs: [first]
    params: {{log: "{log}"}}
    constraints: {{domains: [beta]}}
    compensate: {{params: {{log: "{log}"}}}}
  - id: third
    capability: test.fail_at_gate
    needs: [second]
    params: {{runs: "{runs}", gate: "{gate}"}}
    constraints: {{domains: [gamma]}}
"""


async def test_the_successor_of_a_killed_coordinator_runs_the_compensations(tmp_path):
    log, runs, gate = tmp_path / "saga.log", tmp_path / "runs-third", tmp_path / "gate"
    async with started_federation(tmp_path, TAKEOVER_DOMAINS) as fed:
        wid = await fed.submit("coord", _takeover_spec(log, runs, gate))

        async def third_running() -> bool:
            return runs.exists() and runs.read_text() == "start\n"

        await wait_for(third_running, 30, "step third to start at gamma")
        coordinator = fed.procs["coord"].popen
        fed.kill("coord")  # SIGKILL, reaped by its pid; never restarted
        await fed.close_channels()
        gate.touch()  # third fails now: only a successor can hear it

        async def compensated():
            status = await fed.local_status("alpha", wid)
            return status if status is not None and status.compensation in (
                status_pb2.COMPENSATION_SUMMARY_DONE,
                status_pb2.COMPENSATION_SUMMARY_FAILED) else None

        await wait_for(compensated, 60, "the successor alpha to end the compensations")
        assert coordinator.poll() is not None and "coord" not in fed.procs  # still dead
        status = await fed.status("alpha", wid)  # asked through a survivor
        assert state_name(status) == "FAILED", status
        assert (status.coordinator, status.epoch) == ("alpha", 1), status
        assert status.reason.startswith("step third failed"), status.reason  # the successor's
        assert status.compensation == status_pb2.COMPENSATION_SUMMARY_DONE, status
        states = step_states(status)
        assert states["first"][0] == "COMPENSATED" and states["second"][0] == "COMPENSATED"
        assert states["third"][0] == "FAILED", states
        # Once each, the second first, each in the domain that ran it.
        assert _compensations(log) == [("second", "beta", 1), ("first", "alpha", 1)]
        shown = json.loads(json.dumps(status_to_dict(status)))  # the CLI's status JSON
        assert shown["compensation"] == "DONE" and shown["epoch"] == 1, shown


async def test_a_coordinator_killed_mid_saga_after_its_end_is_succeeded(tmp_path):
    log, runs, gate = tmp_path / "saga.log", tmp_path / "runs-third", tmp_path / "gate"
    held, comp_gate = tmp_path / "held-first", tmp_path / "gate-first"
    gate.touch()  # third fails at once: coord ends the workflow FAILED itself
    spec = _takeover_spec(log, runs, gate).replace(
        f'    compensate: {{params: {{log: "{log}"}}}}\n  - id: second',
        f'    compensate: {{params: {{log: "{log}", gate: "{comp_gate}",'
        f' held: "{held}"}}}}\n  - id: second', 1)
    assert str(comp_gate) in spec
    async with started_federation(tmp_path, TAKEOVER_DOMAINS) as fed:
        wid = await fed.submit("coord", spec)

        async def first_compensation_held() -> bool:
            return held.exists() and held.read_text() == "start\n"

        # second's compensation ran (beta), first's runs at alpha, held at its gate
        await wait_for(first_compensation_held, 60, "first's compensation to start")
        coordinator = fed.procs["coord"].popen
        fed.kill("coord")  # SIGKILL, reaped by its pid; never restarted
        await fed.close_channels()
        comp_gate.touch()  # first's compensation ends: only a successor can hear it

        async def compensated():
            for name in ("alpha", "beta", "gamma"):
                status = await fed.local_status(name, wid)
                if status is not None and status.compensation in (
                        status_pb2.COMPENSATION_SUMMARY_DONE,
                        status_pb2.COMPENSATION_SUMMARY_FAILED):
                    return status
            return None

        status = await wait_for(compensated, 60, "a successor to end the compensations")
        assert coordinator.poll() is not None and "coord" not in fed.procs  # still dead
        assert state_name(status) == "FAILED", status
        assert status.epoch >= 1 and status.coordinator in ("alpha", "beta"), status
        assert status.compensation == status_pb2.COMPENSATION_SUMMARY_DONE, status
        # Once each, the second first, each in the domain that ran it.
        assert _compensations(log) == [("second", "beta", 1), ("first", "alpha", 1)]
