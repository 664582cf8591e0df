"""The Node's takeover proofs: its signed grants, the certificates it won, and those
it was shown.

Theory of operation
-------------------
Part of the Node's takeover part (takeover.py, whose header tells the whole; the
statements and the certificate rules are takeover_grants.py). Held here:

- the ports: `sign` (this agent's grants; `unsigned` when the Node is given none) and
  `evidence` (`TakeoverEvidence`: a certificate against the electorate held here, one
  grant's signature, a round proof: the original coordinator's signed round and its
  COMMIT's certificate, every participant's signed YES of it, votes.py);
- our grants (`grant`): each one signed, naming the electorate it counts in, carried by
  the answer that grants it;
- the grants of our claim (`collected`, memory only: a restarted claimant is granted
  again): one counts only if its statement verifies as its voter's, of our claim, in our
  electorate (`grant_received`; else the answer is dropped and counted), so the core
  acts exactly when we hold a majority's signed grants; on the Act they and our own are
  our certificate (`certificate_won`), written in `certificates` and shown again after
  a restart (`own_certificate`); a claimant outside the electorate shows those it
  holds with its claim (`held_grants`), checked by the member asked (`shown_grants`:
  takeover_claims.py, `_cannot_win`);
- the certificates others showed us (`proofs`, memory only: the winner shows it again),
  verified and kept, the latest epoch per workflow, for our denials (`saw_proof`,
  `proof_of`); at most `PROOFS_KEPT` workflows, the oldest dropped first; one holding
  our own grant is judged against the electorate that grant names where we hold no
  step (`granted_in`: we granted on a proof of the committed round);
- signed rounds (`stated_prepare`, `check_stated`): the coordinator signs each round
  of its own once, as its first PREPARE leaves, and the signature rides in the
  PREPARE's transaction (`TxInfo.round_tx`: the statement is the transaction's own
  fields, `round_statement`, so the signature alone is carried). A participant keeps
  it with the transaction of its hold, so every PaxosPrepare and Accept it makes as
  a recovery proposer carries it. An acceptor makes its first record of a round only
  if the round is one its coordinator stated (`check_stated`, applied by the
  authority table before the Node steps the message, core/node/authority.py): the
  coordinator the workflow id names sends it itself; or this agent holds that round
  from the coordinator (its PREPARE, its own round) and the message states the same;
  or the message carries the coordinator's signature of that very round. Anything
  else is refused (`Refused`, counted by reason): a trusted domain that lies (a
  participant, which the table lets propose) cannot leave a record of a round of
  its own making, or of a real round's key with other parties, that would later
  refuse the honest round or an honest claimant's proof.

Pure: the signer and the checks are ports.
"""

from __future__ import annotations

from typing import Any, Protocol

from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.messages import TxInfo, VoteIn
from fedorch.core.node.records import PrepareMsg, WfInfo
from fedorch.core.node.takeover_grants import (
    Certificate,
    Collected,
    GrantSigner,
    SignedGrant,
    StatedRound,
    parse,
    round_statement,
    sign_grant,
    sign_statement,
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

    def round_proof_holds(self, wf: str, proof: Round, stated: StatedRound | None,
                          commit: tuple[VoteIn, ...] = ()) -> bool:
        """`proof` is the round its coordinator stated (`stated`, its signed statement of
        it), and a COMMIT of it was chosen (`commit`: its certificate, every
        participant's signed YES of that round)."""
        ...

    def round_signed(self, stated: StatedRound) -> bool:
        """`stated` is signed by the coordinator it names, over its statement."""
        ...


class NoEvidence:
    """Nothing can be verified: no certificate is believed, no proof holds."""

    def certificate_holds(self, wf: str, epoch: int, coordinator: str,
                          certificate: Certificate,
                          electorate: frozenset[str] | None) -> bool:
        return False

    def grant_holds(self, grant: SignedGrant) -> bool:
        return False

    def round_proof_holds(self, wf: str, proof: Round, stated: StatedRound | None,
                          commit: tuple[VoteIn, ...] = ()) -> bool:
        return False

    def round_signed(self, stated: StatedRound) -> bool:
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
        # The transaction fields `_stated` was checked against: the PREPAREs of one round
        # carry the same ones, so its statement is made once per round, not per PREPARE.
        self._stated_of: tuple | None = None

    def reset(self) -> None:
        self.collected.reset()
        self.proofs = {}

    def forget(self, wf: str) -> None:
        self.collected.forget(wf)
        self.proofs.pop(wf, None)

    def stated_prepare(self, msg: PrepareMsg) -> PrepareMsg:
        """A PREPARE of ours as it leaves: its transaction carries our signature of the
        round (`round_tx`, for the acceptors' check: see the header), and, when the
        round has an acceptor that holds no step, which a claimant must show the round,
        so does its WfInfo (`stated`, the signed statement whole). Signed once per round
        (its PREPAREs leave one after another)."""
        tx = msg.tx
        if tx.coordinator != self.n.name or tx.round_tx:
            return msg
        of = (tx.workflow_id, tx.round, tx.coordinator, tx.participants, tx.acceptors,
              tx.created_ms)
        stated = self._stated
        if stated is None or self._stated_of != of:
            raw = round_statement(*of)  # a function of `of`: equal `of`, equal statement
            if stated is None or stated.statement != raw:
                stated = self._stated = sign_statement(self.sign, tx.coordinator, raw)
                self.n.stats["takeover round signed"] += 1
            self._stated_of = of
        info = msg.info
        if info.stated is None and not set(tx.acceptors) <= set(tx.participants):
            info = WfInfo(info.spec, info.placement, info.coordinator, info.submission,
                          stated, info.lost)
        # Built directly (dataclasses.replace is generic, and this is every PREPARE).
        return PrepareMsg(TxInfo(tx.workflow_id, tx.round, tx.coordinator, tx.participants,
                                 tx.acceptors, stated.signature, tx.created_ms),
                          msg.steps, info, msg.held_epoch, msg.won)

    def check_stated(self, sender: str, tx: TxInfo) -> None:
        """Refused unless `tx`, which `sender` states to this agent's acceptor before it
        holds any record of the round, is a round its coordinator stated (see the
        header): the reasons `round_mismatch`, `no_signed_round` and
        `bad_signed_round`."""
        # A round named another's than the coordinator its workflow id names (whose
        # every round of the Node is) never gets here: the table refuses it first
        # ("foreign_workflow").
        wf = tx.workflow_id
        if sender == tx.coordinator:
            return  # the coordinator's own word: its envelope states the round
        known = self.n.tx_of(tx.key)
        if known is not None:  # its PREPARE came here, or it is our own round
            if known != tx:
                self.n.stats["acceptor refused a round unlike the one stated here"] += 1
                raise Refused("round_mismatch", f"{sender} stated {tx.key} with other"
                                                " parties than its coordinator did")
            return
        if not tx.round_tx:
            self.n.stats["acceptor refused a round without its signature"] += 1
            raise Refused("no_signed_round", f"{sender} stated {tx.key} without its"
                                             " coordinator's signed round: no record is"
                                             " made of it")
        stated = StatedRound(tx.coordinator, round_statement(
            wf, tx.round, tx.coordinator, tx.participants, tx.acceptors, tx.created_ms),
            tx.round_tx)
        if not self.evidence.round_signed(stated):
            self.n.stats["acceptor refused a round not signed by its coordinator"] += 1
            raise Refused("bad_signed_round", f"{sender} stated {tx.key} with a signature"
                                              f" that is not {tx.coordinator}'s of that"
                                              " round")
        self.n.stats["acceptor took a round on its coordinator's signature"] += 1

    def proven(self, wf: str, epoch: int, holder: str, certificate: Certificate) -> bool:
        """Does `certificate` prove that `holder` won `epoch` (checked through the port,
        against the electorate held here)?"""
        return bool(certificate) and epoch >= 1 and self.evidence.certificate_holds(
            wf, epoch, holder, certificate, self.tk.electorate_of(wf, certificate))

    def granted_in(self, wf: str, certificate: Certificate) -> frozenset[str] | None:
        """The electorate named by our own grant of `wf` in `certificate`, if it holds
        one whose signature verifies as ours; else None."""
        for grant in certificate:
            facts = parse(grant.statement) if isinstance(grant, SignedGrant) else None
            if facts is not None and grant.granter == facts.granter == self.n.name \
                    and facts.workflow_id == wf and self.evidence.grant_holds(grant):
                return frozenset(facts.electorate)
        return None

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

    def shown_grants(self, wf: str, epoch: int, holder: str, grants: Certificate,
                     electorate: frozenset[str]) -> frozenset[str]:
        """The members whose signed grants of `epoch` to `holder`, in `electorate`, a
        claim shows (`ClaimMsg.grants`) and that verify here."""
        voters: set[str] = set()
        for grant in grants:
            facts = parse(grant.statement) if isinstance(grant, SignedGrant) else None
            if facts is not None and grant.granter == facts.granter in electorate \
                    and (facts.workflow_id, facts.epoch, facts.holder) == (wf, epoch, holder) \
                    and frozenset(facts.electorate) == electorate \
                    and self.evidence.grant_holds(grant):
                voters.add(grant.granter)
        return frozenset(voters)

    def held_grants(self, wf: str, core: Takeover, epoch: int) -> Certificate:
        """The members' grants of our claim of `epoch` collected so far, shown by the
        claim of a claimant outside the electorate (`ClaimMsg.grants`); () if none."""
        if core.role is not Role.CLAIMING or epoch != core.epoch \
                or self.n.name in core.electorate:
            return ()
        grants = self.collected.of(wf, epoch)
        return tuple(grants[v] for v in sorted(grants))

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
