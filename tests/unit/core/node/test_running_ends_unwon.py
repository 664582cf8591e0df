"""The original coordinator (placing no step) that told an end on in an epoch it never
won, learned with no proof, settles its notice to a member that says it holds that
very end: the member's end
notice of an older epoch, proven or not, or its denial of the claim that shows the end
(core/node/running_ends.py, `settled_by_same_end`; takeover_claim_answers.py). Takeover
soak seeds 210001702, 216000061, 210101818 and 210102662 (`--one-way` the last two): each side
refused or ignored the other's notice, and the claimant resent its own for ever."""

from __future__ import annotations

from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import committed as loss_committed
from tests.unit.core.node.test_domain_loss import step

WF = "d0.w"
SUCCEEDED = WorkflowState.SUCCEEDED
STAT = "end told on in an unwon epoch settled by its member's same end"


def told_on_unwon(teller: str = "d0"):
    """d0's workflow (steps on d1 and d2; d0 places none), ended SUCCEEDED at `teller`,
    which tells it on to d1 in epoch 2, never won there."""
    fed = loss_committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    node = fed.nodes[teller]
    node.state.final[WF] = SUCCEEDED
    node.pending[("final", WF, "d1")] = ["d1", FinalMsg(WF, SUCCEEDED, 2), 1.0, 1.0]
    return fed, node


def test_a_members_same_end_of_an_older_epoch_settles_the_originals_notice() -> None:
    """d1 says it holds SUCCEEDED in epoch 1 (its notice, proven or not, or its denial
    of the original's claim): the original's epoch-2 notice to it is settled as
    acknowledged. Before, d1 refused it (no certificate, no participant) for ever."""
    fed, node = told_on_unwon()
    node.end_notices.settled_by_same_end(fed.now, "d1", WF, SUCCEEDED, 1)
    assert ("final", WF, "d1") not in node.pending
    assert "d1" in node.state.final_acked[WF]
    assert node.stats[STAT] == 1


def test_a_participants_notice_is_not_settled_so() -> None:
    """A participant's notice of its claimed epoch is taken by the members and followed
    (the saga's late results reach it: takeover soak seed 213000082): left."""
    fed, node = told_on_unwon("d2")
    node.end_notices.settled_by_same_end(fed.now, "d1", WF, SUCCEEDED, 1)
    assert ("final", WF, "d1") in node.pending


def test_another_end_an_older_word_or_an_epoch_won_here_is_not_settled() -> None:
    """Only the very end, of an epoch later than the member's word and never won here."""
    fed, node = told_on_unwon()
    entry = node.pending[("final", WF, "d1")]
    entry[1] = FinalMsg(WF, WorkflowState.FAILED, 2)
    node.end_notices.settled_by_same_end(fed.now, "d1", WF, SUCCEEDED, 1)
    assert ("final", WF, "d1") in node.pending
    entry[1] = FinalMsg(WF, SUCCEEDED, 2)
    node.end_notices.settled_by_same_end(fed.now, "d1", WF, SUCCEEDED, 2)
    assert ("final", WF, "d1") in node.pending
    node.state.certificates[WF] = (2, ("a grant",))  # as if d0 had won epoch 2
    node.end_notices.settled_by_same_end(fed.now, "d1", WF, SUCCEEDED, 1)
    assert ("final", WF, "d1") in node.pending


def test_a_hold_of_the_end_made_here_does_not_keep_the_notice() -> None:
    """d0 told its end again in epoch 0 (held, domain_loss.py) before its claim learned
    that end and told it on in epoch 2; d1's word came before the tick voided the hold.
    The hold of an end made here is void at the acknowledgement: d0's notice is settled.
    Before, it was left, and d1 refused it for ever (takeover soak seed 216000061)."""
    fed, node = told_on_unwon()
    node.domain_loss.held[WF] = SUCCEEDED
    node.end_notices.settled_by_same_end(fed.now, "d1", WF, SUCCEEDED, 1)
    assert ("final", WF, "d1") not in node.pending
    assert "d1" in node.state.final_acked[WF]
    assert WF not in node.domain_loss.held
    assert node.stats[STAT] == 1
