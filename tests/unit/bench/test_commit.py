"""The commit bench's stream requests (agent/bench/commit.py): a loop that times the
commit asks each workflow's RUNNING status; the peak's loops ask for the end alone."""

from __future__ import annotations

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
