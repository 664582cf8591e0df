"""Sagas on three real agents on `engine: node` (core/node/compensating.py): a workflow
whose last step fails compensates the steps that had succeeded, in reverse dependency
order, each in the domain that ran it, driven by the workflow's coordinator.

Steps and compensations run tests/integration/steps/saga.py, which appends one line per
run to a log file shared by the agents: the order of its lines is the order of the runs.
"""

from __future__ import annotations

import json

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
        "negotiation": {**TEST_TIMINGS["negotiation"], "commit": "paxos"},
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
