"""Peer-message security on real agents: the NodeTurn boundary
(runtime/node_engine/boundary.py) refuses, with the status codes a peer sees: an untrusted key, a forged
sender, a tampered body, a replay, a wrong recipient and a stale timestamp are
UNAUTHENTICATED; bytes that are no envelope, or messages that do not decode, are
UNAUTHENTICATED or INVALID_ARGUMENT, never a crash; an envelope past the server's
message size is RESOURCE_EXHAUSTED. Each refused envelope posts nothing to the Node
(`fedorch_node_messages_total{outcome="posted"}` stays put) and is counted; the same
holds on the NodeTurns stream, which a refused envelope ends. Afterwards the agents
still run a workflow across all three."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.identity.keys import init_keys, load_private_key
from fedorch.core.negotiation.messages import DecisionQuery
from fedorch.core.node.records import Timing
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2
from fedorch.runtime.node_codec import node_codec
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.federation import (
    node_engine_domains,
    running_federation,
    state_name,
)

pytestmark = pytest.mark.integration

ECHO = {"type": "builtin", "name": "echo"}
NAMES = ("eu-west", "us-east", "partner")
DOMAINS = node_engine_domains(NAMES, lambda name: [
    {"name": f"test.{name}", "capacity": 2, "executor": ECHO}])
ACROSS = "name: across\nsteps:\n" + "".join(
    f"  - {{id: s{i}, capability: test.{name}}}\n" for i, name in enumerate(NAMES))
SERVER_MAX_BYTES = 4 * 1024 * 1024  # the daemon's grpc.max_receive_message_length


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    with running_federation(tmp_path_factory.mktemp("node-security"), DOMAINS) as fed:
        yield fed


@pytest.fixture
async def fed(federation):
    yield federation
    await federation.close_channels()


def _turn(signer: Signer, recipient: str, msgs: tuple = (), *, payload: bytes | None = None,
          sent_at_ms: int | None = None) -> peer_pb2.Envelope:
    data = node_codec().encode(msgs) if payload is None else payload
    return seal(signer, recipient=recipient, now_ms=sent_at_ms or int(time.time() * 1000),
                nonce=new_nonce(), node_turn=peer_pb2.NodeTurn(messages=data))


def _query(asker: str) -> tuple:
    """A question partner would answer (about a workflow of its own nobody runs)."""
    return (DecisionQuery(("partner.0123456789abcdef0123", 1), asker),)


async def _refused(fed, domain: str, envelope: peer_pb2.Envelope) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call(domain, "NodeTurn", envelope)
    return err.value


def _counts(fed, domain: str, reason: str) -> tuple[float, float]:
    """(messages posted to the Node, envelopes refused for `reason`) at `domain`."""
    return (fed.metric(domain, "fedorch_node_messages_total", outcome="posted"),
            fed.metric(domain, "fedorch_rejected_messages_total", reason=reason))


async def _changes_nothing(fed, domain: str, reason: str, refusals: int, attempt) -> None:
    """`attempt()` makes `refusals` refused envelopes: none posted, each counted."""
    posted, refused = await asyncio.to_thread(_counts, fed, domain, reason)
    await attempt()
    after = await asyncio.to_thread(_counts, fed, domain, reason)
    assert after == (posted, refused + refusals), (reason, (posted, refused), after)


def _mallory(tmp_path, name: str = "mallory") -> Signer:
    init_keys(name, tmp_path)
    return Signer(name, load_private_key(tmp_path / f"{name}.key"))


async def test_an_untrusted_key_is_refused(fed, tmp_path):
    mallory = _mallory(tmp_path)

    async def attempt() -> None:
        err = await _refused(fed, "partner", _turn(mallory, "partner", _query("mallory")))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "untrusted" in err.details()

    await _changes_nothing(fed, "partner", "unauthenticated", 1, attempt)


async def test_a_forged_sender_is_refused(fed, tmp_path):
    # Signed with a key nobody trusts while claiming to be eu-west, a trusted domain.
    forger = _mallory(tmp_path, "eu-west")

    async def attempt() -> None:
        err = await _refused(fed, "partner", _turn(forger, "partner", _query("eu-west")))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "signature" in err.details()

    await _changes_nothing(fed, "partner", "unauthenticated", 1, attempt)


async def test_a_tampered_body_is_refused(fed):
    envelope = _turn(fed.signer("eu-west"), "partner", _query("eu-west"))
    body = bytearray(envelope.body)
    body[-1] ^= 0x01
    tampered = peer_pb2.Envelope(body=bytes(body), signature=envelope.signature)

    async def attempt() -> None:
        err = await _refused(fed, "partner", tampered)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    await _changes_nothing(fed, "partner", "unauthenticated", 1, attempt)


async def test_a_replay_and_a_wrong_recipient_are_refused(fed):
    envelope = _turn(fed.signer("eu-west"), "partner", _query("eu-west"))  # genuine
    posted, _ = await asyncio.to_thread(_counts, fed, "partner", "unauthenticated")
    assert await fed.peer_call("partner", "NodeTurn", envelope) == peer_pb2.Envelope()
    assert (await asyncio.to_thread(_counts, fed, "partner", "unauthenticated"))[0] \
        == posted + 1  # its question reached the Node

    async def attempt() -> None:
        err = await _refused(fed, "partner", envelope)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "replay" in err.details()
        misdelivered = _turn(fed.signer("eu-west"), "partner", _query("eu-west"))
        err = await _refused(fed, "us-east", misdelivered)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "delivered to 'us-east'" in err.details()

    await _changes_nothing(fed, "partner", "unauthenticated", 1, attempt)


async def test_a_stale_timestamp_is_refused(fed):
    old = _turn(fed.signer("eu-west"), "partner", _query("eu-west"),
                sent_at_ms=int(time.time() * 1000) - 3_600_000)

    async def attempt() -> None:
        err = await _refused(fed, "partner", old)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "window" in err.details()

    await _changes_nothing(fed, "partner", "unauthenticated", 1, attempt)


async def test_messages_that_do_not_decode_or_no_peer_may_send(fed):
    """Signed by a trusted peer: bytes that are no tuple of the Node's values refuse the
    envelope (INVALID_ARGUMENT); a value no peer may send (a driver's input) is dropped
    alone and counted, and NodeTurn says so (PERMISSION_DENIED)."""
    eu_west = fed.signer("eu-west")

    async def undecodable() -> None:
        for payload in (b"not json", b'["Disk"]', b'"a string, not a tuple"'):
            err = await _refused(fed, "partner", _turn(eu_west, "partner", payload=payload))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
            assert "Traceback" not in err.details()

    await _changes_nothing(fed, "partner", "undecodable", 3, undecodable)

    async def not_a_message() -> None:
        err = await _refused(fed, "partner", _turn(eu_west, "partner", (Timing(),)))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "not a message a peer may send" in err.details()

    await _changes_nothing(fed, "partner", "not_a_message", 1, not_a_message)


async def _stream(fed, domain: str, *envelopes: peer_pb2.Envelope
                  ) -> tuple[int, grpc.StatusCode, str]:
    """The envelopes written on one NodeTurns stream: how many were answered, and the
    status the stream ended with."""
    answered = 0
    async with grpc.aio.insecure_channel(fed.address(domain)) as channel:
        call = channel.stream_stream(
            "/fedorch.v1.Peer/NodeTurns",
            request_serializer=lambda e: e if isinstance(e, bytes) else e.SerializeToString(),
            response_deserializer=peer_pb2.Envelope.FromString)(timeout=10)
        try:
            for envelope in envelopes:
                await call.write(envelope)
                if await call.read() is grpc.aio.EOF:
                    break
                answered += 1
            await call.done_writing()
            code = await call.code()
        except grpc.aio.AioRpcError as e:
            return answered, e.code(), e.details() or ""
        return answered, code, await call.details()


async def test_on_the_stream_a_refused_envelope_ends_it_with_the_same_code(fed, tmp_path):
    mallory = _mallory(tmp_path)
    eu_west = fed.signer("eu-west")

    async def attempt() -> None:
        answered, code, details = await _stream(
            fed, "partner", _turn(eu_west, "partner"),
            _turn(eu_west, "partner", (Timing(),)),  # dropped alone: the stream goes on
            _turn(mallory, "partner", _query("mallory")), _turn(eu_west, "partner"))
        assert (answered, code) == (2, grpc.StatusCode.UNAUTHENTICATED), details
        assert "untrusted" in details
        replayed = _turn(eu_west, "partner")
        answered, code, details = await _stream(fed, "partner", replayed, replayed)
        assert (answered, code) == (1, grpc.StatusCode.UNAUTHENTICATED), details
        assert "replay" in details

    await _changes_nothing(fed, "partner", "unauthenticated", 2, attempt)


@pytest.mark.parametrize("method", ["NodeTurn", "NodeTurns"])
async def test_garbage_bytes_and_oversized_envelopes_never_crash_an_agent(fed, method):
    oversized = _turn(fed.signer("eu-west"), "us-east",
                      payload=b"\x00" * (SERVER_MAX_BYTES + 1)).SerializeToString()
    async with grpc.aio.insecure_channel(fed.address("us-east")) as channel:
        path = f"/fedorch.v1.Peer/{method}"
        for garbage in (b"\xff\xfe\x00garbage", b"", bytes(range(256)) * 4, oversized):
            if method == "NodeTurn":
                raw = channel.unary_unary(path, request_serializer=None,
                                          response_deserializer=None)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await raw(garbage, timeout=5)
                code, details = err.value.code(), err.value.details() or ""
            else:
                _, code, details = await _stream(fed, "us-east", garbage)
            if garbage is oversized:  # refused whole by the server, before any handler
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
            else:  # empty bytes parse as an empty Envelope, which fails authentication
                assert code in (grpc.StatusCode.UNAUTHENTICATED,
                                grpc.StatusCode.INVALID_ARGUMENT), (garbage[:16], details)
            assert "Traceback" not in details
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_older_engines_peer_calls_are_unimplemented(fed):
    # A peer of an earlier release still calls QueryDecision (or Prepare, Batch...):
    # those RPCs are gone from the Peer service, so gRPC itself answers.
    turn = seal(fed.signer("eu-west"), recipient="partner", now_ms=int(time.time() * 1000),
                nonce=new_nonce(), node_turn=peer_pb2.NodeTurn())
    for method in ("QueryDecision", "Prepare", "Batch", "Takeover"):
        async with grpc.aio.insecure_channel(fed.address("partner")) as channel:
            raw = channel.unary_unary(f"/fedorch.v1.Peer/{method}",
                                      request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await raw(turn.SerializeToString(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, method


async def test_reflection_lists_the_services(fed):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(fed.address("partner")) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request]), timeout=5):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert {"fedorch.v1.Client", "fedorch.v1.Peer", "grpc.health.v1.Health"} <= names


async def test_after_every_refusal_a_workflow_still_runs_across_all_three(fed):
    workflow_id = await fed.submit("eu-west", ACROSS)
    status = await fed.wait_state("eu-west", workflow_id)
    assert state_name(status) == "SUCCEEDED", status
    listed = await fed.client("partner").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                       timeout=5)
    assert [w.id for w in listed.workflows] == [workflow_id]  # nothing forged was taken
