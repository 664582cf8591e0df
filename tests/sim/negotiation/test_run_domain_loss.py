"""A domain dying for good while its steps run, in the negotiation simulator (the real
Node, core/node/domain_loss.py): the Node driving the workflow fails its steps there,
naming the domain, or places them again (core/node/replacement.py), and the workflow
ends everywhere alive; the checker's invariants
hold (no attempt twice, every participant ends as a coordinator did, every workflow
terminal though a domain it needs is gone for good)."""

from __future__ import annotations

from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation.config import Config, Workflow
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import Simulation

WF = "d0.w0"
TAKEOVER = Timing(max_rounds=1, takeover_after_s=3.0)


def scenario(placement: dict[str, str], *, idempotent: bool = False) -> Simulation:
    """d0 coordinates s1 then s2 and s3 (both after s1), placed by hand; no random
    faults."""
    names = [f"d{i}" for i in range(4)]
    steps = [spec_pb2.StepSpec(id="s1", capability="a", idempotent=idempotent),
             spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"], idempotent=idempotent),
             spec_pb2.StepSpec(id="s3", capability="a", needs=["s1"], idempotent=idempotent)]
    config = Config(
        names=names,
        policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
        capacities={n: {"a": 4} for n in names},
        workflows=[Workflow(WF, "d0", 1.0, spec_pb2.WorkflowSpec(name="w0", steps=steps),
                            placement)],
        timing=TAKEOVER,
    )
    return Simulation(1, config)


def dies_mid_step(sim: Simulation, name: str) -> None:
    """`name` dies for good as its first attempt ends (started, its end not written)."""
    fired = []

    def hook(agent, now, label):
        if agent.name == name and label == "step end" and not fired:
            fired.append(now)
            return "forever"
        return None
    sim.crash_hook = hook


def error_of(sim: Simulation, name: str, step: str) -> str:
    attempt, state, _, error = sim.agents[name].disk.results[WF][step]
    assert state is StepState.FAILED, (name, step, state)
    return error


def test_a_participant_dead_for_good_mid_step_fails_its_step_and_the_workflow() -> None:
    sim = scenario({"s1": "d1", "s2": "d2", "s3": "d3"})
    dies_mid_step(sim, "d2")
    report = sim.run()
    assert report.violations == [], report.violations
    assert sim.dead_forever == {"d2"}
    assert "domain d2 was lost (DEAD)" in error_of(sim, "d0", "s2")
    assert "not idempotent" in error_of(sim, "d0", "s2")
    for name in ("d0", "d1", "d3"):
        assert sim.agents[name].disk.final[WF] is WorkflowState.FAILED, name
    assert [(a, step, d) for a, step, d, *_ in sim.checker.steps_lost] == [
        ("d0", (WF, "s2"), "d2")]


def test_an_idempotent_step_is_placed_again_and_the_workflow_succeeds() -> None:
    """core/node/replacement.py: a round of its own places s2 on a live domain."""
    sim = scenario({"s1": "d1", "s2": "d2", "s3": "d3"}, idempotent=True)
    dies_mid_step(sim, "d2")
    report = sim.run()
    assert report.violations == [], report.violations
    epoch, domain, lost = sim.agents["d0"].disk.placements[WF]["s2"]
    assert lost == "d2" and domain not in ("d2", "") and epoch > 1
    assert report.stats["step placed again"] == 1
    # Its result is its new domain's run (its executor may fail, as any may here).
    attempts, state, outputs, error = sim.agents["d0"].disk.results[WF]["s2"]
    assert state is StepState.SUCCEEDED and outputs == {"by": domain} \
        or error == "executor failed", (state, error)
    end = sim.agents["d0"].disk.final[WF]
    assert end is (WorkflowState.SUCCEEDED if state is StepState.SUCCEEDED
                   else WorkflowState.FAILED)
    for name in ("d1", "d3"):
        assert sim.agents[name].disk.final[WF] is end, name


def test_a_successor_fails_the_dead_coordinators_own_step() -> None:
    """d0 runs s2 itself and dies for good mid-step: d1 takes the workflow over and, as
    the coordinator of epoch 1, fails s2 naming d0; d1 and d3 end the workflow FAILED
    (the checker: every workflow terminal, one end)."""
    sim = scenario({"s1": "d1", "s2": "d0", "s3": "d3"})
    dies_mid_step(sim, "d0")
    report = sim.run()
    assert report.violations == [], report.violations
    assert sim.checker.acting_in == {(WF, 1): "d1"}
    assert [(a, step, d) for a, step, d, *_ in sim.checker.steps_lost] == [
        ("d1", (WF, "s2"), "d0")]
    assert "domain d0 was lost (DEAD)" in error_of(sim, "d1", "s2")
    for name in ("d1", "d3"):
        assert sim.agents[name].disk.final[WF] is WorkflowState.FAILED, name


def test_a_verdict_is_held_until_a_live_participant_has_the_end() -> None:
    """The end a verdict decides is told to the participants first: d0 ends the
    workflow only after d1 and d3 acknowledged it."""
    sim = scenario({"s1": "d1", "s2": "d2", "s3": "d3"})
    dies_mid_step(sim, "d2")
    report = sim.run()
    assert report.violations == [], report.violations
    assert report.stats["loss verdict: end told before it is made"] == 1
    ended = sim.checker.ended_at
    assert ended[("d0", WF)] >= max(ended[("d1", WF)], ended[("d3", WF)])
