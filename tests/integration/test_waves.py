"""Fan-out and staged rollout on three real agents (docs/workflow-spec.md): a step with
``each`` runs once in every eligible domain, wave after wave; a failed wave stops the
waves after it and, with ``compensate``, undoes the waves before it.

Steps run tests/integration/steps/rollout.py, which appends "start" and "end" lines to
a log file shared by the agents (O_APPEND): the order of its lines is the order of the
runs, so waves that overlapped would interleave their lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys

import pytest
from fedorch.cli.render import status_to_dict
from fedorch.gen.fedorch.v1 import status_pb2

from tests.integration.engine_tables import runs
from tests.integration.federation import running_federation, state_name, wait_for

pytestmark = pytest.mark.integration

ROLLOUT = pathlib.Path(__file__).parent / "steps" / "rollout.py"
_CAPABILITY = {"name": "app.deploy", "capacity": 2,
               "executor": {"type": "command", "argv": [sys.executable, str(ROLLOUT)]}}
DOMAINS = {name: {"labels": {"tier": "prod"}, "capabilities": [_CAPABILITY]}
           for name in ("alpha", "beta", "gamma")}


def _spec(log: pathlib.Path, waves: str, *, fail_in: tuple[str, ...] = (),
          compensate: bool = False) -> str:
    undo = f"\n    compensate: {{params: {{log: \"{log}\"}}}}" if compensate else ""
    return f"""
name: rollout
steps:
  - id: deploy
    capability: app.deploy
    params: {{log: "{log}", version: 2, nap: 0.3, fail_in: {list(fail_in)}}}
    each: {{labels: {{tier: prod}}}}
    waves: {waves}{undo}
  - id: verify
    capability: app.deploy
    needs: [deploy]
    params: {{log: "{log}", collect: true}}
    constraints: {{domains: [alpha]}}
"""


def _log(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _runs(path: pathlib.Path) -> list[tuple[str, str]]:
    return [(e["kind"], e["domain"]) for e in _log(path)]


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    """One federation for the module: each test runs its own workflow (its own log file)
    and stops no agent."""
    with running_federation(tmp_path_factory.mktemp("waves"), DOMAINS) as fed:
        yield fed


@pytest.fixture
async def fed(federation):
    """The module's federation, every slot an earlier test's workflow held free again
    everywhere, its gRPC channels bound to this test's event loop."""
    await federation.wait_capacity_free()
    yield federation
    await federation.close_channels()


async def test_a_rollout_one_domain_at_a_time_runs_its_waves_in_order(fed, tmp_path):
    log = tmp_path / "rollout.log"
    wid = await fed.submit("beta", _spec(log, "{max_parallel: 1, pause_s: 0.5}"))
    status = await fed.wait_state("beta", wid)
    assert state_name(status) == "SUCCEEDED", status
    # One wave at a time, in domain-name order: each ended before the next started.
    assert _runs(log) == [("start", "alpha"), ("end", "alpha"), ("start", "beta"),
                          ("end", "beta"), ("start", "gamma"), ("end", "gamma")]
    entries = _log(log)
    for ended, started in ((entries[1], entries[2]), (entries[3], entries[4])):
        assert started["t"] >= ended["t"] + 0.5  # the wave's pause_s came in between
    shown = status_to_dict(status)
    instances = [(s["id"], s["domain"], s["instance_of"], s["wave"], s["state"])
                 for s in shown["steps"] if "instance_of" in s]
    assert instances == [("deploy@alpha", "alpha", "deploy", 1, "SUCCEEDED"),
                         ("deploy@beta", "beta", "deploy", 2, "SUCCEEDED"),
                         ("deploy@gamma", "gamma", "deploy", 3, "SUCCEEDED")]
    verify = next(s for s in shown["steps"] if s["id"] == "verify")
    assert "instance_of" not in verify
    # Downstream: every instance's outputs, keyed by domain, with their JSON types.
    assert verify["outputs"] == {"got": {"deploy": {
        d: {"domain": d, "version": 2} for d in ("alpha", "beta", "gamma")}}}
    # The CLI's status table, from another agent than the coordinator: a wave column.
    shown_by_cli = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "fedorch.cli.main", "status", wid, "--peer",
                         fed.address("gamma")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert shown_by_cli.returncode == 0, shown_by_cli.stderr
    header = next(line for line in shown_by_cli.stdout.splitlines() if "capability" in line)
    assert "wave" in header
    assert "deploy 3" in next(line for line in shown_by_cli.stdout.splitlines()
                              if "deploy@gamma" in line)
    # Each instance ran once, in its own domain (each domain's own run records).
    for name in ("alpha", "beta", "gamma"):
        assert [r for r in runs(fed, name, wid) if r[0].startswith("deploy@")] == \
            [(f"deploy@{name}", 1)]


async def test_a_failed_wave_stops_the_next_and_compensates_the_one_before(fed, tmp_path):
    log = tmp_path / "rollout.log"
    wid = await fed.submit("alpha", _spec(log, "{max_parallel: 1}", fail_in=("beta",),
                                          compensate=True))

    async def compensated():
        status = await fed.status("alpha", wid)
        return status if status.compensation in (
            status_pb2.COMPENSATION_SUMMARY_DONE,
            status_pb2.COMPENSATION_SUMMARY_FAILED) else None

    status = await wait_for(compensated, 60, f"the compensation of {wid} to end")
    assert state_name(status) == "FAILED", status
    assert status.compensation == status_pb2.COMPENSATION_SUMMARY_DONE, status
    states = {s["id"]: s["state"] for s in status_to_dict(status)["steps"]}
    assert states == {"deploy@alpha": "COMPENSATED", "deploy@beta": "FAILED",
                      "deploy@gamma": "SKIPPED", "verify": "SKIPPED"}
    # Wave 3 never ran; wave 1 was undone in its own domain, after wave 2 failed.
    assert _runs(log) == [("start", "alpha"), ("end", "alpha"), ("start", "beta"),
                          ("end", "beta"), ("compensate", "alpha")]
    assert "fan-out step deploy failed" in status.reason


async def test_on_failure_continue_goes_on_and_min_success_decides(fed, tmp_path):
    log = tmp_path / "rollout.log"
    wid = await fed.submit("gamma", _spec(
        log, "{max_parallel: 1, on_failure: continue, min_success: 2}", fail_in=("beta",)))
    status = await fed.wait_state("gamma", wid)
    assert state_name(status) == "SUCCEEDED", status
    assert _runs(log) == [("start", "alpha"), ("end", "alpha"), ("start", "beta"),
                          ("end", "beta"), ("start", "gamma"), ("end", "gamma")]
    shown = {s["id"]: s for s in status_to_dict(status)["steps"]}
    assert shown["deploy@beta"]["state"] == "FAILED"
    # Only the instances that succeeded hand their outputs on.
    assert shown["verify"]["outputs"] == {"got": {"deploy": {
        d: {"domain": d, "version": 2} for d in ("alpha", "gamma")}}}


async def test_a_fan_out_with_no_eligible_domain_is_aborted_with_the_reason(fed, tmp_path):
    spec = _spec(tmp_path / "rollout.log", "{max_parallel: 1}").replace(
        "{tier: prod}", "{tier: dev}")
    wid = await fed.submit("alpha", spec)
    status = await fed.wait_state("alpha", wid)
    assert state_name(status) == "ABORTED", status
    assert "fan-out step deploy: no eligible domain for 'app.deploy'" in status.reason
    assert "alpha, beta, gamma: label tier is prod (each wants dev)" in status.reason
    assert not (tmp_path / "rollout.log").exists()  # nothing ran anywhere
