"""gRPC Peer service: the input boundary for messages from other agents; the part that
is not the Node's (membership's Swim). The node engine's service
(node_engine/services.py, `NodePeerService`) builds on it with NodeTurn and NodeTurns.

Every request is opened (signature over the bytes as received, trust, recipient,
kind, replay window) before anything looks at it; a refused message is
answered UNAUTHENTICATED, counted, logged, and changes nothing.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

import grpc
from fedorch.core.identity.envelope import AuthError, open_message
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

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


def _deadline_passed(context) -> bool:
    """Has the caller's deadline passed (the reply can no longer reach it)? A context
    that knows no deadline (an in-process call) says no."""
    time_remaining = getattr(context, "time_remaining", None)
    remaining = time_remaining() if time_remaining is not None else None
    return remaining is not None and remaining <= 0


class PeerService(peer_pb2_grpc.PeerServicer):
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent

    async def _open(self, request: peer_pb2.Envelope, context, expect: str,
                    allow_unaddressed: bool = False) -> peer_pb2.Body:
        a = self.agent
        if not a.ready.is_set():
            # The agent is not running yet (or membership is not built yet): nothing may
            # look at a peer's message now. UNAVAILABLE is what a peer retries on.
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is starting")
        try:
            body = open_message(request, a.trust, a.guard, me=a.domain, now_ms=a.now_ms(),
                                mono_ms=int(a.now() * 1000), expect=expect,
                                allow_unaddressed=allow_unaddressed)
        except AuthError as e:
            a.metrics.rejected_messages.labels(e.label or expect).inc()
            peer = context.peer() if context is not None else "?"
            log.warning("refused %s message from %s: %s", expect, peer, e.reason)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, e.reason)
            raise  # abort raises; this keeps type checkers honest
        a.heard_from(body.sender)  # alive to send it, however slow its probes' answers
        return body

    @_counted
    async def Swim(self, request, context):
        # Unaddressed allowed: a joining agent knows a seed's address, not its domain.
        body = await self._open(request, context, "swim", allow_unaddressed=True)
        reply = self.agent.membership.handle_batch(
            body.sender, body.swim, caller_gone=lambda: _deadline_passed(context))
        return self.agent.seal(body.sender, swim=reply)
