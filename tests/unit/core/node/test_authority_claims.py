"""A claim a grantee of ours yielded to (core/node/authority_claims.py): a participant
that never learned a step's new domain refuses that domain's claim as no party's,
unless the claim shows the signed grant, of the epoch claimed, that the domain this
participant granted its latest epoch to gave the claimant (takeover one-way soak seed
206402979: d6 granted epoch 1 to d3, d3 yielded to d0, a new domain d6 never heard
of; d0 held two grants of four and d6 refused it for ever)."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg
from fedorch.core.node.takeover_grants import SignedGrant, sign_grant

from tests.unit.core.node.test_domain_loss import WF, committed, dies, step
from tests.unit.core.node.test_takeover import fake_signer


def d2_granted_d1_epoch_1():
    """d0's workflow of s1 (d1) and s2 (d2), committed; d0 dies for good, d1 claims
    epoch 1 and d2 grants it. d3 takes no part in the workflow as d2 knows it."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    electorate = fed.disks["d0"].rows[WF].acceptors
    assert "d3" not in electorate
    dies(fed, "d0")
    fed.step("d2", Message("d1", ClaimMsg(WF, 1)))
    assert fed.disks["d2"].granted[WF] == (1, "d1")
    return fed, tuple(electorate)


def test_a_claim_showing_our_grantees_grant_is_heard_and_the_next_epoch_granted() -> None:
    fed, electorate = d2_granted_d1_epoch_1()
    d1 = fed.nodes["d1"].takeover.proof.sign

    def claim(epoch: int, *grants: SignedGrant) -> tuple[bool, int, str] | str:
        before, refused = len(fed.sent_by("d2", ClaimAnswerMsg)), len(fed.refused)
        fed.step("d2", Message("d3", ClaimMsg(WF, epoch, grants=grants)))
        if len(fed.refused) > refused:
            return fed.refused[-1][1]
        answers = [a for _, a in fed.sent_by("d2", ClaimAnswerMsg)][before:]
        assert len(answers) == 1
        return answers[0].granted, answers[0].held_epoch, answers[0].holder

    # No grant shown, or none of d1's of this epoch to d3 in the electorate: no party.
    assert claim(1) == "not_participant"
    assert claim(1, sign_grant(d1, "d1", WF, 1, "d0", electorate)) == "not_participant"
    assert claim(1, sign_grant(d1, "d1", WF, 2, "d3", electorate)) == "not_participant"
    assert claim(1, sign_grant(d1, "d1", WF, 1, "d3", (*electorate, "d3"))) \
        == "not_participant"
    forged = fake_signer("d3")  # d1's grant, made up by d3
    assert claim(1, sign_grant(forged, "d1", WF, 1, "d3", electorate)) == "not_participant"
    d0 = fed.nodes["d0"].takeover.proof.sign  # a member d2 did not grant
    assert claim(1, sign_grant(d0, "d0", WF, 1, "d3", electorate)) == "not_participant"
    # d1 yielded epoch 1 to d3: heard, denied (d2's vote of epoch 1 is d1's).
    assert claim(1, sign_grant(d1, "d1", WF, 1, "d3", electorate)) == (False, 1, "d1")
    assert fed.disks["d2"].granted[WF] == (1, "d1")
    # d1 granted d3 epoch 2: d2 grants it too, and follows d3.
    assert claim(2, sign_grant(d1, "d1", WF, 2, "d3", electorate)) == (True, 2, "d3")
    assert fed.disks["d2"].granted[WF] == (2, "d3")
