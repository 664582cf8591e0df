"""A step whose domain dies is placed again on another domain, by a new round.

Real agents on 127.0.0.1. Two domains offer the step's capability (label pool: work);
the one it is first placed on is SIGKILLed and never restarted. The deadlines are
behaviour bounds (the workflow ends without the dead agent), not speed benchmarks:
DEAD comes after ~4 s with the `local` gossip profile, a round takes well under a
second, and each bound is several times what the path needs on an idle machine.
"""

from __future__ import annotations

import pathlib
import sys

import pytest
from fedorch.core.workflow import values

from tests.integration.federation import (
    Federation,
    naps_running,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

STEPS = pathlib.Path(__file__).parent / "steps"
ECHO = {"type": "builtin", "name": "echo"}
WORK = [{"name": "test.work", "capacity": 2, "executor": {
    "type": "command", "argv": [sys.executable, str(STEPS / "side_effect.py")]}}]
DOMAINS = {
    "home": {"capabilities": [{"name": "test.echo", "capacity": 2, "executor": ECHO}]},
    "gate": {"capabilities": [{"name": "test.gate", "capacity": 2, "executor": {
        "type": "command", "argv": [sys.executable, str(STEPS / "gate.py")]}}]},
    "w1": {"labels": {"pool": "work"}, "capabilities": WORK},
    "w2": {"labels": {"pool": "work"}, "capabilities": WORK},
}
# From the kill: DEAD (~4 s), one round, the step's short nap, two results.
ENDED_WITHIN_S = 40


def _work(tmp_path: pathlib.Path, seconds: str, *, idempotent: bool,
          needs: str = "") -> str:
    return f"""
  - id: work
    capability: test.work
    params: {{file: "{tmp_path / 'effects.txt'}", seconds: "{seconds}", short: "0.3"}}
    idempotent: {str(idempotent).lower()}
    constraints: {{labels: {{pool: work}}}}{needs}
  - id: after
    capability: test.echo
    needs: [work]
    constraints: {{domains: [home]}}
"""


async def _placed(fed: Federation, wid: str, step: str) -> str:
    async def known():
        domain = step_states(await fed.status("home", wid))[step][1]
        return domain or None

    return await wait_for(known, 20, f"{step} to be placed")


def _effects(tmp_path: pathlib.Path) -> list[str]:
    path = tmp_path / "effects.txt"
    return path.read_text().splitlines() if path.exists() else []


async def test_a_started_idempotent_step_is_run_again_on_another_domain_once(
        tmp_path, seconds):
    spec = "name: replaced\nsteps:" + _work(tmp_path, seconds, idempotent=True)
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("home", spec)
        first = await _placed(fed, wid, "work")

        async def napping():
            return len(naps_running(seconds)) == 1

        await wait_for(napping, 30, "the step to run its first (endless) nap")
        fed.kill(first)  # its step's process group dies with it
        await fed.close_channels()
        status = await fed.wait_state("home", wid, deadline_s=ENDED_WITHIN_S)
        assert state_name(status) == "SUCCEEDED", status
        steps = step_states(status)
        other = ({"w1", "w2"} - {first}).pop()
        assert steps["work"][:2] == ("SUCCEEDED", other), steps
        work = next(s for s in status.steps if s.id == "work")
        assert list(work.replaced_from) == [first]
        assert values.read_object(work, "outputs")["runs"] == 2
        # Two runs started, exactly one completed: the killed one never wrote `done`.
        assert _effects(tmp_path) == ["start", "start", "done"]
        assert not naps_running(seconds)


def gated_work(tmp_path: pathlib.Path, name: str) -> tuple[pathlib.Path, str]:
    """A spec whose step `work` (not idempotent) needs `upstream`, which waits at a gate
    on the `gate` domain until the test opens it; the gate and the spec."""
    gate = tmp_path / "gate-open"
    return gate, f"""
name: {name}
steps:
  - id: upstream
    capability: test.gate
    params: {{gate: "{gate}"}}
    constraints: {{domains: [gate]}}
""" + _work(tmp_path, "0.3", idempotent=False, needs="\n    needs: [upstream]")


async def test_a_step_not_started_is_placed_again_and_gets_its_inputs(tmp_path):
    gate, spec = gated_work(tmp_path, "replaced-early")
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("home", spec)
        await fed.wait_state("home", wid, states={"RUNNING"}, deadline_s=30)  # committed
        first = await _placed(fed, wid, "work")
        other = ({"w1", "w2"} - {first}).pop()
        fed.kill(first)  # while upstream still waits at its gate: work never started
        await fed.close_channels()

        async def moved():
            return step_states(await fed.status("home", wid))["work"][1] == other

        await wait_for(moved, ENDED_WITHIN_S, f"work to be placed again on {other}")
        gate.touch()
        status = await fed.wait_state("home", wid, deadline_s=ENDED_WITHIN_S)
        assert state_name(status) == "SUCCEEDED", status
        steps = step_states(status)
        assert steps["work"][:2] == ("SUCCEEDED", other), steps
        work = next(s for s in status.steps if s.id == "work")
        assert list(work.replaced_from) == [first]
        # The upstream result reached the new domain (from the gate domain, told of the
        # new placement), and the step ran once, there.
        assert values.read_object(work, "outputs")["inputs"] == {
            "upstream": {"step": "upstream", "attempt": 1}}
        assert _effects(tmp_path) == ["start", "done"]


async def test_with_no_other_domain_the_step_fails_naming_the_lost_one(tmp_path, seconds):
    domains = {k: v for k, v in DOMAINS.items() if k != "w2"}
    spec = "name: stranded\nsteps:" + _work(tmp_path, seconds, idempotent=True)
    async with started_federation(tmp_path, domains) as fed:
        wid = await fed.submit("home", spec)
        assert await _placed(fed, wid, "work") == "w1"

        async def napping():
            return len(naps_running(seconds)) == 1

        await wait_for(napping, 30, "the step to run")
        fed.kill("w1")
        await fed.close_channels()
        status = await fed.wait_state("home", wid, deadline_s=ENDED_WITHIN_S)
        assert state_name(status) == "FAILED", status
        steps = step_states(status)
        assert steps["work"][0] == "FAILED" and steps["after"][0] == "SKIPPED", steps
        error = next(s.error for s in status.steps if s.id == "work")
        assert error.startswith("domain w1 was lost (DEAD) while the step ran; could not"
                                " place the step again: "), error
        assert "no eligible domain" in error, error
