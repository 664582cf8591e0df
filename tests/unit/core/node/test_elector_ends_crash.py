"""A successor's end at an elector holding no step, and a crash amid its write groups
(agent/core/node/elector_ends.py, `elector_takes`), through the boundary
(test_domain_loss.py's Federation): d0 coordinates, s1 runs on d1, d2 is the extra
acceptor of the committed round (its electorate d0, d1, d2). d2 granted d1 epoch 1; d1
won it, ended the workflow and tells d2 its end with its certificate. Whatever prefix
of that turn's write groups a crash leaves on d2's disk, d2 back answers the original
coordinator's end of epoch 0 (with the later end and its proof, or with the later
epoch it granted), never refuses it silently: before, the end was written in a group
ahead of its proof and the epoch it follows, so a crash between them left an end with
no proof, and d2 refused the original's end as stale for ever; its holder dead for
good, the original stayed RUNNING (takeover soak seed 140103976, with a cut one way)."""

from __future__ import annotations

import copy

from fedorch.core.node import Message
from fedorch.core.node.ready import apply
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import WF, Federation, committed, step
from tests.unit.core.node.test_told_ends import certificate


def d2_granted_d1_epoch_1() -> Federation:
    """s1 on d1; d2 holds no step and granted d1's claim of epoch 1 (its tables say so)."""
    fed = committed([step("s1")], {"s1": "d1"})
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    fed.net.clear()
    fed.disks["d2"].granted[WF] = (1, "d1")
    fed.restore("d2")
    fed.net.clear()
    return fed


def test_an_elector_keeps_a_successors_end_with_its_proof_and_epoch() -> None:
    """The whole turn written: the end, its proof and the epoch followed, acknowledged."""
    fed = d2_granted_d1_epoch_1()
    won = certificate(fed, "d1", ("d1", "d2"))
    ready = fed.step("d2", Message("d1", FinalMsg(WF, WorkflowState.SUCCEEDED, 1, won=won)))
    assert fed.refused == []
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d2"].end_proofs[WF] == (1, "d1", won)
    assert fed.disks["d2"].epochs[WF] == (1, "d1")
    assert ("d1", AckMsg(("final", WF, "d2"))) in sent(ready)


def test_no_crash_amid_that_write_leaves_an_end_without_its_proof() -> None:
    """Each prefix of the turn's write groups, as a crash at the next point leaves it:
    an end kept there comes with its proof and epoch, and d2, restored from it, answers
    d0's older end (back, d1 dead for good) with a later epoch's word."""
    fed = d2_granted_d1_epoch_1()
    before = copy.deepcopy(fed.disks["d2"])
    won = certificate(fed, "d1", ("d1", "d2"))
    ready = fed.step("d2", Message("d1", FinalMsg(WF, WorkflowState.SUCCEEDED, 1, won=won)))
    assert any(w.point == "end kept by an elector holding no step" for w in ready.writes)
    for k in range(len(ready.writes) + 1):
        disk = copy.deepcopy(before)
        for w in ready.writes[:k]:
            apply(disk, w.ops)
        if WF in disk.final:
            assert disk.end_proofs.get(WF) == (1, "d1", won), [w.point for w in ready.writes]
            assert disk.epochs.get(WF) == (1, "d1")
        fed.disks["d2"] = disk
        fed.restore("d2")
        fed.net.clear()
        fed.refused.clear()
        back = fed.step("d2", Message("d0", FinalMsg(WF, WorkflowState.FAILED)))
        assert fed.refused == [], k  # before: stale_epoch, silently
        answers = [m for to, m in sent(back) if to == "d0" and isinstance(m, ClaimAnswerMsg)]
        assert answers and all((a.held_epoch, a.holder, a.granted) == (1, "d1", False)
                               for a in answers), k
        assert WF not in disk.final or answers[0].final is WorkflowState.SUCCEEDED
        assert not any(isinstance(m, AckMsg) for _, m in sent(back))
