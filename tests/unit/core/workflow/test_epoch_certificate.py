"""Epoch certificates (agent/core/workflow/epoch_certificate.py): what proves that a
successor coordinates a workflow taken over, checked with public keys only."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, seal
from fedorch.core.identity.trust import TrustStore
from fedorch.core.workflow.epoch_certificate import (
    MAX_EPOCH,
    ROUNDS_PER_EPOCH,
    CertificateError,
    Known,
    epoch_of_round,
    round_range,
    stale,
    verify,
)
from fedorch.core.workflow.takeover import majority
from fedorch.gen.fedorch.v1 import peer_pb2
from hypothesis import given
from hypothesis import strategies as st

DOMAINS = ("coord", "p1", "p2", "x1", "mallory")
KEYS = {d: Ed25519PrivateKey.generate() for d in DOMAINS}
SIGNERS = {d: Signer(d, k) for d, k in KEYS.items()}
TRUST = TrustStore({d: k.public_key() for d, k in KEYS.items()})
WF = "coord.wf1"
ELECTORATE = ("coord", "p1", "p2")


def grant(voter: str, *, to: str = "p1", epoch: int = 1, round_: int = 1,
          electorate=ELECTORATE, granted: bool = True, workflow_id: str = WF,
          recipient: str | None = None) -> peer_pb2.Envelope:
    answer = peer_pb2.TakeoverAnswer(
        workflow_id=workflow_id, epoch=epoch, granted=granted, held_epoch=epoch, holder=to,
        committed_round=round_, electorate=sorted(electorate))
    return seal(SIGNERS[voter], recipient=to if recipient is None else recipient,
                now_ms=1, nonce=os.urandom(16), takeover_answer=answer)


def cert(*grants: peer_pb2.Envelope, to: str = "p1", epoch: int = 1) -> peer_pb2.EpochCertificate:
    return peer_pb2.EpochCertificate(workflow_id=WF, epoch=epoch, coordinator=to,
                                     grants=list(grants))


def refused(c: peer_pb2.EpochCertificate, reason: str, *, claimant: str = "p1",
            known: Known | None = None) -> str:
    with pytest.raises(CertificateError) as e:
        verify(c, TRUST, workflow_id=WF, claimant=claimant, known=known)
    assert e.value.reason == reason, e.value.detail
    return e.value.detail


def test_a_majority_of_the_electorate_proves_the_epoch():
    c = cert(grant("p1"), grant("p2"))
    done = verify(c, TRUST, workflow_id=WF, claimant="p1")
    assert (done.epoch, done.coordinator, done.committed_round) == (1, "p1", 1)
    assert done.electorate == frozenset(ELECTORATE)
    assert done.signers == {"p1", "p2"}
    # Checked against what a member holds: the same round and electorate.
    assert verify(c, TRUST, workflow_id=WF, claimant="p1", known=Known(1, ELECTORATE)) == done


def test_a_minority_certificate_is_refused_naming_the_count():
    detail = refused(cert(grant("p1")), "minority_certificate")
    assert "1 grant(s) (p1) of 3 electors; a majority is 2" in detail
    # A grant repeated is one grant.
    refused(cert(grant("p1"), grant("p1")), "minority_certificate")
    # An outsider's grant is no elector's.
    refused(cert(grant("p1"), grant("x1")), "minority_certificate")
    refused(cert(), "minority_certificate")


def test_a_claimant_cannot_invent_an_electorate():
    # p1 alone names {coord, p1}: a majority of it needs coord, which never granted.
    refused(cert(grant("p1", electorate=("coord", "p1"))), "minority_certificate")
    # An electorate without the original coordinator is no workflow's.
    refused(cert(grant("p1", electorate=("p1", "x1")), grant("x1", electorate=("p1", "x1"))),
            "bad_certificate")
    # The honest member names the electorate it holds: the grants disagree.
    detail = refused(cert(grant("p1", electorate=("coord", "p1", "x1")), grant("p2")),
                     "electorate_mismatch")
    assert "p2" in detail or "another grant" in detail
    # A member checks the electorate against its own.
    refused(cert(grant("p1"), grant("p2")), "electorate_mismatch",
            known=Known(1, ("coord", "p1", "x1")))
    refused(cert(grant("p1"), grant("p2")), "electorate_mismatch",
            known=Known(2, ELECTORATE))


def test_a_forged_grant_is_refused():
    good = grant("p2")
    forged = peer_pb2.Envelope(body=good.body, signature=bytes(64))
    refused(cert(grant("p1"), forged), "bad_signature")
    # mallory signs a grant in p2's name: the body's sender is mallory's own.
    body = peer_pb2.Body.FromString(good.body)
    body.sender = "p2"
    data = body.SerializeToString(deterministic=True)
    refused(cert(grant("p1"), peer_pb2.Envelope(body=data, signature=SIGNERS["mallory"].sign(data))),
            "bad_signature")
    # Signed by a key the trust store does not hold.
    stranger = Signer("p2", Ed25519PrivateKey.generate())
    answer = peer_pb2.Body.FromString(good.body).takeover_answer
    refused(cert(grant("p1"), seal(stranger, recipient="p1", now_ms=1, nonce=os.urandom(16),
                                   takeover_answer=answer)), "bad_signature")


@pytest.mark.parametrize("bad", [
    {"to": "p2"},            # granted to another claimant
    {"epoch": 2},            # another epoch
    {"granted": False},      # a denial
    {"workflow_id": "coord.other"},
    {"recipient": "x1"},     # an answer to someone else's claim
])
def test_a_grant_of_something_else_is_refused(bad):
    refused(cert(grant("p1"), grant("p2", **bad)), "bad_certificate")


def test_the_certificate_must_be_the_presenters_own():
    c = cert(grant("p1"), grant("p2"))
    refused(c, "bad_certificate", claimant="p2")
    c2 = cert(grant("p1"), grant("p2"))
    c2.workflow_id = "coord.other"
    refused(c2, "bad_certificate")
    refused(cert(grant("p1", epoch=0), grant("p2", epoch=0), epoch=0), "bad_certificate")
    # The original coordinator needs none and is given none.
    refused(cert(grant("coord", to="coord"), grant("p2", to="coord"), to="coord"),
            "bad_certificate", claimant="coord")


def test_a_round_of_a_successor_is_no_committed_round():
    refused(cert(grant("p1", round_=ROUNDS_PER_EPOCH + 1),
                 grant("p2", round_=ROUNDS_PER_EPOCH + 1)), "bad_certificate")


def test_an_older_or_foreign_epoch_is_stale_where_a_later_one_is_held():
    done = verify(cert(grant("p1"), grant("p2")), TRUST, workflow_id=WF, claimant="p1")
    assert stale(done, None) is None
    assert stale(done, (0, "coord")) is None
    assert stale(done, (1, "p1")) is None
    assert "p2 holds epoch 2" in stale(done, (2, "p2"))
    assert "held by p2" in stale(done, (1, "p2"))


@given(epoch=st.integers(0, MAX_EPOCH), offset=st.integers(0, ROUNDS_PER_EPOCH - 1))
def test_round_ranges_of_epochs_never_overlap(epoch, offset):
    n = epoch * ROUNDS_PER_EPOCH + offset
    if n == 0:
        assert 0 not in round_range(0)
        return
    assert n in round_range(epoch)
    assert epoch_of_round(n) == epoch
    for other in {max(0, epoch - 1), min(MAX_EPOCH, epoch + 1)} - {epoch}:
        assert n not in round_range(other)
    assert n < 1 << 32  # a uint32 round


def test_an_epoch_out_of_range_has_no_rounds():
    with pytest.raises(ValueError):
        round_range(MAX_EPOCH + 1)
    with pytest.raises(ValueError):
        round_range(-1)


@given(size=st.integers(2, 7), data=st.data())
def test_two_certificates_of_one_epoch_for_two_claimants_need_a_double_grant(size, data):
    """Whatever majorities two claimants gather of one electorate, certificates for both
    exist only if some member granted the epoch to both (takeover.may_grant forbids it)."""
    electorate = tuple(sorted(["coord", "p1", "p2", "x1", "mallory"][:size]))
    if "p1" not in electorate or "p2" not in electorate:
        return
    first = data.draw(st.sets(st.sampled_from(electorate), min_size=majority(electorate)))
    second = data.draw(st.sets(st.sampled_from(electorate), min_size=majority(electorate)))
    a = cert(*[grant(v, to="p1", electorate=electorate) for v in sorted(first | {"p1"})])
    b = cert(*[grant(v, to="p2", electorate=electorate) for v in sorted(second | {"p2"})],
             to="p2")
    verify(a, TRUST, workflow_id=WF, claimant="p1")
    verify(b, TRUST, workflow_id=WF, claimant="p2")
    assert (first | {"p1"}) & (second | {"p2"})  # some member granted epoch 1 twice
