"""While its database cannot be written, an agent takes no new work: a PREPARE gets a NO
naming the reason (and nothing is reserved), a submission gets UNAVAILABLE; once writes
succeed again, both are taken as usual. A domain whose own key is revoked takes no
submission either (FAILED_PRECONDITION: a retry does not mend it)."""

from __future__ import annotations

import grpc
import pytest
from fedorch.core.identity.key_records import make_revocation
from fedorch.core.identity.keys import load_private_key
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


class _PeerContext(_Context):
    def peer(self) -> str:
        return "ipv4:127.0.0.1:5"


async def test_a_submission_to_a_domain_whose_own_key_is_revoked_is_refused(
        worker: Agent) -> None:
    """Its signatures would be refused by every peer: the caller is told why at once
    (FAILED_PRECONDITION, audited), not handed a workflow that can only abort."""
    service = ClientService(worker)
    service._refuses_work = lambda: None  # rejoined, writable: only the key matters here
    own = load_private_key(worker.config.key_file)
    changed, refused = worker.trust.learn([make_revocation(
        worker.domain, own.public_key(), own, serial=1, now_ms=worker.now_ms())])
    assert [c.kind for c in changed] == ["revocation"] and refused == 0
    head = await worker.store.audit_head()
    with pytest.raises(_Aborted) as info:
        await service.Submit(client_pb2.SubmitRequest(spec=SPEC), _PeerContext())
    code, details = info.value.args
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith(f"domain {worker.domain} has no valid key (its key is revoked)")
    assert await worker.store.list_workflows() == []
    assert (await worker.store.audit_head())[0] == head[0] + 1  # the refusal, audited
