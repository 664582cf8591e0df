"""Each SUCCEEDED run of a step owes its compensation in the domain that made it
(core/node/saga_runs.py): s0 (with a `compensate` block) first placed on d1, placed
again on d2 (d1 lost: its run went on), s1 on d0 (the coordinator), s2 on d2. A run
that SUCCEEDED in both d1 and d2 is compensated in each; the lost domain d1, which
learned the new placement, runs the compensation of its own run (before: refused,
"did not run in d1"), never one of a run that did not succeed there."""

from __future__ import annotations

from fedorch.core.node import Message, StepEnded, Submit
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import CompensateMsg, FinalMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_compensating import NOW, WF, Sagas, comp_states
from tests.unit.core.node.test_saga_results import s0_compensated_beside_s1_and_s2

PLACED_AGAIN = {"s0": (1, "d2", "d1")}  # (epoch, new domain, lost domain)


def s0_placed_again_on_d2(d1_ok: bool = True, d2_ran: bool = True,
                          d1_restarts: bool = False, d1_told: bool = True) -> Sagas:
    """s0's placement on d1 lost, placed again on d2 (every Node knows it; d1 not,
    unless `d1_told`); d2 ran s0 and its SUCCEEDED reached d0 (`d2_ran`); d1's own run
    ended after all (`d1_ok`: SUCCEEDED, refused at d0 as an older placement's); then
    s1 SUCCEEDED and s2 FAILED: d0 ends the workflow FAILED."""
    f = Sagas()
    f.step("d0", Submit(WF, s0_compensated_beside_s1_and_s2(),
                        placement={"s0": "d1", "s1": "d0", "s2": "d2"}))
    f.deliver()
    for name in ("d0", "d1", "d2") if d1_told else ("d0", "d2"):
        f.nodes[name].state.placements[WF] = dict(PLACED_AGAIN)
    if d2_ran:  # its run there (as its own Node records it) and its result at d0
        f.nodes["d2"].state.succeeded_here[WF] = {"s0": (1, 1)}
        f.step("d0", Message("d2", ResultMsg(WF, "s0", 1, StepState.SUCCEEDED,
                                             {"of": "s0"}, "", 1)))
        f.deliver()
    run = f.queue["d1"].pop(0)
    assert run == (WF, "s0", 1)
    f.step("d1", StepEnded(*run, d1_ok, {"of": "s0"}, "" if d1_ok else "broken"))
    f.deliver()
    if d1_ok:
        assert f.nodes["d0"].stats["result of an older placement refused"] == 1
    assert f.end("d0", True)[1] == "s1"
    if d1_restarts:  # d1 takes the end and restarts before its report left
        run = f.queue["d2"].pop(0)
        f.step("d2", StepEnded(*run, False, {}, "boom"))
        f.deliver_until(lambda src, dst, m: dst == "d1" and isinstance(m, FinalMsg))
        assert f.nodes["d1"].stats["run of a step placed elsewhere reported to the saga"]
        f.restart("d1")
        f.deliver()
    else:
        assert f.end("d2", False, "boom")[1] == "s2"
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED
    return f


def test_a_step_that_succeeded_in_its_lost_domain_and_its_new_one_is_compensated_in_both():
    f = s0_placed_again_on_d2()
    # d1 recorded its own run, told d0 of it at the end, and d0 owes a compensation in
    # each domain: the first row in d2 (planned at the end), another in d1.
    assert f.disks["d1"].succeeded_here[WF] == {"s0": (1, 0)}
    assert f.nodes["d1"].stats["run of a step placed elsewhere reported to the saga"] == 1
    assert f.disks["d0"].compensations[(WF, "s0")].domain == "d2"
    assert f.disks["d0"].extra_compensations[(WF, "s0", "d1")].domain == "d1"
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s0", 1, COMPENSATE))]
    assert f.disks["d1"].plans[WF] == (("s0", "d1", 1), ("s0", "d2", 1))
    # One ended: the step is not compensated yet, nor is the saga over.
    f.end("d2", True)
    rows, summary = f.nodes["d0"].compensating.of(WF)
    assert rows["s0"].state == "RUNNING" and summary.value == "RUNNING"
    f.end("d1", True)
    rows, summary = f.nodes["d0"].compensating.of(WF)
    assert rows["s0"].state == "COMPENSATED" and summary.value == "DONE"
    assert f.disks["d1"].comp_runs[(WF, "s0", 1)] == ("succeeded", "", True)
    assert f.disks["d2"].comp_runs[(WF, "s0", 1)] == ("succeeded", "", True)
    assert WF not in f.nodes["d0"].compensating.cores
    assert f.disks["d1"].plans[WF] == ()  # told the saga over
    # d1 restarted reports its run again: acknowledged, nothing planned twice.
    f.restart("d1")
    f.deliver()
    assert len(f.compensations) == 2 and len(f.disks["d0"].extra_compensations) == 1


def test_each_run_has_its_own_status_a_failure_in_one_domain_fails_the_step():
    f = s0_placed_again_on_d2()
    f.end("d1", False, "cannot undo")
    f.end("d2", True)
    rows, summary = f.nodes["d0"].compensating.of(WF)
    assert rows["s0"].state == "COMPENSATION_FAILED" and rows["s0"].domain == "d1"
    assert rows["s0"].error == "cannot undo" and summary.value == "FAILED"
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}  # d2's, the first row


def test_the_driver_restarted_drives_the_compensation_of_the_run_in_a_second_domain():
    f = s0_placed_again_on_d2()
    f.end("d2", True)
    f.restart("d0")
    core = f.nodes["d0"].compensating.cores[WF]
    assert {(s.step_id, s.domain, s.state.value) for s in core.entries()} == {
        ("s0", "d2", "COMPENSATED"), ("s0", "d1", "RUNNING")}
    f.deliver()  # the attempt out at d1 told again under its number: d1 runs it once
    assert [c for c in f.compensations if c[0] == "d1"] == [
        ("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"


def test_the_lost_domain_that_learned_the_new_placement_compensates_its_own_run():
    # d2 never ran s0 (its placement came too late): only d1's run SUCCEEDED, and d1
    # knows s0 was placed on d2. d1's report makes d0 owe it in d1; d1 runs it. Before,
    # d1 refused it ("did not run in d1"): its effects stayed.
    f = s0_placed_again_on_d2(d2_ran=False)
    assert f.disks["d0"].compensations[(WF, "s0")].domain == "d1"
    assert WF not in f.disks["d0"].extra_compensations
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}


def test_a_lost_domain_whose_run_did_not_succeed_runs_no_compensation():
    # d1's run FAILED: it records nothing and reports nothing; a tell that reaches it
    # all the same (a driver that planned it there) is refused.
    f = s0_placed_again_on_d2(d1_ok=False)
    assert WF not in f.disks["d1"].succeeded_here
    assert not f.nodes["d1"].stats["run of a step placed elsewhere reported to the saga"]
    assert f.compensations == [("d2", (WF, "s0", 1, COMPENSATE))]
    f.step("d1", Message("d0", CompensateMsg(WF, "s0", 1)))
    assert [c for c in f.compensations if c[0] == "d1"] == []
    assert f.disks["d1"].comp_runs[(WF, "s0", 1)][1] == f"step s0 of {WF} did not run in d1"


def test_a_lost_domain_restarted_before_its_report_left_reports_its_run_again():
    # The report of d1's run was in memory only: restored, d1 reports it again from
    # its own record (SagaResults.report), and d0 owes the compensation there.
    f = s0_placed_again_on_d2(d1_restarts=True)
    assert f.nodes["d1"].stats["owed results reported again after a restart"] == 1
    assert f.disks["d0"].extra_compensations[(WF, "s0", "d1")].domain == "d1"
    assert ("d1", (WF, "s0", 1, COMPENSATE)) in f.compensations


def test_a_lost_domain_never_told_of_the_move_has_its_run_compensated_all_the_same():
    # Only d0 and d2 know s0 was placed on d2 (d1's tell was lost, its teller's epoch
    # over), and d2 never ran it. d0 refuses d1's SUCCEEDED as an older placement's and
    # does not acknowledge it: d1 resends it, and after the FAILED end it joins the
    # saga in d1, where it ran (takeover soak seed 84001877: acknowledged, d1 never
    # reported its run again, as it knew of no move, and its effects stayed).
    f = s0_placed_again_on_d2(d2_ran=False, d1_told=False)
    f.tick(NOW + 30)
    assert f.disks["d0"].compensations[(WF, "s0")].domain == "d1"
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}
