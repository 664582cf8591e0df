"""A claimant that follows a rival of its own epoch answers its granter with the end
(core/node/takeover_late_grants.py, "A rival of the claimed epoch"): d1, which ended the
workflow, claims epoch 1 for its saga's open plan and d3 (back, the end unknown there)
grants it; a rival claimant of the same epoch, d2, tells d1 its end of epoch 1 and then
the saga over, so d1 follows d2 in epoch 1 and its claim and plan are over without a
tell to d3. d3 follows d1 in epoch 1 and refuses d2's end for want of a certificate.
The federation and its story: test_takeover_claims.py."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import ClaimAnswerMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_ended_records import LATE, cut, grant_lost, with_retention
from tests.unit.core.node.test_takeover_claims import (
    WF,
    granted_by_a_member_that_never_heard_the_end,
    views,
)
from tests.unit.core.node.test_takeover_late_grants import holds


def test_a_claimant_that_followed_a_rival_of_its_epoch_tells_its_granter_the_end():
    """d0's denials of d1's claim (which carry the end) are late; d2, a rival claimant
    of epoch 1 alive in d1's view, tells d1 the end in epoch 1 and the saga over: d1
    follows d2 in epoch 1, so it never acted nor told the end on in that epoch, and its
    claim is over with the plan. d3 asks d1, whom it follows, and d1 answers with the
    end in epoch 1: d3 ends the workflow and releases its hold. Before, d1 answered
    nothing (it followed epoch 1 already), and d3 kept its reservation for ever,
    refusing the lower epoch's notices and the rival's uncertified end (takeover soak
    seed 140100077 with a cut one way)."""
    f = granted_by_a_member_that_never_heard_the_end()
    assert f.disks["d1"].late_grants == {WF: {"d3": 1}}  # d3's grant, taken

    def denials_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d1") and isinstance(msg, ClaimAnswerMsg)

    f.hold = denials_late
    views(f, "d1", d2="ALIVE")  # the rival is no gone holder to claim past
    f.step("d1", Message("d2", FinalMsg(WF, WorkflowState.FAILED, 1)))
    f.step("d1", Message("d2", FinalMsg(WF, WorkflowState.FAILED, 1, saga_over=True)))
    d1 = f.nodes["d1"]
    assert f.disks["d1"].epochs[WF] == (1, "d2") and not d1.takeover.live(WF)
    assert f.disks["d1"].plans[WF] == ()
    f.run_until(f.now + 60.0)
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    assert ("d3", FinalMsg(WF, WorkflowState.FAILED, 1)) in f.sent_by("d1", FinalMsg)
    assert d1.stats["takeover grant never taken: end told to the granter that asked"] >= 1
    assert WF not in f.disks["d1"].late_grants  # acknowledged: told no more
    asked = f.nodes["d3"].stats["takeover granter asked a holder that never acted"]
    f.run_until(f.now + 60.0)
    assert f.nodes["d3"].stats["takeover granter asked a holder that never acted"] == asked


def test_a_granter_never_taken_is_told_the_end_from_the_record_of_a_rivals_epoch(
        monkeypatch):
    """As above, but d3's grant never reached d1 (no row names it), and d3 is cut off
    from d1 until d1, with retention, has forgotten the workflow: the record d1 keeps
    of its end tells an asker the end in d1's epoch 1 (ended_records.py), as the kept
    workflow did, and d3 ends and lets its hold go. Before, the record told nothing
    (d1 followed epoch 1 in d2's hands), and d3 held for ever."""
    with_retention(monkeypatch)

    def ends_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d1") and isinstance(msg, ClaimAnswerMsg | FinalMsg)

    f = granted_by_a_member_that_never_heard_the_end(lost=grant_lost)
    f.net = [m for m in f.net if not cut(*m)]
    assert f.disks["d3"].granted[WF] == (1, "d1") and WF not in f.disks["d1"].late_grants
    f.hold = lambda *m: cut(*m) or ends_late(*m)
    f.end("d1", True)  # the compensation ends, reported to d0: its saga is over
    f.run_until(f.now + 3.0)
    views(f, "d1", d2="ALIVE")
    f.step("d1", Message("d2", FinalMsg(WF, WorkflowState.FAILED, 1)))
    f.step("d1", Message("d2", FinalMsg(WF, WorkflowState.FAILED, 1, saga_over=True)))
    assert f.disks["d1"].epochs[WF] == (1, "d2") and not f.nodes["d1"].takeover.live(WF)
    f.hold = cut
    f.run_until(f.now + 2 * LATE + 10.0)
    assert WF not in f.disks["d1"].final  # forgotten
    assert f.disks["d1"].ended_records[WF][:4] == (WorkflowState.FAILED, 1, "d2", 1)
    assert WF not in f.disks["d3"].final and holds(f, "d3")
    f.net = [m for m in f.net if not cut(*m)]
    f.hold = None
    f.run_until(f.now + 60.0)
    assert f.nodes["d1"].stats["placement asked of a forgotten workflow: the end told"] >= 1
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
