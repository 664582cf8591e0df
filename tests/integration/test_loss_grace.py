"""A coordinator declared DEAD but back within the loss grace keeps its workflow.

The coordinator of a committed workflow runs a step of its own that is not idempotent
(the case of a 50-domain fan-out's coordinator on a starved host). It is frozen
(SIGSTOP) until both other agents hold it DEAD and are halfway through their grace
(`gossip.tuning.loss_grace`, 8 s here: each has checked it directly), then thawed
(SIGCONT). It refutes the verdict; nothing was acted
on: no takeover, its step neither failed nor ran again, and the workflow SUCCEEDS under
its own coordinator. Once a verdict stands past the grace the failover behaviour is
unchanged (tests/integration/test_takeover.py, test_domain_loss.py and the others).
"""

from __future__ import annotations

import asyncio
import pathlib
import signal
import sys

import pytest
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import (
    TEST_TIMINGS,
    Federation,
    started_federation,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

STEP = pathlib.Path(__file__).parent / "steps" / "counted_gate.py"
LOSS_GRACE_S = 8.0
WORK = [{"name": "test.counted", "capacity": 2,
         "executor": {"type": "command", "argv": [sys.executable, str(STEP)]}}]
GOSSIP = {"profile": "local", "tuning": {"loss_grace": LOSS_GRACE_S}}
# The silent-coordinator path (takeover_after_s of anything but ALIVE) is not what this
# test is about: it is set well above the freeze, so only a DEAD verdict could move it.
NEGOTIATION = {**TEST_TIMINGS["negotiation"], "takeover_after_s": 30}
DOMAINS = {name: {"capabilities": WORK, "gossip": GOSSIP, "negotiation": NEGOTIATION}
           for name in ("coord", "p1", "p2")}


def _spec(gate: pathlib.Path, runs: dict[str, pathlib.Path]) -> str:
    return f"""
name: frozen-coordinator
steps:
  - id: own
    capability: test.counted
    params: {{gate: "{gate}", runs: "{runs['own']}"}}
    constraints: {{domains: [coord]}}
  - id: other
    capability: test.counted
    params: {{gate: "{gate}", runs: "{runs['other']}"}}
    constraints: {{domains: [p1]}}
"""


async def _holds(fed: Federation, observer: str, subject: str, state: int) -> bool:
    return any(m.domain == subject and m.state == state
               for m in await fed.members(observer))


async def test_a_coordinator_back_within_the_grace_keeps_its_workflow(tmp_path):
    gate = tmp_path / "gate-open"
    runs = {step: tmp_path / f"{step}.runs" for step in ("own", "other")}
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("coord", _spec(gate, runs))

        async def both_started() -> bool:
            return all(p.exists() and "start" in p.read_text() for p in runs.values())

        await wait_for(both_started, 30, "both steps to start")
        fed.signal("coord", signal.SIGSTOP)
        try:
            async def held_dead_by_both() -> bool:
                return all([await _holds(fed, o, "coord", client_pb2.MEMBER_STATE_DEAD)
                            for o in ("p1", "p2")])

            await wait_for(held_dead_by_both, 30, "p1 and p2 to hold coord DEAD")

            # Frozen on, until both are halfway through their grace: each has checked
            # coord directly (a call that the frozen agent does not answer).
            async def checked_by_both() -> bool:
                return all(fed.metric(o, "fedorch_loss_verdicts_total", outcome="checked")
                           >= 1 for o in ("p1", "p2"))

            await wait_for(checked_by_both, LOSS_GRACE_S + 10,
                           "p1 and p2 to check coord halfway through their grace")
        finally:
            fed.signal("coord", signal.SIGCONT)

        async def alive_again() -> bool:
            return all([await _holds(fed, o, "coord", client_pb2.MEMBER_STATE_ALIVE)
                        for o in ("p1", "p2")])

        await wait_for(alive_again, 30, "coord's refutation to reach p1 and p2")
        await asyncio.to_thread(gate.touch)
        status = await fed.wait_state("coord", wid, deadline_s=60)
        steps = {k: v[:2] for k, v in step_states(status).items()}
        assert steps == {"own": ("SUCCEEDED", "coord"), "other": ("SUCCEEDED", "p1")}, status
        assert (status.coordinator, status.epoch) == ("coord", 0), status
        assert runs["own"].read_text().splitlines() == ["start", "done"]  # ran once
        assert runs["other"].read_text().splitlines() == ["start", "done"]
        for name in ("p1", "p2"):  # no loss acted on anywhere; the verdicts withdrawn
            assert fed.metric(name, "fedorch_loss_verdicts_total", outcome="acted") == 0
            assert fed.metric(name, "fedorch_loss_verdicts_total", outcome="withdrawn") >= 1
            assert fed.metric(name, "fedorch_coordinator_takeovers_total") == 0
