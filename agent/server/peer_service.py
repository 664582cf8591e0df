"""gRPC Peer service: the one input boundary for messages from other agents.

Every request is opened (signature over the bytes as received, trust, recipient,
kind, replay window) before anything looks at it; a refused message is
answered UNAUTHENTICATED, counted, logged, and changes nothing.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

import grpc

from agent.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from agent.identity.envelope import AuthError, open_message
from agent.server.paxos_wire import PAXOS_REQUESTS

if TYPE_CHECKING:
    from agent.server.agent import Agent

log = logging.getLogger("fedorch.peer")


def _counted(handler):
    """Count the envelope bytes each RPC receives and sends (fedorch_peer_bytes_total)."""
    rpc = handler.__name__

    @functools.wraps(handler)
    async def counted(self, request, context):
        self.agent.metrics.peer_bytes.labels(rpc, "in").inc(request.ByteSize())
        reply = await handler(self, request, context)
        self.agent.metrics.peer_bytes.labels(rpc, "out").inc(reply.ByteSize())
        return reply

    return counted


class PeerService(peer_pb2_grpc.PeerServicer):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def _open(self, request: peer_pb2.Envelope, context, expect: str | frozenset[str],
                    allow_unaddressed: bool = False) -> peer_pb2.Body:
        a = self.agent
        try:
            return open_message(request, a.trust, a.guard, me=a.domain, now_ms=a.now_ms(),
                                expect=expect, allow_unaddressed=allow_unaddressed)
        except AuthError as e:
            expect = expect if isinstance(expect, str) else "paxos"
            a.metrics.rejected_messages.labels(expect).inc()
            peer = context.peer() if context is not None else "?"
            log.warning("refused %s message from %s: %s", expect, peer, e.reason)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, e.reason)
            raise  # abort raises; this keeps type checkers honest

    @_counted
    async def Swim(self, request, context):
        # Unaddressed allowed: a joining agent knows a seed's address, not its domain.
        body = await self._open(request, context, "swim", allow_unaddressed=True)
        reply = self.agent.membership.handle_batch(body.sender, body.swim)
        return self.agent.seal(body.sender, swim=reply)

    @_counted
    async def Prepare(self, request, context):
        body = await self._open(request, context, "prepare")
        return await self.agent.run_owned(
            self.agent.participation.prepare(body.sender, body.prepare), "prepare")

    @_counted
    async def Decide(self, request, context):
        body = await self._open(request, context, "decision_notice")
        ack = await self.agent.run_owned(
            self.agent.participation.decide(body.sender, body.decision_notice.decision),
            "decide")
        return self.agent.seal(body.sender, ack=ack)

    @_counted
    async def QueryDecision(self, request, context):
        body = await self._open(request, context, "decision_query")
        q = body.decision_query
        a = self.agent
        if q.workflow_id.rpartition(".")[0] != a.domain:
            # Another agent's workflow: a participant in doubt asks its peers too (Paxos
            # Commit); we answer with the decision we learned, if any.
            answer = await a.consensus.answer((q.workflow_id, q.round))
        else:
            answer = await a.run_owned(a.coordination.answer_query(q.workflow_id, q.round),
                                       "answer query")
        return a.seal(body.sender, decision_answer=answer)

    @_counted
    async def Paxos(self, request, context):
        body = await self._open(request, context, PAXOS_REQUESTS)
        kind, reply = await self.agent.run_owned(self.agent.consensus.on_rpc(body), "paxos")
        return self.agent.seal(body.sender, **{kind: reply})

    @_counted
    async def ReportStep(self, request, context):
        body = await self._open(request, context, "step_result")
        ack = await self.agent.run_owned(
            self.agent.participation.on_result(body.sender, body.step_result), "step result")
        return self.agent.seal(body.sender, ack=ack)

    @_counted
    async def CancelWorkflow(self, request, context):
        body = await self._open(request, context, "cancel")
        ack = await self.agent.run_owned(
            self.agent.participation.on_cancel(body.sender, body.cancel), "end notice")
        return self.agent.seal(body.sender, ack=ack)
