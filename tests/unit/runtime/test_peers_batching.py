"""PeerChannels batching: requests for one peer gather while calls are out, leave
together in one signed Batch call, and each caller gets its own signed answer.

A small Peer server runs in this process on 127.0.0.1; it signs every answer
and records each call it receives, so the tests can see what went on the wire.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, new_nonce, open_message, seal
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime import peers as peers_module
from fedorch.runtime.peers import PeerCallError, PeerChannels

A_KEY, B_KEY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
A, B = Signer("alpha", A_KEY), Signer("beta", B_KEY)


def _trust() -> TrustStore:
    return TrustStore({"alpha": A_KEY.public_key(), "beta": B_KEY.public_key()})


class FakePeer(peer_pb2_grpc.PeerServicer):
    """Answers a step result with a signed Ack naming its workflow; a workflow id
    starting with "fail" fails (INTERNAL in a batch); "slow" holds until released."""

    def __init__(self, batch: bool = True) -> None:
        self.batch = batch
        self.calls: list[tuple[str, int]] = []  # (rpc, items)
        self.release = asyncio.Event()
        self.guard = ReplayGuard(60_000)

    def _open(self, envelope, expect):
        return open_message(envelope, _trust(), self.guard, me="beta",
                            now_ms=int(time.time() * 1000), expect=expect)

    async def _answer(self, body: peer_pb2.Body) -> peer_pb2.Envelope:
        wf = body.step_result.workflow_id
        if wf.startswith("slow"):
            await self.release.wait()
        if wf.startswith("fail"):
            raise RuntimeError("boom")
        return seal(B, recipient=body.sender, now_ms=int(time.time() * 1000),
                    nonce=new_nonce(), ack=peer_pb2.Ack(ok=True, error=wf))

    async def ReportStep(self, request, context):
        self.calls.append(("ReportStep", 1))
        body = self._open(request, "step_result")
        try:
            return await self._answer(body)
        except RuntimeError as e:
            await context.abort(grpc.StatusCode.INTERNAL, str(e))

    async def Prepare(self, request, context):
        self.calls.append(("Prepare", 1))
        body = self._open(request, "prepare")
        return seal(B, recipient=body.sender, now_ms=int(time.time() * 1000),
                    nonce=new_nonce(), vote=peer_pb2.Vote(
                        workflow_id=body.prepare.workflow_id, domain="beta", yes=True))

    async def Batch(self, request, context):
        if not self.batch:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no Batch here")
        outer = self._open(request, "batch")
        self.calls.append(("Batch", len(outer.batch.items)))
        results = []
        for item in outer.batch.items:
            item.sender = outer.sender
            try:
                if item.step_result.workflow_id.startswith("plain"):
                    # An answer that is not evidence: payload only, under the batch's
                    # signature (the sender field inside is not believed).
                    results.append(peer_pb2.BatchResult(body=peer_pb2.Body(
                        sender="mallory", ack=peer_pb2.Ack(ok=True, error="plain"))))
                    continue
                if item.step_result.workflow_id.startswith("odd"):
                    results.append(peer_pb2.BatchResult(body=peer_pb2.Body(
                        vote=peer_pb2.Vote(workflow_id="odd"))))
                    continue
                results.append(peer_pb2.BatchResult(reply=await self._answer(item)))
            except RuntimeError as e:
                results.append(peer_pb2.BatchResult(error_code="INTERNAL", error=str(e)))
        return seal(B, recipient=outer.sender, now_ms=int(time.time() * 1000),
                    nonce=new_nonce(), batch_reply=peer_pb2.BatchReply(results=results))


@pytest.fixture
async def peer(request):
    fake = FakePeer(batch=getattr(request, "param", True))
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    peer_pb2_grpc.add_PeerServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    fake.endpoint = f"127.0.0.1:{port}"
    yield fake
    await server.stop(None)


@pytest.fixture
async def channels():
    async with asyncio.TaskGroup() as tg:
        batches: list[int] = []
        errors: list[tuple[str, str]] = []
        ch = PeerChannels(A, _trust(), ReplayGuard(60_000),
                          spawn=lambda coro, name: tg.create_task(coro, name=name),
                          on_batch=batches.append,
                          on_error=lambda m, c: errors.append((m, c)))
        ch.batches, ch.errors = batches, errors
        yield ch
        await ch.close()


def _query(ch: PeerChannels, endpoint: str, wf: str, timeout: float = 5.0, pad: int = 0):
    return ch.call(endpoint, "ReportStep", recipient="beta", expect="ack", timeout=timeout,
                   step_result=peer_pb2.StepResult(workflow_id=wf, step_id="s" * (pad + 1)))


async def _wait(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def _queued(ch: PeerChannels) -> int:
    """Requests waiting in the lanes for a free call slot."""
    return sum(len(lane.pending) for lane in ch._lanes.values())


async def _occupy(ch: PeerChannels, peer: FakePeer) -> list[asyncio.Task]:
    """Fill every call slot of the lane with a call the peer holds, one call each."""
    held = []
    for i in range(peers_module.MAX_IN_FLIGHT):
        held.append(asyncio.create_task(_query(ch, peer.endpoint, f"slow{i}")))
        await _wait(lambda n=i + 1: len(peer.calls) == n)
    return held


async def test_one_request_alone_goes_as_its_own_rpc(peer, channels):
    body, envelope = await _query(channels, peer.endpoint, "w1")
    assert body.sender == "beta" and body.ack.error == "w1"
    assert peer.calls == [("ReportStep", 1)] and channels.batches == []
    B_KEY.public_key().verify(envelope.signature, envelope.body)  # as received, signed


async def test_requests_gather_while_calls_are_out_and_each_gets_its_answer(peer, channels):
    # The peer holds MAX_IN_FLIGHT calls: everything after them gathers.
    held = await _occupy(channels, peer)
    waiting = [asyncio.create_task(_query(channels, peer.endpoint, f"w{i}")) for i in range(40)]
    await _wait(lambda: _queued(channels) == 40)  # every call slot is taken: they wait
    assert len(peer.calls) == peers_module.MAX_IN_FLIGHT
    peer.release.set()
    answers = await asyncio.gather(*waiting, *held)
    assert [body.ack.error for body, _ in answers] == \
        [f"w{i}" for i in range(40)] + [f"slow{i}" for i in range(len(held))]
    batched = [n for rpc, n in peer.calls if rpc == "Batch"]
    assert sum(batched) == 40 and len(batched) <= 2, peer.calls  # not 40 calls
    assert channels.batches == batched
    for _, envelope in answers:  # each answer is separately signed evidence
        B_KEY.public_key().verify(envelope.signature, envelope.body)


async def test_a_failed_item_fails_only_its_caller(peer, channels):
    held = await _occupy(channels, peer)
    good = asyncio.create_task(_query(channels, peer.endpoint, "ok"))
    bad = asyncio.create_task(_query(channels, peer.endpoint, "fail-me"))
    await _wait(lambda: _queued(channels) == 2)
    peer.release.set()
    with pytest.raises(PeerCallError) as err:
        await bad
    assert err.value.code == "INTERNAL" and "boom" in err.value.detail
    assert (await good)[0].ack.error == "ok"
    await asyncio.gather(*held)
    assert ("ReportStep", "INTERNAL") in channels.errors
    assert ("Batch", 2) in peer.calls


@pytest.mark.parametrize("peer", [False], indirect=True)
async def test_a_peer_without_batch_gets_single_calls(peer, channels):
    held = await _occupy(channels, peer)
    waiting = [asyncio.create_task(_query(channels, peer.endpoint, f"w{i}")) for i in range(5)]
    await _wait(lambda: _queued(channels) == 5)
    peer.release.set()
    answers = await asyncio.gather(*waiting, *held)
    assert [b.ack.error for b, _ in answers[:5]] == [f"w{i}" for i in range(5)]
    assert [rpc for rpc, _ in peer.calls].count("ReportStep") == 5 + len(held)
    # Once told UNIMPLEMENTED, it does not ask again.
    await _query(channels, peer.endpoint, "later")
    assert ("Batch", "UNIMPLEMENTED") in channels.errors
    assert channels.errors.count(("Batch", "UNIMPLEMENTED")) == 1


async def test_a_caller_whose_deadline_passes_gets_deadline_exceeded(peer, channels):
    held = await _occupy(channels, peer)
    with pytest.raises(PeerCallError) as err:
        await _query(channels, peer.endpoint, "impatient", timeout=0.05)
    assert err.value.code == "DEADLINE_EXCEEDED"
    peer.release.set()
    await asyncio.gather(*held)
    # Given up before it could leave: it was never sent.
    assert all(n == 1 for _, n in peer.calls) and len(peer.calls) == len(held)


async def test_an_unreachable_peer_fails_every_caller_with_its_code(channels):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{s.getsockname()[1]}"
    results = await asyncio.gather(
        *(channels.call(endpoint, "ReportStep", recipient="beta", expect="ack",
                        timeout=2.0, wait_for_ready=False,
                        step_result=peer_pb2.StepResult(workflow_id=f"w{i}"))
          for i in range(6)), return_exceptions=True)
    assert all(isinstance(r, PeerCallError) and r.code == "UNAVAILABLE" for r in results)


async def test_answers_under_the_batch_signature_and_answers_of_the_wrong_kind(peer, channels):
    held = await _occupy(channels, peer)
    plain = asyncio.create_task(_query(channels, peer.endpoint, "plain"))
    odd = asyncio.create_task(_query(channels, peer.endpoint, "odd"))
    signed = asyncio.create_task(_query(channels, peer.endpoint, "signed"))
    await _wait(lambda: _queued(channels) == 3)
    peer.release.set()
    body, envelope = await plain
    assert body.ack.error == "plain"
    assert body.sender == "beta"  # from the signed batch reply, not the item
    outer = peer_pb2.Body.FromString(envelope.body)  # the batch reply, signed by beta
    assert outer.WhichOneof("payload") == "batch_reply"
    B_KEY.public_key().verify(envelope.signature, envelope.body)
    with pytest.raises(PeerCallError) as err:
        await odd
    assert err.value.code == "BAD_REPLY" and "expected ack" in err.value.detail
    body, envelope = await signed
    assert peer_pb2.Body.FromString(envelope.body).ack.error == "signed"  # signed alone
    await asyncio.gather(*held)


async def test_a_batch_stays_under_its_byte_bound(peer, channels, monkeypatch):
    monkeypatch.setattr(peers_module, "MAX_BATCH_BYTES", 3000)
    held = await _occupy(channels, peer)
    big = [asyncio.create_task(_query(channels, peer.endpoint, f"b{i}", pad=1000))
           for i in range(6)]  # just over 1 KB each: two fit in 3,000 bytes
    await _wait(lambda: _queued(channels) == 6)
    peer.release.set()
    answers = await asyncio.gather(*big, *held)
    assert [b.ack.error for b, _ in answers[:6]] == [f"b{i}" for i in range(6)]
    batched = [n for rpc, n in peer.calls if rpc == "Batch"]
    assert sum(batched) == 6 and max(batched) <= 2 and len(batched) >= 3, peer.calls


def _prepare(ch: PeerChannels, endpoint: str, wf: str):
    return ch.call(endpoint, "Prepare", recipient="beta", expect="vote", timeout=5.0,
                   prepare=peer_pb2.PrepareRequest(workflow_id=wf, round=1))


async def test_a_prepare_does_not_wait_behind_a_step_report_in_flight(peer, channels):
    # Every slot of the progress lane is held by a step report the peer does not answer
    # yet; a PREPARE for the same peer still leaves at once, as its own RPC.
    held = await _occupy(channels, peer)
    body, envelope = await _prepare(channels, peer.endpoint, "admitted")
    assert body.vote.workflow_id == "admitted" and body.vote.yes
    assert peer.calls[-1] == ("Prepare", 1)
    assert not peer.release.is_set() and not any(t.done() for t in held)
    B_KEY.public_key().verify(envelope.signature, envelope.body)
    peer.release.set()
    await asyncio.gather(*held)


async def test_step_reports_still_gather_behind_one_of_their_own_class(peer, channels):
    # The lane classes do not undo batching: reports queued behind a held report leave
    # together, whatever PREPAREs went meanwhile.
    held = await _occupy(channels, peer)
    waiting = [asyncio.create_task(_query(channels, peer.endpoint, f"w{i}")) for i in range(5)]
    await _wait(lambda: _queued(channels) == 5)
    await _prepare(channels, peer.endpoint, "between")
    assert _queued(channels) == 5  # the reports still wait for their own lane
    peer.release.set()
    answers = await asyncio.gather(*waiting, *held)
    assert [b.ack.error for b, _ in answers[:5]] == [f"w{i}" for i in range(5)]
    assert ("Batch", 5) in peer.calls, peer.calls
