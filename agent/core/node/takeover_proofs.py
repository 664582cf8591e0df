"""The Node's takeover proofs: its signed grants, the certificates it won, and those
it was shown.

Theory of operation
-------------------
Part of the Node's takeover part (takeover.py, whose header tells the whole; the
statements and the certificate rules are takeover_grants.py). Held here:

- the ports: `sign` (this agent's grants; `unsigned` when the Node is given none) and
  `evidence` (`TakeoverEvidence`: a certificate against the electorate held here, one
  grant's signature, a round proof);
- our grants (`grant`): each one signed, naming the electorate it counts in, carried by
  the answer that grants it;
- the grants of our claim (`collected`, memory only: a restarted claimant is granted
  again): one counts only if its statement verifies as its voter's, of our claim, in our
  electorate (`grant_received`; else the answer is dropped and counted), so the core
  acts exactly when we hold a majority's signed grants; on the Act they and our own are
  our certificate (`certificate_won`), written in `certificates` and shown again after
  a restart (`own_certificate`);
- the certificates others showed us (`proofs`, memory only: the winner shows it again),
  verified and kept, the latest epoch per workflow, for our denials (`saw_proof`,
  `proof_of`); at most `PROOFS_KEPT` workflows, the oldest dropped first.

Pure: the signer and the checks are ports.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from fedorch.core.node.records import PrepareMsg
from fedorch.core.node.takeover_grants import (
    Certificate,
    Collected,
    GrantSigner,
    SignedGrant,
    StatedRound,
    parse,
    round_statement,
    sign_grant,
    sign_round,
)
from fedorch.core.workflow.acceptor_grant import Round
from fedorch.core.workflow.takeover import Role, Takeover

__all__ = ["PROOFS_KEPT", "NoEvidence", "Proofs", "TakeoverEvidence", "unsigned"]

# Workflows whose winner's proof is kept here for our denials.
PROOFS_KEPT = 10_000


class TakeoverEvidence(Protocol):
    """The checks of what a claim or an answer shows (signatures on the wire)."""

    def certificate_holds(self, wf: str, epoch: int, coordinator: str,
                          certificate: Certificate,
                          electorate: frozenset[str] | None) -> bool:
        """`certificate` proves that a majority of the electorate granted `epoch` to
        `coordinator` (`electorate`: as this agent holds it; None if it holds none)."""
        ...

    def grant_holds(self, grant: SignedGrant) -> bool:
        """`grant`'s signature is its granter's, over its statement as carried."""
        ...

    def round_proof_holds(self, wf: str, proof: Round, stated: StatedRound | None) -> bool:
        """`proof` is the round its coordinator stated (`stated`, its signed statement of
        it), and a COMMIT of it was chosen."""
        ...


class NoEvidence:
    """Nothing can be verified: no certificate is believed, no proof holds."""

    def certificate_holds(self, wf: str, epoch: int, coordinator: str,
                          certificate: Certificate,
                          electorate: frozenset[str] | None) -> bool:
        return False

    def grant_holds(self, grant: SignedGrant) -> bool:
        return False

    def round_proof_holds(self, wf: str, proof: Round, stated: StatedRound | None) -> bool:
        return False


def unsigned(statement: bytes) -> bytes:
    """The signer of a Node given none: an empty signature (no evidence port that checks
    signatures believes it)."""
    return b""


class Proofs:
    def __init__(self, takeovers: Any, evidence: TakeoverEvidence | None,
                 sign: GrantSigner | None) -> None:
        # The takeover part that owns this one (takeover.py imports it, not the reverse).
        self.tk = takeovers
        self.n = takeovers.n
        self.evidence: TakeoverEvidence = evidence if evidence is not None else NoEvidence()
        self.sign: GrantSigner = sign if sign is not None else unsigned
        self.collected = Collected()
        # Workflow -> (epoch, holder, certificate) verified here, shown by another
        # domain (its claim, or a proven denial): our denials carry it.
        self.proofs: dict[str, tuple[int, str, Certificate]] = {}
        self._stated: StatedRound | None = None  # the last round we signed

    def reset(self) -> None:
        self.collected.reset()
        self.proofs = {}

    def forget(self, wf: str) -> None:
        self.collected.forget(wf)
        self.proofs.pop(wf, None)

    def stated_prepare(self, msg: PrepareMsg) -> PrepareMsg:
        """A PREPARE of ours as it leaves: with the round signed (WfInfo.stated) when the
        round has an acceptor that holds no step, which a claimant must show it; signed
        once per round (its PREPAREs leave one after another)."""
        tx = msg.tx
        if tx.coordinator != self.n.name or msg.info.stated is not None \
                or set(tx.acceptors) <= set(tx.participants):
            return msg
        raw = round_statement(tx.workflow_id, tx.round, tx.coordinator, tx.participants,
                              tx.acceptors)
        stated = self._stated
        if stated is None or stated.statement != raw:
            stated = self._stated = sign_round(self.sign, tx.workflow_id, tx.round,
                                               tx.coordinator, tx.participants,
                                               tx.acceptors)
            self.n.stats["takeover round signed"] += 1
        return replace(msg, info=replace(msg.info, stated=stated))

    def proven(self, wf: str, epoch: int, holder: str, certificate: Certificate) -> bool:
        """Does `certificate` prove that `holder` won `epoch` (checked through the port,
        against the electorate held here)?"""
        return bool(certificate) and epoch >= 1 and self.evidence.certificate_holds(
            wf, epoch, holder, certificate, self.tk.electorate_of(wf))

    def grant(self, wf: str, epoch: int, holder: str,
              electorate: frozenset[str]) -> SignedGrant:
        """Our signed grant of `epoch` to `holder`, counted in `electorate`."""
        self.n.stats["takeover grant signed"] += 1
        return sign_grant(self.sign, self.n.name, wf, epoch, holder, electorate)

    def grant_received(self, wf: str, core: Takeover, voter: str, epoch: int,
                       grant: SignedGrant | None) -> bool:
        """A grant of our claim: kept if it is `voter`'s signed grant of `epoch` to us
        in our electorate (what our certificate will be made of)."""
        facts = parse(grant.statement) if isinstance(grant, SignedGrant) else None
        if facts is None or grant is None \
                or (grant.granter, facts.granter, facts.workflow_id, facts.epoch,
                    facts.holder) != (voter, voter, wf, epoch, self.n.name) \
                or frozenset(facts.electorate) != core.electorate \
                or not self.evidence.grant_holds(grant):
            self.n.stats["takeover grant without a valid signed statement"] += 1
            return False
        self.collected.add(wf, epoch, grant)
        return True

    def certificate_won(self, wf: str, core: Takeover, epoch: int) -> Certificate:
        """Our certificate of `epoch`: the grants collected for it and our own."""
        grants = self.collected.of(wf, epoch)
        grants[self.n.name] = self.grant(wf, epoch, self.n.name, core.electorate)
        return tuple(grants[v] for v in sorted(grants))

    def own_certificate(self, wf: str, epoch: int) -> Certificate:
        """The certificate we won `epoch` with, if we did ((): none)."""
        kept = self.n.state.certificates.get(wf)
        return kept[1] if kept is not None and kept[0] == epoch >= 1 else ()

    def saw_proof(self, wf: str, epoch: int, holder: str, certificate: Certificate) -> bool:
        """A certificate of (epoch, holder) shown to us: kept for our denials if it holds
        (the latest epoch only). Whether it holds."""
        if epoch < 1 or holder == self.n.name \
                or not self.proven(wf, epoch, holder, certificate):
            return False
        kept = self.proofs.get(wf)
        if kept is None or kept[0] < epoch:
            self.proofs.pop(wf, None)
            # The newest last: the oldest goes first.
            self.proofs[wf] = (epoch, holder, certificate)
            if len(self.proofs) > PROOFS_KEPT:
                del self.proofs[next(iter(self.proofs))]
            self.n.stats["takeover proof kept for denials"] += 1
        return True

    def proof_of(self, wf: str, epoch: int, holder: str) -> Certificate:
        """The certificate of (epoch, holder) a denial naming it carries: ours if we act
        in it, else the holder's if verified here; () if none."""
        if epoch < 1:
            return ()
        if holder == self.n.name:
            core = self.tk.cores.get(wf)
            acting = core is not None and core.role is Role.ACTING and core.epoch == epoch
            return self.own_certificate(wf, epoch) if acting else ()
        kept = self.proofs.get(wf)
        return kept[2] if kept is not None and kept[:2] == (epoch, holder) else ()
