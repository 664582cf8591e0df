"""Fan-out and staged rollout on three real agents on `engine: node`: a step with
``each`` runs once in every eligible domain and its dependent sees every instance's
outputs, keyed by domain; a wave barrier holds the next wave until the earlier one
ended, with its pause_s in between (the Node's timer).

Steps run tests/integration/steps/rollout.py, which appends "start" and "end" lines to
a log file shared by the agents (O_APPEND): the order of its lines is the order of the
runs, so waves that overlapped would interleave their lines.
"""

from __future__ import annotations

import pathlib
import sys

import pytest
from fedorch.cli.render import status_to_dict

from tests.integration.federation import (
    TEST_TIMINGS,
    running_federation,
    state_name,
    step_states,
)
from tests.integration.test_waves import _log, _runs  # the rollout step's log, read alike

pytestmark = pytest.mark.integration

ROLLOUT = pathlib.Path(__file__).parent / "steps" / "rollout.py"
NAMES = ("alpha", "beta", "gamma")
DOMAINS = {
    name: {
        "engine": "node",
        # The node engine runs Paxos Commit only, whatever FEDORCH_TEST_COMMIT says.
        "negotiation": {**TEST_TIMINGS["negotiation"]},
        "labels": {"tier": "prod"},
        "capabilities": [{"name": "app.deploy", "capacity": 2, "executor": {
            "type": "command", "argv": [sys.executable, str(ROLLOUT)]}}],
    }
    for name in NAMES
}


def _spec(log: pathlib.Path, waves: str) -> str:
    return f"""
name: rollout
steps:
  - id: deploy
    capability: app.deploy
    params: {{log: "{log}", version: 2, nap: 0.3}}
    each: {{labels: {{tier: prod}}}}
    waves: {waves}
  - id: verify
    capability: app.deploy
    needs: [deploy]
    params: {{log: "{log}", collect: true}}
    constraints: {{domains: [alpha]}}
"""


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    """One federation for the module: each test runs its own workflow (its own log file)
    and stops no agent."""
    with running_federation(tmp_path_factory.mktemp("node-fanout"), DOMAINS) as fed:
        yield fed


@pytest.fixture
async def fed(federation):
    """The module's federation, every slot an earlier test's workflow held free again
    everywhere, its gRPC channels bound to this test's event loop."""
    await federation.wait_capacity_free()
    yield federation
    await federation.close_channels()


async def test_each_runs_once_in_every_domain_and_the_dependent_sees_every_output(
        fed, tmp_path):
    log = tmp_path / "rollout.log"
    wid = await fed.submit("beta", _spec(log, "{max_parallel: 0}"))
    status = await fed.wait_state("beta", wid)
    assert state_name(status) == "SUCCEEDED", status
    assert step_states(status) == {
        "deploy@alpha": ("SUCCEEDED", "alpha", 1), "deploy@beta": ("SUCCEEDED", "beta", 1),
        "deploy@gamma": ("SUCCEEDED", "gamma", 1), "verify": ("SUCCEEDED", "alpha", 1)}
    # One run in each domain: a start and an end each, nothing twice.
    runs = _runs(log)
    assert sorted(runs) == sorted([(kind, d) for d in NAMES for kind in ("start", "end")])
    verify = next(s for s in status_to_dict(status)["steps"] if s["id"] == "verify")
    assert verify["outputs"] == {"got": {"deploy": {
        d: {"domain": d, "version": 2} for d in NAMES}}}


async def test_a_wave_barrier_holds_the_next_wave_until_the_earlier_one_ended(
        fed, tmp_path):
    log = tmp_path / "rollout.log"
    wid = await fed.submit("gamma", _spec(log, "{max_parallel: 1, pause_s: 0.5}"))
    status = await fed.wait_state("gamma", wid)
    assert state_name(status) == "SUCCEEDED", status
    # One wave at a time, in domain-name order: each ended before the next started.
    assert _runs(log) == [("start", "alpha"), ("end", "alpha"), ("start", "beta"),
                          ("end", "beta"), ("start", "gamma"), ("end", "gamma")]
    entries = _log(log)
    for ended, started in ((entries[1], entries[2]), (entries[3], entries[4])):
        assert started["t"] >= ended["t"] + 0.5  # the wave's pause_s came in between
    verify = next(s for s in status_to_dict(status)["steps"] if s["id"] == "verify")
    assert verify["outputs"] == {"got": {"deploy": {
        d: {"domain": d, "version": 2} for d in NAMES}}}
    instances = {s.id: (s.instance_of, s.wave) for s in status.steps if s.instance_of}
    assert instances == {f"deploy@{d}": ("deploy", wave)
                         for wave, d in enumerate(NAMES, start=1)}, status
