"""Follow a workflow to its end: the Watch stream first, GetWorkflow polling after.

One generator that both the Python client (``AsyncClient.watch``) and the CLI
(`watch`, `submit --wait`, `demo`) read. It yields each distinct status, the terminal one
last; it raises the grpc errors that retrying cannot help and leaves the overall bound to
its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc
from fedorch.cli.client import AgentClient
from fedorch.gen.fedorch.v1 import status_pb2

# Errors after which retrying the same question cannot help.
FATAL_CODES = frozenset({
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
})
UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
TERMINAL = frozenset({
    status_pb2.WORKFLOW_STATE_SUCCEEDED,
    status_pb2.WORKFLOW_STATE_FAILED,
    status_pb2.WORKFLOW_STATE_ABORTED,
    status_pb2.WORKFLOW_STATE_CANCELLED,
})


async def statuses(
    agent: AgentClient,
    workflow_id: str,
    *,
    state_changes_only: bool = False,
    poll_interval_s: float = 0.5,
    stream_deadline_s: float = 300.0,
    unreachable_grace_s: float = 30.0,
) -> AsyncIterator[status_pb2.WorkflowStatus]:
    """The workflow's statuses as they change, until and including a terminal one.

    `state_changes_only`: ask the agent for a status only when the workflow's state
    changes, not on each step's progress (the first status always comes)."""
    def new(status: status_pb2.WorkflowStatus, last: status_pb2.WorkflowStatus) -> bool:
        # Only changes are yielded: of the state alone when that is all that was asked
        # for (the first status comes from a GetWorkflow and the stream's first from the
        # watch: the same state, its steps perhaps further on, is not a change of state).
        return status.state != last.state if state_changes_only else status != last

    status = await agent.get_workflow(workflow_id)
    yield status
    if status.state in TERMINAL:
        return
    last = status

    # 1. The server stream. One that hits its own deadline is simply reopened.
    while True:
        try:
            stream = agent.watch(workflow_id, stream_deadline_s, state_changes_only)
            async with contextlib.aclosing(stream) as updates:
                async for status in updates:
                    if new(status, last):
                        last = status
                        yield status
                    if status.state in TERMINAL:
                        return
        except grpc.RpcError as exc:
            if exc.code() in FATAL_CODES:
                raise
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                continue
        break  # the stream ended or broke before a terminal state: poll instead

    # 2. Polling, tolerating a briefly unreachable agent (e.g. a restart).
    unreachable_since: float | None = None
    while True:
        await asyncio.sleep(poll_interval_s)
        try:
            status = await agent.get_workflow(workflow_id)
        except grpc.RpcError as exc:
            if exc.code() not in UNREACHABLE_CODES:
                raise
            now = time.monotonic()
            if unreachable_since is None:
                unreachable_since = now
            if now - unreachable_since > unreachable_grace_s:
                raise
            continue
        unreachable_since = None
        if new(status, last):
            last = status
            yield status
        if status.state in TERMINAL:
            return
