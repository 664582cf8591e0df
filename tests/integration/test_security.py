"""Nothing unsigned, forged, replayed or untrusted changes any state; garbage never crashes."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from fedorch.core.identity.envelope import Signer, new_nonce, open_evidence, seal
from fedorch.core.identity.keys import init_keys, load_private_key
from fedorch.core.identity.trust import TrustStore
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.conftest import DOMAINS
from tests.integration.federation import running_federation
from tests.submissions import signed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    # The shells' peer RPCs (Prepare, Batch, QueryDecision...): the node engine's NodeTurn
    # boundary is checked for the same refusals in test_node_engine_security.py.
    shells = {name: {**body, "engine": "shells"} for name, body in DOMAINS.items()}
    with running_federation(tmp_path_factory.mktemp("federation"), shells) as fed:
        yield fed

SPEC = parse_spec_text("""
name: sneaky
steps:
  - id: report
    capability: report.publish
""", "test")


def _prepare(signer: Signer, recipient: str, workflow_id: str) -> peer_pb2.Envelope:
    request = peer_pb2.PrepareRequest(workflow_id=workflow_id, round=1, spec=SPEC,
                                      steps=["report"], placement={"report": recipient},
                                      submission=signed(SPEC))
    return seal(signer, recipient=recipient, now_ms=int(time.time() * 1000), nonce=new_nonce(),
                prepare=request)


async def _reserved(fed, domain: str) -> dict[str, int]:
    reply = await fed.client(domain).ListMembers(client_pb2.ListMembersRequest(), timeout=5)
    me = next(m for m in reply.members if m.self)
    return {c.name: c.capacity - c.available for c in me.capabilities}


async def test_untrusted_key_is_refused(fed, tmp_path):
    init_keys("mallory", tmp_path)
    mallory = Signer("mallory", load_private_key(tmp_path / "mallory.key"))
    before = await _reserved(fed, "partner")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call("partner", "Prepare", _prepare(mallory, "partner", "mallory.x1"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "untrusted" in err.value.details()
    assert await _reserved(fed, "partner") == before


async def test_forged_sender_is_refused(fed, tmp_path):
    # Signed with an unknown key while claiming to be eu-west, a trusted domain.
    init_keys("eu-west", tmp_path)
    forger = Signer("eu-west", load_private_key(tmp_path / "eu-west.key"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call("partner", "Prepare", _prepare(forger, "partner", "eu-west.x2"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "signature" in err.value.details()


async def test_tampered_body_is_refused(fed):
    envelope = _prepare(fed.signer("eu-west"), "partner", "eu-west.x3")
    body = bytearray(envelope.body)
    body[-1] ^= 0x01
    tampered = peer_pb2.Envelope(body=bytes(body), signature=envelope.signature)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call("partner", "Prepare", tampered)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_replayed_message_is_refused_and_wrong_recipient_too(fed):
    envelope = _prepare(fed.signer("eu-west"), "partner", "eu-west.x4")
    vote = await fed.peer_call("partner", "Prepare", envelope)  # genuine: a signed vote
    assert peer_pb2.Body.FromString(vote.body).vote.yes
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call("partner", "Prepare", envelope)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "replay" in err.value.details()
    misdelivered = _prepare(fed.signer("eu-west"), "partner", "eu-west.x5")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call("us-east", "Prepare", misdelivered)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_stale_timestamp_is_refused(fed):
    request = peer_pb2.DecisionQuery(workflow_id="partner.x6", round=1)
    old = seal(fed.signer("eu-west"), recipient="partner",
               now_ms=int(time.time() * 1000) - 3_600_000, nonce=new_nonce(),
               decision_query=request)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call("partner", "QueryDecision", old)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "window" in err.value.details()


async def test_reflection_lists_the_services(fed):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(fed.address("partner")) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request]), timeout=5):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert {"fedorch.v1.Client", "fedorch.v1.Peer", "grpc.health.v1.Health"} <= names


def _batch(signer: Signer, recipient: str, *items: peer_pb2.Body) -> peer_pb2.Envelope:
    return seal(signer, recipient=recipient, now_ms=int(time.time() * 1000), nonce=new_nonce(),
                batch=peer_pb2.BatchRequest(items=items))


def _prepare_item(workflow_id: str, capability: str) -> peer_pb2.Body:
    spec = parse_spec_text(f"name: b\nsteps:\n  - {{id: s, capability: {capability}}}\n", "t")
    return peer_pb2.Body(prepare=peer_pb2.PrepareRequest(
        workflow_id=workflow_id, round=1, spec=spec, steps=["s"], placement={"s": "partner"},
        submission=signed(spec)))


async def test_a_batch_is_opened_once_and_each_item_answered_on_its_own(fed):
    before = await _reserved(fed, "partner")
    envelope = _batch(fed.signer("eu-west"), "partner",
                      _prepare_item("eu-west.b1", "test.double"),
                      _prepare_item("eu-west.b2", "no.such.capability"),
                      peer_pb2.Body(vote=peer_pb2.Vote(workflow_id="eu-west.b3", yes=True)),
                      peer_pb2.Body(decision_query=peer_pb2.DecisionQuery(
                          workflow_id="partner.unknown", round=1)))
    reply = await fed.peer_call("partner", "Batch", envelope)
    trust = TrustStore.from_files([fed.workdir / "keys" / "partner.pub"])
    results = open_evidence(reply, trust, expect="batch_reply").batch_reply.results
    assert len(results) == 4
    # Each answer is a vote signed on its own: evidence without the rest of the batch.
    yes, no = (open_evidence(r.reply, trust, expect="vote").vote for r in results[:2])
    assert (yes.workflow_id, yes.yes) == ("eu-west.b1", True)
    assert (no.workflow_id, no.yes) == ("eu-west.b2", False) and no.reason
    assert results[2].error_code == "INVALID_ARGUMENT" and "vote" in results[2].error
    assert not results[2].HasField("reply")
    # An answer that is not evidence comes unsigned, under the batch reply's signature.
    assert not results[3].HasField("reply")
    answer = results[3].body.decision_answer
    assert answer.workflow_id == "partner.unknown" and answer.known
    # Its own workflow that it never heard of: presumed abort, in a signed decision.
    decision = open_evidence(answer.decision, trust, expect="decision").decision
    assert decision.outcome == peer_pb2.OUTCOME_ABORT
    # The reservation shows in partner's published record (rate-limited, so wait).
    deadline = time.monotonic() + 10
    while (await _reserved(fed, "partner"))["test.double"] != before["test.double"] + 1:
        assert time.monotonic() < deadline, "the reservation was never published"
        await asyncio.sleep(0.05)
    # The batch as a whole is replay-protected like any other message.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call("partner", "Batch", envelope)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "replay" in err.value.details()


async def test_a_batch_from_an_untrusted_key_changes_nothing(fed, tmp_path):
    init_keys("mallory", tmp_path)
    mallory = Signer("mallory", load_private_key(tmp_path / "mallory.key"))
    before = await _reserved(fed, "partner")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call("partner", "Batch",
                         _batch(mallory, "partner", _prepare_item("mallory.b4", "report.publish")))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await _reserved(fed, "partner") == before


async def test_an_oversized_batch_is_refused_whole(fed):
    from fedorch.runtime.peer_service import MAX_BATCH_ITEMS

    # Refused as one (a status, not a BatchReply of per-item answers).
    items = [peer_pb2.Body(decision_query=peer_pb2.DecisionQuery(workflow_id=f"x.{i}", round=1))
             for i in range(MAX_BATCH_ITEMS + 1)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call("partner", "Batch", _batch(fed.signer("eu-west"), "partner",
                                                         *items))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(MAX_BATCH_ITEMS) in err.value.details()


@pytest.mark.parametrize("method", ["Swim", "Prepare", "Decide", "QueryDecision",
                                    "ReportStep", "CancelWorkflow", "Paxos", "Batch"])
async def test_garbage_bytes_never_crash_an_agent(fed, method):
    async with grpc.aio.insecure_channel(fed.address("us-east")) as channel:
        raw = channel.unary_unary(f"/fedorch.v1.Peer/{method}",
                                  request_serializer=None, response_deserializer=None)
        for garbage in (b"\xff\xfe\x00garbage", b"", bytes(range(256)) * 4):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await raw(garbage, timeout=5)
            # Empty bytes parse as an empty Envelope, which fails authentication.
            assert err.value.code() in (grpc.StatusCode.UNAUTHENTICATED,
                                        grpc.StatusCode.INVALID_ARGUMENT), err.value
            assert "Traceback" not in (err.value.details() or "")
        client_raw = channel.unary_unary("/fedorch.v1.Client/Submit",
                                         request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError):
            await client_raw(b"\xff\xff\xff\xff", timeout=5)
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
