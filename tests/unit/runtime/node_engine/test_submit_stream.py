"""SubmitStream's handler (submit_stream.py): each submission taken as Submit takes it,
a refused one answered alone while the others go on, each accepted one followed by a
listener of the view from before its post, and the stream's end."""

from __future__ import annotations

import asyncio

import grpc
from fedorch.core.node.inputs import Submit
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import client_pb2, spec_pb2, status_pb2
from fedorch.runtime.node_engine.submit_stream import SubmissionStream, watched_submit

from tests.unit.runtime.test_driver import _until

WAIT_S = 10.0  # a consumer's end


class _View:
    def __init__(self) -> None:
        self.listeners: dict[str, list] = {}
        self.statuses: dict[str, status_pb2.WorkflowStatus] = {}

    def listen(self, wf, listener) -> None:
        self.listeners.setdefault(wf, []).append(listener)

    def unlisten(self, wf, listener) -> None:  # as status.py's: one not listening is fine
        listeners = self.listeners.get(wf, [])
        if listener in listeners:
            listeners.remove(listener)
            if not listeners:
                del self.listeners[wf]

    async def read(self, wf):
        return self.statuses.get(wf)

    def change(self, wf: str, state: WorkflowState) -> None:
        """As the driver tells the view of a durable change (status.py)."""
        status = status_pb2.WorkflowStatus(id=wf, state=state)
        self.statuses[wf] = status
        for listener in tuple(self.listeners.get(wf, ())):
            built = status if listener.wants(state) else None
            if listener.heard(wf, state, built):
                self.unlisten(wf, listener)


class _Engine:
    def __init__(self, view: _View) -> None:
        self.view = view
        self.posted: list[Submit] = []

    def post(self, event) -> None:
        # Listened to before it is posted: a change at once is not missed.
        assert event.workflow_id in self.view.listeners
        self.posted.append(event)


class _Service:
    """The client service's `_take`: a spec named "bad" is refused, a request id seen
    before answers its first workflow's id."""

    def __init__(self) -> None:
        self.engine = _Engine(_View())
        self.by_request: dict[str, str] = {}

    async def _take(self, request, context):
        if request.spec.name == "bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "steps[0]: bad")
        if request.request_id in self.by_request:
            return self.by_request[request.request_id]
        wf = f"c1.{len(self.engine.posted) + 1}"
        if request.request_id:
            self.by_request[request.request_id] = wf
        return Submit(wf, request.spec, request_id=request.request_id)


class _Call:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def invocation_metadata(self):
        return ()


def _request(token: str, name: str = "good", request_id: str = "", **asked):
    return client_pb2.SubmitStreamRequest(
        submit=client_pb2.SubmitRequest(spec=spec_pb2.WorkflowSpec(name=name),
                                        request_id=request_id), token=token, **asked)


class Fed:
    """A SubmitStream call the test feeds: requests put on `feed` (None ends the
    client's side), the updates gathered in `got` by `consume`."""

    def __init__(self, service: _Service) -> None:
        self.stream = SubmissionStream(service, _Call())
        self.feed: asyncio.Queue = asyncio.Queue()
        self.got: list[client_pb2.SubmitStreamUpdate] = []

    async def _requests(self):
        while (request := await self.feed.get()) is not None:
            yield request

    async def consume(self) -> None:
        async for update in self.stream.run(self._requests()):
            self.got.append(update)


def told(got: list[client_pb2.SubmitStreamUpdate]) -> dict[str, list]:
    """Each token's updates: (workflow id, its state, or None for an accepted update)."""
    out: dict[str, list] = {}
    for u in got:
        out.setdefault(u.token, []).append(
            (u.id, u.status.state if u.HasField("status") else None))
    return out


async def test_a_bad_submission_is_refused_alone_and_the_others_are_followed_to_their_end():
    service = _Service()
    view = service.engine.view
    stream = SubmissionStream(service, _Call())
    requests = [_request("a", state_changes_only=True,
                         states=[status_pb2.WORKFLOW_STATE_RUNNING]),
                _request("b", name="bad"), _request("c")]
    got: list[client_pb2.SubmitStreamUpdate] = []

    async def consume() -> None:
        async for update in stream.run(_aiter(requests)):
            got.append(update)

    async with asyncio.TaskGroup() as group:
        consumer = group.create_task(consume())
        await _until(lambda: len(service.engine.posted) == 2 and len(got) == 1)
        assert (got[0].token, got[0].code, got[0].reason) == \
            ("b", grpc.StatusCode.INVALID_ARGUMENT.value[0], "steps[0]: bad")
        for wf in ("c1.1", "c1.2"):
            for state in (WorkflowState.NEGOTIATING, WorkflowState.RUNNING):
                view.change(wf, state)
        await _until(lambda: len(got) == 4)
        assert not consumer.done()  # two workflows still running
        for wf in ("c1.1", "c1.2"):
            view.change(wf, WorkflowState.SUCCEEDED)
        await asyncio.wait_for(consumer, WAIT_S)  # ends: the client's side closed, all ended
    by_token = told(got[1:])
    # Accepted (no status), then the states asked for: "a" RUNNING, "c" the end only.
    assert by_token["a"] == [("c1.1", None), ("c1.1", WorkflowState.RUNNING),
                         ("c1.1", WorkflowState.SUCCEEDED)]
    assert by_token["c"] == [("c1.2", None), ("c1.2", WorkflowState.SUCCEEDED)]
    assert view.listeners == {} and stream.taken == 2


async def test_a_retry_is_answered_its_first_workflow_and_a_call_ended_early_stops_listening():
    service = _Service()
    view = service.engine.view
    fed = Fed(service)
    feed, got = fed.feed, fed.got

    async with asyncio.TaskGroup() as group:
        consumer = group.create_task(fed.consume())
        feed.put_nowait(_request("first", request_id="r1"))
        await _until(lambda: len(service.engine.posted) == 1)
        view.change("c1.1", WorkflowState.NEGOTIATING)
        await _until(lambda: len(got) == 1)
        feed.put_nowait(_request("again", request_id="r1"))
        await _until(lambda: len(got) == 2)
        assert (got[1].token, got[1].id) == ("again", "c1.1")
        assert len(service.engine.posted) == 1  # one workflow
        assert len(view.listeners["c1.1"]) == 2
        consumer.cancel()  # the call ends (a deadline, a cancel) before the workflow
    assert view.listeners == {}  # nothing left listening; the workflow goes on


async def _aiter(items):
    for item in items:
        yield item



async def test_submit_and_watch_of_a_new_submission_gets_the_states_asked_for_from_a_listener():
    view = _View()
    changes = [WorkflowState.NEGOTIATING, WorkflowState.RUNNING, WorkflowState.RUNNING,
               WorkflowState.SUCCEEDED]

    class _Submitting(_Engine):
        async def submit(self, taken):
            self.post(taken)
            view.change(taken.workflow_id, changes[0])  # durable: the submitter is answered

    engine = _Submitting(view)
    watched = watched_submit(engine, Submit("c1.1", spec_pb2.WorkflowSpec(name="good")),
                             [status_pb2.WORKFLOW_STATE_RUNNING], _Call())
    got: list[int] = []

    async def consume() -> None:
        async for status in watched:
            got.append(status.state)

    async with asyncio.TaskGroup() as group:
        consumer = group.create_task(consume())
        await _until(lambda: len(engine.posted) == 1)
        for state in changes[1:]:
            view.change("c1.1", state)
        await asyncio.wait_for(consumer, WAIT_S)
    # NEGOTIATING not asked for (and never built: `wants`); RUNNING once; the end.
    assert got == [WorkflowState.RUNNING, WorkflowState.SUCCEEDED]
    assert view.listeners == {}
