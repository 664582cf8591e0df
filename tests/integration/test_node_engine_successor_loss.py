"""The coordinator SIGKILLed for good while a long step runs in its own domain, on real
`engine: node` agents: its successor fails that step naming it.

Three node-engine agents; n1 coordinates a workflow and runs its long step `sleep` (a
`sleep 600` process) itself; `a` at n2 and `b` at n3 end at once. Once both have
ended and `sleep` runs, n1 is SIGKILLed and never restarted. Its membership view makes
it DEAD at n2 and n3; the lowest live participant, n2, takes the workflow over (epoch
1, on n3's signed grant), and, as the coordinator of the current epoch, fails `sleep`
(core/node/domain_loss.py), naming n1: not idempotent, it had started there. It tells
n3 the end (epoch 1, with its certificate) before making it, and makes it once n3
acknowledged it. Both survivors show the workflow FAILED, coordinated by n2 in epoch 1,
within takeover_after_s + the loss grace + a margin, where before the workflow stayed
RUNNING for as long as n1 stayed dead.
"""

from __future__ import annotations

import pathlib
import sys
import time

import pytest

from tests.integration.federation import (
    node_engine_domains,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

GATE_STEP = str(pathlib.Path(__file__).parent / "steps" / "counted_gate.py")
TAKEOVER_AFTER_S = 3
LOSS_GRACE_S = 3.0  # the local gossip profile's
# A DEAD verdict (a few seconds with the local profile), the claim, the end told and
# acknowledged: the bound asked for, with a margin for a loaded machine.
ENDED_WITHIN_S = TAKEOVER_AFTER_S + LOSS_GRACE_S + 14
QUICK = {"name": "test.gate", "capacity": 4,
         "executor": {"type": "command", "argv": [sys.executable, GATE_STEP]}}
SLEEP = {"name": "test.sleep", "capacity": 2,
         "executor": {"type": "command", "argv": ["sleep", "600"]}}
DOMAINS = node_engine_domains(
    ("n1", "n2", "n3"), lambda name: [SLEEP] if name == "n1" else [QUICK],
    takeover_after_s=TAKEOVER_AFTER_S)


def _spec(runs: dict[str, pathlib.Path], gate: pathlib.Path) -> str:
    return f"""
name: coordinator-runs-the-long-step
steps:
  - id: sleep
    capability: test.sleep
    constraints: {{domains: [n1]}}
  - id: a
    capability: test.gate
    params: {{runs: "{runs['a']}", gate: "{gate}"}}
    constraints: {{domains: [n2]}}
  - id: b
    capability: test.gate
    params: {{runs: "{runs['b']}", gate: "{gate}"}}
    constraints: {{domains: [n3]}}
"""


async def test_a_successor_fails_the_step_of_the_coordinator_killed_for_good(tmp_path):
    runs = {step: tmp_path / f"runs-{step}" for step in "ab"}
    gate = tmp_path / "open"
    gate.touch()
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("n1", _spec(runs, gate))

        async def only_sleep_left() -> bool:
            status = await fed.local_status("n1", wid)
            if status is None:
                return False
            states = {k: v[0] for k, v in step_states(status).items()}
            return states == {"sleep": "RUNNING", "a": "SUCCEEDED", "b": "SUCCEEDED"}

        await wait_for(only_sleep_left, 30, "a and b to end and sleep to run at n1")
        fed.kill("n1")  # SIGKILL, reaped by its pid; never restarted
        killed_at = time.monotonic()
        await fed.close_channels()

        async def failed_at(name: str):
            s = await fed.local_status(name, wid)
            return s if s is not None and state_name(s) == "FAILED" else None

        for name in ("n2", "n3"):
            await wait_for(lambda name=name: failed_at(name), ENDED_WITHIN_S + 5,
                           f"{name} to end the workflow FAILED")
        assert time.monotonic() - killed_at <= ENDED_WITHIN_S
        assert "n1" not in fed.procs  # still dead
        for name in ("n2", "n3"):  # status asked through each survivor
            answer = await fed.status(name, wid)
            assert state_name(answer) == "FAILED", (name, answer)
            assert (answer.coordinator, answer.epoch) == ("n2", 1), (name, answer)
            # The successor's end names the failed step, as the original's would.
            assert answer.reason.startswith("step sleep failed: domain n1 was lost"), \
                (name, answer.reason)
        # The successor holds every step's result, the verdict among them (n3 answers
        # from its own part: its step, and the end it was told).
        answer = await fed.status("n2", wid)
        steps = {k: v[:2] for k, v in step_states(answer).items()}
        assert steps == {"sleep": ("FAILED", "n1"), "a": ("SUCCEEDED", "n2"),
                         "b": ("SUCCEEDED", "n3")}, answer
        error = {s.id: s.error for s in answer.steps}["sleep"]
        assert "domain n1 was lost (DEAD)" in error and "not idempotent" in error, error
        assert step_states(await fed.status("n3", wid))["b"][:2] == ("SUCCEEDED", "n3")
        for step in "ab":  # each ran once
            assert runs[step].read_text() == "start\ndone\n", step
