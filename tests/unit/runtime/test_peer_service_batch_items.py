"""A Batch RPC's items run on tasks the agent owns: a caller that goes away (gRPC then
cancels the handler) cuts none of them short, and a handler that stays gets every
item's answer."""

from __future__ import annotations

import asyncio

import pytest
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.peer_service import PeerService

from tests.unit.runtime.fuzz_harness import FakeContext, Harness

WAIT_S = 10.0


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.close()


def _held_service(h: Harness):
    """The agent's Peer service with step results held until `release` is set."""
    service = PeerService(h.agent)
    release, both_started, both_ended = asyncio.Event(), asyncio.Event(), asyncio.Event()
    started: list[str] = []
    ended: list[str] = []

    async def held(body: peer_pb2.Body):
        started.append(body.step_result.workflow_id)
        if len(started) == 2:
            both_started.set()
        await release.wait()
        ended.append(body.step_result.workflow_id)
        if len(ended) == 2:
            both_ended.set()
        return "ack", peer_pb2.Ack(ok=True, error=body.step_result.workflow_id)

    service._handlers["step_result"] = held
    return service, release, both_started, both_ended, ended


def _batch(h: Harness, *workflow_ids: str) -> peer_pb2.Envelope:
    # Results that pass the authority check (well-formed ids, in the sender's own name).
    return h.seal(h.beta, batch=peer_pb2.BatchRequest(items=[
        peer_pb2.Body(step_result=peer_pb2.StepResult(workflow_id=wf, domain="beta"))
        for wf in workflow_ids]))


def test_a_batch_whose_caller_goes_away_still_runs_every_item(harness: Harness) -> None:
    service, release, both_started, both_ended, ended = _held_service(harness)

    async def scenario() -> None:
        call = asyncio.create_task(service.Batch(_batch(harness, "alpha.wf1", "alpha.wf2"),
                                                 FakeContext()))
        async with asyncio.timeout(WAIT_S):
            await both_started.wait()
        call.cancel()  # what gRPC does when the caller goes away
        with pytest.raises(asyncio.CancelledError):
            await call
        assert ended == []
        release.set()
        async with asyncio.timeout(WAIT_S):
            await both_ended.wait()

    harness.run(scenario())
    assert sorted(ended) == ["alpha.wf1", "alpha.wf2"]


def test_a_batch_answers_each_item_in_order(harness: Harness) -> None:
    service, release, _, _, _ = _held_service(harness)
    release.set()
    reply = harness.call(service.Batch, _batch(harness, "alpha.wf1", "alpha.wf2", "alpha.wf3"))
    results = peer_pb2.Body.FromString(reply.body).batch_reply.results
    assert [r.body.ack.error for r in results] == ["alpha.wf1", "alpha.wf2", "alpha.wf3"]
    assert all(not r.error_code for r in results)
