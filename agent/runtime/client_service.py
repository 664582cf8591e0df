"""gRPC Client service: what the CLI calls, on any agent; the parts that are not the
Node's. The node engine's service (node_engine/services.py, `NodeClientService`) builds
on it: it answers the workflow calls from the Node and takes submissions with the
checks here (a submitter's signed spec, an agent that takes no new work, a domain with
no valid key), and the membership calls are answered here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NoReturn

import grpc
from fedorch.core.identity.authority import InvalidWorkflowId, check_workflow_id
from fedorch.core.identity.clients import ANONYMOUS, DOMAIN_PRINCIPAL_PREFIX
from fedorch.core.identity.submission import SubmissionError, check_submitted
from fedorch.gen.fedorch.v1 import client_pb2, client_pb2_grpc, spec_pb2
from fedorch.runtime.client_calls import SignedClientStub
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

    def _stub(self, domain: str) -> SignedClientStub | None:
        endpoint = self.agent.endpoint_of(domain)
        if endpoint is None:
            return None
        caller = CURRENT_CALLER.get() or ANONYMOUS
        return SignedClientStub(self.agent.peers.channel(endpoint),
                                DOMAIN_PRINCIPAL_PREFIX + self.agent.domain,
                                self.agent.signer.sign, on_behalf=caller.principal,
                                clock=lambda: self.agent.now_ms() / 1000)  # wall clock

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
        reason, audited as refused."""
        if self._has_no_valid_key():
            reason = (f"domain {self.agent.domain} has no valid key (its key is revoked), so"
                      " no peer accepts what it signs: submit to another domain, or"
                      " re-establish this domain's trust with a new key first")
            await self.agent.audit.refused("submit", reason, peer=context.peer())
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, reason)

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
