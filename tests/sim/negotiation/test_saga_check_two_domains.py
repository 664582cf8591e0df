"""A step that SUCCEEDED in its lost domain and in its new one is compensated in both,
in the negotiation simulator (core/node/saga_runs.py), checked by saga_check.py.

d0 coordinates s0 (d1, idempotent, with a compensate block) and s1 (d2, needs s0,
fails). As d1's run of s0 ends SUCCEEDED, d1 is cut off: its result never reaches
d0, and every other domain's view says d1 is DEAD. d0 places s0 again (idempotent:
it may have started) on a live domain, where it SUCCEEDS too; s1 fails and d0 ends
the workflow FAILED, owing s0's compensation in the new domain. Then the cut heals:
d1 learns the end and reports its own run, which d0 had never heard of, and d0 owes
a second compensation, in d1. Each runs once, in its own domain, and the saga ends
with both. Before, d1's result was dropped at d0 (a compensation of s0 was planned
already) and d1's side effects were never undone.
"""

from __future__ import annotations

import pytest
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.sim.negotiation.run import Simulation

from tests.sim.negotiation.saga_stories import cut_off, steps_end
from tests.sim.negotiation.test_takeover import scenario

WF = "d0.w0"


def two_runs(seed: int) -> Simulation:
    comp = spec_pb2.Compensation(params_json='{"undo": true}')
    steps = [spec_pb2.StepSpec(id="s0", capability="a", compensate=comp, idempotent=True),
             spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"])]
    return scenario(seed, steps=steps, placement={"s0": "d1", "s1": "d2"}, cancels=False)


@pytest.mark.parametrize("seed", range(1, 6))
def test_a_step_run_in_its_lost_domain_and_its_new_one_is_compensated_in_both(
        seed, monkeypatch) -> None:
    steps_end(monkeypatch, lambda step: step == "s0")  # s0 succeeds wherever it runs; s1 fails
    sim = two_runs(seed)
    cut: list[str] = []  # d1, once cut
    healed: list[bool] = []
    cut_off(sim, cut, healed)

    def hook(agent, now, label):
        d = agent.node.state
        if agent.name == "d1" and not cut and WF in d.succeeded_here:
            cut.append("d1")  # its run SUCCEEDED here: cut off before it is told
            sim.view_change_at(now)
        if agent.name == "d0" and cut and not healed \
                and d.final.get(WF) is WorkflowState.FAILED:
            healed.append(True)  # d0 ended it: d1 comes back
            sim.view_change_at(now)
        return None

    sim.crash_hook = hook
    report = sim.run()
    assert cut == ["d1"] and healed, (cut, healed)
    assert report.violations == [], report.violations
    d0 = sim.agents["d0"].node
    assert d0.state.rows[WF].state is WorkflowState.FAILED
    new = d0.state.placements[WF]["s0"][1]
    assert new in ("d2", "d3")
    assert d0.state.compensations[(WF, "s0")].domain == new
    assert d0.state.extra_compensations[(WF, "s0", "d1")].state == "COMPENSATED"
    assert d0.compensating.of(WF)[1].value == "DONE"
    for name in ("d1", new):  # each ran its own, once
        runs = sim.agents[name].node.state.comp_runs
        assert [k for k in runs if k[:2] == (WF, "s0")] == [(WF, "s0", 1)]
        assert runs[(WF, "s0", 1)][0] == "succeeded"
    assert report.stats["compensation owed by a run in a second domain"] == 1
