"""A step placed again twice, that SUCCEEDED in each domain it was placed on, is
compensated in each, in the negotiation simulator (core/node/saga_runs.py), checked by
saga_check.py.

d0 coordinates s0 (d1, idempotent, with a compensate block) and s1 (d2, needs s0,
fails), among five domains. As a domain's run of s0 ends SUCCEEDED, that domain is
cut off (its result never reaches anyone, every other view says it is DEAD), twice:
d1, then the domain d0 placed s0 on next (B). d0 places s0 a third time (C), where it
SUCCEEDS too; s1 fails and d0 ends the workflow FAILED, owing s0's compensation in C.
Then the cuts heal: d1 and B learn the end and report their own runs. B is the
placement's lost domain on record; d1 is not (the placement on record names B as the
one lost), and before, its run was never compensated: only the placement's last lost
domain's report was taken into the saga.
"""

from __future__ import annotations

import pytest
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.sim.negotiation.run import Simulation

from tests.sim.negotiation.saga_stories import (
    cut_as_s0_succeeds,
    cut_story,
    placed_again_story,
)
from tests.sim.negotiation.test_takeover import TAKEOVER

WF = "d0.w0"
NAMES = [f"d{i}" for i in range(5)]


def placed_twice(seed: int) -> Simulation:
    return placed_again_story(seed, NAMES, {"s0": "d1", "s1": "d2", "s2": "d3", "s3": "d4"},
                              TAKEOVER)


@pytest.mark.parametrize("seed", range(1, 6))
def test_a_step_placed_again_twice_is_compensated_where_each_run_succeeded(
        seed, monkeypatch) -> None:
    sim = placed_twice(seed)
    # s1 fails; the others succeed wherever
    cut, healed = cut_story(monkeypatch, sim, lambda step: step != "s1")

    def hook(agent, now, label):
        d = agent.node.state
        cut_as_s0_succeeds(sim, agent, now, cut, 2)  # its run SUCCEEDED there
        if agent.name == "d0" and len(cut) == 2 and not healed \
                and d.final.get(WF) is WorkflowState.FAILED:
            healed.append(True)  # d0 ended it: both come back
            sim.view_change_at(now)
        return None

    sim.crash_hook = hook
    report = sim.run()
    assert len(cut) == 2 and healed, (cut, healed)
    first, second = cut
    assert first == "d1"
    assert report.violations == [], report.violations
    d0 = sim.agents["d0"].node
    assert d0.state.rows[WF].state is WorkflowState.FAILED
    epoch, last, lost = d0.state.placements[WF]["s0"]
    assert lost == second and last not in cut
    assert d0.state.compensations[(WF, "s0")].domain == last
    for name in cut:
        assert d0.state.extra_compensations[(WF, "s0", name)].state == "COMPENSATED"
    assert d0.compensating.of(WF)[1].value == "DONE"
    for name in (*cut, last):  # each ran its own, once
        runs = sim.agents[name].node.state.comp_runs
        assert [k for k in runs if k[:2] == (WF, "s0")] == [(WF, "s0", 1)]
        assert runs[(WF, "s0", 1)][0] == "succeeded"
    assert report.stats["compensation owed by a run in a second domain"] == 2
