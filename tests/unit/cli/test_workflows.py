"""workflows.py: `fedorch submit` with several files: one SubmitStream call, a line (or JSON object)
per file, a refused file told alone, exit 1 if any was refused or did not succeed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2

from tests.unit.cli.test_main import FakeAgent, ServerThread, invoke, make_status, spec_file

__all__ = ["spec_file"]  # the fixture, used here

WS = status_pb2.WorkflowState


class StreamingAgent(FakeAgent):
    """SubmitStream: a spec named "refused" is refused; "fails" ends FAILED; the rest
    are accepted as "wf-" + its name and end SUCCEEDED."""

    def __init__(self) -> None:
        super().__init__()
        self.streamed: list[client_pb2.SubmitStreamRequest] = []

    async def SubmitStream(self, request_iterator, context):
        async for request in request_iterator:
            self.streamed.append(request)
            name = request.submit.spec.name
            if name == "refused":
                yield client_pb2.SubmitStreamUpdate(
                    token=request.token, code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                    reason="steps[0]: refused here")
                continue
            wf = f"wf-{name}"
            yield client_pb2.SubmitStreamUpdate(token=request.token, id=wf)
            end = WS.WORKFLOW_STATE_FAILED if name == "fails" else WS.WORKFLOW_STATE_SUCCEEDED
            yield client_pb2.SubmitStreamUpdate(token=request.token, id=wf,
                                                status=make_status(wf, end))


@pytest.fixture
def streaming() -> Iterator[tuple[StreamingAgent, str]]:
    servicer = StreamingAgent()
    server = ServerThread(servicer)
    server.start()
    try:
        yield servicer, server.address
    finally:
        server.stop()


def test_several_files_go_in_one_stream_each_told_and_a_refused_one_alone(streaming,
                                                                          spec_file):
    agent, address = streaming
    files = [str(spec_file(n)) for n in ("one", "refused", "two")]
    result = invoke("submit", *files, "--peer", address)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{files[0]}: wf-one",
                                          f"{files[1]}: refused: steps[0]: refused here",
                                          f"{files[2]}: wf-two"]
    assert "1 of 3 specs were refused" in result.stderr
    assert [r.token for r in agent.streamed] == ["0", "1", "2"]
    ids = [r.submit.request_id for r in agent.streamed]
    assert len(set(ids)) == 3 and not agent.submits  # no unary Submit


def test_several_files_wait_json_gives_each_final_status(streaming, spec_file):
    _, address = streaming
    files = [str(spec_file(n)) for n in ("one", "two")]
    result = invoke("submit", *files, "--peer", address, "--wait", "--json")
    assert result.exit_code == 0, result.stderr
    told = json.loads(result.stdout)
    assert [(t["file"], t["id"], t["status"]["state"]) for t in told] == \
        [(files[0], "wf-one", "SUCCEEDED"), (files[1], "wf-two", "SUCCEEDED")]
    failing = invoke("submit", files[0], str(spec_file("fails")), "--peer", address,
                     "--wait")
    assert failing.exit_code == 1
    assert failing.stdout.splitlines()[1].endswith("wf-fails FAILED")
