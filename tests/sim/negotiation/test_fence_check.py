"""Self-fencing of the Node in the negotiation simulator (core/node/self_fencing.py), and
the seeded runs' fencing invariant (agent/sim/negotiation/fence_check.py).

d0 coordinates one workflow whose one long step runs at d1. At CUT_AT, d1 is cut off
from everyone: every message to or from it is lost, and its view and theirs say DEAD
(a partition as SWIM ends up seeing it) until HEAL_AT. d1 cannot take the workflow over
(it hears no elector), so its Node stops the step at its lease; without that (the
fence broken), the invariant fires.
"""

from __future__ import annotations

import pytest
from fedorch.core.node.self_fencing import SelfFencing
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation import ports
from fedorch.sim.negotiation.config import Config, Workflow
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import SIM_STEP_LEASE_S, Simulation

WF = "d0.w0"
CUT_AT, HEAL_AT = 5.0, 30.0
TIMING = Timing(max_rounds=1, takeover_after_s=3.0, step_lease_s=SIM_STEP_LEASE_S)


class CutOff(Simulation):
    def member_state(self, observer: str, name: str) -> str:
        if "d1" in (observer, name) and CUT_AT <= self.now < HEAL_AT:
            self.clock_check.observed(observer, name, "DEAD")  # as the run's own view
            return "DEAD"
        return super().member_state(observer, name)


def scenario() -> CutOff:
    names = ["d0", "d1", "d2"]
    steps = [spec_pb2.StepSpec(id="s1", capability="a")]
    config = Config(
        names=names,
        policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
        capacities={n: {"a": 4} for n in names},
        workflows=[Workflow(WF, "d0", 1.0, spec_pb2.WorkflowSpec(name="w0", steps=steps),
                            {"s1": "d1"})],
        timing=TIMING,
    )
    sim = CutOff(1, config)

    def cut(src: str, dst: str, msg: object, now: float) -> object:
        return "drop" if "d1" in (src, dst) and CUT_AT <= now < HEAL_AT else None
    sim.intercept = cut
    sim.view_change_at(CUT_AT)
    sim.view_change_at(HEAL_AT)
    return sim


@pytest.fixture(autouse=True)
def long_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "STEP_S", (60.0, 60.0))


def test_a_cut_off_participant_stops_its_step_at_its_lease() -> None:
    sim = scenario()
    report = sim.run()
    assert report.violations == [], report.violations
    assert report.stats["step self-fenced"] == 1
    (start, end), = [span for (agent, run), span in sim.fences.runs.items()
                     if agent == "d1" and run[:2] == (WF, "s1")]
    assert start < CUT_AT  # it ran before the cut
    assert end == pytest.approx(CUT_AT + SIM_STEP_LEASE_S)  # stopped at the lease
    attempt, state, _, error = sim.agents["d1"].disk.results[WF]["s1"]
    assert state is StepState.FAILED and error.startswith("fenced: lost contact with d0")
    # Healed, the fenced result reaches the coordinator: the workflow ends FAILED.
    assert sim.agents["d0"].disk.rows[WF].state is WorkflowState.FAILED


def test_without_the_fence_the_invariant_fires(monkeypatch: pytest.MonkeyPatch) -> None:
    def forgets(self: SelfFencing, now: float, wf: str, why: str) -> None:
        self.running.discard(wf)  # a Node that drops its deadline and fences nothing
        self.due.pop(wf, None)
    monkeypatch.setattr(SelfFencing, "_fence", forgets)
    report = scenario().run()
    assert any(v.startswith("fencing: d1 ran") for v in report.violations), \
        report.violations
