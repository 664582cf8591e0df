"""SubmitStream: many submissions in one client call (the node engine's client service).

Theory of operation
-------------------
A SubmitAndWatch call carries one workflow, and gRPC's own machinery per call (its
tasks, its `asyncio.wait`, its messages) costs the coordinator's event loop more than
the workflow's submission does (docs/benchmarks.md). A SubmitStream carries many:
the client streams `SubmitStreamRequest`s, each with a token of its own, and this
agent streams back `SubmitStreamUpdate`s naming those tokens.

Each submission is taken as Submit takes it (services.py `_take`: refusal of new work
while node.db cannot be written, idempotency by request id, the signed spec's checks
or this domain's own signature, the spec's checks and placement) with a context of its
own (`_OneSubmission`) whose `abort` refuses that submission alone: the update says
the gRPC code and message Submit would have ended the call with, and the stream goes
on. A taken one is posted to the Node as Submit posts it, but not waited for: a
`_Follower` listens to the view (status.py `listen`) from before the post, so that no
change is missed, and is told each durable state change in the driver's `finish`. Its
first says the row is durable: the "accepted" update with the workflow's id, unless the
request says `skip_accepted` (each status names the workflow too, so a caller that
needs only the end gets one update per workflow, not two: one gRPC message less for
this agent to write and the client to read). Then the statuses asked for (with
`state_changes_only`: of the `states` named, every state change if none; without: the
terminal one only) and always the terminal one; the view builds a status only for
those (status.py). A retry (a request id this agent knows) is answered the first
attempt's workflow: accepted (unless skipped), then its status as it stands and those
that follow.

Nothing here starts a task per submission: one reader task per stream, owned by the
handler (started in `run`, cancelled and awaited when the call ends), takes the
requests in order and posts them; updates wait in one queue the handler drains. The
stream ends once the client closed its side and every accepted workflow ended; if the
call ends first (the client's deadline, a cancel), the listeners are removed and the
workflows go on as any submitted workflow does. The client's deadline bounds it all:
a row not durable in time is not answered alone, as Submit answers it (UNAVAILABLE),
but by the call's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

import grpc
from fedorch.core.node.inputs import Submit
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2

__all__ = ["Refused", "SubmissionStream", "Taking"]


class Taking(Protocol):
    """What a stream needs of the client service (services.py `NodeClientService`)."""

    engine: Any  # its `view` (status.py) and `post`

    async def _take(self, request: client_pb2.SubmitRequest, context: Any) -> Submit | str:
        """The submission checked and placed, or the id a retry of it made."""


class Refused(Exception):
    """One submission of a stream refused, with the code and message Submit gives."""

    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _OneSubmission:
    """The context one submission of a stream is checked with (`_take` calls the same
    methods on a real call's context): `abort` refuses this submission alone."""

    def __init__(self, call: Any) -> None:
        self._call = call

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Refused(code, details)

    def peer(self) -> str:
        return self._call.peer()

    def invocation_metadata(self) -> Any:
        return self._call.invocation_metadata()

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass  # a per-submission refusal has no trailers; its reason says when to retry


class _Follower:
    """One accepted submission's listener (status.py `Listener`)."""

    def __init__(self, stream: SubmissionStream, token: str, workflow_id: str,
                 request: client_pb2.SubmitStreamRequest) -> None:
        self.stream = stream
        self.token = token
        self.workflow_id = workflow_id
        self.states_only = request.state_changes_only
        self.states = frozenset(request.states)
        self.skip_accepted = request.skip_accepted
        self.accepted = False
        self.done = False
        self.last_state: Any = None

    def wants(self, state: Any) -> bool:
        if state in TERMINAL:
            return True
        if not self.states_only:
            return False
        return not self.states or state in self.states

    def heard(self, workflow_id: str, state: Any,
              status: status_pb2.WorkflowStatus | None) -> bool:
        if self.done:
            return True
        if not self.accepted:
            self.accepted = True
            if not self.skip_accepted:
                self.stream.put(client_pb2.SubmitStreamUpdate(token=self.token,
                                                              id=workflow_id))
        if status is not None and state != self.last_state:
            self.last_state = state
            self.stream.put(client_pb2.SubmitStreamUpdate(token=self.token, id=workflow_id,
                                                          status=status))
        if state in TERMINAL:
            self.done = True
            self.stream.ended(self)
        return self.done


class StatesWatch:
    """SubmitAndWatch's listener (with `state_changes_only`): the statuses of the states
    asked for (every state if none) and the terminal one, queued for its handler, each
    state once; the view builds no status of another state for it."""

    def __init__(self, states: Any) -> None:
        self.states = frozenset(states)
        self.statuses: asyncio.Queue[status_pb2.WorkflowStatus] = asyncio.Queue()
        self.last_state: Any = None

    def wants(self, state: Any) -> bool:
        return not self.states or state in self.states or state in TERMINAL

    def heard(self, workflow_id: str, state: Any,
              status: status_pb2.WorkflowStatus | None) -> bool:
        if status is not None and state != self.last_state:
            self.last_state = state
            self.statuses.put_nowait(status)
        return state in TERMINAL


async def watched_submit(engine: Any, taken: Submit, states: Any, context: Any
                         ) -> AsyncIterator[status_pb2.WorkflowStatus]:
    """SubmitAndWatch (with `state_changes_only`) of a new submission: posted, answered
    once its row is durable (else UNAVAILABLE, as Submit answers), and its statuses of
    the `states` asked for, and the end, from a `StatesWatch` registered before the
    post, each change told by the driver (no polling, no status built for a state not
    asked for)."""
    view = engine.view
    watch = StatesWatch(states)
    view.listen(taken.workflow_id, watch)
    try:
        try:
            await engine.submit(taken)
        except TimeoutError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, (
                f"{taken.workflow_id} was not written in time; it may still run"))
        while True:
            status = await watch.statuses.get()
            yield status
            if status.state in TERMINAL:
                return
    finally:
        view.unlisten(taken.workflow_id, watch)


class SubmissionStream:
    """One SubmitStream call (see the header)."""

    def __init__(self, service: Taking, context: Any) -> None:
        self.service = service
        self.context = context
        self.view = service.engine.view
        self._updates: asyncio.Queue[client_pb2.SubmitStreamUpdate] = asyncio.Queue()
        self._following: set[_Follower] = set()
        self._wake = asyncio.Event()  # the handler looks again (an update, or the end)
        self.taken = 0  # submissions taken (tests)

    def put(self, update: client_pb2.SubmitStreamUpdate) -> None:
        self._updates.put_nowait(update)
        self._wake.set()

    def ended(self, follower: _Follower) -> None:
        self._following.discard(follower)
        self._wake.set()

    async def run(self, requests: AsyncIterator[client_pb2.SubmitStreamRequest]
                  ) -> AsyncIterator[client_pb2.SubmitStreamUpdate]:
        reader = asyncio.get_running_loop().create_task(self._read(requests),
                                                        name="submit-stream-reader")
        try:
            while True:
                while not self._updates.empty():
                    yield self._updates.get_nowait()
                if reader.done():
                    reader.result()  # its exception, if any, ends the call
                    if not self._following:
                        return
                self._wake.clear()
                if self._updates.empty() and not (reader.done() and not self._following):
                    await self._wake.wait()
        finally:
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
            for follower in tuple(self._following):
                self.view.unlisten(follower.workflow_id, follower)
            self._following.clear()

    async def _read(self, requests: AsyncIterator[client_pb2.SubmitStreamRequest]) -> None:
        try:
            async for request in requests:
                await self._one(request)
        finally:
            self._wake.set()  # the client's side ended: the handler looks again

    async def _one(self, request: client_pb2.SubmitStreamRequest) -> None:
        service = self.service
        try:
            taken = await service._take(request.submit, _OneSubmission(self.context))
        except Refused as e:
            self.put(client_pb2.SubmitStreamUpdate(
                token=request.token, code=e.code.value[0], reason=e.reason))
            return
        if isinstance(taken, Submit):
            follower = _Follower(self, request.token, taken.workflow_id, request)
            self._following.add(follower)
            self.view.listen(taken.workflow_id, follower)  # before the post: none missed
            service.engine.post(taken)
            self.taken += 1
            return
        await self._retried(request, taken)

    async def _retried(self, request: client_pb2.SubmitStreamRequest,
                       workflow_id: str) -> None:
        """A request id seen before: its first attempt's workflow, as it stands, then
        its changes."""
        follower = _Follower(self, request.token, workflow_id, request)
        self._following.add(follower)
        self.view.listen(workflow_id, follower)
        status = await self.view.read(workflow_id)
        if follower.done:  # it ended while read: told already
            return
        if status is None:  # not durable yet (placed a moment ago): its changes tell
            return
        if not follower.accepted:
            follower.accepted = True
            if not follower.skip_accepted:
                self.put(client_pb2.SubmitStreamUpdate(token=request.token, id=workflow_id))
        if follower.wants(status.state) and status.state != follower.last_state:
            follower.last_state = status.state
            self.put(client_pb2.SubmitStreamUpdate(token=request.token, id=workflow_id,
                                                   status=status))
        if status.state in TERMINAL:
            follower.done = True
            self.view.unlisten(workflow_id, follower)
            self.ended(follower)
