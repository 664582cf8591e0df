"""A claimant denied with an end told below an epoch it knows won shows the end's
teller that epoch, so the teller follows it and a later claim can win
(agent/core/node/takeover_below_won.py), Nodes driven by hand with coordinator
takeover on (test_domain_loss.py's federation: d0 coordinates, s1 on d1, s2 on d2,
the round's electors d0, d1, d2)."""

from __future__ import annotations

from fedorch.core.node import MemberState, MemberViews, Message
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import committed, dies, step

WF = "d0.w"
SHOWN = "takeover end below a won epoch: its teller shown that epoch"


def test_the_original_holding_a_told_end_follows_the_won_epoch_a_claimant_shows() -> None:
    """d0's view says d1 DEAD: its verdict on s1 (started, not idempotent) is told and
    never made (the notices lost), and d0 crashes. d1 wins epoch 1 and dies for good;
    d2 claims epoch 2. d0, back, holds its verdict's end again, its notice to d1
    pending when its view first says d1 DEAD: d1 may keep it, so d0 answers d2's
    claims with it, and d2, holding epoch 1's certificate, takes no end of epoch 0.
    Without more, d2 needs d0's grant and never gets it: the workflow stayed RUNNING
    for ever (takeover regression seed 30000591). d2 shows d0 epoch 1's certificate;
    d0 follows it, its told end void, and the workflow ends once, alike at both."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    fed.step("d0", MemberState("d1", "DEAD"))
    fed.net = []  # the verdict's notices lost
    assert fed.nodes["d0"].domain_loss.held[WF] is WorkflowState.FAILED
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    dies(fed, "d1", told=("d2", "d3"))
    assert fed.disks["d2"].epochs[WF] == (1, "d1")
    assert fed.disks["d2"].granted[WF] == (2, "d2")  # claimed, not won
    fed.silent.discard("d0")
    d0 = fed.restore("d0")
    fed.step("d0", MemberViews((MemberState("d1", "DEAD"), MemberState("d2", "ALIVE"),
                                MemberState("d3", "ALIVE"))))
    assert d0.domain_loss.held[WF] is WorkflowState.FAILED
    assert d0.domain_loss.kept_elsewhere(WF, "d2")  # d1, told, went gone silent
    fed.deliver()
    fed.run_until(fed.now + 30)
    assert d0.stats["takeover claim answered with the end told here"] >= 1
    shown = [a for to, a in fed.sent_by("d2", ClaimAnswerMsg) if to == "d0" and a.won]
    assert shown and all((a.epoch, a.held_epoch, a.holder) == (0, 1, "d1") for a in shown)
    assert d0.stats["takeover proven winner followed"] >= 1
    assert WF not in d0.domain_loss.held
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    assert max(e for (wf, e) in fed.evidence.acting if wf == WF) >= 2


def test_a_claimant_shows_the_won_epoch_to_the_member_answering_an_older_end() -> None:
    """The claimant's side alone: d2, following d1's won epoch 1 and claiming epoch 2,
    answered by d0 with an end of epoch 0, leaves it and sends d0 a denial of epoch 0
    naming epoch 1, its holder and its certificate."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead("d0")
    fed.step("d2", MemberState("d1", "DEAD"))
    fed.net = [m for m in fed.net if not (m[0] == "d2" and isinstance(m[2], ClaimMsg))]
    fed.step("d2", Message("d0", ClaimAnswerMsg(WF, 2, False, 0, "d0",
                                                WorkflowState.FAILED)))
    assert WF not in fed.disks["d2"].final
    assert fed.nodes["d2"].stats[SHOWN] == 1
    [(to, shown)] = [(m[1], m[2]) for m in fed.net if isinstance(m[2], ClaimAnswerMsg)]
    assert to == "d0" and not shown.granted and shown.final is None
    assert (shown.epoch, shown.held_epoch, shown.holder) == (0, 1, "d1")
    assert shown.won == fed.nodes["d2"].takeover.proof.proof_of(WF, 1, "d1") != ()

