"""gRPC Client service: what the CLI calls, on any agent.

A workflow's id names its coordinator; an agent asked about a workflow that
another agent coordinates forwards the call there (and falls back to what it
knows itself when the coordinator cannot be reached). After a takeover the
coordinator is the one of the highest epoch known (client_routes.py): Watch and
Cancel go there, and follow it when it changes (a watch whose coordinator dies
switches to the successor).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, NoReturn

import grpc
from fedorch.core.identity.authority import InvalidWorkflowId, check_workflow_id, coordinator_of
from fedorch.core.identity.clients import ANONYMOUS, DOMAIN_PRINCIPAL_PREFIX
from fedorch.core.identity.submission import SubmissionError, check_submitted
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.core.workflow.spec import SpecError
from fedorch.gen.fedorch.v1 import client_pb2, client_pb2_grpc, spec_pb2
from fedorch.runtime.client_calls import SignedClientStub
from fedorch.runtime.client_routes import RETRYABLE, Backoff, Route, Routes
from fedorch.runtime.convert import is_over, workflow_state_name
from fedorch.runtime.interceptors import CURRENT_CALLER, ClientAuth
from google.protobuf.message import DecodeError

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.client")
FORWARD_TIMEOUT_S = 5.0
WATCH_HEARTBEAT_S = 5.0
WATCH_STREAM_S = 24 * 3600.0  # a forwarded watch's deadline: the client's bounds the rest
REJOIN_RETRY_S = 1.0  # the retry hint with a refused submission


async def _check_id(workflow_id: str, context) -> None:
    """Ids from clients are checked as ids from peers are (one function for both)."""
    try:
        check_workflow_id(workflow_id)
    except InvalidWorkflowId as e:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))


class ClientService(client_pb2_grpc.ClientServicer):
    def __init__(self, agent: AgentContext, auth: ClientAuth | None = None) -> None:
        """`auth`: what the interceptor checks calls with; its client keys check signed
        specs. None (tests that call the service directly): open access."""
        self.agent = agent
        self.auth = auth
        self.routes = Routes(agent, self._stub)

    async def _signed_spec(self, request: client_pb2.SubmitRequest, context
                           ) -> tuple[spec_pb2.WorkflowSpec, spec_pb2.SignedSpec | None]:
        """The spec to run and the submitter's signed spec (None: this domain signs it,
        which only open access allows). A signature is checked over the spec bytes as
        received, by the key this agent knows for the caller, who must be its principal."""
        caller = CURRENT_CALLER.get()
        if request.HasField("signed_spec") and request.HasField("spec"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "give spec or signed_spec, not both")
        if self.auth is None or self.auth.policy.open and caller is None:
            # Open access knows no client keys: a submitter's signature cannot be checked
            # here, so the spec is taken as unsigned and this domain vouches for it.
            if not request.HasField("signed_spec"):
                return request.spec, None
            try:
                return spec_pb2.WorkflowSpec.FromString(request.signed_spec.spec), None
            except DecodeError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    "signed_spec.spec: the spec bytes do not parse")
        if not request.HasField("signed_spec"):
            await self._refuse_submission(context, caller, (
                "submission not signed: this agent requires the submitter to sign its spec"
                " (submit with a client identity: --identity FILE or FEDORCH_IDENTITY)"))
        if caller is None or caller.domain:
            await self._refuse_submission(context, caller, (
                "a signed spec must come in a call signed by its principal"))
        try:
            spec = check_submitted(
                request.signed_spec, caller.principal, self.auth.clients,
                request_id=request.request_id, domain=self.agent.domain,
                now_ms=self.agent.now_ms(),
                window_ms=int(self.agent.config.negotiation.signed_spec_window_s * 1000))
        except SubmissionError as e:
            await self._refuse_submission(context, caller, str(e))
        signed = spec_pb2.SignedSpec()
        signed.CopyFrom(request.signed_spec)
        # The coordinator vouches for the key it checked: participants verify with it.
        signed.public_key = self.auth.clients.public_bytes(caller.principal) or b""
        return spec, signed

    async def _refuse_submission(self, context, caller, reason: str) -> NoReturn:
        principal = caller.principal if caller is not None else ""
        self.agent.metrics.client_refusals.labels("Submit", "UNAUTHENTICATED").inc()
        await self.agent.audit.refused("submit", reason, principal=principal,
                                       peer=context.peer())
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)
        raise AssertionError("not reached: abort raises")

    def _remote(self, workflow_id: str, local_only: bool,
                coordinator: str | None = None) -> SignedClientStub | None:
        """A stub for the workflow's coordinator when that is another agent: the one known
        here (it changes on a takeover), else the one its id names. Its calls are signed
        with this domain's key, acting for the caller this agent verified."""
        if local_only:
            return None
        if coordinator is None:
            active = self.agent.active.get(workflow_id)
            coordinator = active.row.coordinator if active is not None \
                else coordinator_of(workflow_id)
        if local_only or not coordinator or coordinator == self.agent.domain:
            return None
        return self._stub(coordinator)

    def _stub(self, domain: str) -> SignedClientStub | None:
        endpoint = self.agent.endpoint_of(domain)
        if endpoint is None:
            return None
        caller = CURRENT_CALLER.get() or ANONYMOUS
        return SignedClientStub(self.agent.peers.channel(endpoint),
                                DOMAIN_PRINCIPAL_PREFIX + self.agent.domain,
                                self.agent.signer.sign, on_behalf=caller.principal,
                                clock=lambda: self.agent.now_ms() / 1000)  # wall clock

    async def Submit(self, request, context):
        return client_pb2.SubmitReply(id=await self._submit(request, context))

    def _refuses_work(self) -> str | None:
        """Why this agent takes no new workflow now (it would only fail it), if it does
        not: the caller is told UNAVAILABLE, which clients retry."""
        a = self.agent
        if a.store.write_fault is not None:
            return (f"this agent cannot write its database ({a.store.write_fault}), so it"
                    " takes no new work until it can; retry later or submit elsewhere")
        if a.membership is None or not a.membership.rejoined():
            return ("this agent has not rejoined its federation yet (it has heard from no"
                    f" member since it started); retry in {REJOIN_RETRY_S:g} s")
        return None

    def _has_no_valid_key(self) -> bool:
        """This domain's own key is revoked and no key succeeded it: every peer refuses
        what it signs, so a workflow it coordinated could only abort, each PREPARE refused.
        Not something a retry mends: operators re-establish trust (docs/security.md)."""
        keys = self.agent.trust.keys_of(self.agent.domain)
        return keys is not None and keys.current is None and bool(keys.revoked)

    async def _refuse_without_a_valid_key(self, context) -> None:
        """A submission to a domain that has no valid key: FAILED_PRECONDITION with the
        reason, audited as refused (both engines)."""
        if self._has_no_valid_key():
            reason = (f"domain {self.agent.domain} has no valid key (its key is revoked), so"
                      " no peer accepts what it signs: submit to another domain, or"
                      " re-establish this domain's trust with a new key first")
            await self.agent.audit.refused("submit", reason, peer=context.peer())
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, reason)

    async def _submit(self, request: client_pb2.SubmitRequest, context) -> str:
        refusal = self._refuses_work()
        if refusal is not None:
            context.set_trailing_metadata((("retry-after-ms",
                                            str(int(REJOIN_RETRY_S * 1000))),))
            await context.abort(grpc.StatusCode.UNAVAILABLE, refusal)
        await self._refuse_without_a_valid_key(context)
        spec, signed = await self._signed_spec(request, context)
        try:
            return await self.agent.run_owned(
                self.agent.coordination.submit(spec, request.request_id, signed), "submit")
        except SpecError as e:
            await self.agent.audit.refused("submit", str(e), peer=context.peer())
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise  # not reached: abort raises

    async def SubmitAndWatch(self, request, context):
        """Submit, then follow (the agent submitted to coordinates the workflow)."""
        workflow_id = await self._submit(request.submit, context)
        # Followed like any Watch: here, until another agent takes the workflow over.
        follow = client_pb2.GetWorkflowRequest(id=workflow_id,
                                               state_changes_only=request.state_changes_only)
        last = None
        async for status in self._watch_routed(follow, context):
            if status != last:
                last = status
                yield status

    async def SubmitStream(self, request_iterator, context):
        """Many submissions in one call: the node engine's (node_engine/submit_stream.py)."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, (
            "SubmitStream is not supported by this agent's engine (engine: shells); run"
            " the agents with `engine: node` for it, or submit each workflow alone"))
        yield  # not reached: a generator, as gRPC serves a stream

    async def _status(self, workflow_id: str, local_only: bool, context):
        row = None if local_only or workflow_id in self.agent.active \
            else await self.agent.store.get_workflow(workflow_id)
        remote = self._remote(workflow_id, local_only,
                              row.coordinator if row is not None else None)
        if remote is not None:
            try:
                return await remote.GetWorkflow(
                    client_pb2.GetWorkflowRequest(id=workflow_id, local_only=True),
                    timeout=FORWARD_TIMEOUT_S)
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    await context.abort(grpc.StatusCode.NOT_FOUND, e.details())
                log.info("coordinator of %s unreachable (%s); answering locally",
                         workflow_id, e.code().name)
        status = await self.agent.status(workflow_id)
        if status is None and not local_only:
            # Not known here and its coordinator did not answer (gone: a takeover may
            # have moved the workflow on): its participants know it.
            status = await self._ask_members(workflow_id)
        if status is None:
            retention = self.agent.config.retention
            # Retention removes ended workflows: say so, or the answer reads as a typo.
            await context.abort(grpc.StatusCode.NOT_FOUND, (
                f"no workflow {workflow_id!r}: never known here, or ended and removed by"
                f" retention (keep_ended_s {retention.keep_ended_s:g}, max_ended_workflows"
                f" {retention.max_ended_workflows})"))
        return status

    async def _ask_members(self, workflow_id: str):
        """The workflow's status from the live members that know it: the answer of the
        highest coordinator epoch, asked again of the coordinator it names (whose view
        is whole) when that is another member. None if no member knows it."""
        answers = await self.routes.ask_members(workflow_id)
        if not answers:
            return None
        best = max(answers.values(), key=lambda s: s.epoch)
        if best.coordinator in answers:
            return answers[best.coordinator]
        return best

    async def GetWorkflow(self, request, context):
        await _check_id(request.id, context)
        return await self._status(request.id, request.local_only, context)

    async def Watch(self, request, context):
        await _check_id(request.id, context)
        if request.local_only:
            async for status in self._follow(request.id, request.state_changes_only, context):
                yield status
            return
        last = None
        async for status in self._watch_routed(request, context):
            if status != last:  # a switch of coordinator starts with what was sent
                last = status
                yield status

    async def _watch_routed(self, request, context):
        """Follow the workflow at its current coordinator; when that coordinator goes
        (its stream breaks, or membership sees it DEAD) or another takes over, follow
        the successor. UNAVAILABLE once none can be reached within the patience."""
        workflow_id = request.id
        backoff = Backoff(self.agent, self.routes.patience_s)
        while True:
            known, ended = await self.routes.known_here(workflow_id)
            if ended:  # its end is known here: say it (from the coordinator, if it answers)
                yield await self._status(workflow_id, False, context)
                return
            route = await self.routes.coordinator(workflow_id)
            if route is None:
                async for status in self._follow(workflow_id, request.state_changes_only,
                                                 context):
                    yield status
                return
            try:
                async for status in self._watch_at(route, request):
                    backoff.progressed()
                    yield status
                    if status.state in TERMINAL:
                        return
            except grpc.aio.AioRpcError as e:
                if e.code() not in RETRYABLE:
                    await context.abort(e.code(), e.details())
                log.info("watch of %s: coordinator %s unreachable (%s)", workflow_id,
                         route.domain, e.code().name)
            if not await backoff.wait():
                await context.abort(grpc.StatusCode.UNAVAILABLE, (
                    f"the coordinator of {workflow_id} ({route.domain}, epoch {route.epoch})"
                    " cannot be reached and no successor has taken over yet; watch it again"
                    " by its id"))

    async def _watch_at(self, route: Route, request):
        """The statuses streamed by the coordinator `route` names, until its stream ends
        or this agent sees that coordinator superseded or gone (a paused or partitioned
        agent breaks no connection: membership tells, checked at each heartbeat)."""
        stub = self._stub(route.domain)
        if stub is None:
            return
        call = stub.Watch(client_pb2.GetWorkflowRequest(
            id=request.id, local_only=True, state_changes_only=request.state_changes_only),
            timeout=WATCH_STREAM_S)
        try:
            while True:
                read = asyncio.ensure_future(call.read())
                try:
                    while not (await asyncio.wait({read}, timeout=WATCH_HEARTBEAT_S))[0]:
                        if self.routes.superseded(request.id, route):
                            log.info("watch of %s: %s superseded or gone; routing again",
                                     request.id, route.domain)
                            return
                finally:
                    if not read.done():
                        read.cancel()
                status = read.result()  # a broken stream raises its AioRpcError here
                if status is grpc.aio.EOF:
                    return
                yield status
        finally:
            call.cancel()

    async def _follow(self, workflow_id: str, state_changes_only: bool, context):
        """The statuses of a workflow this agent holds, from the current one to the end
        (or until the agent stops); with state_changes_only, at changes of state only."""
        changes = self.agent.changes
        seen = -1
        sent_state: str | None = None  # with state_changes_only: the state last sent
        while True:
            version = changes.version(workflow_id)
            if version != seen and sent_state is not None \
                    and self.agent.saved_state(workflow_id) == sent_state:
                seen = version  # only steps moved: nothing this watcher asked for
            if version != seen:
                status = await self.agent.status(workflow_id)
                if status is None:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"no workflow {workflow_id!r}")
                yield status
                if status.state in TERMINAL:
                    return
                seen = version
                if state_changes_only:
                    sent_state = workflow_state_name(status.state)
            await changes.wait_past(workflow_id, seen, WATCH_HEARTBEAT_S)
            if self.agent.stopping:
                return

    async def Cancel(self, request, context):
        await _check_id(request.id, context)
        a = self.agent
        if not request.local_only:
            reply = await self._cancel_routed(request, context)
            if reply is not None:
                return reply
        else:
            known, ended = await self.routes.known_here(request.id)
            if known is not None and known.domain != a.domain and not ended:
                # Forwarded here on an older view: the sender routes again.
                await context.abort(grpc.StatusCode.UNAVAILABLE, (
                    f"{a.domain} does not coordinate {request.id}: it follows"
                    f" {known.domain} (epoch {known.epoch})"))
        # The verified caller (None: an unsigned call in open mode) is who asked, also
        # when a peer forwarded the call for it: the audit names them as the console does.
        caller = CURRENT_CALLER.get()
        await a.audit.client_request("cancel", request.id, peer=context.peer(),
                                     principal=caller.describe() if caller else "")
        known = await a.run_owned(
            a.coordination.cancel(request.id, request.reason or "by request"), "cancel")
        if not known:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no workflow {request.id!r}")
        return client_pb2.CancelReply(status=await a.status(request.id))

    async def _cancel_routed(self, request, context) -> client_pb2.CancelReply | None:
        """The cancel sent to the workflow's current coordinator (routed again while it
        cannot be reached, within the caller's deadline); None: this agent is it."""
        remaining = context.time_remaining()
        patience = self.routes.patience_s() if remaining is None \
            else max(0.0, min(self.routes.patience_s(), remaining - FORWARD_TIMEOUT_S / 5))
        backoff = Backoff(self.agent, lambda: patience)
        forwarded = client_pb2.CancelRequest(id=request.id, reason=request.reason,
                                             local_only=True)
        while True:
            route = await self.routes.coordinator(request.id)
            active = self.agent.active.get(request.id)
            if route is None and (active is None or is_over(active.row)
                                  or active.row.coordinator == self.agent.domain):
                return None
            stub = self._stub(route.domain) if route is not None else None
            # No stub: its address is unknown here, or this agent claims the workflow
            # and does not act yet (a takeover under way): ask again shortly.
            error = "its address is unknown here" if route is not None \
                else "a takeover is under way here"
            route = route or Route(active.row.granted_epoch, self.agent.domain)
            if stub is not None:
                try:
                    return await stub.Cancel(forwarded, timeout=FORWARD_TIMEOUT_S)
                except grpc.aio.AioRpcError as e:
                    if e.code() not in RETRYABLE:
                        await context.abort(e.code(), e.details())
                    error = e.details() or e.code().name
            if not await backoff.wait():
                await context.abort(grpc.StatusCode.UNAVAILABLE, (
                    f"the coordinator of {request.id} ({route.domain}, epoch {route.epoch})"
                    f" cannot be reached ({error}) and no successor has taken over yet;"
                    " cancel again by its id"))

    async def ListWorkflows(self, request, context):
        rows = await self.agent.store.list_workflows()
        statuses = [await self.agent.status(r.id) for r in rows]
        return client_pb2.ListWorkflowsReply(workflows=[s for s in statuses if s is not None])

    async def ListMembers(self, request, context):
        a = self.agent
        now = a.now_ms() / 1000  # wall: shown to people
        reply = client_pb2.ListMembersReply()
        for m in a.membership.members():
            heard = now if m.domain == a.domain else m.last_heard
            reply.members.append(client_pb2.MemberInfo(
                domain=m.domain, address=m.address,
                state=client_pb2.MemberState.Value(f"MEMBER_STATE_{m.state}"),
                labels=dict(m.record.labels), capabilities=list(m.record.capabilities),
                version=m.record_version, incarnation=m.incarnation,
                last_heard_ms=int(heard * 1000) if heard is not None else 0,
                policy=m.record.policy, self=m.domain == a.domain,
            ))
        return reply

    async def GetAgent(self, request, context):
        # A signing client binds its spec to this domain as its coordinator (client.proto).
        return client_pb2.AgentInfo(domain=self.agent.domain)
