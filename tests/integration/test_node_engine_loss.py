"""A participant SIGKILLed for good while its steps run, on real `engine: node` agents.

Three node-engine agents; n1 coordinates three workflows and runs nothing; n2 and n3
run the steps. Each workflow has one step at n2:
- `started`: its step runs at n2 (not idempotent), held at a gate never opened;
- `idempotent`: the same, with `idempotent: true`;
- `waiting`: its step at n2 needs a step at n3 that is held at its gate, so it has not
  started when n2 dies.
Each also has a step at n3 (beside it, or the one it needs), so n3 takes part. Once
every step that can run runs, n2 is SIGKILLed and never restarted. n1's membership
makes it DEAD (posted to its Node as `MemberViews`), and n1's Node fails each step
placed there (core/node/domain_loss.py), naming n2, tells n3 the end, and ends the
workflow FAILED once n3 acknowledged it, within a bound, where without it the
workflows stayed RUNNING until n2 came back. The idempotent and the waiting steps would be
placed again (core/node/replacement.py), but their constraint names n2 alone: the
round finds no domain and they fail naming n2 too, saying so.

A second test kills whichever of n2 and n3 runs a workflow's one idempotent step, held
at its gate: the step is placed again on the other, runs there once the gate opens, and
the workflow SUCCEEDS; the step's side-effect file shows one completed run (the killed
agent's step process died with it).
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
ENDED_WITHIN_S = 20  # DEAD's delay (a few seconds with the local profile) and the end
WORK = [{"name": "test.gate", "capacity": 8,
         "executor": {"type": "command", "argv": [sys.executable, GATE_STEP]}}]
DOMAINS = node_engine_domains(  # n1 runs nothing
    ("n1", "n2", "n3"), lambda name: WORK if name in ("n2", "n3") else [])


def _spec(name: str, runs: pathlib.Path, gate: pathlib.Path, *, idempotent: bool = False,
          after: tuple[pathlib.Path, pathlib.Path] | None = None) -> str:
    """One step at n2 (held at `gate`), and one at n3: beside it, held at the same
    gate, or with `after` (runs file, gate), one it needs, held at its gate."""
    first = ""
    needs = ""
    if after is None:  # a step beside it at n3, held too: n3 takes part
        first = f"""
  - id: beside
    capability: test.gate
    params: {{runs: "{runs}-n3", gate: "{gate}"}}
    constraints: {{domains: [n3]}}"""
    else:
        first = f"""
  - id: before
    capability: test.gate
    params: {{runs: "{after[0]}", gate: "{after[1]}"}}
    constraints: {{domains: [n3]}}"""
        needs = "\n    needs: [before]"
    return f"""
name: {name}
steps:{first}
  - id: at-n2
    capability: test.gate{needs}
    idempotent: {str(idempotent).lower()}
    params: {{runs: "{runs}", gate: "{gate}"}}
    constraints: {{domains: [n2]}}
"""


async def test_the_steps_of_a_participant_killed_for_good_fail_naming_it(tmp_path):
    never = tmp_path / "never-opened"
    runs = {k: tmp_path / f"runs-{k}" for k in ("started", "idempotent", "waiting", "n3")}
    async with started_federation(tmp_path, DOMAINS) as fed:
        ids = {
            "started": await fed.submit("n1", _spec("started", runs["started"], never)),
            "idempotent": await fed.submit("n1", _spec(
                "idempotent", runs["idempotent"], never, idempotent=True)),
            "waiting": await fed.submit("n1", _spec(
                "waiting", runs["waiting"], never, after=(runs["n3"], never))),
        }

        def started(path: pathlib.Path) -> bool:
            return path.exists() and path.read_text() == "start\n"

        besides = [pathlib.Path(f"{runs[k]}-n3") for k in ("started", "idempotent")]

        async def running_at_n2() -> bool:
            return all(started(p) for p in [runs["started"], runs["idempotent"],
                                            runs["n3"], *besides])

        await wait_for(running_at_n2, 30, "the steps at n2 (and the one at n3) to run")
        for wid in ids.values():
            status = await fed.local_status("n1", wid)
            assert status is not None and state_name(status) == "RUNNING", status
        assert not runs["waiting"].exists()  # its input never came: it did not start
        fed.kill("n2")  # SIGKILL, reaped by its pid; never restarted
        killed_at = time.monotonic()

        async def ended(name: str, wid: str):
            s = await fed.local_status(name, wid)
            return s if s is not None and state_name(s) == "FAILED" else None

        for kind, wid in ids.items():
            status = await wait_for(lambda wid=wid: ended("n1", wid), ENDED_WITHIN_S + 5,
                                    f"the {kind} workflow to end FAILED at n1")
            assert time.monotonic() - killed_at <= ENDED_WITHIN_S, kind
            errors = {st.id: st.error for st in status.steps}
            assert step_states(status)["at-n2"][:2] == ("FAILED", "n2"), status
            assert "domain n2 was lost (DEAD)" in errors["at-n2"], (kind, errors)
            if kind == "started":
                assert "not idempotent" in errors["at-n2"], errors
            else:  # a round tried to place it again: its constraint allows n2 alone
                assert "could not place the step again" in errors["at-n2"], errors
            if kind == "waiting":
                assert "before the step started" in errors["at-n2"], errors
            # n3 took part: it had the end first (the coordinator tells a verdict's end
            # before it makes it), and stopped its step held at the gate.
            assert state_name(await fed.local_status("n3", wid)) == "FAILED", kind
        # Nothing ran twice: each started attempt shows one start and no second one.
        for path in [runs["started"], runs["idempotent"], runs["n3"], *besides]:
            assert path.read_text() == "start\n", path
        assert not runs["waiting"].exists()


async def _async(value):
    return value


async def test_an_idempotent_step_of_a_participant_killed_for_good_runs_elsewhere(tmp_path):
    gate, runs = tmp_path / "gate", tmp_path / "runs"
    spec = f"""
name: replaced
steps:
  - id: long
    capability: test.gate
    idempotent: true
    params: {{runs: "{runs}", gate: "{gate}"}}
"""
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("n1", spec)
        await wait_for(lambda: _async(runs.exists() and runs.read_text() == "start\n"), 30,
                       "the step to run")
        status = await fed.local_status("n1", wid)
        assert status is not None and state_name(status) == "RUNNING", status
        first = step_states(status)["long"][1]
        assert first in ("n2", "n3"), status
        other = "n3" if first == "n2" else "n2"
        fed.kill(first)  # SIGKILL, reaped by its pid; never restarted

        async def moved():
            s = await fed.local_status("n1", wid)
            return s if s is not None and step_states(s)["long"][1] == other else None

        await wait_for(moved, ENDED_WITHIN_S + 5, f"the step to be placed again on {other}")
        await wait_for(lambda: _async(runs.read_text() == "start\nstart\n"), 30,
                       f"the step to start again, at {other}")
        gate.touch()  # the run at `other` may end now; the killed one's process is gone

        async def succeeded():
            s = await fed.local_status("n1", wid)
            return s if s is not None and state_name(s) == "SUCCEEDED" else None

        status = await wait_for(succeeded, 30, "the workflow to succeed at n1")
        assert step_states(status)["long"] == ("SUCCEEDED", other, 1), status
        # One completed run: the killed agent's attempt never got past its gate.
        assert runs.read_text() == "start\nstart\ndone\n"
        assert state_name(await fed.local_status(other, wid)) == "SUCCEEDED"
