"""The synchronous Python client: ``with Client("127.0.0.1:7101") as c: c.submit(...)``.

It runs an AsyncClient on an event loop of its own, in a thread of its own, so that it
works the same from plain scripts, from notebooks and from inside other event loops'
threads. The thread starts with the client and is stopped (and joined) by ``close``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from fedorch.cli.client import DEFAULT_RPC_TIMEOUT_S
from fedorch.client.async_client import AsyncClient, IdentityLike, SpecLike
from fedorch.client.models import Member, Submitted, WorkflowStatus

T = TypeVar("T")


class Client:
    """A blocking client of one agent; the same calls as AsyncClient.

    ``peer``: the agent's HOST:PORT (default: $FEDORCH_PEER, else 127.0.0.1:7101).
    ``rpc_timeout``: the deadline of each call, in seconds.
    ``identity``: the client key file every call is signed with (default:
    $FEDORCH_IDENTITY); ``agent_key``: the agent domain's ``.pub`` for mutual TLS
    (default: $FEDORCH_AGENT_KEY). See AsyncClient.
    """

    def __init__(self, peer: str | None = None, *,
                 rpc_timeout: float = DEFAULT_RPC_TIMEOUT_S,
                 identity: IdentityLike | None = None,
                 agent_key: str | os.PathLike[str] | None = None) -> None:
        self._async = AsyncClient(peer, rpc_timeout=rpc_timeout, identity=identity,
                                  agent_key=agent_key)
        self.peer = self._async.peer
        self.identity = self._async.identity
        self.agent_key = self._async.agent_key
        self.rpc_timeout = rpc_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name=f"fedorch-client {self.peer}", daemon=True)
        self._thread.start()
        self._closed = False

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        # A client dropped without close(): stop its thread rather than leak it.
        if not getattr(self, "_closed", True):
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("fedorch Client used after close()")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def close(self) -> None:
        """Close the connection and stop the client's thread."""
        if self._closed:
            return
        try:
            self._run(self._async.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    # ---- calls -------------------------------------------------------------------------

    @overload
    def submit(self, spec: SpecLike, *, wait: Literal[False] = False,
               timeout: float | None = None, request_id: str | None = None) -> str: ...

    @overload
    def submit(self, spec: SpecLike, *, wait: Literal[True], timeout: float | None = None,
               request_id: str | None = None) -> WorkflowStatus: ...

    def submit(self, spec: SpecLike, *, wait: bool = False, timeout: float | None = None,
               request_id: str | None = None) -> str | WorkflowStatus:
        """Submit a workflow: its id, or with ``wait=True`` its final status (see
        AsyncClient.submit)."""
        return self._run(self._async.submit(spec, wait=wait, timeout=timeout,  # type: ignore[call-overload]
                                            request_id=request_id))

    def submit_many(self, specs: Iterable[SpecLike], *, wait: bool = False,
                    timeout: float | None = None,
                    request_ids: Sequence[str] | None = None) -> list[Submitted]:
        """Many workflows in one call (see AsyncClient.submit_many)."""
        return self._run(self._async.submit_many(specs, wait=wait, timeout=timeout,
                                                 request_ids=request_ids))

    def status(self, workflow_id: str) -> WorkflowStatus:
        """The workflow's status, from any agent."""
        return self._run(self._async.status(workflow_id))

    def watch(self, workflow_id: str, *,
              state_changes_only: bool = False) -> Iterator[WorkflowStatus]:
        """Each new status of the workflow as it changes, until and including its
        terminal one. Stopping early (break) closes the agent's stream."""
        updates = self._async.watch(workflow_id, state_changes_only=state_changes_only)
        try:
            while True:
                try:
                    yield self._run(updates.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if not self._closed:
                self._run(updates.aclose())

    def wait(self, workflow_id: str, *, timeout: float | None = None) -> WorkflowStatus:
        """The workflow's terminal status; WaitTimedOut after ``timeout`` seconds."""
        return self._run(self._async.wait(workflow_id, timeout=timeout))

    def cancel(self, workflow_id: str, reason: str = "") -> WorkflowStatus:
        """Cancel a workflow; returns its status after the cancel."""
        return self._run(self._async.cancel(workflow_id, reason))

    def list_workflows(self) -> list[WorkflowStatus]:
        """The workflows the agent knows."""
        return self._run(self._async.list_workflows())

    def members(self) -> list[Member]:
        """The federation as the agent sees it."""
        return self._run(self._async.members())


__all__ = ["Client"]
