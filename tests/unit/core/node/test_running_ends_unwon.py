"""A claimant that told an end on in an epoch it never won, learned with no proof,
settles its notice to a member that says it holds that very end: the member's end
notice of an older epoch, proven or not, or its denial of the claim that shows the end
(core/node/running_ends.py, `settled_by_same_end`; takeover_claim_answers.py). Takeover
soak seeds 210001702, 210101818 and 210102662 (`--one-way` the last two): each side
refused or ignored the other's notice, and the claimant resent its own for ever."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import committed as loss_committed
from tests.unit.core.node.test_domain_loss import step

WF = "d0.w"
SUCCEEDED = WorkflowState.SUCCEEDED
STAT = "end told on in an unwon epoch settled by its member's same end"


def told_on_unproven(holder: str = "d1"):
    """d0's workflow: d0 dies, d1 wins epoch 1 (its certificate); d2, its view saying
    d1 DEAD, claims epoch 2, and d1 denies it with SUCCEEDED, naming epoch 1's holder,
    no certificate shown: d2 tells that end on in epoch 2, which it never won, with no
    proof kept."""
    fed = loss_committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead("d0")
    epoch, won = fed.disks["d1"].certificates[WF]
    assert epoch == 1
    fed.step("d2", MemberState("d1", "DEAD"))
    fed.net = []
    fed.step("d2", Message("d1", ClaimAnswerMsg(WF, 2, False, 1, holder, SUCCEEDED)))
    assert fed.disks["d2"].final[WF] is SUCCEEDED
    assert WF not in fed.disks["d2"].end_proofs
    return fed, won


def test_the_holders_proven_same_end_settles_a_notice_told_with_no_proof() -> None:
    """d1, back, tells d2 its epoch-1 SUCCEEDED with its certificate: d2 acknowledges
    it, and its own epoch-2 notice to d1 is settled. Before, d2 kept no proof (the
    denial showed none), so the proven holder's notice settled nothing, and d1 refused
    d2's epoch-2 notice (no certificate, d2 no participant) for ever."""
    fed, won = told_on_unproven()
    assert fed.nodes["d2"].pending[("final", WF, "d1")][1] == FinalMsg(WF, SUCCEEDED, 2)
    fed.step("d2", Message("d1", FinalMsg(WF, SUCCEEDED, 1, won=won)))
    assert ("d1", AckMsg(("final", WF, "d2"))) in fed.sent_by("d2", AckMsg)
    assert ("final", WF, "d1") not in fed.nodes["d2"].pending
    assert "d1" in fed.disks["d2"].final_acked[WF]
    assert fed.nodes["d2"].stats[STAT] == 1


def test_a_members_unproven_same_end_settles_it_too() -> None:
    """d1 tells the same end on in epoch 1 with no certificate (a claimant of epoch 1
    itself, seed 210102662): acknowledged, and our notice to it settled."""
    fed, _ = told_on_unproven()
    fed.step("d2", Message("d1", FinalMsg(WF, SUCCEEDED, 1)))
    assert ("d1", AckMsg(("final", WF, "d2"))) in fed.sent_by("d2", AckMsg)
    assert ("final", WF, "d1") not in fed.nodes["d2"].pending


def test_a_members_denial_that_shows_the_end_settles_the_notice_to_it() -> None:
    """The denial came from d1 naming another holder of epoch 1 (d0's claim, say): d1
    holds SUCCEEDED, so the notice d2 tells it on in epoch 2 is settled at once (seed
    210001702: the member that denied the claim was never told anything else)."""
    fed, _ = told_on_unproven(holder="d0")
    assert ("final", WF, "d1") not in fed.nodes["d2"].pending
    assert "d1" in fed.disks["d2"].final_acked[WF]


def test_another_end_or_an_epoch_won_here_is_not_settled() -> None:
    """Only the very end, of an epoch never won here, is settled so."""
    fed, won = told_on_unproven()
    node = fed.nodes["d2"]
    entry = node.pending[("final", WF, "d1")]
    entry[1] = FinalMsg(WF, WorkflowState.FAILED, 2)
    node.end_notices.settled_by_same_end(fed.now, "d1", WF, SUCCEEDED, 1)
    assert ("final", WF, "d1") in node.pending
    entry[1] = FinalMsg(WF, SUCCEEDED, 2)
    node.state.certificates[WF] = (2, won)  # as if d2 had won epoch 2
    node.end_notices.settled_by_same_end(fed.now, "d1", WF, SUCCEEDED, 1)
    assert ("final", WF, "d1") in node.pending
