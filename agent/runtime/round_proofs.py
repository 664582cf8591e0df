"""Round proofs: the original coordinator's signed round, what makes an acceptor record
the coordinator's round and not a proposer's word, and what lets a takeover claimant
show an acceptor that missed the committed round which round that was, so the acceptor
can grant (agent/core/workflow/acceptor_grant.py).

Three parties, three parts:

* The original coordinator (`for_prepare`, `stating`): it signs every Paxos Commit
  round once (`Body.round_tx`: workflow, round, coordinator, participants, acceptors;
  evidence, no recipient). Every PREPARE of the round carries those bytes
  (`PrepareRequest.round_tx`), and so does every PaxosPrepare and Accept of the round
  it sends (`PaxosPrepare.round_tx`, `PaxosAccept.round_tx`): one signature per round,
  kept for the round's life (re-signed after a restart: any signature of the
  coordinator over the same round serves).
* A participant keeps the bytes as received with its YES (`hold_txs.round_tx`, in the
  write the YES needs anyway). As a recovery proposer it sends them on every
  PaxosPrepare and Accept (they ride in its TxInfo). As a claimant (`claim_proof`) it
  attaches them to its claims to the extra acceptors, with a COMMIT Decision of that
  round that it signs over the commit certificate it learned (a signed YES of every
  participant), exactly as it answers a DecisionQuery.
* An acceptor (`stated`) makes a record of a round only once it verified the signed
  round a PaxosPrepare or Accept carries, over the bytes as received: signed by the
  coordinator the workflow id names, stating the very round of the message. It keeps
  the bytes with the record (`acceptor_records.round_tx`). Only the coordinator's own
  message may come without one (an older coordinator: its envelope states the round).
  An extra acceptor (`check`) verifies a claim's proof the same way, and the decision
  proves a COMMIT of that very round (agent/runtime/decision_proofs.proven: signed by
  a party, every participant's YES verified). It hands the core the round, or the
  reason it refused the proof, and reads its own records (`records`) for the core to
  compare: since records are of stated rounds, one that contradicts a verified proof
  is the coordinator's own contradiction (it signed two rounds under one key).

Why not the alternatives (docs/decisions.md): a participant under Paxos Commit usually
learns the COMMIT from the acceptors, without the coordinator's signed Decision, so a
coordinator-signed decision is often not held when the coordinator died just after the
commit; and the PREPARE itself travels batched under one signature over many
workflows' PREPAREs (specs included), whose bytes would cost kilobytes per workflow to
keep. The signed round is a few hundred bytes, made once per round.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.identity.envelope import AuthError, open_evidence
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.errors import ProtocolError
from fedorch.core.negotiation.messages import TxInfo, check_tx
from fedorch.core.workflow.acceptor_grant import ABORT, COMMIT, Round
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.decision_proofs import proven
from fedorch.runtime.store.store import WorkflowRow
from google.protobuf.message import DecodeError

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.takeover")

# Signed rounds kept in memory: a round's PREPAREs leave together and its Accepts a
# write later, so the rounds in flight suffice (a bench runs 512 at once); one evicted is
# signed again.
SIGNED_ROUNDS_KEPT = 4096


class RoundProofs:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        # (workflow, round) -> (the round, our signature of it as canonical Envelope bytes)
        self._signed: OrderedDict[tuple[str, int], tuple[TxInfo, bytes]] = OrderedDict()
        # Workflow -> (committed round, its proof or None): a claimant's proof, built
        # once (a claim is sent again and again until answered).
        self._proofs: dict[str, tuple[int, tuple[peer_pb2.Envelope,
                                                 peer_pb2.Envelope] | None]] = {}

    # ---- the coordinator -----------------------------------------------------------

    def for_prepare(self, workflow_id: str, round_: int, placement: Mapping[str, str],
                    acceptors: Sequence[str]) -> peer_pb2.Envelope | None:
        """The round signed once, for its PREPAREs, PaxosPrepares and Accepts; None for
        a classic 2PC round (no acceptors)."""
        if not acceptors:
            return None
        a = self.agent
        tx = TxInfo(workflow_id, round_, a.domain, tuple(sorted(set(placement.values()))),
                    tuple(acceptors))
        return peer_pb2.Envelope.FromString(self._sign(tx))

    def stating(self, tx: TxInfo) -> TxInfo:
        """Our own round `tx`, carrying our signed round (signed once, see for_prepare)."""
        if tx.round_tx or tx.coordinator != self.agent.domain:
            return tx
        return replace(tx, round_tx=self._sign(tx))

    def _sign(self, tx: TxInfo) -> bytes:
        key = tx.key
        kept = self._signed.get(key)
        if kept is not None and kept[0] == tx:
            self._signed.move_to_end(key)
            return kept[1]
        a = self.agent
        sealed = a.seal("", round_tx=wire.tx_pb(tx))
        # Our own acceptor checks it too (every record is of a verified round): known good.
        a.trust.signed_here(a.domain, sealed.body, sealed.signature)
        signed = wire.canonical(peer_pb2.Envelope(body=sealed.body, signature=sealed.signature))
        self._signed[key] = (tx, signed)
        while len(self._signed) > SIGNED_ROUNDS_KEPT:
            self._signed.popitem(last=False)
        return signed

    # ---- the claimant ----------------------------------------------------------------

    async def claim_proof(self, row: WorkflowRow
                          ) -> tuple[peer_pb2.Envelope, peer_pb2.Envelope] | None:
        """The proof of our committed round for an acceptor holding no step: the round as
        its coordinator signed it and a COMMIT of it that we sign. None when we hold no
        signed round (its acceptors all hold steps, or an older agent coordinated it)."""
        kept = self._proofs.get(row.id)
        if kept is not None and kept[0] == row.round:
            return kept[1]
        a = self.agent
        info = await a.store.get_hold_tx(row.id, row.round)
        learned = await a.store.get_learned(row.id, row.round)
        proof = None
        if info is not None and info.round_tx and learned is not None \
                and learned[0] == COMMIT:
            key = (row.id, row.round)
            proof = (peer_pb2.Envelope.FromString(info.round_tx),
                     a.consensus.decision_envelope(key, wire.value_from_bytes(learned[1], key)))
        self._proofs[row.id] = (row.round, proof)
        return proof

    def forget(self, workflow_id: str) -> None:
        self._proofs.pop(workflow_id, None)

    # ---- the acceptor ----------------------------------------------------------------

    def check(self, workflow_id: str, claim: peer_pb2.TakeoverClaim
              ) -> tuple[Round | None, tuple[str, str] | None]:
        """The committed round a claim proves, or (reason, detail) why its proof is
        refused; (None, None) when it carries none."""
        if not claim.HasField("round_tx") and not claim.HasField("commit"):
            return None, None
        trust = self.agent.trust
        try:
            body = open_evidence(claim.round_tx, trust, expect="round_tx")
            authorize("round_tx", body.sender, Facts(workflow_id=workflow_id))
            if body.round_tx.workflow_id != workflow_id:
                return None, ("other_workflow", f"the round proven is of workflow"
                                                f" {body.round_tx.workflow_id!r}")
            tx = wire.tx_of(body.round_tx)
            check_tx(tx)
            value = proven(open_evidence(claim.commit, trust, expect="decision"), tx, trust)
        except AuthError as e:
            return None, (e.label or "bad_signature", e.reason)
        except Refused as e:
            return None, (e.reason, e.detail)
        except (ProtocolError, DecodeError) as e:
            return None, ("bad_round_proof", str(e))
        return Round(tx.round, frozenset(tx.participants), frozenset(tx.acceptors),
                     COMMIT if value.commit else ABORT), None

    async def records(self, workflow_id: str) -> list[Round]:
        """This acceptor's records of the workflow's rounds, with what it learned of each."""
        rows = await self.agent.store.select(
            "SELECT a.tx, a.decided, l.outcome FROM acceptor_records a LEFT JOIN learned l"
            " ON l.workflow_id = a.workflow_id AND l.round = a.round"
            " WHERE a.workflow_id = ?", (workflow_id,))
        out = []
        for raw, decided, outcome in rows:
            tx = wire.tx_from_bytes(bytes(raw))
            if outcome is None and decided is not None:
                value = peer_pb2.PaxosValue.FromString(bytes(decided))
                outcome = COMMIT if value.outcome == peer_pb2.OUTCOME_COMMIT else ABORT
            out.append(Round(tx.round, frozenset(tx.participants), frozenset(tx.acceptors),
                             outcome))
        return out


def stated(trust: TrustStore, sender: str, tx: TxInfo) -> None:
    """Returns if `tx` is a round its coordinator stated: its signed round (as
    received) is signed by the coordinator the workflow id names and states this
    very round, or, carrying none, it comes from that coordinator itself (an older
    agent: its own envelope states the round). Refused with the reason otherwise.
    The acceptor core calls it before it makes a record (Acceptor `stated`)."""
    if not tx.round_tx:
        if sender == tx.coordinator:
            return
        raise Refused("no_signed_round",
                      f"{sender} stated round {tx.round} of {tx.workflow_id} without its"
                      f" coordinator's signed round: no record is made of it")
    try:
        body = open_evidence(peer_pb2.Envelope.FromString(tx.round_tx), trust,
                             expect="round_tx")
        authorize("round_tx", body.sender, Facts(workflow_id=tx.workflow_id))
        signed = wire.tx_of(body.round_tx)
    except AuthError as e:
        raise Refused(e.label or "bad_signature",
                      f"the signed round of {tx.workflow_id} round {tx.round}"
                      f" from {sender}: {e.reason}") from None
    except (ProtocolError, DecodeError) as e:
        raise Refused("bad_round_proof", f"the signed round from {sender}: {e}") from None
    if signed != tx:
        raise Refused("round_mismatch",
                      f"{sender} stated {tx} with the coordinator's signed round of"
                      f" {signed}: no record is made of it")
