"""A step placed again three times, that SUCCEEDED in each domain it was placed on, is
compensated in each, by a driver that restarted before the reports came, in the
negotiation simulator (core/node/saga_runs.py, authority_steps.placed_before), checked
by saga_check.py.

d0 coordinates s0 (d1, idempotent, with a compensate block) and s1 (d2, needs s0,
fails), among six domains. As a domain's run of s0 ends SUCCEEDED, that domain is cut
off (its result never reaches anyone, every other view says it is DEAD), three times:
d1 (A), then the domain d0 placed s0 on next (B), then the next (C). d0 places s0 a
fourth time (D), where it SUCCEEDS too; s1 fails and d0 ends the workflow FAILED,
owing s0's compensation in D. d0 then restarts (its progress, which saw A, B and C
lost, is rebuilt from the placements on record), and the cuts heal: A, B and C learn
the end and report their own runs. B, neither the committed placement's domain nor
the placement's last lost one, is known only from the list of earlier domains the
placement on record carries: before, its report was refused, and its run never
compensated.
"""

from __future__ import annotations

import pytest
from fedorch.core.node.records import Timing
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.sim.negotiation.run import Simulation

from tests.sim.negotiation.saga_stories import (
    crash_d0_then_heal,
    cut_story,
    placed_again_story,
)

WF = "d0.w0"
NAMES = [f"d{i}" for i in range(6)]


def placed_thrice(seed: int) -> Simulation:
    # Takeover composed (domain loss reads its views), but no claim before d0 is
    # back from its restart: d0 drives the saga again.
    return placed_again_story(seed, NAMES, {"s0": "d1", "s1": "d0", "s2": "d3", "s3": "d4"},
                              Timing(max_rounds=1, takeover_after_s=600.0))


@pytest.mark.parametrize("seed", range(1, 6))
def test_a_step_placed_again_thrice_is_compensated_where_each_run_succeeded(
        seed, monkeypatch) -> None:
    sim = placed_thrice(seed)
    # s1 fails; the others succeed wherever
    cut, healed = cut_story(monkeypatch, sim, lambda step: step != "s1")
    # d0 ends it FAILED, its saga planned: it restarts
    crashed = crash_d0_then_heal(
        sim, cut, healed, 3,
        lambda d0: d0.durable.final.get(WF) is WorkflowState.FAILED
        and (WF, "s0") in d0.durable.compensations)
    report = sim.run()
    assert len(cut) == 3 and crashed and healed, (cut, crashed, healed)
    assert cut[0] == "d1"
    assert report.violations == [], report.violations
    d0 = sim.agents["d0"].node
    assert d0.state.rows[WF].state is WorkflowState.FAILED
    epoch, last, lost = d0.state.placements[WF]["s0"]
    assert lost == cut[2] and last not in cut
    assert d0.state.earlier_domains[WF]["s0"] == tuple(cut)
    assert d0.state.compensations[(WF, "s0")].domain == last
    for name in cut:
        assert d0.state.extra_compensations[(WF, "s0", name)].state == "COMPENSATED"
    assert d0.compensating.of(WF)[1].value == "DONE"
    for name in (*cut, last):  # each ran its own, once
        runs = sim.agents[name].node.state.comp_runs
        assert [k for k in runs if k[:2] == (WF, "s0")] == [(WF, "s0", 1)]
        assert runs[(WF, "s0", 1)][0] == "succeeded"
