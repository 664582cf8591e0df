"""The rule an acceptor holding no step grants a takeover claim by
(agent/core/workflow/acceptor_grant.py): every row of its table, then Hypothesis over
every input for what a grant must never be, and for what a COMMIT learned of an
earlier round than the proof's may change (only the reason a grant gives)."""

from __future__ import annotations

import pytest
from fedorch.core.workflow.acceptor_grant import (
    ABORT,
    COMMIT,
    COMMIT_OUTRANKED,
    Round,
    acceptor_grant,
)
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
    (R1, [Round(1, frozenset({"p1", "p2"}), R1.acceptors, COMMIT)], "proof_disagrees"),
    # a later round committed here: the proof's is an earlier one, which never committed
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


# ---- a COMMIT learned of an earlier round: outranked by the coordinator's signed word ----

R2 = Round(2, frozenset({"p1"}), frozenset({"coord", "p1", "x"}), COMMIT)
OTHER = (frozenset({"p2"}), frozenset({"coord", "p2", "x"}))  # another round's electorate


@pytest.mark.parametrize("outcome", [COMMIT, ABORT, None])
@pytest.mark.parametrize("where", ["earlier", "same", "same, differing", "later"])
def test_a_learned_outcome_against_the_proofs_round(where, outcome):
    """Every (learned outcome, learned round vs the proof's round 2) pair. A COMMIT of
    an earlier round is granted over, and named (`commit_outranked`); a COMMIT of a
    later round, or of round 2 that differs, still refuses, as does an ABORT of round 2."""
    round_, (participants, acceptors) = {
        "earlier": (1, OTHER), "same": (2, (R2.participants, R2.acceptors)),
        "same, differing": (2, OTHER), "later": (3, OTHER)}[where]
    record = Round(round_, participants, acceptors, outcome)
    v = acceptor_grant(ME, "p1", 1, HELD0, [record], R2)
    refused = where == "same, differing" or where == "same" and outcome == ABORT \
        or where == "later" and outcome == COMMIT
    if refused:
        assert v.refused and v.reason == "proof_disagrees" and not v.outranked
        return
    assert v.granted and v.basis == R2 and not v.refused
    if where == "earlier" and outcome == COMMIT:
        assert v.outranked and v.reason == COMMIT_OUTRANKED
        assert "round(s) 1 learned COMMIT" in v.detail and "signed round 2" in v.detail
    else:
        assert not v.outranked and v.reason == ""


def test_the_planted_commit_of_an_aborted_round_is_outranked():
    """p2 was round 1's only participant; round 1 aborted, but x missed its ABORT and
    p2 made it record round 1 (truly signed) and learn a COMMIT of it (p2's own YES).
    p1's proof of round 2, which committed, is granted, naming round 1 as the lie."""
    planted = Round(1, frozenset({"p2"}), frozenset({"coord", "p2", "x"}), COMMIT)
    accepted = Round(2, R2.participants, R2.acceptors, None)  # x heard round 2 too
    for records in ([planted], [planted, accepted], [accepted, planted]):
        v = acceptor_grant(ME, "p1", 1, HELD0, records, R2)
        assert v.granted and v.outranked and v.basis == R2
    # p2 shows its own round as proven (its true signed round 1, its own "COMMIT"):
    # refused, whether x learned round 2's COMMIT or only its record.
    own = Round(1, frozenset({"p2"}), frozenset({"coord", "p2", "x"}), COMMIT)
    committed = Round(2, R2.participants, R2.acceptors, COMMIT)
    assert acceptor_grant(ME, "p2", 1, HELD0, [committed], own).reason == "proof_disagrees"
    # and it is no participant of round 2, whatever it planted of round 1
    assert acceptor_grant(ME, "p2", 1, HELD0, [planted], R2).reason == "not_participant"


def test_an_outranked_commit_grants_nothing_the_rest_of_the_rule_refuses():
    earlier = Round(1, *OTHER, COMMIT)
    later = Round(3, *OTHER, COMMIT)
    # a later COMMIT beside it still refuses, in whatever order the records come
    for records in ([earlier, later], [later, earlier]):
        assert acceptor_grant(ME, "p1", 1, HELD0, records, R2).reason == "proof_disagrees"
    assert acceptor_grant(ME, "mallory", 1, HELD0, [earlier], R2).reason == "not_participant"
    assert acceptor_grant(ME, "p1", 1, HELD0, [earlier], None).reason == "no_proof"
    assert acceptor_grant(ME, "p1", 1, HELD0, [earlier], R2,
                          ("bad_signature", "forged")).reason == "bad_signature"
    denied = acceptor_grant(ME, "p1", 1, (1, "p2"), [earlier], R2)  # held for another
    assert not denied.granted and not denied.refused and not denied.outranked


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
    # never against what this acceptor accepted or learned itself, but a COMMIT of an
    # earlier round, which the proof outranks and the verdict names
    for r in records:
        if r.round == proof.round:
            assert (r.participants, r.acceptors) == (proof.participants, proof.acceptors)
            assert r.decided != ABORT
        elif r.round > proof.round:
            assert r.decided != COMMIT
    earlier = any(r.round < proof.round and r.decided == COMMIT for r in records)
    assert v.outranked == earlier and v.reason == (COMMIT_OUTRANKED if earlier else "")


@st.composite
def claims(draw):
    """(claimant, proof), most often one that the rest of the rule lets through (a
    COMMIT naming this domain an acceptor, shown by one of its participants), so that
    what the records do to it is what is tried."""
    proof = draw(st.none() | rounds | rounds.map(
        lambda r: Round(r.round, r.participants, r.acceptors | {ME}, COMMIT)))
    participants = sorted(proof.participants) if proof is not None else []
    claimant = draw(st.sampled_from(participants) if participants and draw(st.booleans())
                    else st.sampled_from(DOMAINS))
    return claimant, proof


# Records with learned COMMITs as often as not, so that some are of earlier rounds.
committed_rounds = rounds.map(lambda r: Round(r.round, r.participants, r.acceptors, COMMIT))


@given(claim=claims(), epoch=st.integers(1, 3),
       held=st.sampled_from([HELD0, (1, "p1"), (2, "p2")]),
       records=st.lists(rounds | committed_rounds, max_size=4),
       error=st.none() | st.just(("bad_signature", "forged")))
def test_an_earlier_commit_changes_only_the_reason_of_a_grant(claim, epoch, held,
                                                               records, error):
    """The verdict is the one an acceptor that never heard of the earlier rounds it
    learned COMMIT would give (messages lost can put any acceptor there): the same
    grant, denial or refusal, only a grant's reason names what it outranked."""
    claimant, proof = claim
    v = acceptor_grant(ME, claimant, epoch, held, records, proof, error)
    outranked = [r for r in records if proof is not None and r.round < proof.round
                 and r.decided == COMMIT]
    missed = [r for r in records if r not in outranked]
    w = acceptor_grant(ME, claimant, epoch, held, missed, proof, error)
    assert (v.granted, v.refused, v.basis) == (w.granted, w.refused, w.basis)
    if v.refused:
        assert (v.reason, v.detail) == (w.reason, w.detail)
    assert not w.outranked
    assert v.outranked == (v.granted and bool(outranked))


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


def test_the_original_coordinator_may_claim_though_no_participant():
    """The workflow's original coordinator (its id names it; it signed the round) may
    claim past a later epoch's gone holder (agent/core/workflow/takeover_overtaken.py);
    any other non-participant is refused as before."""
    assert acceptor_grant(ME, "coord", 1, HELD0, [], R1, original="coord").granted
    assert acceptor_grant(ME, "coord", 1, HELD0, [], R1).reason == "not_participant"
    assert acceptor_grant(ME, "mallory", 1, HELD0, [], R1,
                          original="coord").reason == "not_participant"
