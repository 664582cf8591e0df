"""The asynchronous Python client: ``async with AsyncClient("127.0.0.1:7101") as c: ...``.

It speaks the agent's Client gRPC service (the same calls the CLI makes) and returns
plain dataclasses (fedorch.client.models); failures are the typed exceptions of
fedorch.client.errors, never raw grpc errors. Every unary call carries a deadline
(``rpc_timeout``); a watch's server stream carries one too and is reopened when it
runs out, so a long wait costs no long-lived deadline-less call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, overload

import grpc
from fedorch.cli.client import DEFAULT_PEER, DEFAULT_RPC_TIMEOUT_S, AgentClient, parse_peer
from fedorch.client.errors import (
    FedorchError,
    InvalidSpec,
    WaitTimedOut,
    from_code,
    from_rpc_error,
)
from fedorch.client.follow import statuses
from fedorch.client.models import Member, Submitted, WorkflowStatus
from fedorch.core.identity.clients import ClientIdentity, load_identity
from fedorch.core.identity.keys import KeyFileError, load_public_key_file
from fedorch.core.workflow.spec import (
    SpecError,
    load_spec_file,
    spec_from_mapping,
    validate_spec,
)
from fedorch.gen.fedorch.v1 import client_pb2, spec_pb2, status_pb2

IdentityLike = ClientIdentity | str | os.PathLike[str]
"""A client identity: a key file made by `fedorch keys init --client`, or one loaded."""

# submit_many with wait and no timeout: the whole call's deadline.
STREAM_WAIT_S = 3600.0
TERMINAL_PROTO = frozenset((status_pb2.WORKFLOW_STATE_SUCCEEDED, status_pb2.WORKFLOW_STATE_FAILED,
                            status_pb2.WORKFLOW_STATE_ABORTED,
                            status_pb2.WORKFLOW_STATE_CANCELLED))

_CODES = {code.value[0]: code for code in grpc.StatusCode}

SpecLike = spec_pb2.WorkflowSpec | Mapping[str, Any] | str | os.PathLike[str]
"""A spec: a YAML file's path, a mapping in the YAML file's shape, or the message."""


def _identity(identity: IdentityLike | None) -> ClientIdentity | None:
    """The identity to sign calls with: the one given, else $FEDORCH_IDENTITY (as the CLI
    does); an empty path means none. InvalidSpec if the file is not an identity."""
    if identity is None:
        identity = os.environ.get("FEDORCH_IDENTITY", "")
    if isinstance(identity, ClientIdentity):
        return identity
    if not isinstance(identity, str | os.PathLike):
        raise InvalidSpec(f"identity: a key file's path, got {type(identity).__name__}")
    if not os.fspath(identity):
        return None
    try:
        return load_identity(identity)
    except KeyFileError as exc:
        raise InvalidSpec(f"identity: {exc}") from None


def _agent_key(agent_key: str | os.PathLike[str] | None) -> str:
    """The agent domain's .pub file for TLS: the one given, else $FEDORCH_AGENT_KEY; an
    empty path means plaintext. Checked now, so a wrong file fails here and not per call."""
    if agent_key is None:
        agent_key = os.environ.get("FEDORCH_AGENT_KEY", "")
    if not isinstance(agent_key, str | os.PathLike):
        raise InvalidSpec(f"agent_key: a .pub file's path, got {type(agent_key).__name__}")
    path = os.fspath(agent_key)
    if path:
        try:
            load_public_key_file(path)
        except KeyFileError as exc:
            raise InvalidSpec(f"agent_key: {exc}") from None
    return path


def load_spec(spec: SpecLike) -> spec_pb2.WorkflowSpec:
    """The checked WorkflowSpec for any SpecLike; InvalidSpec (code None) if it is not."""
    try:
        if isinstance(spec, spec_pb2.WorkflowSpec):
            validate_spec(spec)
            return spec
        if isinstance(spec, Mapping):
            return spec_from_mapping(spec, "<spec>")
        if isinstance(spec, str | os.PathLike):
            return load_spec_file(Path(spec))
    except SpecError as exc:
        raise InvalidSpec(str(exc)) from None
    raise InvalidSpec(f"a spec is a path, a mapping or a WorkflowSpec, got {type(spec).__name__}")


class AsyncClient:
    """A client of one agent (any agent of the federation answers for all of it).

    ``peer``: the agent's HOST:PORT (default: $FEDORCH_PEER, else 127.0.0.1:7101).
    ``rpc_timeout``: the deadline of each call, in seconds.
    ``identity``: the client key file (``fedorch keys init --client``) every call is
    signed with (default: $FEDORCH_IDENTITY; ``""``: unsigned, which only an open
    loopback agent accepts).
    ``agent_key``: the agent domain's ``.pub``; given, the client speaks mutual TLS and
    accepts only a certificate that key certified (default: $FEDORCH_AGENT_KEY; ``""``:
    plaintext).
    """

    def __init__(self, peer: str | None = None, *,
                 rpc_timeout: float = DEFAULT_RPC_TIMEOUT_S,
                 identity: IdentityLike | None = None,
                 agent_key: str | os.PathLike[str] | None = None) -> None:
        try:
            self.peer = parse_peer(peer or os.environ.get("FEDORCH_PEER") or DEFAULT_PEER)
        except ValueError as exc:
            raise InvalidSpec(f"peer: {exc}") from None
        if not rpc_timeout > 0:
            raise InvalidSpec(f"rpc_timeout must be a positive number of seconds, "
                              f"got {rpc_timeout!r}")
        self.rpc_timeout = rpc_timeout
        self.identity = _identity(identity)
        self.agent_key = _agent_key(agent_key)
        # The CLI's own connection: the same signed stub and TLS credentials.
        self._agent = AgentClient(self.peer, rpc_timeout, self.identity, self.agent_key)
        self._open = False

    async def __aenter__(self) -> AsyncClient:
        await self._ensure_open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def _ensure_open(self) -> AgentClient:
        if not self._open:
            await self._agent.__aenter__()
            self._open = True
        return self._agent

    async def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        if self._open:
            self._open = False
            await self._agent.close()

    @contextlib.asynccontextmanager
    async def _calling(self) -> AsyncIterator[AgentClient]:
        agent = await self._ensure_open()
        try:
            yield agent
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.peer) from None

    # ---- calls -------------------------------------------------------------------------

    @overload
    async def submit(self, spec: SpecLike, *, wait: Literal[False] = False,
                     timeout: float | None = None, request_id: str | None = None) -> str: ...

    @overload
    async def submit(self, spec: SpecLike, *, wait: Literal[True],
                     timeout: float | None = None,
                     request_id: str | None = None) -> WorkflowStatus: ...

    async def submit(self, spec: SpecLike, *, wait: bool = False, timeout: float | None = None,
                     request_id: str | None = None) -> str | WorkflowStatus:
        """Submit a workflow. Returns its id; with ``wait=True``, its final status
        (whatever the outcome: check ``.state``), waiting at most ``timeout`` seconds
        (None: no bound) before WaitTimedOut.

        ``request_id`` makes a retried submit idempotent: the agent answers a repeated
        one with the workflow it started the first time (a fresh one is made if unset)."""
        message = load_spec(spec)
        request_id = request_id or uuid.uuid4().hex
        async with self._calling() as agent:
            workflow_id = await agent.submit(message, request_id)
        if not wait:
            return workflow_id
        return await self.wait(workflow_id, timeout=timeout)

    async def submit_many(self, specs: Iterable[SpecLike], *, wait: bool = False,
                          timeout: float | None = None,
                          request_ids: Sequence[str] | None = None) -> list[Submitted]:
        """Submit many workflows in one call (SubmitStream; an agent on ``engine: node``
        only, else OperationFailed naming the engine). Returns one ``Submitted`` per
        spec, in order: its workflow id, and with ``wait=True`` its final status; a spec
        the agent refused has ``error`` (its typed error) and the others go on.

        ``timeout`` bounds the whole call (default: ``rpc_timeout`` without wait, one
        hour with it); WaitTimedOut if it runs out. ``request_ids`` (one per spec) make
        a retry idempotent, as with ``submit``; fresh ones are made if unset."""
        messages = [load_spec(spec) for spec in specs]
        if request_ids is not None and len(request_ids) != len(messages):
            raise InvalidSpec(f"request_ids: {len(request_ids)} given for"
                              f" {len(messages)} specs")
        ids = list(request_ids) if request_ids is not None \
            else [uuid.uuid4().hex for _ in messages]
        deadline = timeout if timeout is not None \
            else (STREAM_WAIT_S if wait else self.rpc_timeout)
        async with self._calling() as agent:  # signing may ask the agent its domain
            requests = [client_pb2.SubmitStreamRequest(
                # Without state_changes_only: the terminal status only (client.proto);
                # waiting for it, the accepted update is not needed (it names the id).
                submit=await agent.submit_request(message, ids[i]), token=str(i),
                skip_accepted=wait)
                for i, message in enumerate(messages)]
        results: dict[int, Submitted] = {}
        open_ones = len(messages)  # specs not yet answered in full
        call = agent.submit_stream(requests, deadline)
        try:
            async for update in call:
                index = int(update.token)
                if update.code:
                    results[index] = Submitted(index, error=from_code(
                        _CODES.get(update.code, grpc.StatusCode.UNKNOWN), update.reason, self.peer))
                    open_ones -= 1
                elif update.HasField("status"):
                    if update.status.state in TERMINAL_PROTO and wait:
                        results[index] = Submitted(index, update.id,
                                                   WorkflowStatus.from_proto(update.status))
                        open_ones -= 1
                elif index not in results:  # accepted
                    results[index] = Submitted(index, update.id)
                    if not wait:
                        open_ones -= 1
                if open_ones == 0:
                    break
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise WaitTimedOut(f"submit_many: {open_ones} of {len(messages)} specs"
                                   f" not answered in full within {deadline:g} s") from None
            raise from_rpc_error(exc, self.peer) from None
        finally:
            call.cancel()
        if open_ones:
            raise FedorchError(f"the agent at {self.peer} ended the stream with"
                               f" {open_ones} specs not answered in full")
        return [results[i] for i in range(len(messages))]

    async def status(self, workflow_id: str) -> WorkflowStatus:
        """The workflow's status, from any agent (it asks the coordinator if need be)."""
        async with self._calling() as agent:
            return WorkflowStatus.from_proto(await agent.get_workflow(workflow_id))

    async def watch(self, workflow_id: str, *,
                    state_changes_only: bool = False) -> AsyncIterator[WorkflowStatus]:
        """Each new status of the workflow as it changes, until and including its
        terminal one. Bound it yourself if you must (e.g. ``asyncio.timeout``)."""
        agent = await self._ensure_open()
        updates = statuses(agent, workflow_id, state_changes_only=state_changes_only)
        try:
            async with contextlib.aclosing(updates) as each:
                async for status in each:
                    yield WorkflowStatus.from_proto(status)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.peer) from None

    async def wait(self, workflow_id: str, *, timeout: float | None = None) -> WorkflowStatus:
        """The workflow's terminal status, waiting at most ``timeout`` seconds (None: no
        bound); WaitTimedOut after that, with the last status seen as ``.last``."""
        last: WorkflowStatus | None = None
        try:
            async with asyncio.timeout(timeout), contextlib.aclosing(
                    self.watch(workflow_id, state_changes_only=True)) as updates:
                async for status in updates:
                    last = status
        except TimeoutError:
            state = last.state if last is not None else "unknown"
            raise WaitTimedOut(f"workflow {workflow_id} did not end within {timeout:g}s "
                               f"(last state: {state})", last) from None
        if last is None:  # statuses always yields at least once, or raises
            raise FedorchError(f"no status for workflow {workflow_id}")
        return last

    async def cancel(self, workflow_id: str, reason: str = "") -> WorkflowStatus:
        """Cancel a workflow; returns its status after the cancel (it may take a moment
        to reach CANCELLED: `wait` for it)."""
        async with self._calling() as agent:
            return WorkflowStatus.from_proto(await agent.cancel(workflow_id, reason))

    async def list_workflows(self) -> list[WorkflowStatus]:
        """The workflows the agent knows."""
        async with self._calling() as agent:
            return [WorkflowStatus.from_proto(s) for s in await agent.list_workflows()]

    async def members(self) -> list[Member]:
        """The federation as the agent sees it."""
        async with self._calling() as agent:
            return [Member.from_proto(m) for m in await agent.list_members()]


__all__ = ["AsyncClient", "IdentityLike", "SpecLike", "load_spec"]
