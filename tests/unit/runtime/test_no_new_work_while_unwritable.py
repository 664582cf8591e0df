"""While its database cannot be written, an agent takes no new work: a PREPARE gets a NO
naming the reason (and nothing is reserved), a submission gets UNAVAILABLE; once writes
succeed again, both are taken as usual."""

from __future__ import annotations

import grpc
import pytest
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2, spec_pb2
from fedorch.runtime.agent import Agent
from fedorch.runtime.client_service import ClientService
from google.protobuf import json_format

from tests.submissions import signed

SPEC = json_format.ParseDict({"name": "one", "steps": [{"id": "s1", "capability": "x"}]},
                             spec_pb2.WorkflowSpec())


def _request(workflow_id: str, acceptors: list[str]) -> peer_pb2.PrepareRequest:
    return peer_pb2.PrepareRequest(
        workflow_id=workflow_id, round=1, spec=SPEC, steps=["s1"], placement={"s1": "alpha"},
        coordinator_endpoint="127.0.0.1:2", lease_ms=30_000, acceptors=acceptors,
        submission=signed(SPEC))


async def _vote(agent: Agent, request: peer_pb2.PrepareRequest) -> peer_pb2.Vote:
    envelope = await agent.participation.prepare("beta", request)
    return peer_pb2.Body.FromString(envelope.body).vote


@pytest.mark.parametrize("acceptors", [["alpha", "beta", "gamma"], []])  # Paxos, 2PC
async def test_a_prepare_meets_a_no_while_writes_fail(worker: Agent, acceptors) -> None:
    worker.store.write_fault = "database or disk is full"
    vote = await _vote(worker, _request("beta.1", acceptors))
    assert not vote.yes
    assert vote.reason == "alpha cannot write its database (database or disk is full)"
    assert await worker.store.list_reservations() == []
    assert worker.participant.holds() == []

    worker.store.write_fault = None  # the store saw a write succeed again
    assert (await _vote(worker, _request("beta.2", acceptors))).yes


class _Aborted(Exception):
    pass


class _Context:
    def __init__(self) -> None:
        self.trailing = ()

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing = tuple(metadata)

    async def abort(self, code, details):
        raise _Aborted(code, details)


async def test_a_submission_gets_unavailable_while_writes_fail(worker: Agent) -> None:
    worker.store.write_fault = "disk I/O error"
    context = _Context()
    with pytest.raises(_Aborted) as info:
        await ClientService(worker).Submit(client_pb2.SubmitRequest(spec=SPEC), context)
    code, details = info.value.args
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith("this agent cannot write its database (disk I/O error)")
    assert ("retry-after-ms", "1000") in context.trailing
    assert await worker.store.list_workflows() == []


async def test_a_submission_before_the_agent_has_rejoined_gets_unavailable(
        worker: Agent) -> None:
    assert worker.membership is None  # not started: it has heard from no one
    with pytest.raises(_Aborted) as info:
        await ClientService(worker).Submit(client_pb2.SubmitRequest(spec=SPEC), _Context())
    code, details = info.value.args
    assert code == grpc.StatusCode.UNAVAILABLE and "has not rejoined" in details
    assert await worker.store.list_workflows() == []
