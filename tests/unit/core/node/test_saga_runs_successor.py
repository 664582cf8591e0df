"""A successor's own run of a step placed elsewhere joins the plan it adopts
(core/node/saga_runs.py, `own_owed`; saga_plans.adopt).

d0 coordinates s0 (d1, then placed again on d3: d1 lost) and s1 (d2), both with a
`compensate` block, and s2 (d2). d1's own run of s0 SUCCEEDED after the move (d0
refuses it as an older placement's), d3 never ran it; s1 SUCCEEDED, s2 FAILED: d0
ends the workflow FAILED and tells its plan (s1 at d2 only). d1 takes the end and
reports its run of s0 to d0, which dies before the report reaches it; d1 wins epoch 1
and adopts d0's plan. Before, the plan was all it drove: d1's run of s0 was never
compensated (takeover soak seed 98501711, classic 2PC)."""

from __future__ import annotations

from fedorch.core.node import Message, StepEnded, Submit
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.inputs import CompensationEnded
from fedorch.core.node.records import FinalMsg, PlacedMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_compensating_takeover import WF, Sagas, rows

PLACEMENT = {"s0": "d1", "s1": "d2", "s2": "d2"}
PLACED_AGAIN = {"s0": (1, "d3", "d1")}  # (epoch, new domain, lost domain)


def spec() -> spec_pb2.WorkflowSpec:
    comp = spec_pb2.Compensation(params_json='{"undo": true}')
    return spec_pb2.WorkflowSpec(name="w", steps=[
        # idempotent: d1, told the new placement, drops its own result, so the
        # adopted plan owes its run by its record alone (a SUCCEEDED run of a step
        # not idempotent it keeps: placed_started.py).
        spec_pb2.StepSpec(id="s0", capability="a", compensate=comp, idempotent=True),
        spec_pb2.StepSpec(id="s1", capability="a", compensate=comp),
        spec_pb2.StepSpec(id="s2", capability="a")])


def d1_ran_s0_placed_again() -> Sagas:
    """The workflow committed; every Node but d1 holds s0 placed again on d3; d1's run
    of s0 ended SUCCEEDED, its report on the network (not delivered yet)."""
    f = Sagas()
    f.step("d0", Submit(WF, spec(), placement=PLACEMENT))
    f.deliver()
    for name in ("d0", "d2", "d3"):
        f.nodes[name].state.placements[WF] = dict(PLACED_AGAIN)
    run = f.queue["d1"].pop(0)
    assert run[1] == "s0"
    f.step("d1", StepEnded(*run, True, {"of": "s0"}, ""))
    return f


def own_run_unheard_by_the_dead_driver() -> Sagas:
    """d0 ended the workflow FAILED, its plan told; d1's report of its own run of s0
    (placed on d3 since) lost with d0, dead for good."""
    f = d1_ran_s0_placed_again()
    f.deliver()
    assert f.disks["d1"].succeeded_here[WF] == {"s0": (1, 0)}
    assert f.nodes["d0"].stats["result of an older placement refused"] == 1
    # d1 is told the new placement after its run ended: its result of the older
    # placement is dropped from its view (placed_here.py), its own record kept.
    f.step("d1", Message("d0", PlacedMsg(WF, "s0", "d3", 1, "d1")))
    f.deliver()
    assert "s0" not in f.disks["d1"].results.get(WF, {})
    assert f.end("d2", True)[1] == "s1"
    # s0's run at d3 FAILED: d0 ends the workflow FAILED; d1's report of its own run
    # is held (lost with d0 below).
    f.step("d0", Message("d3", ResultMsg(WF, "s0", 1, StepState.FAILED, {}, "boom", 1)))
    f.deliver(keep=lambda src, dst, msg: isinstance(msg, ResultMsg) and src == "d1")
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED
    assert f.disks["d1"].plans[WF] == (("s1", "d2", 1),)  # s0 never reached d0's saga
    assert f.nodes["d1"].stats["run of a step placed elsewhere reported to the saga"]
    f.net = [m for m in f.net if "d0" not in m[:2]]
    f.kill("d0")
    return f


def end_compensation(f: Sagas, name: str) -> None:
    """The oldest compensation running in `name` ends well (its step runs stopped by
    the end are left as they are)."""
    run = next(r for r in f.queue[name] if len(r) == 4)
    f.queue[name].remove(run)
    f.step(name, CompensationEnded(*run[:3], True, ""))
    f.deliver()


def test_the_successor_adopts_the_plan_with_its_own_run_of_a_step_placed_elsewhere():
    f = own_run_unheard_by_the_dead_driver()
    f.run_until(f.now + 30.0)
    assert f.disks["d1"].epochs[WF] == (1, "d1")
    assert f.nodes["d1"].stats["saga plan adopted by a successor"] == 1
    # Its own run is owed where it ran, beside the plan's.
    assert f.disks["d1"].compensations[(WF, "s0")].domain == "d1"
    assert f.nodes["d1"].stats[
        "own run of a step placed elsewhere owed in an adopted plan"] == 1
    assert ("d1", (WF, "s0", 1, COMPENSATE)) in f.compensations
    end_compensation(f, "d1")
    end_compensation(f, "d2")
    f.run_until(f.now + 30.0)
    assert rows(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert f.nodes["d1"].compensating.of(WF)[1].value == "DONE"
    # d2 learns the plan grew; d3, where s0 never ran, runs nothing.
    told = [m.owed for to, m in f.sent_by("d1", FinalMsg) if to == "d2" and m.owed]
    assert told and ("s0", "d1", 1) in told[-1]
    assert not [c for c in f.compensations if c[0] == "d3"]


def test_a_successor_restored_with_the_plan_open_adopts_its_own_run_too():
    # d1 holds epoch 1 (as a won claim leaves it) and restarts before it adopted the
    # plan: restored, it adopts it (Compensating.restore), with its own run.
    f = own_run_unheard_by_the_dead_driver()
    f.disks["d1"].epochs[WF] = (1, "d1")
    f.disks["d1"].granted[WF] = (1, "d1")
    f.restart("d1")
    assert f.nodes["d1"].stats["saga plan adopted by a successor"] == 1
    assert f.disks["d1"].compensations[(WF, "s0")].domain == "d1"
    f.deliver()
    assert ("d1", (WF, "s0", 1, COMPENSATE)) in f.compensations
    end_compensation(f, "d1")
    assert rows(f)["s0"] == ("COMPENSATED", 1)
