"""Follow a workflow to a terminal state (fedorch.client.follow), reporting each change.

Used by `submit --wait`, `watch` and `demo`. The caller bounds the whole wait (see
`wait_for_terminal`); grpc errors that are not worth retrying propagate unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
from fedorch.cli.client import AgentClient
from fedorch.cli.errors import EXIT_FAILED, CliError
from fedorch.cli.render import is_terminal, status_to_dict, workflow_state_name
from fedorch.client.follow import FATAL_CODES, statuses
from fedorch.gen.fedorch.v1 import spec_pb2, status_pb2

OnUpdate = Callable[[status_pb2.WorkflowStatus], None]


@dataclass
class Follower:
    """Tracks the last status seen and reports each distinct one once."""

    on_update: OnUpdate | None = None
    last: status_pb2.WorkflowStatus | None = None
    _last_key: object = field(default=None, repr=False)

    def see(self, status: status_pb2.WorkflowStatus) -> None:
        self.last = status
        key = status_to_dict(status)
        if key != self._last_key:
            self._last_key = key
            if self.on_update is not None:
                self.on_update(status)


async def follow(
    client: AgentClient,
    workflow_id: str,
    follower: Follower,
    *,
    poll_interval_s: float = 0.5,
    stream_deadline_s: float = 300.0,
    unreachable_grace_s: float = 30.0,
) -> status_pb2.WorkflowStatus:
    """Return the workflow's terminal status, reporting every change to `follower`.

    With nobody to show each update to, only the state matters: the agent sends no step
    news."""
    updates = statuses(client, workflow_id, state_changes_only=follower.on_update is None,
                       poll_interval_s=poll_interval_s, stream_deadline_s=stream_deadline_s,
                       unreachable_grace_s=unreachable_grace_s)
    async with contextlib.aclosing(updates) as each:
        async for status in each:
            follower.see(status)
    return status  # the terminal one: statuses ends there (or raises)


async def wait_for_terminal(
    client: AgentClient,
    workflow_id: str,
    limit_s: float | None,
    on_update: OnUpdate | None = None,
    **kwargs: float,
) -> status_pb2.WorkflowStatus:
    """`follow`, bounded by limit_s seconds (None: no bound); on expiry exit 1."""
    follower = Follower(on_update)
    try:
        async with asyncio.timeout(limit_s):
            return await follow(client, workflow_id, follower, **kwargs)
    except TimeoutError:
        raise _timed_out(workflow_id, limit_s, follower) from None


async def submit_and_wait(
    client: AgentClient,
    spec: spec_pb2.WorkflowSpec,
    request_id: str,
    limit_s: float | None,
    stream_deadline_s: float = 300.0,
) -> status_pb2.WorkflowStatus:
    """Submit and follow to a terminal state in one call (SubmitAndWatch), bounded by
    limit_s seconds; on expiry exit 1.

    An agent without that call (UNIMPLEMENTED), or a call that breaks before its first
    status, is sent a plain Submit with the same request_id (a repeated request_id
    starts nothing new), and the workflow is followed by its id; so is one that breaks
    later."""
    follower = Follower()
    try:
        async with asyncio.timeout(limit_s):
            try:
                final = await _to_the_end(
                    client.submit_and_watch(spec, request_id, stream_deadline_s), follower)
                if final is not None:
                    return final
            except grpc.RpcError as exc:
                if exc.code() in FATAL_CODES:
                    raise
            if follower.last is not None:  # the first status named the workflow
                return await follow(client, follower.last.id, follower)
            return await follow(client, await client.submit(spec, request_id), follower)
    except TimeoutError:
        named = follower.last.id if follower.last is not None else "(id not yet known)"
        raise _timed_out(named, limit_s, follower) from None


async def _to_the_end(stream: AsyncIterator[status_pb2.WorkflowStatus],
                      follower: Follower) -> status_pb2.WorkflowStatus | None:
    """Show a status stream to the follower: its terminal status, or None if the
    stream ended before one."""
    async with contextlib.aclosing(stream) as statuses:
        async for status in statuses:
            follower.see(status)
            if is_terminal(status):
                return status
    return None


def _timed_out(workflow_id: str, limit_s: float | None, follower: Follower) -> CliError:
    last = workflow_state_name(follower.last.state) if follower.last else "unknown"
    return CliError(
        f"timed out waiting for workflow {workflow_id} to finish after {limit_s:g}s "
        f"(last state: {last})",
        EXIT_FAILED,
    )
