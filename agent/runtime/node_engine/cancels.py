"""The node engine's Cancel call: where a client's cancel goes, and its answer.

Theory of operation
-------------------
The caller needs the `cancel` permission (the interceptor). Only
the coordinator of the workflow's current epoch takes a cancel (core/node/cancel.py):
its original coordinator, or after a takeover the successor acting in the epoch it
won. So an agent asked (`cancel`) sends the cancel on (`local_only`) to the later
epoch's holder its Node follows, else to the coordinator the id names; when that one
cannot be reached (dead, say, and taken over) or gives the cancel up to a later epoch
(UNAVAILABLE, naming the holder), the live members are asked who holds the highest
epoch (the status path, NodeClientService._asked_of_members) and the cancel goes
there, each domain tried once; while none is in place yet (no successor acts), the
members are asked again each `ASK_AGAIN_S`, within the call's deadline
(`CANCEL_DONE_S`).

Where it is taken (`_cancel_here`), the request is appended to the audit chain (a `client_request` record naming the verified caller, written before the
Node acts), `Cancel` is posted to the Node, and the workflow's status is answered
once it ended CANCELLED and that is durable. With coordinator takeover the CANCELLED
end is told before it is made: the status shows RUNNING meanwhile, so the wait wakes
on every durable turn. A later epoch learned meanwhile makes the cancel void here
(cancel.py): it is sent on to that epoch's holder (UNAVAILABLE, naming it, to an agent
that forwarded it, which sends it on). A cancel still waiting at the deadline (a
COMMIT being decided) is answered the status it has then, and carried out later.

Refusals: an ended workflow FAILED_PRECONDITION naming its end (the CLI exits 1),
nothing changed; another end already told (cancel.refusal) FAILED_PRECONDITION with
the Node's reason; unknown here NOT_FOUND; none of the coordinators tried could take
it UNAVAILABLE, to cancel again by id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import grpc
from fedorch.core.identity.authority import coordinator_of
from fedorch.core.node.cancel import claiming, holder_elsewhere, refusal
from fedorch.core.node.inputs import Cancel
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2
from fedorch.runtime.client_service import FORWARD_TIMEOUT_S, _check_id
from fedorch.runtime.interceptors import CURRENT_CALLER

__all__ = ["CANCEL_DONE_S", "Cancels"]

log = logging.getLogger("fedorch.node_engine")

CANCEL_DONE_S = 10.0  # a cancel not carried out by then is answered with the status it has
ASK_AGAIN_S = 1.0  # no coordinator to take it found yet: the members are asked again


class _Service(Protocol):
    """What the call uses of the client service that owns it (services.py, which
    imports this module: named by shape, so the import graph has no cycle)."""

    engine: Any
    agent: Any

    def _stub(self, domain: str) -> Any: ...

    async def _asked_of_members(self, workflow_id: str) -> Any: ...


class Cancels:
    """The Cancel call of one client service (its stubs and its members' status)."""

    def __init__(self, service: _Service) -> None:
        self.service = service
        self.engine = service.engine
        self.agent = service.agent

    async def cancel(self, request, context):
        await _check_id(request.id, context)
        a = self.agent
        node = self.engine.node
        deadline = a.clock.monotonic() + CANCEL_DONE_S
        if request.local_only:  # forwarded: taken here, or refused (never sent on again)
            return await self._cancel_here(request, context, deadline)
        # Where the cancel goes: the later epoch's holder this Node follows (a successor
        # after a takeover), else the coordinator the id names; asked for that holder
        # again (the live members' highest epoch, as the status path asks) when the one
        # tried cannot be reached or gives the cancel up to a later epoch.
        later = holder_elsewhere(node, request.id)
        target = later[1] if later is not None else coordinator_of(request.id) or a.domain
        tried: set[str] = set()
        why = "none named"
        while True:
            if target == a.domain and target not in tried:
                tried.add(target)
                try:
                    return await self._cancel_here(request, context, deadline)
                except _CancelElsewhere as e:  # void here: a later epoch's holder decides
                    target, why = e.holder, e.why
                    continue
            if target is not None and target not in tried:
                tried.add(target)
                try:
                    return await self._cancel_at(target, request, deadline)
                except grpc.aio.AioRpcError as e:
                    if e.code() not in _ROUTED_AGAIN:  # its answer: refused, unknown, ...
                        await context.abort(e.code(), e.details())
                    why = f"{target}: {e.details()}"
                    log.info("cancel of %s: %s (%s); asking the members who holds it",
                             request.id, target, e.code().name)
            elif a.clock.monotonic() + ASK_AGAIN_S > deadline:
                await context.abort(grpc.StatusCode.UNAVAILABLE, (
                    f"the cancel of {request.id} found no coordinator to take it ({why});"
                    " cancel again by id"))
            else:  # no successor in place yet (or none known): the members asked again
                await asyncio.sleep(ASK_AGAIN_S)
            found = await self.service._asked_of_members(request.id)
            if found is not None and found.state in TERMINAL:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, _ended(found))
            target = found.coordinator if found is not None and found.coordinator else None

    async def _cancel_at(self, domain: str, request, deadline: float):
        """The cancel, forwarded to `domain` (`local_only`), within what is left."""
        stub = self.service._stub(domain)
        if stub is None:
            raise _Unreachable(f"no address of {domain} known here")
        forwarded = client_pb2.CancelRequest(id=request.id, reason=request.reason,
                                             local_only=True)
        # Its own wait ends at its deadline, no later than ours: a margin to answer.
        left = max(deadline - self.agent.clock.monotonic(), 0.0) + FORWARD_TIMEOUT_S
        return await stub.Cancel(forwarded, timeout=left)

    async def _cancel_here(self, request, context, deadline: float):
        """Take the cancel here (this Node coordinates the workflow's current epoch) and
        answer its status once CANCELLED and durable; or refuse it. A cancel given up to
        a later epoch (refused so, or void while waiting: cancel.py) is UNAVAILABLE to a
        forwarding agent, which sends it on to that epoch's holder (_CancelElsewhere
        when taken here without forwarding)."""
        a = self.agent
        node = self.engine.node
        view = self.engine.view
        status = await view.read(request.id)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no workflow {request.id!r} known here")
        if status.state in TERMINAL:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, _ended(status))
        if (why := refusal(node, request.id)) is not None:
            await self._refused(request, context, why)
        # Taken: recorded (a `client_request` record), on the audit
        # chain before the Node acts on it, naming the verified caller (also when a peer
        # forwarded the call for it); written alone, now, so that it precedes the end.
        caller = CURRENT_CALLER.get()
        await a.audit.client_request("cancel", request.id, peer=context.peer(),
                                     principal=caller.describe() if caller else "")
        self.engine.post(Cancel(request.id, request.reason or "by request"))
        while status.state not in TERMINAL:
            left = deadline - a.clock.monotonic()
            if left <= 0:  # on record (a COMMIT being decided): carried out once decided
                return client_pb2.CancelReply(status=status)
            # Every durable turn: the cancel's end is told first (the status RUNNING
            # meanwhile), and a later epoch learned makes it void without a state change.
            await view.wait(request.id, steps=True, timeout=left)
            status = await view.read(request.id)
            if status is None:
                await context.abort(grpc.StatusCode.NOT_FOUND,
                                    f"no workflow {request.id!r} known here")
            later = holder_elsewhere(node, request.id)
            if later is not None and status.state not in TERMINAL:
                await self._refused(request, context, (
                    f"{request.id} was taken over by {later[1]} (coordinator epoch"
                    f" {later[0]}) before its cancel was made here: cancel it there"))
        if status.state != WorkflowState.CANCELLED:  # it ended before the cancel came
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, _ended(status))
        return client_pb2.CancelReply(status=status)

    async def _refused(self, request, context, why: str) -> None:
        """A cancel this Node does not take: given up to a later epoch's holder (sent on
        by whoever forwards it, UNAVAILABLE to one forwarded), a claim not won yet
        (UNAVAILABLE: cancel again), not coordinated here (NOT_FOUND), or refused for
        what the workflow is (FAILED_PRECONDITION, naming its end)."""
        node = self.engine.node
        later = holder_elsewhere(node, request.id)
        if later is not None:
            if not request.local_only:
                raise _CancelElsewhere(later[1], why)
            await context.abort(grpc.StatusCode.UNAVAILABLE, why)
        if claiming(node, request.id):
            await context.abort(grpc.StatusCode.UNAVAILABLE, why)
        if why.endswith("is not coordinated here"):
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no workflow {request.id!r} coordinated here")
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, why)


class _CancelElsewhere(Exception):
    """A cancel asked here (not forwarded) that a later epoch's holder must take."""

    def __init__(self, holder: str, why: str) -> None:
        super().__init__(why)
        self.holder = holder
        self.why = why


class _Unreachable(grpc.aio.AioRpcError):
    """No address of the domain a cancel goes to: tried as an unreachable one is."""

    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                         grpc.aio.Metadata(), details)


# A forwarded cancel's answers that send it to the members' epoch holder instead: the
# one tried cannot be reached, or gave the cancel up to a later epoch.
_ROUTED_AGAIN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _ended(status) -> str:
    state = status_pb2.WorkflowState.Name(status.state).removeprefix("WORKFLOW_STATE_")
    why = f" ({status.reason})" if status.reason else ""
    return f"{status.id} already ended {state}{why}: nothing to cancel"
