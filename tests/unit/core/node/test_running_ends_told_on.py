"""A claimant that told on a proven holder's end in the epoch it claimed, never won,
keeps that end's proof, and the holder's own notice of the same end settles both
notices (core/node/running_ends.py, `settled_by_proven_end`; takeover_claims.py); a
loss verdict's end, void against another end made here, is told no more
(domain_loss.py, `_void`). Takeover soak seed 191000086."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from fedorch.core.node import MemberState, Message
from fedorch.core.node.domain_loss import DomainLoss
from fedorch.core.node.pending import Pending
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import committed as loss_committed
from tests.unit.core.node.test_domain_loss import step

WF = "d0.w"
SUCCEEDED = WorkflowState.SUCCEEDED


def told_on_in_epoch_2():
    """d0's workflow: d0 dies, d1 wins epoch 1 (its certificate); d2, its view saying
    d1 DEAD, claims epoch 2, and is answered with d1's SUCCEEDED and its certificate:
    it tells that end on in epoch 2, which it never won."""
    fed = loss_committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead("d0")
    epoch, won = fed.disks["d1"].certificates[WF]
    assert epoch == 1
    fed.step("d2", MemberState("d1", "DEAD"))
    fed.net = []
    answer = ClaimAnswerMsg(WF, 2, False, 1, "d1", SUCCEEDED, won=won)
    fed.step("d2", Message("d1", answer))
    assert fed.disks["d2"].final[WF] is SUCCEEDED
    assert fed.nodes["d2"].pending[("final", WF, "d1")][1] == FinalMsg(WF, SUCCEEDED, 2)
    return fed, won


def test_a_claimant_that_tells_a_proven_end_on_keeps_its_proof() -> None:
    """The end's proof is kept with it, as an end notice's is: before, a claimant that
    took it from a claim's answer kept none, and refused the holder's own notice of that
    end as of an epoch below its claim (stale_epoch), for ever."""
    fed, won = told_on_in_epoch_2()
    assert fed.disks["d2"].end_proofs[WF] == (1, "d1", won)


def test_the_proven_holders_same_end_is_acknowledged_and_settles_ours() -> None:
    """d1, back, tells d2 its epoch-1 end with its certificate: d2 acknowledges it, and
    its own notice to d1 of the same end, told on in epoch 2, is settled as if d1 had
    acknowledged it (d1 holds that end). Before, each resent its notice for ever (the
    original, no participant, had its epoch-2 notice refused by the holder)."""
    fed, won = told_on_in_epoch_2()
    fed.step("d2", Message("d1", FinalMsg(WF, SUCCEEDED, 1, won=won)))
    assert ("d2", "stale_epoch") not in fed.refused
    assert ("d1", AckMsg(("final", WF, "d2"))) in fed.sent_by("d2", AckMsg)
    assert ("final", WF, "d1") not in fed.nodes["d2"].pending
    assert "d1" in fed.disks["d2"].final_acked[WF]
    assert fed.nodes["d2"].stats["end told on settled by its proven holder's same end"] == 1


def test_a_notice_of_another_end_is_not_settled_by_the_holders() -> None:
    """Only the same end settles our notice: a notice of another end to d1 stays."""
    fed, won = told_on_in_epoch_2()
    node = fed.nodes["d2"]
    entry = node.pending[("final", WF, "d1")]
    entry[1] = FinalMsg(WF, WorkflowState.FAILED, 2)
    node.end_notices.settled_by_proven_end(fed.now, "d1", FinalMsg(WF, SUCCEEDED, 1, won=won))
    assert ("final", WF, "d1") in node.pending


def test_a_void_verdicts_end_unlike_the_one_made_here_is_told_no_more() -> None:
    """A loss verdict's FAILED, told to d4 and d6 before it is made, void once this Node
    made SUCCEEDED by another path (a claim's answer: the Announce re-told d6 alone):
    the FAILED still pending to d4 is dropped; the made end's notice stays. Before, it
    was resent to d4 for ever, answered each time with the proven SUCCEEDED."""
    pending = Pending()
    pending[("final", WF, "d4")] = ["d4", FinalMsg(WF, WorkflowState.FAILED, 0), 1.0, 1.0]
    pending[("final", WF, "d6")] = ["d6", FinalMsg(WF, SUCCEEDED, 2), 1.0, 1.0]
    state = SimpleNamespace(final={WF: SUCCEEDED}, epochs={WF: (2, "d2")})
    node = SimpleNamespace(name="d2", state=state, pending=pending, stats=Counter(),
                           cancels=SimpleNamespace(void=lambda wf: None))
    loss = DomainLoss.__new__(DomainLoss)
    loss.n = node
    loss.held, loss.notices, loss.told_gone, loss.released = \
        {WF: WorkflowState.FAILED}, {}, {}, set()
    loss._void(WF)
    assert list(pending) == [("final", WF, "d6")]
