"""The rule an acceptor holding no step grants a takeover claim by
(agent/core/workflow/acceptor_grant.py): every row of its table, then Hypothesis over
every input for what a grant must never be."""

from __future__ import annotations

import pytest
from fedorch.core.workflow.acceptor_grant import ABORT, COMMIT, Round, acceptor_grant
from fedorch.core.workflow.takeover import may_grant
from hypothesis import given
from hypothesis import strategies as st

ME = "x"
R1 = Round(1, frozenset({"p1"}), frozenset({"coord", "p1", "x"}), COMMIT)
HELD0 = (0, "coord")


def _records(*rounds: Round) -> list[Round]:
    return list(rounds)


def test_a_proof_alone_is_enough_and_names_its_round():
    v = acceptor_grant(ME, "p1", 1, HELD0, [], R1)
    assert v.granted and v.basis == R1 and not v.refused


@pytest.mark.parametrize("proof,records,reason", [
    (Round(1, R1.participants, R1.acceptors, ABORT), [], "not_committed"),
    (Round(1, R1.participants, R1.acceptors, None), [], "not_committed"),
    (Round(1, R1.participants, frozenset({"coord", "p1", "p2"}), COMMIT), [], "not_acceptor"),
    # the record of its round differs, or aborted; another round committed here
    (R1, [Round(1, frozenset({"p1", "p2"}), R1.acceptors)], "proof_disagrees"),
    (R1, [Round(1, R1.participants, frozenset({"coord", "p1", "x", "y"}))], "proof_disagrees"),
    (R1, [Round(1, R1.participants, R1.acceptors, ABORT)], "proof_disagrees"),
    (R1, [Round(2, R1.participants, R1.acceptors, COMMIT)], "proof_disagrees"),
    (None, [], "not_committed"),
    (None, [Round(1, R1.participants, frozenset({"coord", "p1", "y"}))], "not_committed"),
    # a record naming this domain is no proof, committed or not
    (None, [R1], "no_proof"),
    (None, [Round(1, R1.participants, R1.acceptors, None)], "no_proof"),
])
def test_refusals(proof, records, reason):
    v = acceptor_grant(ME, "p1", 1, HELD0, records, proof)
    assert v.refused and v.reason == reason and v.basis is None


def test_the_shells_refusal_of_a_proof_stands():
    v = acceptor_grant(ME, "p1", 1, HELD0, [R1], R1, proof_error=("bad_signature", "bad"))
    assert v.refused and (v.reason, v.detail) == ("bad_signature", "bad")


def test_the_claimant_must_be_a_participant_of_the_round_granted_in():
    assert acceptor_grant(ME, "mallory", 1, HELD0, [], R1).reason == "not_participant"
    # Its record of an older round (p2 took part) does not make p2 one of round 1's.
    older = Round(0, frozenset({"p2"}), R1.acceptors, ABORT)
    assert acceptor_grant(ME, "p2", 1, HELD0, [older], R1).reason == "not_participant"


def test_a_record_alone_never_grants():
    """The record as the proposer stated it is all a lying participant needs to plant
    (a PaxosPrepare naming itself the only participant): it grants nothing."""
    aborted = Round(1, frozenset({"p1"}), R1.acceptors, ABORT)
    committed = Round(2, frozenset({"p1"}), R1.acceptors, COMMIT)
    later = Round(3, frozenset({"p1"}), R1.acceptors, None)
    for records in ([committed], [aborted, later], [aborted, committed, later]):
        v = acceptor_grant(ME, "p1", 1, HELD0, records)
        assert v.refused and v.reason == "no_proof" and v.basis is None


def test_a_planted_record_does_not_make_its_planter_a_participant():
    """p2 planted a round of its own making (itself the only participant); shown the
    real round, in which it takes no part, it is refused all the same."""
    planted = Round(7, frozenset({"p2"}), frozenset({"p2", "x", "y"}))
    assert acceptor_grant(ME, "p2", 1, HELD0, [planted]).reason == "no_proof"
    assert acceptor_grant(ME, "p2", 1, HELD0, [planted], R1).reason == "not_participant"
    # The honest claimant's proof still grants beside it (the planted round is no COMMIT).
    assert acceptor_grant(ME, "p1", 1, HELD0, [planted], R1).basis == R1


def test_an_agreeing_record_keeps_the_proof_as_basis():
    record = Round(1, R1.participants, R1.acceptors, None)
    assert acceptor_grant(ME, "p1", 1, HELD0, [record], R1).basis == R1


def test_an_epoch_held_for_another_is_denied_not_refused():
    v = acceptor_grant(ME, "p1", 1, (1, "p2"), [], R1)
    assert not v.granted and not v.refused
    assert acceptor_grant(ME, "p1", 1, (1, "p1"), [], R1).granted  # the same claim again


# ---- Hypothesis: what a grant never is -------------------------------------------------

DOMAINS = ("coord", "p1", "p2", "x", "mallory")
rounds = st.builds(
    Round, st.integers(1, 3),
    st.frozensets(st.sampled_from(DOMAINS), min_size=1, max_size=3),
    st.frozensets(st.sampled_from(DOMAINS), min_size=1, max_size=4),
    st.sampled_from((COMMIT, ABORT, None)))


@given(claimant=st.sampled_from(DOMAINS), epoch=st.integers(0, 3),
       held=st.tuples(st.integers(0, 3), st.sampled_from(DOMAINS)),
       records=st.lists(rounds, max_size=3), proof=st.none() | rounds,
       error=st.none() | st.just(("bad_signature", "forged")))
def test_a_grant_is_always_sound(claimant, epoch, held, records, proof, error):
    v = acceptor_grant(ME, claimant, epoch, held, records, proof, error)
    assert not (v.granted and v.refused)
    if not v.granted:
        assert v.basis is None
        if error is not None:
            assert v.reason == error[0]
        elif proof is None:  # a record alone never grants
            assert v.reason in ("no_proof", "not_committed")
        return
    basis = v.basis
    assert error is None
    assert may_grant(held[0], held[1], epoch, claimant)  # once per epoch
    assert claimant in basis.participants and ME in basis.acceptors
    assert proof is not None  # only a proof grants
    assert basis == proof and proof.decided == COMMIT
    # never against what this acceptor accepted or learned itself
    for r in records:
        if r.round == proof.round:
            assert (r.participants, r.acceptors) == (proof.participants, proof.acceptors)
            assert r.decided != ABORT
        else:
            assert r.decided != COMMIT


@given(planter=st.sampled_from(("p2", "mallory")), epoch=st.integers(1, 3),
       planted=st.lists(st.builds(
           Round, st.integers(1, 3), st.just(frozenset({"p2"})) | st.just(frozenset({"mallory"})),
           st.frozensets(st.sampled_from(DOMAINS), min_size=1, max_size=4).map(
               lambda a: a | {ME}),
           st.sampled_from((COMMIT, ABORT, None))), min_size=1, max_size=3),
       honest=st.lists(rounds, max_size=2), proof=st.none() | st.just(R1))
def test_a_planter_is_never_granted(planter, epoch, planted, honest, proof):
    """Whatever records a domain outside the committed round plants here (rounds naming
    it a participant and this domain an acceptor, decided anyhow), and whatever proof of
    the real round it shows, it is never granted an epoch."""
    v = acceptor_grant(ME, planter, epoch, HELD0, [*planted, *honest], proof)
    assert not v.granted and v.refused


@given(records=st.lists(rounds, max_size=3), proof=rounds,
       claimants=st.lists(st.sampled_from(DOMAINS), min_size=1, max_size=5))
def test_one_claimant_per_epoch_whatever_the_proofs(records, proof, claimants):
    """Claims of one epoch answered in turn, each grant held before the next answer (as
    the shell writes it): at most one claimant is ever granted the epoch."""
    held = HELD0
    granted = set()
    for claimant in claimants:
        v = acceptor_grant(ME, claimant, 1, held, records, proof)
        if v.granted:
            granted.add(claimant)
            held = (1, claimant)
    assert len(granted) <= 1
