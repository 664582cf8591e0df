"""gRPC Peer service: the one input boundary for messages from other agents.

Every request is opened (signature over the bytes as received, trust, recipient,
kind, replay window) before anything looks at it; a refused message is
answered UNAUTHENTICATED, counted, logged, and changes nothing.

Each request kind has one handler (`_HANDLERS`), used alike by its own RPC and
by the Batch RPC, which carries the requests of many workflows for this agent
in one signed message: the outer envelope is opened once, its items run
concurrently (each on a task the agent owns), and each item gets its own answer: a vote as the signed envelope
its own RPC would have returned (it is evidence), anything else as a payload
under the batch reply's one signature (see peer.proto, "batching").
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING

import grpc
from fedorch.core.identity.authority import Facts, Refused, authorize, facts_of
from fedorch.core.identity.envelope import AuthError, open_message
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.paxos_wire import PAXOS_REQUESTS
from fedorch.runtime.placement_epochs import answer_as_coordinator

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.peer")

# What a handler returns: a signed envelope (a vote, which is evidence), or a
# (payload kind, message) pair that the RPC signs, or a batch carries unsigned.
Answer = peer_pb2.Envelope | tuple[str, object]

# A batch bigger than this is refused whole (INVALID_ARGUMENT): a sender's batcher
# never builds one (runtime.batching.MAX_BATCH_ITEMS is smaller).
MAX_BATCH_ITEMS = 1024


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


def count_refusal(agent: AgentContext, sender: str, kind: str, refused: Refused) -> None:
    """A message its sender had no authority to send: counted by reason, logged."""
    agent.metrics.rejected_messages.labels(refused.reason).inc()
    log.warning("refused %s from %s (%s): %s", kind, sender, refused.reason, refused.detail)


def _status_of(refused: Refused) -> grpc.StatusCode:
    """A malformed id is bad input; anything else the sender may not say."""
    if refused.reason == "bad_workflow_id":
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.PERMISSION_DENIED


def _deadline_passed(context) -> bool:
    """Has the caller's deadline passed (the reply can no longer reach it)? A context
    that knows no deadline (an in-process call) says no."""
    time_remaining = getattr(context, "time_remaining", None)
    remaining = time_remaining() if time_remaining is not None else None
    return remaining is not None and remaining <= 0


class PeerService(peer_pb2_grpc.PeerServicer):
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        # Payload kind -> handler(body) -> signed reply; the kinds a batch may carry.
        self._handlers = {
            "prepare": self._prepare,
            "decision_notice": self._decide,
            "decision_query": self._query_decision,
            "step_result": self._report_step,
            "cancel": self._cancel_workflow,
            "compensate": self._compensate,
            "takeover_claim": self._takeover,
            **{kind: self._paxos for kind in PAXOS_REQUESTS},
        }

    async def _open(self, request: peer_pb2.Envelope, context, expect: str | frozenset[str],
                    allow_unaddressed: bool = False) -> peer_pb2.Body:
        a = self.agent
        if not a.ready.is_set():
            # Recovery has not finished (or membership is not built yet): nothing may
            # look at a peer's message now. UNAVAILABLE is what a peer retries on.
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is starting")
        try:
            body = open_message(request, a.trust, a.guard, me=a.domain, now_ms=a.now_ms(),
                                mono_ms=int(a.now() * 1000), expect=expect,
                                allow_unaddressed=allow_unaddressed)
        except AuthError as e:
            expect = expect if isinstance(expect, str) else "paxos"
            a.metrics.rejected_messages.labels(e.label or expect).inc()
            peer = context.peer() if context is not None else "?"
            log.warning("refused %s message from %s: %s", expect, peer, e.reason)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, e.reason)
            raise  # abort raises; this keeps type checkers honest
        a.heard_from(body.sender)  # alive to send it, however slow its probes' answers
        return body

    # ---- the handlers, one per request kind ------------------------------------------

    # They change state, so they run in a task the agent owns (Agent.run_owned), never in
    # the gRPC handler's own: a single RPC owns one per request, a batch one for all.

    async def _prepare(self, body: peer_pb2.Body) -> Answer:
        return await self.agent.participation.prepare(body.sender, body.prepare)

    async def _decide(self, body: peer_pb2.Body) -> Answer:
        return "ack", await self.agent.participation.decide(
            body.sender, body.decision_notice.decision)

    async def _query_decision(self, body: peer_pb2.Body) -> Answer:
        q = body.decision_query
        a = self.agent
        if q.workflow_id.rpartition(".")[0] != a.domain:
            # Another agent's workflow: a participant in doubt asks its peers too (Paxos
            # Commit); we answer with the decision we learned, if any.
            answer = await a.consensus.answer((q.workflow_id, q.round))
        else:
            answer = await a.coordination.answer_query(q.workflow_id, q.round)
        if not answer.final_state:
            # Running, coordinated here (in memory or not): whether the asker's steps are
            # still placed on it, and a successor's proof (runtime.placement_epochs).
            await answer_as_coordinator(a, answer, body.sender)
        return "decision_answer", answer

    async def _paxos(self, body: peer_pb2.Body) -> Answer:
        return await self.agent.consensus.on_rpc(body)

    async def _report_step(self, body: peer_pb2.Body) -> Answer:
        r = body.step_result
        # Only the domain the step is placed on reports it; a workflow not known here
        # yet keeps its results for the COMMIT, which checks them against its placement
        # (Participation.fold_in_results).
        placed = await self.agent.participation.placed_on(r.workflow_id, r.step_id)
        try:
            authorize("step_result", body.sender,
                      Facts(workflow_id=r.workflow_id, named=r.domain, placed_on=placed))
        except Refused as e:
            if e.reason == "not_step_domain":
                end = await self._end_for_lost_step(body.sender, r)
                if end is not None:  # never applied; the end goes back, so it ends too
                    return "ack", peer_pb2.Ack(ok=True, end=end)
            count_refusal(self.agent, body.sender, "step_result", e)
            return "ack", peer_pb2.Ack(ok=False, error=e.detail)
        return "ack", await self.agent.participation.on_result(body.sender, r)

    async def _end_for_lost_step(self, sender: str,
                                 r: peer_pb2.StepResult) -> peer_pb2.CancelNotice | None:
        """The end of a workflow ended here, for a report of a step taken from `sender`
        when it was lost (DEAD or LEFT) and placed elsewhere: back after the end, it
        learns it from this answer (refused as fenced, logged, counted). None otherwise:
        the report is refused as from a domain the step is not placed on."""
        c = self.agent.coordination
        end = await c.end_notice(r.workflow_id)
        if end is None or c.refuse_fenced(sender, r) is None:
            return None
        return end

    async def _cancel_workflow(self, body: peer_pb2.Body) -> Answer:
        return "ack", await self.agent.participation.on_cancel(body.sender, body.cancel)

    async def _compensate(self, body: peer_pb2.Body) -> Answer:
        # The authority row was checked (the sender coordinates the workflow); whether
        # this domain ran the step and it SUCCEEDED is checked where the run is.
        return "compensation_result", await self.agent.compensation.run_here(
            body.sender, body.compensate)

    async def _takeover(self, body: peer_pb2.Body) -> Answer:
        return "takeover_answer", await self.agent.takeovers.on_claim(
            body.sender, body.takeover_claim)

    def _signed(self, body: peer_pb2.Body, answer: Answer) -> peer_pb2.Envelope:
        """The answer as its own RPC returns it: signed (a vote already is)."""
        if isinstance(answer, peer_pb2.Envelope):
            return answer
        kind, msg = answer
        return self.agent.seal(body.sender, **{kind: msg})

    # ---- the RPCs --------------------------------------------------------------------

    @_counted
    async def Swim(self, request, context):
        # Unaddressed allowed: a joining agent knows a seed's address, not its domain.
        body = await self._open(request, context, "swim", allow_unaddressed=True)
        reply = self.agent.membership.handle_batch(
            body.sender, body.swim, caller_gone=lambda: _deadline_passed(context))
        return self.agent.seal(body.sender, swim=reply)

    async def _single(self, request, context, expect: str | frozenset[str]):
        body = await self._open(request, context, expect)
        kind = body.WhichOneof("payload")
        try:
            self._authorize(body)
        except Refused as e:
            await context.abort(_status_of(e), e.detail)
        answer = await self.agent.run_owned(self._handlers[kind](body), kind)
        return self._signed(body, answer)

    def _authorize(self, body: peer_pb2.Body) -> None:
        """The authority table's row for this message, with what it says about itself
        (agent.core.identity.authority); the shells check the rest once they have
        looked the transaction or placement up. Refused is counted and logged here."""
        kind = body.WhichOneof("payload") or ""
        try:
            facts = facts_of(body)
            if kind == "prepare" and body.prepare.HasField("epoch_certificate"):
                # A successor's PREPARE: its authority is its epoch certificate.
                facts = self.agent.participation.votes.prepare_facts(body.sender, body.prepare)
            authorize(kind, body.sender, facts)
        except Refused as e:
            count_refusal(self.agent, body.sender, kind, e)
            raise

    @_counted
    async def Prepare(self, request, context):
        return await self._single(request, context, "prepare")

    @_counted
    async def Decide(self, request, context):
        return await self._single(request, context, "decision_notice")

    @_counted
    async def QueryDecision(self, request, context):
        return await self._single(request, context, "decision_query")

    @_counted
    async def Paxos(self, request, context):
        return await self._single(request, context, PAXOS_REQUESTS)

    @_counted
    async def ReportStep(self, request, context):
        return await self._single(request, context, "step_result")

    @_counted
    async def CancelWorkflow(self, request, context):
        return await self._single(request, context, "cancel")

    @_counted
    async def Compensate(self, request, context):
        return await self._single(request, context, "compensate")

    @_counted
    async def Takeover(self, request, context):
        return await self._single(request, context, "takeover_claim")

    @_counted
    async def Batch(self, request, context):
        outer = await self._open(request, context, "batch")
        items = outer.batch.items
        if len(items) > MAX_BATCH_ITEMS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"batch of {len(items)} items; at most {MAX_BATCH_ITEMS}")
        self.agent.metrics.batch_items.labels("in").observe(len(items))
        results = [peer_pb2.BatchResult() for _ in items]
        # Each item runs on a task the agent owns, as a single RPC's handler does with
        # run_owned: gRPC cancels this handler when its caller goes away, and that must
        # not cut a change short half-way. Cancelled, the handler stops waiting (its
        # future alone is cancelled); the items finish regardless. The last item to end
        # resolves the future: one wake-up per batch, no callback per item.
        all_ended = asyncio.get_running_loop().create_future()
        left = len(items)
        cut_short = False

        async def run_item(item: peer_pb2.Body, result: peer_pb2.BatchResult) -> None:
            nonlocal left, cut_short
            try:
                await self._batch_item(outer, item, result)
            except asyncio.CancelledError:
                # The agent is stopping. (An item cancelled before it began never gets
                # here: the handler then waits until the server stops with the agent.)
                cut_short = True
                raise
            finally:
                left -= 1
                if left == 0 and not all_ended.done():
                    all_ended.set_result(None)

        for item, result in zip(items, results, strict=True):
            if self.agent.spawn(run_item(item, result), f"batch item from {outer.sender}") is None:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is stopping")
        if items:
            await all_ended
        if cut_short:  # an item has no answer
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is stopping")
        return self.agent.seal(outer.sender, batch_reply=peer_pb2.BatchReply(results=results))

    async def _batch_item(self, outer: peer_pb2.Body, item: peer_pb2.Body,
                          result: peer_pb2.BatchResult) -> None:
        """One item of a batch, answered as its own RPC would have been; a failure is
        that item's alone."""
        kind = item.WhichOneof("payload")
        handler = self._handlers.get(kind or "")
        if handler is None:
            self.agent.metrics.rejected_messages.labels("batch").inc()
            log.warning("refused a batch item from %s: %s cannot be batched",
                        outer.sender, kind or "no payload")
            result.error_code = grpc.StatusCode.INVALID_ARGUMENT.name
            result.error = f"{kind or 'no payload'} cannot travel in a batch"
            return
        # The outer message was authenticated for all of its items.
        item.sender, item.recipient, item.sent_at_ms = \
            outer.sender, outer.recipient, outer.sent_at_ms
        try:
            self._authorize(item)
        except Refused as e:
            result.error_code = _status_of(e).name
            result.error = e.detail
            return
        try:
            answer = await handler(item)
            if isinstance(answer, peer_pb2.Envelope):  # a vote: evidence, signed alone
                result.reply.CopyFrom(answer)
            else:  # covered by the BatchReply's signature
                kind, msg = answer
                result.body.CopyFrom(peer_pb2.Body(**{kind: msg}))
        except Exception as e:  # as the single RPC: the caller sees an error status
            if self.agent.stopping:
                result.error_code = grpc.StatusCode.UNAVAILABLE.name
            else:  # logged and counted; a broken invariant stops the agent
                self.agent.task_failed(f"batch {kind} from {outer.sender}", e)
                result.error_code = grpc.StatusCode.INTERNAL.name
            result.error = f"{type(e).__name__}: {e}"
