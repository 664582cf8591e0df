"""The Paxos Commit shell's output: one consensus message to one peer, and its reply.

A message to this agent itself goes straight back in; a DecisionQuery goes on the
QueryDecision RPC and a Decision on Decide (signed, with its proof); the rest on the
Paxos RPC, whose reply (the acceptor's answer) is fed back in. One attempt each: the
cores resend. Composed into runtime.consensus.Consensus, which it reaches only
through the `Inbox` protocol.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from fedorch.core.identity.authority import Refused
from fedorch.core.identity.envelope import AuthError
from fedorch.core.negotiation.errors import ProtocolError
from fedorch.core.negotiation.messages import (
    AnswerStatus,
    Decision,
    DecisionAnswer,
    DecisionQuery,
    Key,
    TxInfo,
    Value,
)
from fedorch.core.negotiation.termination import Termination
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.peer_service import count_refusal
from fedorch.runtime.peers import PeerCallError

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.consensus")

PAXOS_RPC_TIMEOUT_S = 2.0  # one attempt; the cores resend


class Inbox(Protocol):
    """What the outbox uses of the consensus shell: its input, its proofs, its
    termination core and the running of that core's actions."""

    termination: Termination

    async def receive(self, sender: str, msg: object, *, rpc: bool = False) -> object | None: ...

    async def open_decision(self, envelope: peer_pb2.Envelope,
                            key: Key | None = None) -> tuple[str, Value, TxInfo] | None: ...

    def decision_envelope(self, key: Key, value: Value) -> peer_pb2.Envelope: ...

    async def run(self, actions: list, reply_to: str | None = None) -> object | None: ...


class ConsensusOutbox:
    def __init__(self, agent: AgentContext, inbox: Inbox) -> None:
        self.agent = agent
        self._inbox = inbox

    async def deliver(self, to: str, msg: object) -> None:
        """Send `msg` to `to` once and feed in what comes back; failures are logged."""
        a = self.agent
        try:
            if to == a.domain:
                await self._inbox.receive(to, msg)
                return
            endpoint = a.endpoint_of(to, self._known_endpoints(msg))
            if endpoint is None:
                return
            if isinstance(msg, DecisionQuery):
                await self._query(endpoint, to, msg)
                return
            if isinstance(msg, Decision):
                await a.peers.call(
                    endpoint, "Decide", recipient=to, expect="ack",
                    timeout=PAXOS_RPC_TIMEOUT_S, wait_for_ready=False,
                    decision_notice=peer_pb2.DecisionNotice(
                        decision=self._inbox.decision_envelope(msg.key, msg.value)))
                return
            kind, pb = wire.encode(msg)
            body, _ = await a.peers.call(
                endpoint, "Paxos", recipient=to, expect=wire.PAXOS_REPLIES,
                timeout=PAXOS_RPC_TIMEOUT_S, wait_for_ready=False, **{kind: pb})
            await self._on_reply(to, body)
        except PeerCallError as e:
            log.debug("%s to %s: %s", type(msg).__name__, to, e)
        except Refused as e:
            count_refusal(a, to, type(msg).__name__, e)
        except (AuthError, ProtocolError) as e:
            log.warning("%s from %s refused: %s", type(msg).__name__, to, e)

    def _known_endpoints(self, msg: object) -> dict[str, str]:
        key = getattr(msg, "key", None)
        hold = self.agent.participant.hold(key) if key is not None else None
        if hold is not None and hold.coordinator_endpoint:
            return {hold.coordinator: hold.coordinator_endpoint}
        return {}

    async def _on_reply(self, peer: str, body: peer_pb2.Body) -> None:
        kind = body.WhichOneof("payload")
        if kind == "ack":
            if not body.ack.ok:
                log.info("%s refused a consensus message: %s", peer, body.ack.error)
            return
        if kind == "decision_notice":
            opened = await self._inbox.open_decision(body.decision_notice.decision)
            if opened is not None:
                signer, value, tx = opened
                await self._inbox.receive(peer, Decision(tx.key, value, signer))
            return
        await self._inbox.receive(peer, wire.decode(body, self.agent.trust))

    async def _query(self, endpoint: str, to: str, q: DecisionQuery) -> None:
        a = self.agent
        a.metrics.in_doubt_queries.inc()
        body, _ = await a.peers.call(
            endpoint, "QueryDecision", recipient=to, expect="decision_answer",
            timeout=PAXOS_RPC_TIMEOUT_S, wait_for_ready=False,
            decision_query=peer_pb2.DecisionQuery(workflow_id=q.key[0], round=q.key[1]))
        answer = body.decision_answer
        if answer.known:
            opened = await self._inbox.open_decision(answer.decision, q.key)
            if opened is not None:
                _, value, _ = opened
                termination = self._inbox.termination
                termination.receive(
                    a.now(), DecisionAnswer(q.key, to, AnswerStatus.DECIDED, value))
                await self._inbox.run(termination.next_actions())
        if answer.final_state:
            await a.participation.ended(q.key[0], answer.final_state,
                                        answer.final_reason or "ended (asked)")
