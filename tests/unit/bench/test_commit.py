"""The commit bench's stream requests (agent/bench/commit.py): a loop that times the
commit asks each workflow's RUNNING status; the peak's loops ask for the end alone."""

from __future__ import annotations

import asyncio

from fedorch.bench import commit
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2


def test_a_timed_loop_asks_for_running_and_the_peak_for_the_end_alone() -> None:
    timed = client_pb2.SubmitStreamRequest.FromString(commit._stream_request("7"))
    assert timed.token == "7" and timed.state_changes_only
    assert list(timed.states) == [status_pb2.WORKFLOW_STATE_RUNNING]
    peak = client_pb2.SubmitStreamRequest.FromString(
        commit._stream_request("8", commit._STREAM_END_REQUEST))
    assert peak.token == "8" and peak.submit.spec == timed.submit.spec
    assert not peak.state_changes_only and not peak.states  # the terminal status only


class _StreamThatAnswersAtTheEnd:
    """A SubmitStream call that reads every request before it answers any: a loop that
    waits for an answer before its next submission never gets one."""

    def __init__(self, requests) -> None:
        self.requests = requests
        self.tokens: list[str] = []

    async def _updates(self):
        async for data in self.requests:
            self.tokens.append(client_pb2.SubmitStreamRequest.FromString(data).token)
        for token in self.tokens:
            yield client_pb2.SubmitStreamUpdate(
                token=token, id=f"w{token}",
                status=status_pb2.WorkflowStatus(state=status_pb2.WORKFLOW_STATE_RUNNING))

    def __aiter__(self):
        return self._updates()

    def cancel(self) -> None:
        pass


class _StreamNet:
    def __init__(self) -> None:
        self.calls: list[_StreamThatAnswersAtTheEnd] = []
        self._channels = {commit.DOMAINS[0]: self}

    def client(self, domain):
        raise AssertionError("the stream loop submits on the stream, never by calls")

    def stream_stream(self, method, request_serializer, response_deserializer):
        assert method == "/fedorch.v1.Client/SubmitStream"

        def call_of(requests, timeout):
            self.calls.append(_StreamThatAnswersAtTheEnd(requests))
            return self.calls[-1]
        return call_of


async def test_the_half_load_loop_of_a_stream_bench_submits_on_one_stream_at_its_rate(
        monkeypatch) -> None:
    net = _StreamNet()
    monkeypatch.setattr(net, "client", lambda domain: None)  # the channel is "open"
    runs = await asyncio.wait_for(
        commit._open_loop(net, rate=400.0, seconds=0.02, submit="stream"), 30)
    assert len(net.calls) == 1 and net.calls[0].tokens == [str(i) for i in range(8)]
    assert all(r.committed is not None and r.submitted is not None for r in runs)
    assert [r.id for r in runs] == [f"w{i}" for i in range(8)]
