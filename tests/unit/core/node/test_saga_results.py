"""SUCCEEDED results that reach a saga's driver after the end (core/node/saga_results.py):
a step's domain that restarts after the end reports its owed results again, but not
those the plan told it names, nor an older placement's."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_compensating import (
    WF,
    comp_states,
    failed_chain,
    s0_succeeded_at_d1_unheard,
)
from tests.unit.core.node.test_domain_loss import WF as LOSS_WF
from tests.unit.core.node.test_domain_loss import committed, d0_dies_for_good, step


def test_a_succeeded_result_whose_resend_a_restart_lost_is_reported_again_on_restore():
    # s0's SUCCEEDED at d1 is lost on its way, the workflow ends FAILED without it, and
    # d1 restarts before its resend (in memory only) reached d0: restored, d1 reports
    # it again, and it joins d0's saga (takeover soak seeds 4000605, 3700970).
    f, _ = s0_succeeded_at_d1_unheard()
    f.end("d2", False, "boom")
    assert f.disks["d1"].final[WF] is WorkflowState.FAILED and comp_states(f) == {}
    f.restart("d1")
    assert f.nodes["d1"].stats["owed results reported again after a restart"] == 1
    f.deliver()
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}
    assert not f.nodes["d1"].pending  # acknowledged: no more resends
    f.restart("d1")  # the plan closed here names nothing: reported again, changes nothing
    f.deliver()
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)} and len(f.compensations) == 1


def test_a_result_the_plan_told_here_names_is_not_reported_again_on_restore():
    f = failed_chain()  # d0 planned s0's and s1's compensations and told d1 the plan
    assert f.disks["d1"].plans[WF] == (("s0", "d0", 1), ("s1", "d1", 1))
    f.restart("d1")
    assert not f.nodes["d1"].stats["owed results reported again after a restart"]
    assert not any(k[0] == "result" for k in f.nodes["d1"].pending)


def test_a_result_of_a_step_placed_again_elsewhere_is_not_reported_again_on_restore():
    # As if s0 had been placed again on d2 since (replacement.py): d1's SUCCEEDED is an
    # older placement's, not the workflow's, and owes nothing.
    f, _ = s0_succeeded_at_d1_unheard()
    f.end("d2", False, "boom")
    f.disks["d1"].placements[WF] = {"s0": (1, "d2", "d1")}
    f.restart("d1")
    assert not f.nodes["d1"].stats["owed results reported again after a restart"]
    f.deliver()
    assert comp_states(f) == {} and f.compensations == []


def test_a_member_that_took_a_later_end_without_the_commit_weighs_the_originals_result():
    """d2 ended d0's workflow in epoch 1 with d1's certificate, holding no COMMIT of the
    workflow (as a re-placement's new domain holds its own round only). d0, back unaware,
    reports s0 SUCCEEDED, whose spec has a `compensate` block: d2 tells it the later end
    and acknowledges the result, which a saga needs; it stopped on a KeyError looking
    for the committed round's spec (takeover soak seed 8300333)."""
    s0 = spec_pb2.StepSpec(id="s0", capability="a", compensate=spec_pb2.Compensation())
    fed = committed([s0, step("s1"), step("s2", needs=("s0",))],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    d0_dies_for_good(fed)
    assert fed.disks["d2"].final[LOSS_WF] is WorkflowState.FAILED
    del fed.nodes["d2"].state.committed[LOSS_WF]
    fed.net.clear()
    ready = fed.step("d2", Message("d0", ResultMsg(LOSS_WF, "s0", 1, StepState.SUCCEEDED,
                                                   {}, "")))
    answers = [type(m) for dst, m in sent(ready) if dst == "d0"]
    assert ClaimAnswerMsg in answers and AckMsg in answers
