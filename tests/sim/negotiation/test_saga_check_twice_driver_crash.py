"""Two claimants of one epoch, one of them a step's new domain the other never knew,
in the negotiation simulator, checked by saga_check.py (core/node/saga_plans.py
`rival_end`, authority_ends.py).

d0 coordinates s0 (d1, idempotent, with a compensate block) and s1 (d0, needs s0,
fails), among six domains. As a domain's run of s0 ends SUCCEEDED, that domain is cut
off (its result never reaches anyone, every other view says it is DEAD), twice: d1,
then the domain d0 placed s0 on next. d0 places s0 a third time, where it SUCCEEDS
too; s1 fails, d0 ends the workflow FAILED and crashes at once, before telling the
saga. The third domain claims epoch 1 and tells the end on in it; d0 restarts and the
cuts heal. d1, cut off all along, had claimed epoch 1 itself and refused d0's
placement of s0 on the third domain (told in epoch 0, not ended then), so it never
wrote it: it learns the end, tells it on in epoch 1 to the members it knows, and
refused the third domain's end as a stranger's. Both drove epoch 1's saga for ever.
Now d1 answers the rival's end with its own, and the rival, worse-ranked, yields.
"""

from __future__ import annotations

import pytest
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.sim.negotiation.run import Simulation

from tests.sim.negotiation.saga_stories import (
    crash_d0_then_heal,
    cut_story,
    placed_again_story,
)
from tests.sim.negotiation.test_takeover import TAKEOVER

WF = "d0.w0"
NAMES = [f"d{i}" for i in range(6)]


def placed_thrice(seed: int) -> Simulation:
    return placed_again_story(seed, NAMES, {"s0": "d1", "s1": "d0", "s2": "d3", "s3": "d4"},
                              TAKEOVER)


@pytest.mark.parametrize("seed", range(1, 6))
def test_a_step_placed_again_thrice_is_compensated_where_each_run_succeeded(
        seed, monkeypatch) -> None:
    sim = placed_thrice(seed)
    # s1 fails; the others succeed wherever
    cut, healed = cut_story(monkeypatch, sim, lambda step: step != "s1")
    # d0 ends it FAILED: it restarts before any report
    crashed = crash_d0_then_heal(
        sim, cut, healed, 2,
        lambda d0: d0.node.state.final.get(WF) is WorkflowState.FAILED)
    report = sim.run()
    assert len(cut) == 2 and crashed and healed, (cut, crashed, healed)
    assert cut[0] == "d1"
    assert report.violations == [], report.violations
    assert sim.agents["d0"].node.state.rows[WF].state is WorkflowState.FAILED
    # One driver of the saga: the claimant d1 (the better-ranked claimant of epoch 1);
    # every other claimant that told the end on in that epoch yielded to it (a member
    # may still follow one that yielded: it drives nothing, and each attempt number
    # is answered from its domain's record).
    drivers = {name for name, a in sim.agents.items() if WF in a.node.state.final
               and a.node.compensating.driver(WF) == name}
    assert drivers == {"d1"}, drivers
    ran = [name for name, a in sim.agents.items()
           if "s0" in a.node.state.succeeded_here.get(WF, {})]
    assert len(ran) == 3 and set(cut) < set(ran)
    for name in ran:  # each compensated its own run, once
        runs = sim.agents[name].node.state.comp_runs
        assert [k for k in runs if k[:2] == (WF, "s0")] == [(WF, "s0", 1)]
        assert runs[(WF, "s0", 1)][0] == "succeeded"
