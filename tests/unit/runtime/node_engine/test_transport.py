"""The node engine's Transport port (runtime/node_engine/transport.py): one signed
envelope per turn and peer on one stream per peer, messages to itself posted back,
acknowledgements riding on the next envelope to their peer (or alone after a short
wait), an unreachable or failing peer's messages dropped and counted, a bounded queue
per peer,
and, over real gRPC on 127.0.0.1, one stream for many envelopes, a stream ended and
opened again on time, and a peer reached again after it restarted."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, open_evidence
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.trust import TrustStore
from fedorch.core.node import Acks, Message
from fedorch.core.node.records import AckMsg
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_engine import transport as transport_module
from fedorch.runtime.node_engine.boundary import TurnBoundary
from fedorch.runtime.node_engine.services import NodePeerService
from fedorch.runtime.node_engine.transport import GrpcTransport, PeerSender

from tests.unit.runtime.node_engine.test_boundary import Clock

KEY = Ed25519PrivateKey.generate()
WAIT_S = 10.0  # a deadline for conditions, not a timing


class Stream:
    """A NodeTurns call: records each envelope written and answers it, or fails as
    told."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub
        self.cancelled = False
        self.unanswered = 0

    def done(self) -> bool:
        return self.cancelled

    def cancel(self) -> bool:
        self.cancelled = True
        return True

    async def write(self, envelope) -> None:
        self.stub.called.set()
        if self.stub.fail is not None:
            raise grpc.aio.AioRpcError(self.stub.fail, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), "down")
        self.stub.calls.append(envelope)
        self.unanswered += 1

    async def read(self):
        assert self.unanswered == 1  # one envelope out at a time
        if self.stub.stuck:
            await asyncio.Event().wait()  # the peer never answers
        self.unanswered -= 1
        return peer_pb2.Envelope()


class Stub:
    """A Peer stub whose NodeTurns streams record into `calls`."""

    def __init__(self, calls: list, called: asyncio.Event,
                 fail: grpc.StatusCode | None = None, stuck: bool = False) -> None:
        self.calls, self.called, self.fail, self.stuck = calls, called, fail, stuck
        self.streams: list[Stream] = []

    def NodeTurns(self, timeout):  # noqa: N802 - the RPC's name
        assert timeout > 0  # every stream has a deadline
        self.streams.append(Stream(self))
        return self.streams[-1]


def ack(n: int, to: str) -> AckMsg:
    return AckMsg(("final", f"alpha.wf-{n}", to))


async def test_one_envelope_per_turn_and_peer_and_unreachable_peers_counted():
    posted: list[object] = []
    calls: dict[str, list] = {"beta": [], "gamma": []}
    endpoints = {"beta": "b:1", "gamma": "g:1", "epsilon": "e:1"}  # delta: no address

    called = asyncio.Event()
    stubs = {"b:1": Stub(calls["beta"], called), "g:1": Stub(calls["gamma"], called),
             "e:1": Stub([], called, fail=grpc.StatusCode.UNAVAILABLE)}
    senders: list[asyncio.Task] = []

    async with asyncio.TaskGroup() as group:
        def spawn(coro, name: str) -> asyncio.Task:
            senders.append(group.create_task(coro, name=name))
            return senders[-1]

        transport = GrpcTransport("alpha", Signer("alpha", KEY), Clock(), node_codec(),
                                  posted.append, endpoints.get, stubs.__getitem__, spawn)
        # One turn: three messages to beta, two to gamma, one to itself, one to each of
        # two peers it cannot reach.
        for n in range(3):
            transport.send("beta", ack(n, "beta"))
        transport.send("alpha", ack(9, "alpha"))
        transport.send("gamma", ack(3, "gamma"))
        transport.send("gamma", ack(4, "gamma"))
        transport.send("delta", ack(5, "delta"))
        transport.send("epsilon", ack(6, "epsilon"))
        assert [type(p) for p in posted] == [Message]  # to itself: at once, unsigned
        async with asyncio.timeout(WAIT_S):
            while not (calls["beta"] and calls["gamma"]
                       and sum(transport.dropped.values()) == 2):
                called.clear()
                await called.wait()
        # A second turn to beta goes on the same stream.
        transport.send("beta", ack(7, "beta"))
        async with asyncio.timeout(WAIT_S):
            while len(calls["beta"]) < 2:
                called.clear()
                await called.wait()
        assert len(senders) == 4  # one sender task per peer
        for task in senders:  # they run until their owner stops them
            task.cancel()
    trust = TrustStore({"alpha": KEY.public_key()})
    for peer, turns in (("beta", [[0, 1, 2], [7]]), ("gamma", [[3, 4]])):
        assert len(calls[peer]) == len(turns)  # ONE envelope per turn to this peer
        for envelope, numbers in zip(calls[peer], turns, strict=True):
            body = open_evidence(envelope, trust, expect="node_turn")
            assert (body.sender, body.recipient) == ("alpha", peer)
            msgs = node_codec().decode(body.node_turn.messages)
            assert [m.msg_id[1] for m in msgs] == [f"alpha.wf-{n}" for n in numbers]
        assert transport.sent[peer] == sum(map(len, turns))
    assert len(stubs["b:1"].streams) == 1  # one stream for both of beta's turns
    assert all(s.cancelled for stub in stubs.values() for s in stub.streams)  # at stop
    assert transport.dropped == {"delta": 1, "epsilon": 1}
    assert transport.envelopes == 4  # beta twice, gamma, and the one epsilon refused


def test_a_peers_queue_is_bounded_and_what_overflows_is_counted():
    transport = GrpcTransport("alpha", Signer("alpha", KEY), Clock(), node_codec(),
                              lambda e: None, lambda p: "b:1", lambda e: None,
                              lambda coro, name: None)
    transport.max_queued = 5
    sender = PeerSender(transport, "beta")
    sender.put([ack(n, "beta") for n in range(3)])
    sender.put([ack(n, "beta") for n in range(3, 6)])
    sender.put([ack(6, "beta")])
    assert sender.queued == 5
    assert transport.dropped == {"beta": 2}


async def test_an_envelope_unanswered_past_its_deadline_cancels_the_stream(monkeypatch):
    monkeypatch.setattr(transport_module, "NODE_TURN_TIMEOUT_S", 0.05)
    called = asyncio.Event()
    stub = Stub([], called, stuck=True)
    transport = GrpcTransport("alpha", Signer("alpha", KEY), Clock(), node_codec(),
                              lambda e: None, lambda p: "b:1", lambda e: stub,
                              lambda coro, name: None)
    sender = PeerSender(transport, "beta")
    async with asyncio.timeout(WAIT_S):
        await sender.deliver([ack(1, "beta"), ack(2, "beta")])
    assert transport.dropped == {"beta": 2}
    assert [s.cancelled for s in stub.streams] == [True]


# ---- over real gRPC on 127.0.0.1 --------------------------------------------------------

BETA = Ed25519PrivateKey.generate()


class Agent:
    """What NodePeerService reads of the Agent."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.ready.set()
        self.heard: list[str] = []

    def heard_from(self, domain: str) -> None:
        self.heard.append(domain)


class Engine:
    """What NodePeerService reads of the NodeAgent: a real TurnBoundary at alpha."""

    def __init__(self, trusted: bool = True) -> None:
        self.agent = Agent()
        self.posted: list[Message] = []
        self.arrived = asyncio.Event()
        self.refused = asyncio.Event()
        self.boundary = TurnBoundary(
            "alpha", TrustStore({"beta": BETA.public_key()} if trusted else {}),
            ReplayGuard(60_000), Clock(), node_codec(), self.post,
            on_refused=lambda reason: self.refused.set())

    def post(self, event: Message | Acks) -> None:
        # These tests send acknowledgements, which the boundary posts as one `Acks` per
        # run of them: kept here one message each, as they were sent.
        if type(event) is Acks:
            self.posted.extend(Message(event.src, ack) for ack in event.acks)
        else:
            self.posted.append(event)
        self.arrived.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.posted) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def _serve(engine: Engine, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    peer_pb2_grpc.add_PeerServicer_to_server(NodePeerService(engine), server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, port


class Beta:
    """Beta's transport to alpha on a real channel, its sender tasks in a TaskGroup."""

    def __init__(self, port: int, group: asyncio.TaskGroup) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 200)])
        self.stub = peer_pb2_grpc.PeerStub(self.channel)
        self.tasks: list[asyncio.Task] = []

        def spawn(coro, name: str) -> asyncio.Task:
            self.tasks.append(group.create_task(coro, name=name))
            return self.tasks[-1]

        self.transport = GrpcTransport("beta", Signer("beta", BETA), Clock(), node_codec(),
                                       lambda e: None, lambda p: f"127.0.0.1:{port}",
                                       lambda e: self.stub, spawn)

    def turn(self, *numbers: int) -> None:
        for n in numbers:
            self.transport.send("alpha", AckMsg(("final", f"alpha.wf-{n}", "beta")))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.channel.close()


def _numbers(posted: list[Message]) -> list[int]:
    assert all(m.src == "beta" for m in posted)
    return [int(m.msg.msg_id[1].rpartition("-")[2]) for m in posted]


async def test_many_turns_share_one_stream_and_every_envelope_is_checked():
    engine = Engine()
    server, port = await _serve(engine)
    try:
        async with asyncio.TaskGroup() as group:
            beta = Beta(port, group)
            for turn in range(5):
                beta.turn(2 * turn, 2 * turn + 1)
                await engine.until(2 * turn + 2)
            await beta.close()
    finally:
        await server.stop(None)
    assert _numbers(engine.posted) == list(range(10))
    assert beta.transport.streams == 1
    assert beta.transport.envelopes == 5
    assert engine.boundary.posted == 10 and not engine.boundary.refused
    assert engine.agent.heard == ["beta"] * 5  # each envelope a sign of life


async def test_streams_are_ended_and_opened_again_as_they_age(monkeypatch):
    monkeypatch.setattr(transport_module, "STREAM_ROTATE_S", 0.0)  # every write
    engine = Engine()
    server, port = await _serve(engine)
    try:
        async with asyncio.TaskGroup() as group:
            beta = Beta(port, group)
            for turn in range(3):
                beta.turn(turn)
                await engine.until(turn + 1)
            await beta.close()
    finally:
        await server.stop(None)
    assert _numbers(engine.posted) == [0, 1, 2]  # nothing lost at an ended stream
    assert beta.transport.streams == 3
    assert not beta.transport.dropped


async def test_a_restarted_peer_is_reached_again_on_a_new_stream():
    first = Engine()
    server, port = await _serve(first)
    async with asyncio.TaskGroup() as group:
        beta = Beta(port, group)
        try:
            beta.turn(1)
            await first.until(1)
            await server.stop(None)  # alpha goes down with beta's stream open
            second = Engine()
            server, _ = await _serve(second, port)  # and comes back on its address
            # The Node resends what must arrive: one turn per loop until one gets in.
            n = 1
            async with asyncio.timeout(WAIT_S):
                while not second.posted:
                    n += 1
                    beta.turn(n)
                    try:
                        async with asyncio.timeout(0.2):  # a resend's period, not a check
                            await second.until(1)
                    except TimeoutError:
                        pass
        except BaseException:
            await server.stop(None)
            raise
        try:
            beta.turn(100)
            await second.until(len(second.posted) + 1)
        finally:
            await beta.close()
            await server.stop(None)
    assert _numbers(second.posted)[-1] == 100
    assert beta.transport.streams >= 2  # a new stream after the restart
    assert _numbers(first.posted) == [1]


async def test_a_refused_envelope_ends_the_stream_and_the_next_opens_another():
    engine = Engine(trusted=False)  # alpha does not trust beta yet
    server, port = await _serve(engine)
    try:
        async with asyncio.TaskGroup() as group:
            beta = Beta(port, group)
            beta.turn(1, 2)
            async with asyncio.timeout(WAIT_S):
                await engine.refused.wait()
            engine.boundary.trust.add("beta", BETA.public_key())
            beta.turn(3)
            await engine.until(1)
            await beta.close()
    finally:
        await server.stop(None)
    assert engine.boundary.refused == {"unauthenticated": 1}
    assert beta.transport.dropped == {"alpha": 2}  # the refused envelope's messages
    assert _numbers(engine.posted) == [3]
    assert beta.transport.streams == 2


def result_ack(n: int, to: str) -> AckMsg:
    """The acknowledgement of a step result, which may ride along (transport.py)."""
    return AckMsg(("result", f"alpha.wf-{n}", "s", to))


def _vote(n: int):
    from fedorch.core.node.records import VoteMsg
    return VoteMsg((f"alpha.wf-{n}", 0), "alpha", True, "")


async def _envelopes_until(calls: list, called: asyncio.Event, count: int) -> None:
    async with asyncio.timeout(WAIT_S):
        while len(calls) < count:
            called.clear()
            await called.wait()


def _carried(envelope) -> list[object]:
    body = open_evidence(envelope, TrustStore({"alpha": KEY.public_key()}),
                         expect="node_turn")
    return list(node_codec().decode(body.node_turn.messages))


def _beta(calls: list, called: asyncio.Event, group: asyncio.TaskGroup,
          tasks: list) -> GrpcTransport:
    stub = Stub(calls, called)

    def spawn(coro, name: str) -> asyncio.Task:
        tasks.append(group.create_task(coro, name=name))
        return tasks[-1]

    return GrpcTransport("alpha", Signer("alpha", KEY), Clock(), node_codec(),
                         lambda e: None, lambda p: "b:1", lambda e: stub, spawn)


@dataclass
class BetaLink:
    """alpha's transport to a stub beta, the envelopes beta was handed, and the sender
    tasks the transport started."""

    calls: list = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list = field(default_factory=list)
    transport: GrpcTransport | None = None

    async def envelopes(self, count: int) -> None:
        await _envelopes_until(self.calls, self.called, count)


@contextlib.asynccontextmanager
async def _to_beta():
    """A BetaLink whose sender tasks are cancelled on leaving (their TaskGroup's)."""
    link = BetaLink()
    async with asyncio.TaskGroup() as group:
        link.transport = _beta(link.calls, link.called, group, link.tasks)
        yield link
        for task in link.tasks:
            task.cancel()


async def test_an_acknowledgement_rides_on_the_next_envelope_to_its_peer(monkeypatch):
    """A step result's AckMsg or a DecisionAck is no envelope of its own: it waits, and
    goes first in the next turn's envelope to its peer (one envelope, not two)."""
    from fedorch.core.negotiation.messages import DecisionAck

    monkeypatch.setattr(transport_module, "RIDE_ALONG_S", 3600.0)  # never alone here
    async with _to_beta() as link:
        transport, calls, tasks = link.transport, link.calls, link.tasks
        transport.send("beta", result_ack(1, "beta"))  # a turn of acknowledgements
        transport.send("beta", DecisionAck(("alpha.wf-2", 0), "alpha"))
        assert not tasks and not transport._held  # nothing handed to a sender
        transport.send("beta", _vote(3))  # the next turn sends something to beta
        await link.envelopes(1)
    assert [type(m).__name__ for m in _carried(calls[0])] == [
        "AckMsg", "DecisionAck", "VoteMsg"]
    assert len(calls) == 1 and transport.envelopes == 1
    assert not transport._ride_timers  # its timer went with them


async def test_acknowledgements_with_nothing_to_ride_on_go_alone_in_one_envelope(
        monkeypatch):
    """Nothing else for the peer within RIDE_ALONG_S: the acknowledgements go alone, all
    in one envelope (one timer per peer, not one per acknowledgement)."""
    monkeypatch.setattr(transport_module, "RIDE_ALONG_S", 0.01)
    async with _to_beta() as link:
        transport, calls = link.transport, link.calls
        for n in range(3):
            transport.send("beta", result_ack(n, "beta"))
        assert len(transport._ride_timers) == 1
        await link.envelopes(1)
    assert [m.msg_id[1] for m in _carried(calls[0])] == [f"alpha.wf-{n}" for n in range(3)]
    assert transport.envelopes == 1 and not transport._riding and not transport._ride_timers


async def test_an_acknowledgement_joins_a_sender_that_holds_messages_at_once():
    """A sender holding messages (its envelope out) takes an acknowledgement into its
    next envelope at once: no wait, no timer."""
    transport = GrpcTransport("alpha", Signer("alpha", KEY), Clock(), node_codec(),
                              lambda e: None, lambda p: "b:1", lambda e: None,
                              lambda coro, name: None)
    sender = transport._senders["beta"] = PeerSender(transport, "beta")
    sender.put([_vote(1)])
    transport.send("beta", result_ack(2, "beta"))
    assert sender.queued == 2 and not transport._riding and not transport._ride_timers


def test_only_messages_nothing_waits_for_ride_along():
    """The end of a workflow is made once its participants acknowledged it told, and a
    placement's, a saga's and a compensation's acknowledgements move their flows on:
    those leave with their turn, as a step's result does. A DecisionAck, a result's
    AckMsg and a step's start told (RUNNING, best effort, for status only) may wait."""
    from fedorch.core.negotiation.messages import DecisionAck
    from fedorch.core.node.records import ResultMsg
    from fedorch.core.workflow.progress import StepState
    from fedorch.runtime.node_engine.transport import rides_along

    assert rides_along(DecisionAck(("alpha.wf-1", 0), "beta"))
    assert rides_along(result_ack(1, "alpha"))
    assert rides_along(ResultMsg("alpha.wf-1", "s", 1, StepState.RUNNING, {}, ""))
    for state in (StepState.SUCCEEDED, StepState.FAILED):
        assert not rides_along(ResultMsg("alpha.wf-1", "s", 1, state, {}, ""))
    for msg_id in (("final", "alpha.wf-1", "beta"), ("saga", "alpha.wf-1", "beta"),
                   ("placed", "alpha.wf-1", "s", 1, "beta"),
                   ("compensated", "alpha.wf-1", "s", 1, "beta")):
        assert not rides_along(AckMsg(msg_id))
    assert not rides_along(_vote(1))


async def test_an_end_acknowledgement_leaves_with_its_turn(monkeypatch):
    """The acknowledgement of a told end is on the workflow's way to its end: it is
    handed to its peer's sender with its turn, no timer."""
    monkeypatch.setattr(transport_module, "RIDE_ALONG_S", 3600.0)
    async with _to_beta() as link:
        transport, calls = link.transport, link.calls
        transport.send("beta", ack(1, "beta"))
        assert not transport._ride_timers
        await link.envelopes(1)
    assert [m.msg_id for m in _carried(calls[0])] == [ack(1, "beta").msg_id]


async def test_a_steps_start_told_rides_first_on_its_result(monkeypatch):
    """A quick step's start (RUNNING) and its result go in one envelope, the start
    first: the coordinator never takes a start after the step's result."""
    from fedorch.core.node.records import ResultMsg
    from fedorch.core.workflow.progress import StepState

    monkeypatch.setattr(transport_module, "RIDE_ALONG_S", 3600.0)
    async with _to_beta() as link:
        transport, calls, tasks = link.transport, link.calls, link.tasks
        transport.send("beta", ResultMsg("beta.wf-1", "s", 1, StepState.RUNNING, {}, ""))
        transport._flush()  # the turn's end: the start alone waits
        assert not tasks
        transport.send("beta", ResultMsg("beta.wf-1", "s", 1, StepState.SUCCEEDED, {}, ""))
        await link.envelopes(1)
    assert [m.state for m in _carried(calls[0])] == [StepState.RUNNING,
                                                     StepState.SUCCEEDED]
