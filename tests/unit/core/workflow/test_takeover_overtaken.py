"""A coordinator told of a later epoch whose holder is gone claims the next epoch.

The takeover core (agent/core/workflow/takeover.py with
agent/core/workflow/takeover_overtaken.py): the original, acting at epoch 0 and no
participant, is denied (or shown a proof) of epoch 1 held by a participant the view
holds DEAD: it claims epoch 2 with the ordinary ballot, where before it kept acting in
epoch 0 for ever (unproven) or followed the dead holder, whom nobody claims past (the
original is not in line). A holder the view does not say is gone is not claimed past.
"""

from __future__ import annotations

from fedorch.core.workflow.takeover import (
    Act,
    Deny,
    Grant,
    Persist,
    Proven,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Unproven,
    Watch,
)
from fedorch.core.workflow.takeover_overtaken import claim_past
from hypothesis import given
from hypothesis import strategies as st

ELECTORATE = ("d0", "d1", "d3")  # d1 the original, d0 its only participant, d3 extra


def original() -> Takeover:
    return Takeover("d1", "d1", ("d0",), acceptors=ELECTORATE, takeover_after_s=10.0,
                    claim_timeout_s=5.0)


def test_the_original_denied_an_epoch_of_a_dead_holder_claims_the_next() -> None:
    t = original()
    assert t.step(0.0, Watch("ALIVE", frozenset({"d0"}))) == []
    assert t.role is Role.ACTING
    out = t.step(1.0, Deny("d3", 0, 1, "d0", proven=False))
    assert out[0] == Persist(2, "d1")
    assert SendClaim("d3", 2) in out and SendClaim("d0", 2) in out
    assert (t.role, t.epoch, t.coordinator) == (Role.CLAIMING, 2, "d1")
    # d3 grants: with our own grant, 2 of 3. The original acts in epoch 2.
    assert Act(2) in t.step(1.1, Grant("d3", 2))
    assert t.role is Role.ACTING and t.epoch == 2


def test_a_proof_of_a_dead_holders_epoch_is_claimed_past_not_followed() -> None:
    t = original()
    t.step(0.0, Watch("ALIVE", frozenset({"d0"})))
    out = t.step(1.0, Proven(1, "d0"))
    assert out[0] == Persist(2, "d1") and t.role is Role.CLAIMING
    t = original()
    t.step(0.0, Watch("ALIVE", frozenset({"d0"})))
    out = t.step(1.0, Deny("d3", 0, 1, "d0", proven=True))
    assert out[0] == Persist(2, "d1") and t.epoch == 2


def test_a_holder_not_seen_gone_is_not_claimed_past() -> None:
    """Unproven: kept acting (the voter's word); proven: followed, as before."""
    t = original()
    t.step(0.0, Watch("ALIVE", frozenset()))
    assert t.step(1.0, Deny("d3", 0, 1, "d0", proven=False)) == [Unproven("d3", 1, "d0")]
    assert (t.role, t.epoch) == (Role.ACTING, 0)
    assert t.step(1.0, Proven(1, "d0")) == [Persist(1, "d0")]
    assert (t.role, t.epoch, t.coordinator) == (Role.FOLLOWING, 1, "d0")


def test_a_claimant_keeps_moving_one_epoch_at_its_claim_timeout() -> None:
    """Only an acting coordinator claims past at once: a claimant denied so keeps
    claiming, and moves on one epoch at its claim timeout (takeover.py, Denials)."""
    t = Takeover("b", "a", ("b", "c"), acceptors=("a", "b", "c", "x"),
                 takeover_after_s=10.0)
    t.step(0.0, Watch("DEAD", frozenset({"c"})))
    assert t.role is Role.CLAIMING and t.epoch == 1
    assert t.step(0.5, Deny("x", 1, 3, "c", proven=False)) == [Unproven("x", 3, "c")]
    assert (t.role, t.epoch) == (Role.CLAIMING, 1)


@given(epoch=st.integers(0, 5), held=st.integers(0, 8),
       holder=st.sampled_from(["d0", "d1", "d2"]),
       dead=st.frozensets(st.sampled_from(["d0", "d1", "d2"])))
def test_claim_past_claims_above_the_held_epoch_only_past_a_gone_other_from_epoch_0(
        epoch: int, held: int, holder: str, dead: frozenset[str]) -> None:
    got = claim_past(epoch, "d1", held, holder, dead)
    if epoch == 0 and held > epoch and holder != "d1" and holder in dead:
        assert got == held + 1 > epoch  # epochs stay monotonic
    else:
        assert got is None


def test_a_strangers_denial_is_not_claimed_past() -> None:
    """Only a member of the electorate answers for an epoch: a denial from outside it
    (a liar) names a gone holder in vain (takeover soak seed 4901481)."""
    t = original()
    t.step(0.0, Watch("ALIVE", frozenset({"d0"})))
    assert t.step(1.0, Deny("liar", 0, 1, "d0", proven=False)) == [Unproven("liar", 1, "d0")]
    assert (t.role, t.epoch) == (Role.ACTING, 0)


def test_the_original_following_a_gone_holder_claims_once_no_participant_is_in_line(
) -> None:
    """The original granted d0's epoch 1 (it heard the claim first, back from a cut)
    and follows it; d0 dies for good. The original, no participant, claims epoch 2
    once no live participant is left in line: at once where none is, after each one's
    takeover_after_s otherwise (takeover soak seed 4900679: it followed d0 for ever)."""
    t = Takeover("d3", "d3", ("d0",), acceptors=("d0", "d2", "d3"), epoch=1,
                 coordinator="d0", takeover_after_s=10.0)
    assert t.role is Role.FOLLOWING
    out = t.step(5.0, Watch("DEAD", frozenset({"d0"})))
    assert out[0] == Persist(2, "d3") and t.role is Role.CLAIMING
    # A live participant (placed again on d1) is in line first: it has its
    # takeover_after_s to claim, then the original claims.
    t = Takeover("d3", "d3", ("d0",), acceptors=("d0", "d2", "d3"), epoch=1,
                 coordinator="d0", takeover_after_s=10.0)
    t.joined("d1")
    assert t.step(5.0, Watch("DEAD", frozenset({"d0"}))) == []
    assert t.get_timer() == 15.0
    assert t.step(15.0, Timer())[0] == Persist(2, "d3")


def test_a_successor_acting_in_a_later_epoch_does_not_claim_past() -> None:
    """Epoch 0 only: b acts in epoch 1 and is told c holds epoch 2, c DEAD here. Shown
    no proof, and the denial not saying c is gone (`holder_gone`), it keeps acting;
    proven, it follows (and claims past c in line, as a participant): two successors
    whose views hold each other gone would otherwise overthrow each other for as long
    as the views disagree."""
    t = Takeover("b", "a", ("b", "c"), acceptors=("a", "b", "c"), epoch=1,
                 coordinator="b", takeover_after_s=10.0)
    t.step(0.0, Watch("ALIVE", frozenset({"c"})))
    assert t.step(1.0, Deny("a", 1, 2, "c", proven=False)) == [Unproven("a", 2, "c")]
    assert t.step(1.0, Proven(2, "c")) == [Persist(2, "c")] and t.role is Role.FOLLOWING


def test_a_successor_denied_an_unproven_epoch_of_a_gone_holder_claims_past_it() -> None:
    """d1 acts in epoch 1; d3, the original (no participant), claimed epoch 2 and died for
    good on winning it, showing no one its certificate. d2, which granted it, denies
    d1's epoch-1 notices naming (2, d3), unproven, for ever: acting on, d1 never ended
    the workflow (takeover soak seed 20801425). With d3 gone in d1's view, d1 claims
    epoch 3 at once; one not seen gone is still only reported."""
    t = Takeover("d1", "d3", ("d1",), acceptors=("d1", "d2", "d3"), epoch=1,
                 coordinator="d1", takeover_after_s=10.0)
    assert t.step(1.0, Deny("d2", 1, 2, "d3")) == [Unproven("d2", 2, "d3")]
    assert t.role is Role.ACTING and t.epoch == 1
    out = t.step(2.0, Deny("d2", 1, 2, "d3", holder_gone=True))
    assert out[0] == Persist(3, "d1") and (t.role, t.epoch) == (Role.CLAIMING, 3)
    assert {a.to for a in out if isinstance(a, SendClaim)} == {"d2", "d3"}
    assert t.step(2.1, Grant("d2", 3))[0] == Act(3)
    stranger = Takeover("d1", "d3", ("d1",), acceptors=("d1", "d2", "d3"), epoch=1,
                        coordinator="d1", takeover_after_s=10.0)
    assert stranger.step(1.0, Deny("x", 1, 2, "d3", holder_gone=True)) \
        == [Unproven("x", 2, "d3")] and stranger.role is Role.ACTING
