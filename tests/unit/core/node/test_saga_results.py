"""SUCCEEDED results that reach a saga's driver after the end (core/node/saga_results.py):
a step's domain that restarts after the end reports its owed results again, but not
those the plan told it names (unless it follows a later epoch's holder since, which
may lack that plan), nor an older placement's; a step placed again never
has its compensation run in its lost domain, but in its new domain; an owed result acknowledged by a Node that does
not drive the saga yet is kept for the saga it may drive."""

from __future__ import annotations

import pytest
from fedorch.core.node import Message, StepEnded, Submit
from fedorch.core.node.authority import Refused, check
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import (
    AckMsg,
    ClaimAnswerMsg,
    CompensatedMsg,
    CompensateMsg,
    FinalMsg,
    ResultMsg,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_compensating import (
    WF,
    Sagas,
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


def test_a_planned_result_is_reported_again_to_a_later_epochs_holder_that_lacks_it():
    # d0 planned s1's compensation at d1 and told d1 the plan; d1 ran it. d1 then
    # follows d2, holder of epoch 1 (a claimant it yielded to, which
    # learned the end bare and planned from its own results: no row of s1), and
    # restarts, its resends lost. Restored, d1 reports s1's SUCCEEDED to d2 though
    # d0's plan names it: it joins d2's saga, whose tell d1 answers from its record,
    # run once. Before, it was skipped, d2's saga never owed s1 and d1's report of
    # the run was acknowledged by d2 and dropped (takeover soak seed 60000176).
    f = failed_chain()
    assert f.disks["d1"].plans[WF] == (("s0", "d0", 1), ("s1", "d1", 1))
    f.end("d1", True)
    assert f.disks["d1"].comp_runs[(WF, "s1", 1)][0] == "succeeded"
    for name in ("d1", "d2"):
        f.disks[name].epochs[WF] = (1, "d2")
    # d2 as a claimant told the end bare: no plan of d0's, s1 never heard SUCCEEDED.
    del f.disks["d2"].plans[WF]
    f.disks["d2"].results[WF]["s1"] = (0, StepState.CANCELLED, {}, "workflow FAILED")
    f.restart("d2")  # held so on its disk
    assert f.disks["d2"].final[WF] is WorkflowState.FAILED
    assert not any(k[0] == WF for k in f.disks["d2"].compensations)
    f.restart("d1")
    assert f.nodes["d1"].stats["owed results reported again after a restart"] == 1
    f.deliver()
    assert f.disks["d2"].compensations[(WF, "s1")].state == "COMPENSATED"
    assert [c for c in f.compensations if c[1][1] == "s1"] == [
        ("d1", (WF, "s1", 1, COMPENSATE))]  # run once, at d0's tell


def test_a_result_of_a_step_placed_again_elsewhere_is_reported_again_only_if_run_here():
    # As if s0 had been placed again on d2 since (replacement.py): the result d1 holds
    # is not the workflow's. Without d1's own record of a run of it (a result it was
    # told), it is not reported; with it (d1's run SUCCEEDED: its effects are at d1),
    # it is, and owes its compensation at d1 (saga_runs.py). Before, neither was.
    f, _ = s0_succeeded_at_d1_unheard()
    f.end("d2", False, "boom")
    f.disks["d1"].placements[WF] = {"s0": (1, "d2", "d1")}
    own = f.disks["d1"].succeeded_here.pop(WF)
    assert own == {"s0": (1, 0)}
    f.restart("d1")
    assert not f.nodes["d1"].stats["owed results reported again after a restart"]
    f.deliver()
    assert comp_states(f) == {} and f.compensations == []
    f.disks["d1"].succeeded_here[WF] = own
    f.restart("d1")
    assert f.nodes["d1"].stats["owed results reported again after a restart"] == 1
    f.deliver()
    assert comp_states(f) == {"s0": ("RUNNING", 1)}
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]


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


def succeeded(f: Sagas, name: str) -> None:
    """`name` holds s0 SUCCEEDED (as if it ran it)."""
    d = f.nodes[name].state
    d.results[WF] = {**d.results[WF], "s0": (1, StepState.SUCCEEDED, {"of": "s0"}, "")}


def s0_compensated_beside_s1_and_s2() -> spec_pb2.WorkflowSpec:
    """Three parallel steps, s0 with a `compensate` block."""
    comp = spec_pb2.Compensation(params_json='{"undo": true}')
    return spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="s0", capability="a", compensate=comp),
        spec_pb2.StepSpec(id="s1", capability="a"),
        spec_pb2.StepSpec(id="s2", capability="a")])


def s0_placed_again_on_d1_after_d0_lost_it(result_before_the_end: bool = False) -> Sagas:
    """s0 (compensate, first placed on d0), s1 (d1) and s2 (d2) in parallel; s0 placed
    again on d1 (as replacement.py records it: its epoch, new domain, lost domain),
    where it SUCCEEDED, its result unheard at d0 when s2 FAILED the workflow (or,
    `result_before_the_end`, heard before)."""
    spec = s0_compensated_beside_s1_and_s2()
    f = Sagas()
    f.step("d0", Submit(WF, spec, placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    f.deliver()
    f.queue["d0"].pop(0)  # s0's first attempt at d0: its placement is over
    assert f.end("d1", True)[1] == "s1"
    for name in ("d0", "d1"):
        f.nodes[name].state.placements[WF] = {"s0": (1, "d1", "d0")}
    if result_before_the_end:
        f.step("d0", Message("d1", ResultMsg(WF, "s0", 1, StepState.SUCCEEDED,
                                             {"of": "s0"}, "", 1)))
        run = f.queue["d2"].pop(0)
        f.step("d2", StepEnded(*run, False, {}, "boom"))
        f.deliver_until(lambda src, dst, m: dst == "d1" and isinstance(m, FinalMsg))
        succeeded(f, "d1")  # its run there, as the end marks the step in its view
        f.deliver()
        return f
    assert f.end("d2", False, "boom")[1] == "s2"
    succeeded(f, "d1")  # its run there (the end marked the step CANCELLED in its view)
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED and comp_states(f) == {}
    return f


def test_a_late_result_of_a_step_placed_again_is_compensated_in_its_new_domain():
    # The committed placement names d0, the driver, for s0; s0 ran on d1. The saga plans
    # where the step runs now: d1 is told, runs it, and its report is taken at d0 (the
    # authority table reads the new domain too). Before, d0 was told and refused it
    # (COMPENSATION_FAILED, "did not run in d0"), or, before that, ran it where the step
    # never ran (takeover soak seed 8101787).
    f = s0_placed_again_on_d1_after_d0_lost_it()
    result = ResultMsg(WF, "s0", 1, StepState.SUCCEEDED, {"of": "s0"}, "", 1)
    check(f.nodes["d0"], "d1", result)
    f.step("d0", Message("d1", result))
    assert f.disks["d0"].compensations[(WF, "s0")].domain == "d1"
    assert f.nodes["d0"].stats["compensation planned in a step's new domain"] == 1
    f.deliver()
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    report = CompensatedMsg(WF, "s0", 1, True)
    check(f.nodes["d0"], "d1", report)  # the new domain reports it
    with pytest.raises(Refused):
        check(f.nodes["d0"], "d2", report)  # no other domain does
    f.end("d1", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}
    assert (WF, "s0", 1) not in f.disks["d0"].comp_runs  # nothing at the lost domain


def test_a_step_placed_again_that_succeeded_before_the_end_is_compensated_in_its_new_domain():
    # d0 holds s0's SUCCEEDED from d1, its new domain, when s2 fails the workflow: the
    # saga it plans at the end names d1 for s0, and tells d1 its plan.
    f = s0_placed_again_on_d1_after_d0_lost_it(result_before_the_end=True)
    assert f.disks["d0"].compensations[(WF, "s0")].domain == "d1"
    assert f.disks["d1"].plans[WF] == (("s0", "d1", 1),)
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}


def test_a_step_placed_again_elsewhere_is_not_compensated_in_its_first_domain():
    # A tell that names the step's first domain (a driver that planned by the committed
    # placement) is refused there: the step runs elsewhere now.
    f = s0_placed_again_on_d1_after_d0_lost_it()
    succeeded(f, "d0")
    f.step("d0", Message("d0", CompensateMsg(WF, "s0", 1)))
    assert f.compensations == []
    assert f.disks["d0"].comp_runs[(WF, "s0", 1)][1] == f"step s0 of {WF} did not run in d0"


def test_an_owed_result_a_claimant_acknowledges_before_it_drives_joins_its_saga():
    # d1's SUCCEEDED of s0 reaches d2 while d2 follows d0, the driver (d1 follows d2, a
    # claimant it granted). Acknowledged, it is resent no more: d2 keeps it, and the
    # saga d2 drives once it holds an epoch owes it (takeover soak seed 8202446: it was
    # dropped, and the winner's saga never compensated s0).
    f, late = s0_succeeded_at_d1_unheard()
    f.end("d2", False, "boom")
    assert f.disks["d2"].final[WF] is WorkflowState.FAILED
    (result,) = [m[2] for m in late if m[1] == "d0" and isinstance(m[2], ResultMsg)]
    f.step("d2", Message("d1", result))
    assert ("d2", "d1", AckMsg(("result", WF, "s0", "d2"))) in f.net
    assert f.disks["d2"].results[WF]["s0"][1] is StepState.SUCCEEDED
    assert f.nodes["d2"].stats["owed result kept for a later saga"] == 1
    assert (WF, "s0") not in f.disks["d2"].compensations  # d0 drives: nothing planned
    f.nodes["d2"].state.epochs[WF] = (1, "d2")  # as if d2 won epoch 1 and ended it there
    f.nodes["d2"].compensating.ended(f.now, WF, WorkflowState.FAILED)
    f.flush("d2")
    assert f.disks["d2"].compensations[(WF, "s0")].domain == "d1"


def test_a_result_of_a_workflow_ended_here_without_its_spec_owes_nothing_here():
    # Ended here but never committed here (no spec): asked whether a result owes a
    # compensation, the answer is no, not a KeyError that stops the driver (takeover
    # soak seed 8910240).
    f = Sagas()
    f.nodes["d0"].state.final["d2.w9"] = WorkflowState.FAILED
    msg = ResultMsg("d2.w9", "s0", 1, StepState.SUCCEEDED, {}, "")
    assert not f.nodes["d0"].compensating.owes(msg)


def test_a_late_result_told_by_the_lost_domain_of_its_older_placement_is_compensated_there():
    # s0 first placed on d1, placed again on d2 after d1 was lost (d1 down meanwhile,
    # unaware of it), its new domain never ran it. The workflow ends FAILED; d1, back,
    # reports s0 SUCCEEDED of its older placement: the step ran in d1, so its
    # compensation is owed in d1, not in d2 (takeover soak seed 21200275: planned in
    # d2, which did not know the workflow, it never ran).
    spec = s0_compensated_beside_s1_and_s2()
    f = Sagas()
    f.step("d0", Submit(WF, spec, placement={"s0": "d1", "s1": "d0", "s2": "d2"}))
    f.deliver()
    f.queue["d1"].pop(0)  # s0's attempt at d1: its result comes only after the end
    assert f.end("d0", True)[1] == "s1"
    for name in ("d0", "d2"):
        f.nodes[name].state.placements[WF] = {"s0": (1, "d2", "d1")}
    assert f.end("d2", False, "boom")[1] == "s2"
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED and comp_states(f) == {}
    succeeded(f, "d1")  # its run there
    f.step("d0", Message("d1", ResultMsg(WF, "s0", 1, StepState.SUCCEEDED,
                                         {"of": "s0"}, "", 0)))
    assert f.disks["d0"].compensations[(WF, "s0")].domain == "d1"
    assert not f.nodes["d0"].stats["compensation planned in a step's new domain"]
    f.deliver()
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}
