"""The saga's plan adopted by the holder of a later epoch (core/node/saga_plans.py):
a coordinator that drove a saga in an earlier epoch, then followed a later one whose
plan it holds, adopts that plan when it wins the next epoch, its own rows replaced."""

from __future__ import annotations

from fedorch.core.node import Message, Submit
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_compensating_takeover import WF, Sagas, rows, spec


def test_a_coordinator_that_drove_a_saga_then_wins_a_later_epoch_adopts_that_epochs_plan():
    # d0 ran s0 itself, ended the workflow FAILED and drove its saga (s1's compensation
    # at d2 told); a claimant, d1, told the end on in epoch 1 and its plan: d0 follows
    # it, its rows kept, driven no more. d1 dies: d0 wins epoch 2 and adopts d1's plan,
    # its own rows of epoch 0 replaced by it (kept, they stopped the adoption: the saga
    # was driven by nobody), and finishes the saga, each attempt once.
    f = Sagas()
    f.step("d0", Submit(WF, spec(), placement={"s0": "d0", "s1": "d2", "s2": "d2"}))
    f.deliver()
    assert f.end("d0", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"
    assert f.end("d2", False, "boom")[1] == "s2"
    assert rows(f, "d0") == {"s0": ("PENDING", 0), "s1": ("RUNNING", 1)}
    plan = (("s0", "d0", 1), ("s1", "d2", 1))
    f.step("d0", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1)))
    f.step("d0", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1, owed=plan)))
    assert f.disks["d0"].epochs[WF] == (1, "d1")
    assert WF not in f.nodes["d0"].compensating.cores
    assert f.disks["d0"].plans[WF] == plan
    f.net = [m for m in f.net if "d1" not in m[:2]]
    f.kill("d1")
    f.run_until(f.now + 30.0)
    assert f.disks["d0"].epochs[WF] == (2, "d0")
    assert WF in f.nodes["d0"].compensating.cores  # it drives the plan
    assert f.nodes["d0"].stats["saga rows of an earlier epoch replaced by an adopted plan"]
    f.end("d2", True)  # s1's compensation (attempt 1, told in epoch 0) ends: to d0
    f.end("d0", True)  # then s0's, its own
    f.run_until(f.now + 30.0)
    assert rows(f, "d0") == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    assert sorted(f.compensations) == [("d0", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s1", 1, COMPENSATE))]
