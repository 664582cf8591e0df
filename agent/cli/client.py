"""A small async wrapper around the agent's Client gRPC service.

It returns protobuf messages and lets grpc errors through untouched; commands map them
to exit codes with `errors.rpc_errors`. Every unary call carries a deadline.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from types import TracebackType

import grpc

# The defaults live with the CLI's settings (light to import); named here too for callers.
from fedorch.cli.settings import DEFAULT_PEER, DEFAULT_RPC_TIMEOUT_S  # noqa: F401
from fedorch.core.identity.clients import ClientIdentity, home_domain
from fedorch.core.identity.keys import KeyFileError, load_public_key_file
from fedorch.core.identity.submission import sign_spec
from fedorch.gen.fedorch.v1 import client_pb2, spec_pb2, status_pb2
from fedorch.runtime.client_calls import SignedClientStub

_PEER_RE = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})$")

# Agents are addressed directly; an HTTP proxy from the environment would only get in
# the way (and would turn "connection refused" into a slow failure).
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (("grpc.enable_http_proxy", 0),)


def parse_peer(value: str) -> str:
    """Check a HOST:PORT address; return it stripped. Raises ValueError."""
    value = value.strip()
    match = _PEER_RE.match(value)
    if not match or not 0 < int(match.group("port")) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:7101)")
    return value


class AgentClient:
    """`async with AgentClient(peer) as c: await c.get_workflow(id)`."""

    def __init__(self, peer: str, rpc_timeout: float = DEFAULT_RPC_TIMEOUT_S,
                 identity: ClientIdentity | None = None, agent_key: str = "") -> None:
        """`identity` signs every call (agents other than a loopback development one
        refuse unsigned calls); `agent_key` (the agent domain's `.pub`) turns on mutual
        TLS, accepting only a certificate that key certified."""
        self.peer = peer
        self.rpc_timeout = rpc_timeout
        self.identity = identity
        self.agent_key = agent_key
        self._channel: grpc.aio.Channel | None = None
        self._stub: SignedClientStub | None = None
        self._coordinator: str | None = None  # coordinator(): known once asked

    async def __aenter__(self) -> AgentClient:
        identity = self.identity
        if self.agent_key:
            from fedorch.runtime.transport import TLS_CHANNEL_OPTIONS, client_channel_credentials

            credentials = client_channel_credentials(
                self.agent_key, identity.key if identity else None,
                identity.principal if identity else "")
            self._channel = grpc.aio.secure_channel(
                self.peer, credentials, options=CHANNEL_OPTIONS + TLS_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.insecure_channel(self.peer, options=CHANNEL_OPTIONS)
        self._stub = SignedClientStub(self._channel, identity.principal if identity else "",
                                      identity.key.sign if identity else None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._coordinator = None  # the next connection asks again
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close(grace=None)

    @property
    def stub(self) -> SignedClientStub:
        if self._stub is None:
            raise RuntimeError("AgentClient used outside 'async with'")
        return self._stub

    async def coordinator(self) -> str:
        """The domain a signed spec names as its coordinator: the principal's home domain
        (`alice@eu-west`), else the domain of the agent key, else the domain the agent
        itself says it is (GetAgent, asked once per connection; "" from an agent too old
        to answer it, which then takes the spec unbound, as before)."""
        if self._coordinator is None:
            coordinator = home_domain(self.identity.principal) if self.identity else ""
            if not coordinator and self.agent_key:
                try:
                    coordinator = load_public_key_file(self.agent_key)[0]
                except KeyFileError:  # the federation CA's certificate: it names no domain
                    coordinator = ""
            if not coordinator:
                coordinator = await self._answering_domain()
            self._coordinator = coordinator
        return self._coordinator

    async def _answering_domain(self) -> str:
        try:
            reply = await self.stub.GetAgent(client_pb2.GetAgentRequest(),
                                             timeout=self.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:  # an agent older than the call
                return ""
            raise
        return reply.domain

    async def _submit_request(self, spec: spec_pb2.WorkflowSpec,
                              request_id: str) -> client_pb2.SubmitRequest:
        """With an identity, the spec travels signed (its bytes as signed, not `spec`):
        every domain that votes on it verifies that this principal asked for exactly it."""
        if self.identity is None:
            return client_pb2.SubmitRequest(spec=spec, request_id=request_id)
        # Signed with the spec: this request, now, to this coordinator, so that nobody
        # can start the signed spec again as another workflow (docs/security.md).
        request_id = request_id or uuid.uuid4().hex
        signed = sign_spec(self.identity.principal, self.identity.key.sign, spec,
                           request_id=request_id, issued_at_ms=int(time.time() * 1000),
                           coordinator=await self.coordinator())
        return client_pb2.SubmitRequest(signed_spec=signed, request_id=request_id)

    async def submit(self, spec: spec_pb2.WorkflowSpec, request_id: str) -> str:
        request = await self._submit_request(spec, request_id)
        reply = await self.stub.Submit(request, timeout=self.rpc_timeout)
        return reply.id

    async def get_workflow(self, workflow_id: str) -> status_pb2.WorkflowStatus:
        request = client_pb2.GetWorkflowRequest(id=workflow_id)
        return await self.stub.GetWorkflow(request, timeout=self.rpc_timeout)

    def watch(
        self, workflow_id: str, stream_deadline_s: float, state_changes_only: bool = False
    ) -> AsyncIterator[status_pb2.WorkflowStatus]:
        """Stream status updates; the stream as a whole is bounded by stream_deadline_s.
        `state_changes_only`: updates when the workflow's state changes, not on each step."""
        request = client_pb2.GetWorkflowRequest(
            id=workflow_id, state_changes_only=state_changes_only)
        return _statuses(self.stub.Watch(request, timeout=stream_deadline_s))

    async def submit_and_watch(
        self, spec: spec_pb2.WorkflowSpec, request_id: str, stream_deadline_s: float
    ) -> AsyncIterator[status_pb2.WorkflowStatus]:
        """Submit, then stream the workflow's changes of state (SubmitAndWatch); the
        first status names the workflow."""
        request = client_pb2.SubmitAndWatchRequest(
            submit=await self._submit_request(spec, request_id),
            state_changes_only=True)
        call = self.stub.SubmitAndWatch(request, timeout=stream_deadline_s)
        try:
            async for status in call:
                yield status
        finally:  # the reader stopped early (or the stream ended): the call goes
            call.cancel()

    async def submit_request(self, spec: spec_pb2.WorkflowSpec, request_id: str
                             ) -> client_pb2.SubmitRequest:
        """The SubmitRequest `submit` sends (the spec signed with the identity, if any)."""
        return await self._submit_request(spec, request_id)

    def submit_stream(self, requests, stream_deadline_s: float):
        """Many submissions in one call (SubmitStream, engine: node): `requests` an
        iterable or async iterable of SubmitStreamRequest; returns the call, an async
        iterator of SubmitStreamUpdate (cancel it to stop early)."""
        return self.stub.SubmitStream(requests, timeout=stream_deadline_s)

    async def cancel(self, workflow_id: str, reason: str = "") -> status_pb2.WorkflowStatus:
        request = client_pb2.CancelRequest(id=workflow_id, reason=reason)
        reply = await self.stub.Cancel(request, timeout=self.rpc_timeout)
        return reply.status

    async def list_workflows(self) -> list[status_pb2.WorkflowStatus]:
        reply = await self.stub.ListWorkflows(
            client_pb2.ListWorkflowsRequest(), timeout=self.rpc_timeout
        )
        return list(reply.workflows)

    async def list_members(self) -> list[client_pb2.MemberInfo]:
        reply = await self.stub.ListMembers(
            client_pb2.ListMembersRequest(), timeout=self.rpc_timeout
        )
        return list(reply.members)


async def _statuses(call) -> AsyncIterator[status_pb2.WorkflowStatus]:
    """A server stream's statuses; the call is cancelled when the reader stops early."""
    try:
        async for status in call:
            yield status
    finally:
        call.cancel()
