"""Round proofs: a takeover claimant shows an acceptor that missed the committed round
which round that was, so the acceptor can grant (agent/core/workflow/acceptor_grant.py).

Three parties, three parts:

* The original coordinator (`for_prepare`): when a Paxos Commit round has an acceptor
  that holds no step (a workflow on one or two domains, with `min_acceptors` 3), it
  signs the round once (`Body.round_tx`: workflow, round, coordinator, participants,
  acceptors; evidence, no recipient) and every PREPARE of the round carries those same
  bytes (`PrepareRequest.round_tx`). One signature per such round, none for a round
  whose acceptors all hold steps (they have a workflow row of their own).
* A participant keeps the bytes as received with its YES (`hold_txs.round_tx`, in the
  write the YES needs anyway). As a claimant (`claim_proof`) it attaches them to its
  claims to the extra acceptors, with a COMMIT Decision of that round that it signs
  over the commit certificate it learned (a signed YES of every participant), exactly
  as it answers a DecisionQuery.
* The extra acceptor (`check`) verifies both over the bytes as received: the round is
  signed by the coordinator the workflow id names (`round_tx` authority row), is a
  round of the claimed workflow, and the decision proves a COMMIT of that very round
  (agent/runtime/decision_proofs.proven: signed by a party, every participant's YES
  verified). It hands the core the round, or the reason it refused the proof, and
  reads its own records (`records`) for the core to compare.

Why not the alternatives (docs/decisions.md): a participant under Paxos Commit usually
learns the COMMIT from the acceptors, without the coordinator's signed Decision, so a
coordinator-signed decision is often not held when the coordinator died just after the
commit; and the PREPARE itself travels batched under one signature over many
workflows' PREPAREs (specs included), whose bytes would cost kilobytes per workflow to
keep. The signed round is a few hundred bytes, made once per round, and only for
rounds that have an acceptor holding no step.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.identity.envelope import AuthError, open_evidence
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

SIGNED_ROUNDS_KEPT = 256  # a round's PREPAREs leave together: a few rounds suffice


class RoundProofs:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        self._signed: OrderedDict[tuple[str, int], peer_pb2.Envelope] = OrderedDict()
        # Workflow -> (committed round, its proof or None): a claimant's proof, built
        # once (a claim is sent again and again until answered).
        self._proofs: dict[str, tuple[int, tuple[peer_pb2.Envelope,
                                                 peer_pb2.Envelope] | None]] = {}

    # ---- the coordinator -----------------------------------------------------------

    def for_prepare(self, workflow_id: str, round_: int, placement: Mapping[str, str],
                    acceptors: Sequence[str]) -> peer_pb2.Envelope | None:
        """The round signed once, for its PREPAREs, if an acceptor of it holds no step."""
        a = self.agent
        participants = set(placement.values())
        if not acceptors or set(acceptors) <= participants | {a.domain}:
            return None
        key = (workflow_id, round_)
        signed = self._signed.get(key)
        if signed is None:
            tx = TxInfo(workflow_id, round_, a.domain, tuple(sorted(participants)),
                        tuple(acceptors))
            sealed = a.seal("", round_tx=wire.tx_pb(tx))
            signed = peer_pb2.Envelope(body=sealed.body, signature=sealed.signature)
            self._signed[key] = signed
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
