"""PeerChannels.revive: a sign of life of a peer whose channel is failing since it was
down replaces that channel, so the next call dials at once instead of failing until
gRPC's reconnect backoff ends.

A small Peer server runs in this process on 127.0.0.1 and is stopped and started again
on the same port, as a restarted agent is. The channels' backoff is made a minute long
here, so that a channel left to it stays failing for the whole test: whether a call
goes through depends on `revive` alone, never on when gRPC dials again.

The replacement must be safe for the calls still waiting on the old channel (a call
made with wait_for_ready waits there as long as its deadline allows): none is cut short by the replacement, and the old channel is closed once they have ended, or
when the agent stops.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from fedorch.core.identity.replay import ReplayGuard
from fedorch.gen.fedorch.v1 import peer_pb2_grpc, swim_pb2
from fedorch.runtime import peers as peers_module
from fedorch.runtime.agent import Agent
from fedorch.runtime.peers import REVIVE_MIN_AGE_S, PeerCallError, PeerChannels
from fedorch.runtime.ports import SystemClock

# The keys, trust and the peer that answers Swim of the sign-of-life tests.
from tests.unit.runtime.test_membership_heard_from import TRUST, A, Beta

LONG_BACKOFF = [("grpc.initial_reconnect_backoff_ms", 60_000),
                ("grpc.min_reconnect_backoff_ms", 60_000),
                ("grpc.max_reconnect_backoff_ms", 60_000)]


class Clock(SystemClock):
    """Wall time as the system's; monotonic time moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def _serve(port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    peer_pb2_grpc.add_PeerServicer_to_server(Beta(), server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, port


async def _report(channels: PeerChannels, endpoint: str) -> None:
    """One call that fails at once while the channel is failing (no wait_for_ready, as
    membership's are)."""
    await channels.call(endpoint, "Swim", recipient="beta", expect="swim",
                        timeout=5.0, wait_for_ready=False, swim=swim_pb2.SwimBatch())


def _waiting_call(channels: PeerChannels, endpoint: str, timeout: float) -> asyncio.Task:
    """A call made with wait_for_ready, waiting on the failing channel to `endpoint` for
    a connection."""
    return asyncio.create_task(channels.call(
        endpoint, "Swim", recipient="beta", expect="swim", timeout=timeout,
        swim=swim_pb2.SwimBatch()))


async def _until_waiting() -> None:
    # One turn of the loop: the call's task runs up to its wait for a connection (the
    # call is made before its task first yields: a single call, no lane).
    await asyncio.sleep(0)


def _spawner() -> tuple[dict[str, asyncio.Task], object]:
    spawned: dict[str, asyncio.Task] = {}

    def spawn(coro, name: str):
        spawned[name] = task = asyncio.create_task(coro)
        return task

    return spawned, spawn


@pytest.fixture
def long_backoff(monkeypatch):
    kept = [o for o in peers_module.CHANNEL_OPTIONS if "reconnect_backoff" not in o[0]]
    monkeypatch.setattr(peers_module, "CHANNEL_OPTIONS", kept + LONG_BACKOFF)


async def _failing_channel(channels: PeerChannels) -> tuple[grpc.aio.Server, str]:
    """A peer that answered, went down (the channel to it now failing) and is back on
    the same port: the server, and its endpoint."""
    server, port = await _serve()
    endpoint = f"127.0.0.1:{port}"
    await _report(channels, endpoint)
    await server.stop(None)
    # The first call after the stop may fail on the dropped connection (the channel
    # IDLE again); the next one dials, fails, and leaves it in its backoff.
    async with asyncio.timeout(30):
        while channels.channel(endpoint).get_state() is not \
                grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            with pytest.raises(PeerCallError):
                await _report(channels, endpoint)
    server, _ = await _serve(port)
    with pytest.raises(PeerCallError) as refused:  # back, but the channel fails at once
        await _report(channels, endpoint)
    assert refused.value.code == "UNAVAILABLE"
    return server, endpoint


@contextlib.asynccontextmanager
async def _failing_since_down(spawn=None):
    """PeerChannels on a hand clock, and the endpoint of a peer that was down while its
    channel dialled and is back (its channel still failing): closed on leaving."""
    clock = Clock()
    kwargs = {"spawn": spawn} if spawn is not None else {}
    channels = PeerChannels(A, TRUST, ReplayGuard(60_000), clock=clock, **kwargs)
    server = None
    try:
        server, endpoint = await _failing_channel(channels)
        yield clock, channels, endpoint
    finally:
        await channels.close()
        if server is not None:
            await server.stop(None)


async def test_a_sign_of_life_replaces_a_channel_failing_since_its_peer_was_down(
        long_backoff) -> None:
    async with _failing_since_down() as (clock, channels, endpoint):
        clock.now += REVIVE_MIN_AGE_S
        assert channels.revive(endpoint)
        await _report(channels, endpoint)  # a new channel: it dials at once
        assert channels.revived == 1
        assert not channels.revive(endpoint)  # READY now: nothing to replace


async def test_a_channel_younger_than_the_revive_age_is_left_to_its_backoff(
        long_backoff) -> None:
    async with _failing_since_down() as (clock, channels, endpoint):
        clock.now += REVIVE_MIN_AGE_S / 2
        assert not channels.revive(endpoint)
        with pytest.raises(PeerCallError):
            await _report(channels, endpoint)
        assert channels.revived == 0


async def test_the_replaced_channel_is_closed_by_a_task_of_the_owner(long_backoff) -> None:
    spawned, spawn = _spawner()
    try:
        async with _failing_since_down(spawn) as (clock, channels, endpoint):
            clock.now += REVIVE_MIN_AGE_S
            old = channels.channel(endpoint)
            assert channels.revive(endpoint)
            closing = spawned[f"retired channel to {endpoint}"]
            async with asyncio.timeout(30):  # no call is on it: closed without the grace
                await closing
            assert old.get_state() is grpc.ChannelConnectivity.SHUTDOWN
    finally:
        for task in spawned.values():
            task.cancel()


async def test_a_call_waiting_on_the_replaced_channel_is_not_cut_short(
        long_backoff, monkeypatch) -> None:
    # Whatever fixed grace the old channel were closed with, some call waits longer
    # (its deadline is the caller's to choose): here, one shorter than the
    # call's deadline, which must not matter.
    monkeypatch.setattr(peers_module, "RETIRED_GRACE_S", 0.2, raising=False)
    spawned, spawn = _spawner()
    try:
        async with _failing_since_down(spawn) as (clock, channels, endpoint):
            old = channels.channel(endpoint)
            waiting = _waiting_call(channels, endpoint, timeout=3.0)
            await _until_waiting()
            clock.now += REVIVE_MIN_AGE_S
            assert channels.revive(endpoint)
            with pytest.raises(PeerCallError) as ended:
                await waiting
            # It ended by its own deadline (its peer never answered on the old channel,
            # still backing off), not cancelled by the replacement.
            assert ended.value.code == "DEADLINE_EXCEEDED", ended.value
            async with asyncio.timeout(30):  # then the old channel is closed
                await spawned[f"retired channel to {endpoint}"]
            assert old.get_state() is grpc.ChannelConnectivity.SHUTDOWN
    finally:
        for task in spawned.values():
            task.cancel()


async def test_a_replaced_channel_still_waited_on_is_closed_when_the_agent_stops(
        long_backoff) -> None:
    spawned, spawn = _spawner()
    async with _failing_since_down(spawn) as (clock, channels, endpoint):
        old = channels.channel(endpoint)
        waiting = _waiting_call(channels, endpoint, timeout=30.0)
        await _until_waiting()
        clock.now += REVIVE_MIN_AGE_S
        assert channels.revive(endpoint)
        # The agent stops: its tasks are cancelled (the one that was to close the old
        # channel included), then its channels closed.
        retiring = spawned[f"retired channel to {endpoint}"]
        retiring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retiring
        await channels.close()
        assert old.get_state() is grpc.ChannelConnectivity.SHUTDOWN
        # Cut short by the stop, not left waiting; and a failure its caller handles, not
        # a cancellation of the caller's task (gRPC's own way to end a call whose
        # channel closed under it).
        with pytest.raises(PeerCallError) as ended:
            await waiting
        assert ended.value.code == "CANCELLED", ended.value


async def test_an_authenticated_message_revives_the_channel_to_its_sender(
        agent: Agent, monkeypatch) -> None:
    await agent.open()
    revived: list[str] = []
    monkeypatch.setattr(agent.peers, "revive", revived.append)
    monkeypatch.setattr(agent.membership, "endpoint",
                        lambda domain: {"beta": "127.0.0.1:7001"}.get(domain))
    agent.heard_from("beta")
    agent.heard_from("gamma")  # no address known: nothing to revive
    assert revived == ["127.0.0.1:7001"]
