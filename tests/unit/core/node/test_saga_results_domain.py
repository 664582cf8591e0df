"""A SUCCEEDED result held of a step placed again is planned in the domain whose run
made it (core/node/saga_results.py, `ran_in`, `domain_of`; used by saga_plans.adopt
and Compensating.ended).

As test_saga_runs_successor.py: d0 coordinates s0 (d1, placed again on d3: d1 lost),
s1 (d2) and s2 (d2); d1's own run of s0 SUCCEEDED, d3 never ran it; s2 FAILED, d0
ends the workflow FAILED with a plan of s1 alone and dies; d1 wins epoch 1 and
adopts the plan. But d1 never took the new placement's notice (its run's result is
not dropped): it learns the move otherwise (as a grant or an answer tells it) and
still holds its own run's result, which a results row does not tell from d3's (no
domain, attempt numbers restart at a new placement). Before, the plan named s0's new
domain d3 for it: d3, which never ran it, refused, and the summary ended FAILED."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_compensating_takeover import WF, Sagas, rows
from tests.unit.core.node.test_saga_runs_successor import (
    PLACED_AGAIN,
    d1_ran_s0_placed_again,
    end_compensation,
)


def lost_domain_holding_its_own_result() -> Sagas:
    f = d1_ran_s0_placed_again()
    # d1's report of its run never reaches d0 (lost with it below).
    f.deliver(keep=lambda src, dst, msg: isinstance(msg, ResultMsg) and src == "d1")
    assert f.end("d2", True)[1] == "s1"
    f.step("d0", Message("d3", ResultMsg(WF, "s0", 1, StepState.FAILED, {}, "boom", 1)))
    f.deliver(keep=lambda src, dst, msg: isinstance(msg, ResultMsg) and src == "d1")
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED
    assert f.disks["d1"].plans[WF] == (("s1", "d2", 1),)
    f.net = [m for m in f.net if "d0" not in m[:2]]
    f.kill("d0")
    f.nodes["d1"].state.placements[WF] = dict(PLACED_AGAIN)
    assert f.disks["d1"].results[WF]["s0"][1] is StepState.SUCCEEDED
    return f


def test_the_lost_domains_own_result_is_compensated_where_it_ran():
    f = lost_domain_holding_its_own_result()
    assert f.disks["d1"].result_domains[WF] == {"s0": "d1"}  # written with its result
    f.run_until(f.now + 30.0)
    assert f.disks["d1"].epochs[WF] == (1, "d1")
    assert f.nodes["d1"].stats["saga plan adopted by a successor"] == 1
    assert f.disks["d1"].compensations[(WF, "s0")].domain == "d1"
    assert not f.disks["d1"].extra_compensations  # one run, one compensation
    assert ("d1", (WF, "s0", 1, COMPENSATE)) in f.compensations
    end_compensation(f, "d1")
    end_compensation(f, "d2")
    f.run_until(f.now + 30.0)
    assert rows(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert f.nodes["d1"].compensating.of(WF)[1].value == "DONE"
    assert not [c for c in f.compensations if c[0] == "d3"]


def test_a_result_with_no_domain_on_record_is_planned_in_the_placement_now():
    # As a node.db of an older build reads: no row, so the step's placement now (d3),
    # as before; d1's own run is owed besides (saga_runs.own_owed).
    f = lost_domain_holding_its_own_result()
    f.nodes["d1"].state.result_domains.pop(WF)
    f.run_until(f.now + 30.0)
    assert f.disks["d1"].compensations[(WF, "s0")].domain == "d3"
    assert f.disks["d1"].extra_compensations[(WF, "s0", "d1")].domain == "d1"
