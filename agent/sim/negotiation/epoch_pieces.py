"""The signed pieces and checks the takeover schedules share (successor.py, overtaken.py).

Both schedules run the real takeover and round cores over real signatures: each domain
has an Ed25519 key and a trust store knowing every key; a grant is a TakeoverAnswer
sealed by the member that gives it; a successor's epoch certificate is the grants it
holds plus its own; a candidate is a domain record with one capability. The checks
that hold in every such schedule (one domain acting per epoch, every YES given to a
round of an acted epoch, in that epoch's range) are here once, each schedule adding
its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, seal
from fedorch.core.identity.trust import TrustStore
from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.placement import Candidate
from fedorch.gen.fedorch.v1 import peer_pb2


def domain_keys(names: Iterable[str]) -> tuple[dict[str, Signer], TrustStore]:
    """A fresh key for each domain: its signer, and a trust store that knows them all."""
    keys = {n: Ed25519PrivateKey.generate() for n in names}
    signers = {n: Signer(n, k) for n, k in keys.items()}
    return signers, TrustStore({n: k.public_key() for n, k in keys.items()})


def sealed_grant(signer: Signer, *, workflow_id: str, claimant: str, epoch: int, now: float,
                 committed_round: int, electorate: Iterable[str]) -> peer_pb2.Envelope:
    """`signer`'s grant of `epoch` to `claimant`, sealed to the claimant (a claimant's own
    grant is sealed to itself)."""
    answer = peer_pb2.TakeoverAnswer(
        workflow_id=workflow_id, epoch=epoch, granted=True, held_epoch=epoch,
        holder=claimant, committed_round=committed_round, electorate=sorted(electorate))
    return seal(signer, recipient=claimant, now_ms=int(now * 1000), nonce=os.urandom(16),
                takeover_answer=answer)


def certificate(signer: Signer, grants: Iterable[peer_pb2.Envelope], *, workflow_id: str,
                epoch: int, now: float, committed_round: int,
                electorate: Iterable[str]) -> peer_pb2.EpochCertificate:
    """The certificate of `signer`'s epoch: the grants it holds, then its own."""
    own = sealed_grant(signer, workflow_id=workflow_id, claimant=signer.domain, epoch=epoch,
                       now=now, committed_round=committed_round, electorate=electorate)
    return peer_pb2.EpochCertificate(workflow_id=workflow_id, epoch=epoch,
                                     coordinator=signer.domain, grants=[*grants, own])


def candidate(name: str, capability: str, capacity: int, alive: bool) -> Candidate:
    """A candidate domain offering all of `capacity` of one capability."""
    return Candidate(peer_pb2.DomainRecord(domain=name, capabilities=[
        peer_pb2.CapabilityInfo(name=capability, capacity=capacity, available=capacity)]),
        alive)


def acted_twice(acting: list[tuple[str, int, float]]) -> list[str]:
    """Each epoch in which more than one domain acted (acting: name, epoch, when)."""
    per_epoch: dict[int, set[str]] = {}
    for name, epoch, _ in acting:
        per_epoch.setdefault(epoch, set()).add(name)
    return [f"epoch {epoch} acted by {sorted(names)}" for epoch, names in per_epoch.items()
            if len(names) > 1]


def yes_outside_acted(acting: list[tuple[str, int, float]],
                      yes_to: list[tuple[str, int, int]]) -> list[str]:
    """Each YES (candidate, round, certified epoch) to a round of an epoch nobody acted
    in, or outside that epoch's range."""
    acting_epochs = {epoch for _, epoch, _ in acting}
    return [f"{name} voted YES in round {round_} of epoch {epoch}, not acted"
            for name, round_, epoch in yes_to
            if epoch not in acting_epochs or round_ not in round_range(epoch)]
