"""Participant core: `voted_no`, a round this domain refused with no YES of it ever
recorded (its owner keeps a classic NO as the round's ABORT: core/node/no_votes.py)."""

from __future__ import annotations

from fedorch.core.negotiation.participant import Participant

from tests.unit.core.negotiation.test_participant import LEASE, make, prepare

KEY = ("wf-1", 1)


def test_a_policy_no_is_a_no_vote_on_record_and_a_prepare_again_gets_it() -> None:
    p = make()
    out = prepare(p, data={"jurisdiction": "US"})  # residency: EU only
    assert not out.yes
    assert p.voted_no(KEY)
    again = prepare(p, 1.0, data={"jurisdiction": "US"})
    assert not again.yes and not again.fresh and p.voted_no(KEY)


def test_a_constraint_refusal_is_a_no_vote() -> None:
    p = make()
    out = p.reserve(0.0, workflow_id="wf-1", round=1, coordinator="eu-west",
                    data_labels={"jurisdiction": "EU"}, steps=[("train", "ml.train")],
                    refusal="constraint says no")
    assert not out.yes and p.voted_no(KEY)


def test_a_reservation_whose_lease_passed_before_its_yes_is_a_no_vote() -> None:
    p = make()
    out = p.reserve(0.0, workflow_id="wf-1", round=1, coordinator="eu-west",
                    data_labels={"jurisdiction": "EU"}, steps=[("train", "ml.train")])
    assert out.yes and out.hold is not None  # RESERVED: no YES yet
    assert not p.voted_no(KEY)
    assert p.confirm_yes(LEASE + 1.0, KEY) is None  # expired: the vote is NO
    assert p.voted_no(KEY)


def test_a_yes_voter_never_counts_as_a_no_voter() -> None:
    p = make()
    assert prepare(p).yes
    assert not p.voted_no(KEY)
    p.decide(1.0, "wf-1", 1, False)  # aborted after our YES
    assert not p.voted_no(KEY)
    late = prepare(p, 2.0)  # a PREPARE again: NO, the round decided, still no NO vote
    assert not late.yes and not p.voted_no(KEY)
    q = make()
    assert prepare(q).yes
    q.decide(1.0, "wf-1", 1, True)
    assert not q.voted_no(KEY)


def test_a_round_never_prepared_here_or_aborted_before_its_prepare_is_no_no_vote() -> None:
    p: Participant = make()
    assert not p.voted_no(KEY)
    p.decide(0.0, "wf-1", 1, False)
    assert not p.voted_no(KEY)
