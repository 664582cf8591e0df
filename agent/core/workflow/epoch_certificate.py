"""Epoch certificates: proof, checkable by any domain, that a successor coordinates.

Theory of operation
-------------------
A workflow taken over (agent/core/workflow/takeover.py) is coordinated in epoch e >= 1
by the claimant a majority of its *electorate* granted e to. The successor acts like
the original coordinator, re-placement rounds included, so it must be able to show a
domain that never saw the workflow (a new candidate for a lost step) that it is that
claimant. Its proof is an `EpochCertificate`: the grants it collected, each the
TakeoverAnswer envelope exactly as its signer sent it. A grant names the workflow,
the epoch, the claimant it granted it to (`holder`), and, signed with the rest, the
committed round and the electorate its signer counts the grant in
(`committed_round`, `electorate`): the signer holds them from the committed round's
PREPARE, which the original coordinator signed, or, an extra acceptor that missed the
round, from the claimant's proof of it: that round as the original coordinator signed
it and a COMMIT of it (agent/core/workflow/acceptor_grant.py), never the claimant's
word alone.

`verify` accepts a certificate for (workflow, claimant) only when:

1. every grant's signature verifies with the trust store (over the bytes as sent),
   it is a granted TakeoverAnswer of this workflow and epoch, held by the claimant,
   and addressed to it (a grant is an answer to the claimant's own claim);
2. every grant names the same committed round and the same electorate, which holds
   the original coordinator (the one the id names) and the claimant;
3. the distinct signers that are members of that electorate are a majority of it;
4. when the checker knows the workflow itself (it is a participant or an acceptor),
   the committed round and electorate are the ones it holds.

How a domain that never saw the workflow knows the electorate without trusting the
successor: the electorate always holds the original coordinator and the claimant,
two distinct domains, so a majority of it is at least two signers, and at least one
of them is not the claimant. That signer names the electorate it holds from the
original coordinator's signed PREPARE of the committed round, and every grant must
name the same one. A claimant alone cannot invent an electorate ({itself, a friend}
needs the friend's grant naming it, and the honest members name the real one), so a
certificate the checker accepts proves what a majority of the real electorate
granted, as long as the grantors other than the claimant do not lie about the
electorate; the takeover's own safety already rests on them granting each epoch at
most once.

Why one acting coordinator per epoch follows: two certificates for one epoch and two
claimants would need two majorities of one electorate, which share a member; that
member granted the epoch to one claimant only (takeover.may_grant, durable before the
answer left). A participant also refuses a certificate for an epoch below the one it
holds (`stale`), so an old successor, certificate in hand, is refused wherever the
later epoch is known.

Rounds. The rounds a coordinator runs are numbered in its epoch's own range
(`round_range`): the original coordinator below ROUNDS_PER_EPOCH, epoch e's in
[e * ROUNDS_PER_EPOCH, (e + 1) * ROUNDS_PER_EPOCH). Two coordinators of different
epochs never use one round number, so a decision, a reservation or a participant's
memory of a decided round (all keyed by (workflow, round)) is never mistaken for
another coordinator's; and a later epoch's placement of a step has a higher step
epoch (its round) than any earlier one's, which keeps the step fencing monotonic.

Pure: no I/O; the trust store is passed in.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.identity.envelope import AuthError, open_evidence
from fedorch.core.identity.trust import TrustStore
from fedorch.core.workflow.takeover import majority
from fedorch.gen.fedorch.v1 import peer_pb2

# Rounds of one coordinator epoch (see the docstring). uint32 rounds: epochs up to 4095.
ROUNDS_PER_EPOCH = 1 << 20
MAX_EPOCH = (1 << 32) // ROUNDS_PER_EPOCH - 1


def round_range(epoch: int) -> range:
    """The round numbers the coordinator of `epoch` may use (round 0 is never used)."""
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"coordinator epoch {epoch} out of range (0..{MAX_EPOCH})")
    return range(max(1, epoch * ROUNDS_PER_EPOCH), (epoch + 1) * ROUNDS_PER_EPOCH)


def epoch_of_round(round_: int) -> int:
    """The coordinator epoch whose range holds `round_`."""
    return round_ // ROUNDS_PER_EPOCH


class CertificateError(Exception):
    """A certificate that proves nothing. `reason` is a short fixed word (a metric label),
    the message says what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Certified:
    """What a valid certificate proves."""

    workflow_id: str
    epoch: int
    coordinator: str
    committed_round: int
    electorate: frozenset[str]
    signers: frozenset[str]


@dataclass(frozen=True)
class Known:
    """What the checker itself holds of the workflow, if it takes part in it."""

    committed_round: int
    electorate: Collection[str]


def verify(cert: peer_pb2.EpochCertificate, trust: TrustStore, *, workflow_id: str,
           claimant: str, known: Known | None = None) -> Certified:
    """Check `cert` as the proof that `claimant` coordinates `workflow_id` in its epoch
    (see the docstring); CertificateError says why not. Changes nothing."""
    original = coordinator_of(workflow_id)
    if cert.workflow_id != workflow_id:
        raise CertificateError("bad_certificate",
                               f"epoch certificate of {cert.workflow_id!r}, not {workflow_id!r}")
    if cert.coordinator != claimant:
        raise CertificateError("bad_certificate",
                               f"epoch certificate of {cert.coordinator!r} presented by {claimant}")
    if cert.epoch < 1 or cert.epoch > MAX_EPOCH:
        raise CertificateError("bad_certificate",
                               f"epoch certificate for epoch {cert.epoch}: a takeover's"
                               f" epoch is 1..{MAX_EPOCH}")
    if claimant == original:
        raise CertificateError("bad_certificate",
                               f"{claimant} is the original coordinator: it needs no certificate")
    signers: set[str] = set()
    named: tuple[int, tuple[str, ...]] | None = None
    for envelope in cert.grants:
        try:
            body = open_evidence(envelope, trust, expect="takeover_answer")
        except AuthError as e:
            raise CertificateError("bad_signature", f"epoch certificate: a grant: {e}") from None
        answer = body.takeover_answer
        if answer.workflow_id != workflow_id or answer.epoch != cert.epoch \
                or not answer.granted or answer.holder != claimant \
                or answer.held_epoch != cert.epoch or body.recipient != claimant:
            raise CertificateError(
                "bad_certificate",
                f"epoch certificate: {body.sender}'s answer is no grant of epoch {cert.epoch}"
                f" of {workflow_id!r} to {claimant}")
        electorate = tuple(answer.electorate)
        if list(electorate) != sorted(set(electorate)):
            raise CertificateError("bad_certificate",
                                   f"epoch certificate: {body.sender} names an unsorted"
                                   " electorate")
        if named is None:
            named = (answer.committed_round, electorate)
        elif named != (answer.committed_round, electorate):
            raise CertificateError(
                "electorate_mismatch",
                f"epoch certificate: {body.sender} grants in round {answer.committed_round}"
                f" electorate {list(electorate)}, another grant in round {named[0]}"
                f" electorate {list(named[1])}")
        signers.add(body.sender)
    if named is None:
        raise CertificateError("minority_certificate", "epoch certificate holds no grant")
    committed_round, electorate_t = named
    electorate = frozenset(electorate_t)
    if original not in electorate or claimant not in electorate:
        raise CertificateError(
            "bad_certificate",
            f"epoch certificate: the electorate {sorted(electorate)} lacks the original"
            f" coordinator {original} or the claimant {claimant}")
    if committed_round < 1 or epoch_of_round(committed_round) != 0:
        raise CertificateError("bad_certificate",
                               f"epoch certificate: round {committed_round} is no round of"
                               " the original coordinator")
    if known is not None and (known.committed_round, frozenset(known.electorate)) != (
            committed_round, electorate):
        raise CertificateError(
            "electorate_mismatch",
            f"epoch certificate: grants in round {committed_round} electorate"
            f" {sorted(electorate)}; here the workflow committed in round"
            f" {known.committed_round} with electorate {sorted(known.electorate)}")
    voters = signers & electorate
    if len(voters) < majority(electorate):
        raise CertificateError(
            "minority_certificate",
            f"epoch certificate: {len(voters)} grant(s) ({', '.join(sorted(voters))}) of"
            f" {len(electorate)} electors; a majority is {majority(electorate)}")
    return Certified(workflow_id, cert.epoch, claimant, committed_round, electorate,
                     frozenset(voters))


def stale(certified: Certified, held: tuple[int, str] | None) -> str | None:
    """Why a certified coordinator must be refused by a domain holding (epoch, holder)
    for the workflow, or None: its epoch is over, or another holds that epoch."""
    if held is None:
        return None
    held_epoch, holder = held
    if certified.epoch < held_epoch:
        return (f"{certified.coordinator} coordinates {certified.workflow_id!r} in epoch"
                f" {certified.epoch}; {holder} holds epoch {held_epoch} here")
    if certified.epoch == held_epoch and certified.coordinator != holder:
        return (f"epoch {held_epoch} of {certified.workflow_id!r} is held by {holder} here,"
                f" not {certified.coordinator}")
    return None
