"""A step placed again is compensated in its new domain, on real `engine: node` agents
(core/node/compensating.py, "Steps placed again").

n1 coordinates and runs nothing; n2 and n3 offer the step `first` (idempotent, with a
`compensate` block), n4 the step `last`, which needs it and fails. `first` starts on
one of n2 and n3, held at its gate; that domain is SIGKILLed and never restarted: the
coordinator places `first` again on the other, where it runs once the gate opens and
SUCCEEDS; `last` fails, the workflow ends FAILED, and `first`'s compensation runs in
its new domain, where it ran (the shared log shows it), not in the lost one. Before,
the saga planned it in the lost domain (the committed placement's), dead: the loss
verdict failed it and `first` was never compensated.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest
from fedorch.gen.fedorch.v1 import status_pb2

from tests.integration.federation import (
    node_engine_domains,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

STEPS = pathlib.Path(__file__).parent / "steps"
FIRST = [{"name": "saga.gate", "capacity": 4,
          "executor": {"type": "command", "argv": [sys.executable, str(STEPS / "saga_gate.py")]}}]
LAST = [{"name": "test.fail_at_gate", "capacity": 4,
         "executor": {"type": "command", "argv": [sys.executable, str(STEPS / "fail_at_gate.py")]}}]
DOMAINS = node_engine_domains(
    ("n1", "n2", "n3", "n4"),
    lambda name: {"n1": [], "n2": FIRST, "n3": FIRST, "n4": LAST}[name])
MOVED_WITHIN_S = 25  # DEAD's delay with the local profile, the loss grace, the round


def _spec(log: pathlib.Path, gate: pathlib.Path, runs: pathlib.Path,
          failed: pathlib.Path) -> str:
    return f"""
name: saga-placed-again
steps:
  - id: first
    capability: saga.gate
    idempotent: true
    params: {{log: "{log}", gate: "{gate}"}}
    constraints: {{domains: [n2, n3]}}
    compensate: {{params: {{log: "{log}", gate: "{gate}"}}}}
  - id: last
    capability: test.fail_at_gate
    needs: [first]
    params: {{runs: "{runs}", gate: "{failed}"}}
    constraints: {{domains: [n4]}}
"""


def _log(path: pathlib.Path) -> list[tuple[str, str, str, int]]:
    if not path.exists():
        return []
    return [(e["kind"], e["step"], e["domain"], e["attempt"])
            for e in map(json.loads, path.read_text().splitlines()) if e]


async def test_a_step_placed_again_is_compensated_in_its_new_domain(tmp_path):
    log, gate = tmp_path / "saga.log", tmp_path / "gate"
    runs, failed = tmp_path / "runs-last", tmp_path / "fail-now"
    failed.touch()  # `last` fails as soon as it runs
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("n1", _spec(log, gate, runs, failed))

        async def started():
            return next((e[2] for e in _log(log) if e[:2] == ("start", "first")), None)

        lost = await wait_for(started, 30, "first to start")
        assert lost in ("n2", "n3")
        new = "n3" if lost == "n2" else "n2"
        fed.kill(lost)  # SIGKILL, reaped by its pid; never restarted

        async def moved():
            s = await fed.local_status("n1", wid)
            return s if s is not None and step_states(s)["first"][1] == new else None

        await wait_for(moved, MOVED_WITHIN_S, f"first to be placed again on {new}")

        async def started_again():
            return [e for e in _log(log) if e[:3] == ("start", "first", new)] or None

        await wait_for(started_again, 30, f"first to start again, at {new}")
        gate.touch()  # the run at the new domain ends; the lost one's process is gone

        async def compensated():
            s = await fed.local_status("n1", wid)
            return s if s is not None and s.compensation in (
                status_pb2.COMPENSATION_SUMMARY_DONE,
                status_pb2.COMPENSATION_SUMMARY_FAILED) else None

        status = await wait_for(compensated, 60, "the saga to end at n1")
        assert state_name(status) == "FAILED", status
        assert status.compensation == status_pb2.COMPENSATION_SUMMARY_DONE, status
        states = step_states(status)
        assert states["first"][:2] == ("COMPENSATED", new), states
        assert states["last"][0] == "FAILED", states
        # Each compensation as the status lists it (core/node/saga_runs.py): one, the
        # lost domain's run having died with it before it SUCCEEDED.
        assert [(c.step, c.domain, c.state) for c in status.compensations] == [
            ("first", new, "COMPENSATED")], status.compensations
        # One completed run of `first`, at the new domain, and its one compensation
        # there; nothing ran in the lost domain after its start.
        entries = _log(log)
        assert [e[:3] for e in entries if e[0] == "step"] == [("step", "first", new)], \
            entries
        assert [e[:3] for e in entries if e[0] == "compensate"] == [
            ("compensate", "first", new)], entries
