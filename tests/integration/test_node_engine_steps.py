"""Real agents on `engine: node`: step processes that die with their agent, a restart
that stops what is left of them before its Node resolves their attempts, and a SIGHUP
reload that reaches the Node (policy, capacities, executors).

The nap step (tests/integration/steps/nap.py) naps with `sleep SECONDS`, SECONDS a
number unique to the test, so its processes are found by their command line; with
`escape` one nap runs in a session of its own, out of its group's reach (as a
daemonizing program would be), still carrying its attempt's marker.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest
import yaml

from tests.integration.federation import (
    TEST_TIMINGS,
    naps_running,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

NAP = pathlib.Path(__file__).parent / "steps" / "nap.py"
# A long suspicion keeps the worker from being declared DEAD while it restarts (these
# tests are about the restart, not about the loss of a domain).
NODE = {"engine": "node", "gossip": {"profile": "local", "tuning": {"suspicion_alpha": 60}},
        "negotiation": {**TEST_TIMINGS["negotiation"]}}
DOMAINS = {
    "home": {**NODE, "capabilities": [
        {"name": "test.echo", "capacity": 2, "executor": {"type": "builtin", "name": "echo"}},
    ]},
    "worker": {**NODE, "capabilities": [
        {"name": "test.echo", "capacity": 2, "executor": {"type": "builtin", "name": "echo"}},
        {"name": "test.nap", "capacity": 2,
         "executor": {"type": "command", "argv": [sys.executable, str(NAP)]}},
    ]},
}


def _nap_spec(seconds: str, *, idempotent: bool, retries: int) -> str:
    return f"""
name: napper
steps:
  - id: nap
    capability: test.nap
    params: {{seconds: "{seconds}", escape: true}}
    retries: {retries}
    idempotent: {str(idempotent).lower()}
    constraints: {{domains: [worker]}}
"""


def _echo_spec(capability: str) -> str:
    return f"""
name: echoed
steps:
  - id: a
    capability: {capability}
    constraints: {{domains: [worker]}}
"""


@pytest.fixture
async def fed(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        yield fed


def _groups_on_record(fed) -> dict[str, int]:
    """The worker's step_groups side files: marker -> process group."""
    found = {}
    for path in (fed.workdir / "data" / "worker" / "step_groups").glob("*.json"):
        entry = json.loads(path.read_text())
        found[entry["marker"]] = entry["pgid"]
    return found


async def _kill_worker_mid_nap(fed, wid: str, seconds: str) -> None:
    """Once both naps of the step run (its group on record), SIGKILL the worker; its
    group goes with it within 2 s, the escaped nap stays."""
    async def napping():
        return len(naps_running(seconds)) == 2 and _groups_on_record(fed)

    await wait_for(napping, 30, "both naps to run, their group on record")
    [(marker, pgid)] = _groups_on_record(fed).items()
    assert marker == f"worker/{wid}/nap/1" and pgid > 1
    fed.kill("worker")
    await fed.close_channels()

    async def one_left():
        return len(naps_running(seconds)) == 1

    await wait_for(one_left, 2, "the step's group to die with its agent", interval=0.05)
    assert _groups_on_record(fed) == {marker: pgid}  # survived the SIGKILL
    assert state_name(await fed.status("home", wid)) == "RUNNING"


async def test_a_restart_stops_the_leftovers_then_fails_a_step_that_is_not_idempotent(
        fed, seconds):
    wid = await fed.submit("home", _nap_spec(seconds, idempotent=False, retries=2))
    await _kill_worker_mid_nap(fed, wid, seconds)
    # The group's side file lost: the attempt's start in node.db is enough to find what
    # carries its marker (the escaped nap left the group anyway).
    for path in (fed.workdir / "data" / "worker" / "step_groups").glob("*.json"):
        path.unlink()
    await fed.start("worker")

    async def none_left():
        return not naps_running(seconds)

    await wait_for(none_left, 20, "the restarted worker to stop the escaped nap")
    status = await fed.wait_state("home", wid, deadline_s=60)
    assert state_name(status) == "FAILED", status
    assert step_states(status)["nap"] == ("FAILED", "worker", 1), status
    error = next(s.error for s in status.steps if s.id == "nap")
    assert "interrupted by an agent restart" in error and "not idempotent" in error, error
    assert _groups_on_record(fed) == {}
    log = fed.procs["worker"].log_path.read_text()
    assert f"left by step attempt worker/{wid}/nap/1 of an earlier run" in log


async def test_a_restart_stops_the_leftovers_then_retries_an_idempotent_step(fed, seconds):
    wid = await fed.submit("home", _nap_spec(seconds, idempotent=True, retries=1))
    await _kill_worker_mid_nap(fed, wid, seconds)
    await fed.start("worker")
    status = await fed.wait_state("home", wid, deadline_s=60)
    assert state_name(status) == "SUCCEEDED", status
    # Attempt 2 ran only once nothing of attempt 1 was left (stopped before the Node
    # resolved it): nap.py answers at once from its second attempt.
    assert step_states(status)["nap"] == ("SUCCEEDED", "worker", 2), status
    assert not naps_running(seconds)
    assert _groups_on_record(fed) == {}


async def test_a_sighup_reload_reaches_the_node_policy_capacities_and_executors(fed):
    wid = await fed.submit("home", _echo_spec("test.echo"))
    assert state_name(await fed.wait_state("home", wid, deadline_s=30)) == "SUCCEEDED"

    config = yaml.safe_load(fed.configs["worker"].read_text())
    config["policy"] = {"rules": [{"name": "no-echo", "expression": 'capability != "test.echo"',
                                   "message": "test.echo is closed in worker"}]}
    config["capabilities"].append(
        {"name": "test.fresh", "capacity": 3, "executor": {"type": "builtin", "name": "echo"}})
    fed.configs["worker"].write_text(yaml.safe_dump(config, sort_keys=False))
    fed.sighup("worker")

    async def home_sees_it():  # the record the worker publishes once its Node took it
        members = await fed.members("home")
        return any(m.domain == "worker" and c.name == "test.fresh" and c.capacity == 3
                   and c.available == 3 for m in members for c in m.capabilities)

    await wait_for(home_sees_it, 20, "home to see the worker's new capability")
    refused = await fed.submit("home", _echo_spec("test.echo"))
    status = await fed.wait_state("home", refused, deadline_s=30)
    assert state_name(status) == "ABORTED", status
    assert "test.echo is closed in worker" in status.reason, status
    fresh = await fed.submit("home", _echo_spec("test.fresh"))  # its new executor
    status = await fed.wait_state("home", fresh, deadline_s=30)
    assert state_name(status) == "SUCCEEDED", status
    assert step_states(status)["a"] == ("SUCCEEDED", "worker", 1)
