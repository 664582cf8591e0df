"""A driver's own runs of steps placed elsewhere join the plan it makes at the end in
the plan's write group (core/node/compensating.py, `ended`; saga_runs.own_owed).

d0 coordinates s0 (first placed on d0, placed again on d1: d0 lost it), s1 (d1) and
s2 (d2), all in parallel, s0 with a `compensate` block. d0's own run of s0 SUCCEEDED
after the move, and so did d1's; s2 FAILED: d0 ends the workflow FAILED and owes s0's
compensation in d1 (the plan) and in d0 (its own run). Before, d0 wrote its own run's
row in a write group after the plan's: a crash between the two kept the plan alone,
and the restored d0, which rebuilds its saga from its rows, never compensated its run."""

from __future__ import annotations

from fedorch.core.node import Message, StepEnded, Submit
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.ready import apply
from fedorch.core.node.records import ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_compensating import WF, Sagas
from tests.unit.core.node.test_saga_results import s0_compensated_beside_s1_and_s2

PLACED_AGAIN = {"s0": (1, "d1", "d0")}  # (epoch, new domain, lost domain)


def s2_failure_on_its_way() -> tuple[Sagas, ResultMsg]:
    """Both runs of s0 SUCCEEDED (d0's of its older placement, d1's heard at d0), s1
    too; s2's FAILED is on its way to d0 (taken off the network: the test hands it)."""
    f = Sagas()
    f.step("d0", Submit(WF, s0_compensated_beside_s1_and_s2(),
                        placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    f.deliver()
    run = f.queue["d0"].pop(0)
    assert run == (WF, "s0", 1)
    for name in ("d0", "d1", "d2"):
        f.nodes[name].state.placements[WF] = dict(PLACED_AGAIN)
    f.step("d0", StepEnded(*run, True, {"of": "s0"}, ""))
    f.deliver()
    assert f.disks["d0"].succeeded_here[WF] == {"s0": (1, 0)}
    f.nodes["d1"].state.succeeded_here[WF] = {"s0": (1, 1)}  # its run, as d1 records it
    f.step("d0", Message("d1", ResultMsg(WF, "s0", 1, StepState.SUCCEEDED,
                                         {"of": "s0"}, "", 1)))
    assert f.end("d1", True)[1] == "s1"
    run = f.queue["d2"].pop(0)
    assert run[1] == "s2"
    f.step("d2", StepEnded(*run, False, {}, "boom"))
    (failed,) = [m for src, dst, m in f.net if dst == "d0" and isinstance(m, ResultMsg)]
    f.net = [m for m in f.net if m[2] is not failed]
    return f, failed


def test_the_plan_and_the_drivers_own_run_are_written_in_one_group():
    f, failed = s2_failure_on_its_way()
    ready = f.step("d0", Message("d2", failed))
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED
    (plan,) = [w for w in ready.writes if w.point == "compensations owed"]
    assert {(op.table, op.key, op.value.domain, op.value.state) for op in plan.ops
            if op.table.endswith("compensations")} == {
        ("compensations", (WF, "s0"), "d1", "PENDING"),
        ("extra_compensations", (WF, "s0", "d0"), "d0", "PENDING")}
    assert f.nodes["d0"].stats[
        "own run of a step placed elsewhere owed in a driver's plan"] == 1
    f.deliver()
    assert sorted(f.compensations) == [("d0", (WF, "s0", 1, COMPENSATE)),
                                       ("d1", (WF, "s0", 1, COMPENSATE))]


def test_a_driver_that_crashes_once_its_plan_is_written_compensates_its_own_run():
    # d0 crashes right after the plan's write group is durable (the groups after it,
    # and its messages, lost); restored, it drives the saga from its rows.
    f, failed = s2_failure_on_its_way()
    node = f.nodes["d0"]
    node.step(f.now, Message("d2", failed))
    writes = node.ready().writes
    last = next(i for i, w in enumerate(writes) if w.point == "compensations owed")
    for w in writes[:last + 1]:
        apply(f.disks["d0"], w.ops)
    f.restart("d0")
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED
    assert f.disks["d0"].extra_compensations.get((WF, "s0", "d0")) is not None
    f.deliver()
    assert sorted(f.compensations) == [("d0", (WF, "s0", 1, COMPENSATE)),
                                       ("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d0", True)
    f.end("d1", True)
    rows, summary = f.nodes["d0"].compensating.of(WF)
    assert rows["s0"].state == "COMPENSATED" and summary.value == "DONE"
