"""The COMMIT a later holder hands out to a re-placement round's new domain (a
PlacedMsg with `made`: agent/core/node/replacement_handover.py, `make`) is resent
under an id of its own, kind "made", which only the new domain's acknowledgement of
that very message names (placed_here.py). It shared the plain tell's id before, so a
late copy of the acknowledgement of the round's plain tell ended its resends, the
COMMIT itself lost (takeover soak seed 97000669)."""

from __future__ import annotations

from fedorch.core.negotiation.messages import Decision
from fedorch.core.node import Message
from fedorch.core.node.records import AckMsg, PlacedMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import WF
from tests.unit.core.node.test_replacement import end_everything, runs_of
from tests.unit.core.node.test_replacement_original_later_holder import (
    _made,
    d1_places_s0_again_and_d0_wins_epoch_2,
)


def _handed_out() -> tuple:
    """d0, acting in epoch 2, hands out d1's round's COMMIT to its new domain (told
    everywhere again first), and that COMMIT is lost on the way. Returns the
    federation, the round and its new domain."""
    fed, key, new = d1_places_s0_again_and_d0_wins_epoch_2(
        lambda src, dst, msg: src == "d1" and isinstance(msg, Decision))
    assert fed.nodes["d0"].stats["re-placement COMMIT handed out by a successor"] == 1
    assert [m for m in fed.net if _made(*m)]
    fed.net = [m for m in fed.net if not _made(*m)]  # lost
    return fed, key, new


def _made_owed(fed, new: str) -> list[tuple]:
    """The ids of d0's reliable sends of a handed-out COMMIT to `new`, still owed."""
    return [k for k, (to, msg, *_) in fed.nodes["d0"].pending.items()
            if to == new and isinstance(msg, PlacedMsg) and msg.made]


def _made_sent(fed, new: str) -> int:
    """How many handed-out COMMITs d0 sent `new` so far, first or resent."""
    return sum(1 for to, m in fed.sent_by("d0", PlacedMsg) if to == new and m.made)


def test_a_late_ack_of_the_plain_tell_leaves_the_handed_out_commit_resent() -> None:
    """A copy of the new domain's acknowledgement of the round's plain tell comes after
    the COMMIT was handed out: the COMMIT is still owed, and its next resend reaches the
    new domain, which commits its YES without having to ask. Before, that copy ended
    the COMMIT's resends (one id for both)."""
    fed, key, new = _handed_out()
    fed.step("d0", Message(new, AckMsg(("placed", WF, "s0", key[1], new))))
    assert _made_owed(fed, new) == [("made", WF, "s0", key[1], new)]  # before: []
    fed.net = []
    fed.tick(fed.now + 2 * fed.timing.reliable_resend_s)  # its resend, delivered
    assert fed.disks[new].learned[key].commit
    assert fed.nodes["d0"].stats["re-placement asked: handed over"] == 0  # not asked for
    end_everything(fed)
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s0") == [("d0", 1), (new, 1)]


def test_only_the_handed_out_commits_own_acknowledgement_ends_its_resends() -> None:
    """The new domain acknowledges the handed-out COMMIT by its own id ("made"); that,
    and not the plain tell's ("placed"), ends its resends: none goes after it."""
    fed, key, new = _handed_out()
    fed.tick(fed.now + 2 * fed.timing.reliable_resend_s)
    acks = [m for _, m in fed.sent_by(new, AckMsg) if m.msg_id[0] == "made"]
    assert acks and all(a.msg_id == ("made", WF, "s0", key[1], new) for a in acks)
    assert not _made_owed(fed, new)
    sent = _made_sent(fed, new)
    fed.run_until(fed.now + 30.0)
    assert _made_sent(fed, new) == sent  # no copy after its own acknowledgement
