"""Wall clock steps (NTP, `date -s`) of ±2 s and ±1 h: membership runs on the monotonic
clock, so nothing raises and gossip goes on; envelopes still pass the replay guard, which
still refuses replays. In-process agents with a fake clock; their membership gossips
through the real input boundary (PeerService, PeerChannels), datagrams handed over by
the test instead of gRPC. (The Node's leases across clock steps: the simulator's
clock-step runs, tests/sim.)"""

from __future__ import annotations

import grpc
import pytest
from fedorch.core.identity.envelope import new_nonce
from fedorch.core.identity.keys import init_keys
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.membership import swim_codec
from fedorch.gen.fedorch.v1 import swim_pb2
from fedorch.runtime.agent import Agent
from fedorch.runtime.config import parse_config_text
from fedorch.runtime.peer_service import PeerService
from fedorch.runtime.store.store import Store

STEPS_S = (-2.0, 2.0, -3600.0, 3600.0)
LEASE_S = 30.0
WALL_START_MS = 1_760_000_000_000


class FakeClock:
    """Both clocks by hand: `advance` is time passing, `step_wall` an NTP step."""

    def __init__(self, mono: float = 5_000.0, wall_ms: int = WALL_START_MS) -> None:
        self.mono, self.wall = mono, wall_ms

    def monotonic(self) -> float:
        return self.mono

    def wall_ms(self) -> int:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += round(seconds * 1000)

    def step_wall(self, seconds: float) -> None:
        self.wall += round(seconds * 1000)


class Aborted(Exception):
    pass


class Context:
    """The part of a gRPC servicer context the peer service uses."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:9"

    async def abort(self, code: grpc.StatusCode, details: str):
        raise Aborted(code, details)


PORTS = {"alpha": 1, "beta": 2}


async def _make(tmp_path, name: str, clock: FakeClock, stores: list[Store]) -> Agent:
    for domain in PORTS:
        if not (tmp_path / "keys" / f"{domain}.key").exists():
            init_keys(domain, tmp_path / "keys")
    other = next(n for n in PORTS if n != name)
    config = parse_config_text(
        f"domain: {name}\nlisten: 127.0.0.1:{PORTS[name]}\ndata_dir: data-{name}\n"
        f"key_file: keys/{name}.key\nseeds: ['127.0.0.1:{PORTS[other]}']\n"
        f"trust: {{key_files: [keys/{other}.pub]}}\ngossip: {{profile: local}}\n"
        f"negotiation: {{lease_s: {LEASE_S}, commit: 2pc}}\n"
        "capabilities:\n  - {name: x, capacity: 4, executor: {type: builtin, name: echo}}\n",
        f"{name}.yaml", tmp_path)
    store = await Store.open(tmp_path / f"data-{name}")
    stores.append(store)
    return Agent(config, store, clock=clock)


@pytest.fixture
async def make(tmp_path):
    stores: list[Store] = []

    async def make(name: str, clock: FakeClock) -> Agent:
        return await _make(tmp_path, name, clock, stores)

    yield make
    for store in stores:
        await store.close()


async def _pump(agents: dict[str, Agent]) -> int:
    """Hand every queued SWIM datagram to its addressee through the peer service's input
    boundary (signature, replay guard) and its answer back through PeerChannels'; returns
    how many went."""
    by_address = {a.endpoint: a for a in agents.values()}
    sent = 0
    for sender in agents.values():
        for address, msg in sender.membership.swim.datagrams_to_send():
            receiver = by_address[address]
            request = sender.seal("", swim=swim_pb2.SwimBatch(
                reply_to=sender.endpoint, messages=[swim_codec.encode(msg)]))
            reply = await PeerService(receiver).Swim(request, Context())
            body = sender.peers._open_reply("Swim", receiver.domain, "swim", reply)
            sender.membership._receive(receiver.endpoint, body.sender, body.swim)
            sent += 1
    return sent


async def _gossip(agents: dict[str, Agent], clocks: list[FakeClock], seconds: float) -> int:
    """Let `seconds` of monotonic time pass in small ticks, firing timers and delivering."""
    sent = 0
    for _ in range(round(seconds / 0.05)):
        for clock in clocks:
            clock.advance(0.05)
        for a in agents.values():
            a.membership.swim.handle_timer(a.now())
        sent += await _pump(agents)
    return sent


def _states(a: Agent) -> dict[str, str]:
    return {m.domain: m.state for m in a.membership.members()}


@pytest.mark.parametrize("together", [True, False], ids=["federation steps", "one steps"])
async def test_gossip_goes_on_across_wall_steps(make, together: bool) -> None:
    clocks = [FakeClock(mono=100.0), FakeClock(mono=7_000.0)]
    agents = {"alpha": await make("alpha", clocks[0]), "beta": await make("beta", clocks[1])}
    for a in agents.values():
        await a.open()
        a.ready.set()
        a.membership.swim.join(a.now(), list(a.config.seeds))
    await _gossip(agents, clocks, 2.0)
    assert _states(agents["alpha"]) == _states(agents["beta"]) == {
        "alpha": "ALIVE", "beta": "ALIVE"}
    for step in STEPS_S:
        # One agent alone may only step within the replay window (a bigger skew between
        # peers is outside the fault model); the whole federation may step by an hour.
        if not together and abs(step) > 2:
            continue
        for clock in clocks if together else clocks[:1]:
            clock.step_wall(step)
        probes = {n: a.membership.swim.stats["probes_sent"] for n, a in agents.items()}
        assert await _gossip(agents, clocks, 3.0) > 0
        for name, a in agents.items():
            assert a.membership.swim.stats["probes_sent"] > probes[name], (step, name)
            assert _states(a) == {"alpha": "ALIVE", "beta": "ALIVE"}, (step, name)
            assert a.metrics.rejected_messages.labels("swim")._value.get() == 0
            assert a.membership.swim.stats["suspicions_raised"] == 0
    # Shown to people in wall time: heard from within the last few (monotonic) seconds.
    alpha = agents["alpha"]
    heard = {m.domain: m.last_heard for m in alpha.membership.members()}
    assert abs(heard["beta"] - alpha.now_ms() / 1000) < 2.0


def test_the_replay_guard_follows_a_local_wall_step_and_still_refuses_replays() -> None:
    window = 60_000
    guard = ReplayGuard(window)
    mono, wall = 1_000_000, WALL_START_MS
    first = new_nonce()
    assert guard.check_and_remember("beta", first, wall, wall, mono) is None
    for step_ms in (-2_000, -3_600_000, 3_600_000, 2_000):  # the federation steps together
        wall += step_ms
        mono += 10
        assert guard.check_and_remember("beta", new_nonce(), wall, wall, mono) is None
        assert guard.check_and_remember("beta", first, WALL_START_MS, wall, mono) is not None
    # Later, when a guard on the wall clock alone would have forgotten it, the wall clock
    # steps back (by up to one window) to where the first message fits the window again:
    # its nonce is still remembered.
    mono += window * 3 // 2
    wall += window * 3 // 2
    assert guard.check_and_remember("beta", new_nonce(), wall, wall, mono) is None
    wall -= window * 3 // 2
    assert guard.check_and_remember("beta", first, WALL_START_MS, wall, mono) == "replayed nonce"
    # Two windows on, it is forgotten: memory stays bounded whatever the wall clock did.
    mono += 2 * window + 1
    assert guard.check_and_remember("beta", new_nonce(), wall, wall, mono) is None
    assert guard.remembered == 1
