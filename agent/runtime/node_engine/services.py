"""The node engine's gRPC services: handlers that only post inputs and read views.

Theory of operation
-------------------
`NodeClientService` answers the client calls the node engine supports from the
Node (status.py) and posts everything else the Node must do:
- Submit / SubmitAndWatch: refused by a domain whose own key is revoked with none
  after it (FAILED_PRECONDITION, audited); the spec is checked (signature of a signed
  spec, client_service.py; the spec's own checks), placed from this agent's membership
  view (core/workflow/placement.py over runtime/candidates.py, kept per member view:
  placing.py `KeptCandidates`; the
  checks and placement kept per spec shape and member view: `SubmissionPlans`), and
  posted as `Submit(workflow_id, spec, submission, placement)` (`_take`); the id is
  answered once the workflow's row is durable. A spec no domain can take whole is
  taken too, with the steps placement found no domain for and
  why (`Submit.unplaceable`): the Node ends it ABORTED with that reason at once
  (core/node/submitting.py), so the client reads why in its status, not in a refusal.
  SubmitAndWatch then streams its statuses, those of the `states` asked for only (and
  the terminal one), when the request names some: with `state_changes_only`, a new
  submission's from a listener of the view registered before the post
  (submit_stream.py `watched_submit`: no status built for a state not asked for),
  else, and for a retry, as Watch does;
- SubmitStream: many submissions in one call, each taken as Submit takes it and
  refused alone (submit_stream.py);
- GetWorkflow, Watch and ListWorkflows answer the last durable status (status.py), never
  a turn's change whose commit is still out;
- GetWorkflow and Watch: a workflow another agent coordinates (its id names it) is
  asked of (followed at) that coordinator (`local_only`), and answered from this Node
  when it cannot be reached (GetWorkflow at a participant that follows a successor
  then asks that successor: it drives the workflow in its epoch, compensations
  included, which the participant's own status leaves out); a workflow this Node
  knows is followed here, waking on its changes; GetWorkflow of a workflow this Node
  does not know, whose coordinator did
  not answer (dead, say, and taken over), asks the live members and answers the
  status of the highest coordinator epoch (`_asked_of_members`), and Watch goes on
  following it at the coordinator that status names (a status already sent is not
  sent again);
- ListWorkflows: every workflow this Node knows;
- ListMembers and GetAgent: the membership view, this domain (client_service.py).
- Cancel: cancels.py (the caller needs the `cancel` permission; the cancel goes to
  the coordinator of the workflow's current epoch, the successor after a takeover,
  which answers the status once it ended CANCELLED and that is durable; an ended
  workflow FAILED_PRECONDITION naming its end, an unknown one NOT_FOUND).
A request id is kept with the workflow's row (the Node's `requests` table, in the
row's write): a retry, in this life or after a restart, is answered the workflow the
first attempt made; `_by_request` keeps this life's too, so that a retry that comes
while the first is being placed gets the same id. What the node engine does not do
yet (a signed spec not bound to this coordinator, which a client of this version
binds: it asks GetAgent) is refused with FAILED_PRECONDITION naming the engine, never
silently ignored.

`NodePeerService` keeps membership's peer RPC (Swim, peer_service.py) and adds the
node engine's negotiation and progress RPCs:
`NodeTurns`, one long-lived stream of envelopes per peer (what this agent's
transport sends), and `NodeTurn`, one envelope per call (kept for a peer one version
older); boundary.py checks every envelope of either alike. The older engine's
negotiation RPCs are gone from peer.proto: gRPC answers a call of one UNIMPLEMENTED, so
a peer of a release running `engine: shells` cannot negotiate with this one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from typing import TYPE_CHECKING

import grpc
from fedorch.core.identity.authority import coordinator_of
from fedorch.core.node.inputs import Submit
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.core.workflow.spec import SpecError
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2, status_pb2
from fedorch.runtime.client_service import (
    FORWARD_TIMEOUT_S,
    REJOIN_RETRY_S,
    WATCH_HEARTBEAT_S,
    WATCH_STREAM_S,
    ClientService,
    _check_id,
)
from fedorch.runtime.node_engine.boundary import EnvelopeRefused
from fedorch.runtime.node_engine.cancels import Cancels
from fedorch.runtime.node_engine.inbound_streams import InboundStreams
from fedorch.runtime.node_engine.own_specs import OwnSpecSignatures
from fedorch.runtime.node_engine.placing import KeptCandidates, SubmissionPlans
from fedorch.runtime.node_engine.submit_stream import SubmissionStream, watched_submit
from fedorch.runtime.peer_service import PeerService

if TYPE_CHECKING:
    from fedorch.runtime.interceptors import ClientAuth
    from fedorch.runtime.node_engine.engine import NodeAgent

__all__ = ["NodeClientService", "NodePeerService", "not_in_node_engine"]

log = logging.getLogger("fedorch.node_engine")

REQUEST_IDS_KEPT = 16_384
_TAKEN = peer_pb2.Envelope()  # NodeTurns' answer to each envelope it posted
WATCH_ASK_AGAIN_S = 1.0  # a watch whose coordinator is gone asks the members this often


def not_in_node_engine(what: str) -> str:
    return (f"{what} is not supported by this agent's engine (engine: node:"
            " docs/architecture.md, \"The driver\")")


class _RandomSuffixes:
    """The random part of workflow ids (8 hex digits each, as `secrets.token_hex(4)`
    gives), read from the OS's CSPRNG 4 KiB at a time rather than with one system call
    per submission."""

    CHUNK = 4096

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def next(self) -> str:
        if self._at >= len(self._hex):
            self._hex, self._at = os.urandom(self.CHUNK).hex(), 0
        at = self._at
        self._at = at + 8
        return self._hex[at:at + 8]


class _Watched:
    """Whether a followed stream ended with its workflow (or was cut off)."""

    def __init__(self) -> None:
        self.ended = False
        self.unreachable = False  # the stream failed before it ended (not NOT_FOUND)


class _Repeats:
    """A watch that moves from one agent to another sends no status twice."""

    def __init__(self, state_changes_only: bool) -> None:
        self.state_changes_only = state_changes_only
        self.last: object = None

    def new(self, status: status_pb2.WorkflowStatus) -> bool:
        key = status.state if self.state_changes_only else status
        if key == self.last:
            return False
        self.last = key
        return True


class NodeClientService(ClientService):
    def __init__(self, engine: NodeAgent, auth: ClientAuth | None = None) -> None:
        super().__init__(engine.agent, auth)
        self.engine = engine
        # Request id -> workflow id of the submissions taken here in this life (a retry
        # while the first is placed gets the same workflow); across a restart, the
        # Node's `requests` table answers (`_request_recorded`).
        self._by_request: OrderedDict[str, str] = OrderedDict()
        # Each spec shape's checks and first placement, while the member view stands.
        self.plans = SubmissionPlans(engine.domain)
        self._id_suffixes = _RandomSuffixes()
        self._own_signatures = OwnSpecSignatures()
        # Placement's candidates, kept while the member view stands (placing.py).
        self.candidates = KeptCandidates(engine.agent)
        engine.agent.on_members_change.append(self.candidates.changed)
        self._cancels = Cancels(self)  # the Cancel call (cancels.py)

    # ---- submit ------------------------------------------------------------------------

    def _refuses_work(self) -> str | None:
        fault = self.engine.write_fault
        if fault is not None:  # write_behind.py: the kept writes are being retried
            return (f"this agent cannot write its node store ({fault}), so it takes no"
                    " new work until it can; retry later or submit elsewhere")
        return super()._refuses_work()

    async def Submit(self, request, context):
        return client_pb2.SubmitReply(id=await self._submit(request, context))

    async def _submit(self, request: client_pb2.SubmitRequest, context) -> str:
        taken = await self._take(request, context)
        if isinstance(taken, str):  # a retry of a submission taken here
            return taken
        try:
            await self.engine.submit(taken)
        except TimeoutError:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"{taken.workflow_id} was not written in time; it may still run")
        return taken.workflow_id

    async def _take(self, request: client_pb2.SubmitRequest, context) -> Submit | str:
        """A submission checked and placed, as the Node's `Submit` to post; or the id of
        the workflow a retry of it (its request id) made. Refused with `context.abort`
        (a SubmitStream's context refuses that submission alone: submit_stream.py)."""
        a = self.agent
        refusal = self._refuses_work()
        if refusal is not None:
            context.set_trailing_metadata((("retry-after-ms",
                                            str(int(REJOIN_RETRY_S * 1000))),))
            await context.abort(grpc.StatusCode.UNAVAILABLE, refusal)
        await self._refuse_without_a_valid_key(context)  # every peer would refuse it
        known = self._by_request.get(request.request_id) or \
            self._request_recorded(request.request_id) if request.request_id else None
        if known is not None:  # a retry of a submission taken here
            return known
        spec, signed = await self._signed_spec(request, context)
        if signed is not None and signed.coordinator != a.domain:
            # Participants' Nodes take a submission signed for its coordinator only.
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, not_in_node_engine(
                f"a signed spec not bound to its coordinator (sign it with coordinator"
                f" {a.domain}, the domain GetAgent answers)"))
        try:
            plan = self.plans.plan(spec, self.candidates.now())
        except SpecError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        spec = plan.spec
        workflow_id = f"{a.domain}.{a.now_ms():012x}{self._id_suffixes.next()}"
        if request.request_id:
            known = self._by_request.setdefault(request.request_id, workflow_id)
            if known != workflow_id:  # a concurrent retry was placed first
                return known
            while len(self._by_request) > REQUEST_IDS_KEPT:
                self._by_request.popitem(last=False)
        if signed is None:  # open access: this domain vouches for the spec
            signed = self._own_signatures.signed(a, spec)
        # Steps no domain can take: the Node takes it and ends it ABORTED, naming them.
        return Submit(workflow_id, spec, signed, plan.assignment,
                      request_id=request.request_id, unplaceable=plan.unplaceable or None)

    def _request_recorded(self, request_id: str) -> str | None:
        """The workflow a submission with this request id made here, as the Node's
        table has it (what a restarted agent read back from node.db)."""
        entry = self.engine.node.state.requests.get(request_id)
        return entry[0] if entry is not None else None

    async def SubmitAndWatch(self, request, context):
        # `states` (with state_changes_only): the statuses of other states are left out,
        # one gRPC message fewer each (client.proto); a terminal one is always sent.
        if request.state_changes_only:
            taken = await self._take(request.submit, context)
            if isinstance(taken, Submit):  # a new one: heard of from its first change
                async for status in watched_submit(self.engine, taken, request.states, context):
                    yield status
                return
            workflow_id = taken  # a retry: followed as it stands
        else:  # every status, each step's progress too: followed
            workflow_id = await self._submit(request.submit, context)
        wanted = frozenset(request.states) if request.state_changes_only else frozenset()
        async for status in self._follow(workflow_id, request.state_changes_only, context):
            if not wanted or status.state in wanted or status.state in TERMINAL:
                yield status

    async def SubmitStream(self, request_iterator, context):
        """Many submissions in one call (submit_stream.py)."""
        async for update in SubmissionStream(self, context).run(request_iterator):
            yield update

    # ---- reads -------------------------------------------------------------------------

    async def GetWorkflow(self, request, context):
        await _check_id(request.id, context)
        coordinator = coordinator_of(request.id)
        if not request.local_only and coordinator and coordinator != self.agent.domain:
            stub = self._stub(coordinator)
            if stub is not None:
                try:
                    return await stub.GetWorkflow(
                        client_pb2.GetWorkflowRequest(id=request.id, local_only=True),
                        timeout=FORWARD_TIMEOUT_S)
                except grpc.aio.AioRpcError as e:
                    if e.code() == grpc.StatusCode.NOT_FOUND:
                        await context.abort(grpc.StatusCode.NOT_FOUND, e.details())
                    log.info("coordinator of %s unreachable (%s); answering locally",
                             request.id, e.code().name)
        status = await self.engine.view.read(request.id)
        if status is None and not request.local_only:
            status = await self._asked_of_members(request.id)
        elif status is not None and not request.local_only and status.epoch > 0 \
                and status.coordinator not in (self.agent.domain, coordinator):
            # A participant follows a successor: that one drives the workflow now (its
            # progress, its compensations), so its status is the answer when it can give one.
            status = await self._asked_of(status.coordinator, request.id) or status
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, self._unknown(request.id))
        return status

    def _unknown(self, workflow_id: str) -> str:
        """NOT_FOUND's words: the Node's retention forgets ended workflows, so the
        answer says so, or it reads as a typo."""
        kept = self.engine.node.t.retention
        if kept is None:
            return f"no workflow {workflow_id!r} known here"
        return (f"no workflow {workflow_id!r}: never known here, or ended and removed by"
                f" retention (keep_ended_s {kept.keep_ended_s:g}, max_ended_workflows"
                f" {kept.max_ended_workflows})")

    async def _asked_of(self, domain: str,
                        workflow_id: str) -> status_pb2.WorkflowStatus | None:
        """What `domain` itself knows of the workflow (`local_only`); None when it cannot
        say (down, unreachable, or not knowing it)."""
        stub = self._stub(domain)
        if stub is None:
            return None
        try:
            return await stub.GetWorkflow(
                client_pb2.GetWorkflowRequest(id=workflow_id, local_only=True),
                timeout=FORWARD_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return None

    async def _asked_of_members(self, workflow_id: str) -> status_pb2.WorkflowStatus | None:
        """A workflow this Node does not know, whose coordinator did not answer: the
        live members are asked (`local_only`, each within FORWARD_TIMEOUT_S, all at
        once), and the answer of the highest coordinator epoch wins, an ended one
        before a running one of the same epoch (a participant that took the workflow
        over, or learned its successor's end, knows more than one that did not)."""
        named = coordinator_of(workflow_id)
        asked = [m for m in self.engine.live_peers() if m not in (self.agent.domain, named)]
        request = client_pb2.GetWorkflowRequest(id=workflow_id, local_only=True)

        async def ask(member: str) -> status_pb2.WorkflowStatus | None:
            stub = self._stub(member)
            if stub is None:
                return None
            try:
                return await stub.GetWorkflow(request, timeout=FORWARD_TIMEOUT_S)
            except grpc.aio.AioRpcError:
                return None  # does not know it, or cannot answer: the others may

        answers = [a for a in await asyncio.gather(*(ask(m) for m in asked)) if a is not None]
        if not answers:
            return None
        return max(answers, key=lambda s: (s.epoch, s.state in TERMINAL))

    async def Watch(self, request, context):
        await _check_id(request.id, context)
        seen = _Repeats(request.state_changes_only)
        named = coordinator_of(request.id)
        if not request.local_only and named and named != self.agent.domain:
            # Followed where it is coordinated, as GetWorkflow asks there; if it is not
            # known here and that coordinator is gone (taken over, say), the live
            # members say who coordinates it now, and it is followed there.
            target: str | None = named
            patience = self.agent.clock.monotonic() + 3 * (self.engine.node.t.takeover_after_s or 10.0)
            while True:
                watched = _Watched()
                if target is not None:
                    async for status in self._watch_at(target, request, context, watched):
                        if seen.new(status):
                            yield status
                    if watched.ended:
                        return
                if await self.engine.view.read(request.id) is not None:
                    break  # known here (learned meanwhile): followed here
                found = await self._asked_of_members(request.id)
                if found is None and watched.unreachable \
                        and self.agent.clock.monotonic() <= patience:
                    # The coordinator the id names did not answer (a slow channel, a
                    # loaded host) and no member knows the workflow yet (a fresh one
                    # reaches its participants a moment later): not NOT_FOUND, which
                    # only the coordinator itself may answer; asked again.
                    await asyncio.sleep(WATCH_ASK_AGAIN_S)
                    continue
                if found is None:
                    await context.abort(grpc.StatusCode.NOT_FOUND,
                                        f"no workflow {request.id!r} known here")
                if seen.new(found):
                    yield found
                if found.state in TERMINAL:
                    return
                now_at = found.coordinator
                if now_at and now_at not in (target, named, self.agent.domain):
                    target = now_at  # a successor: followed there
                    continue
                if self.agent.clock.monotonic() > patience:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, (
                        f"the coordinator of {request.id} ({now_at or named}) cannot be"
                        " reached and no successor is known yet; ask again by id"))
                target = None  # the one it names is unreachable: ask the members again
                await asyncio.sleep(WATCH_ASK_AGAIN_S)
        async for status in self._follow(request.id, request.state_changes_only, context):
            if seen.new(status):
                yield status

    async def _watch_at(self, domain: str, request, context, watched: _Watched):
        """The statuses `domain` streams of the workflow (`local_only`), until it ends
        there (`watched.ended`) or `domain` cannot be reached (a NOT_FOUND is the
        caller's answer)."""
        stub = self._stub(domain)
        if stub is None:
            watched.unreachable = True  # no address known for it (yet)
            return
        call = stub.Watch(client_pb2.GetWorkflowRequest(
            id=request.id, local_only=True, state_changes_only=request.state_changes_only),
            timeout=WATCH_STREAM_S)
        try:
            async for status in call:
                yield status
            watched.ended = True
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                await context.abort(grpc.StatusCode.NOT_FOUND, e.details())
            watched.unreachable = True
            log.info("watch of %s: %s unreachable (%s); following it elsewhere",
                     request.id, domain, e.code().name)
        finally:
            call.cancel()

    async def _follow(self, workflow_id: str, state_changes_only: bool, context):
        """The statuses of a workflow this Node knows, until it ends: at each change of
        state (state_changes_only), or of anything."""
        view = self.engine.view
        last = None
        while not self.agent.stopping:
            status = await view.read(workflow_id)
            if status is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, (
                    f"no workflow {workflow_id!r} known here (the node engine follows"
                    " workflows this agent takes part in)"))
            key = status.state if state_changes_only else status
            if key != last:
                last = key
                yield status
            if status.state in TERMINAL:
                return
            await view.wait(workflow_id, steps=not state_changes_only,
                            timeout=WATCH_HEARTBEAT_S)

    async def ListWorkflows(self, request, context):
        return client_pb2.ListWorkflowsReply(workflows=await self.engine.view.read_all())

    # ---- cancel ---------------------------------------------------------------------------

    async def Cancel(self, request, context):
        return await self._cancels.cancel(request, context)  # cancels.py

class NodePeerService(PeerService):
    def __init__(self, engine: NodeAgent) -> None:
        super().__init__(engine.agent)
        self.engine = engine
        self.inbound = InboundStreams()  # ended at once when the agent stops

    async def NodeTurn(self, request, context):
        """One NodeTurn envelope (a peer one version older sends them so)."""
        await self._check_ready(context)
        sender, refused = await self._take(request, context)
        if refused:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, (
                f"{len(refused)} message(s) refused, the first: {refused[0].detail}"))
        return peer_pb2.Envelope()

    async def NodeTurns(self, request_iterator, context):
        """A peer's stream of NodeTurn envelopes (transport.py), each checked on its own
        as NodeTurn checks it and answered with an empty Envelope once posted. A refused
        envelope ends the stream with NodeTurn's code (the sender opens a new one for
        its next envelope); messages of a type no peer may send are dropped alone and
        counted (boundary.py), and the stream goes on. Its deadline is the sender's
        (gRPC enforces it here too)."""
        await self._check_ready(context)
        async for envelope in self.inbound.envelopes(request_iterator):
            await self._take(envelope, context)
            yield _TAKEN

    async def _check_ready(self, context) -> None:
        if not self.agent.ready.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is starting")

    async def _take(self, envelope, context):
        try:
            sender, refused = self.engine.boundary.receive(envelope)
        except EnvelopeRefused as e:
            code = grpc.StatusCode.INVALID_ARGUMENT if e.reason == "undecodable" \
                else grpc.StatusCode.UNAUTHENTICATED
            await context.abort(code, str(e))
            raise  # abort raises
        self.agent.heard_from(sender)
        return sender, refused
