"""The commit bench asks for no accepted update (agent/bench/commit.py): each status
names the workflow, so the timed loop reads two updates per workflow and the peak's
one; the count read is reported per workflow."""

from __future__ import annotations

from fedorch.bench import commit
from fedorch.gen.fedorch.v1 import client_pb2


def test_the_bench_skips_the_accepted_update_in_both_loops() -> None:
    for template in (commit._STREAM_REQUEST, commit._STREAM_END_REQUEST):
        request = client_pb2.SubmitStreamRequest.FromString(
            commit._stream_request("3", template))
        assert request.skip_accepted and request.token == "3"


def test_updates_per_workflow_counts_what_the_client_read() -> None:
    runs = [commit._Run() for _ in range(4)]
    for run, n in zip(runs, (2, 2, 3, 1), strict=True):
        run.updates = n
    assert commit.updates_per_workflow(runs) == 2.0
    assert commit.updates_per_workflow([]) == 0.0
