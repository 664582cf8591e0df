"""The SWIM failure detector on its own, given its collaborators explicitly: a member
table, a recording outbox and recording `merge` / `accuse` callables. And the local
health score with the measured round trip that stretch every timing."""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import pairwise

import pytest
from fedorch.core.membership.swim_detector import FailureDetector, LocalHealth
from fedorch.core.membership.swim_dissemination import DisseminationQueue
from fedorch.core.membership.swim_members import Member, MemberTable
from fedorch.core.membership.swim_profiles import make_profile
from fedorch.core.membership.swim_types import (
    Ack,
    Claim,
    ClaimBody,
    ClaimKind,
    Message,
    Ping,
    PingReq,
    sign_claim,
)
from fedorch.sim.membership import HmacKeyring

PROFILE = make_profile("lan")
NAMES = ["a", "b", "c", "d", "e"]


class RecordingOutbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.push_pulls: list[str] = []

    def send(self, address: str, dest_name: str | None,
             build: Callable[[tuple[Claim, ...]], Message], first: tuple[Claim, ...] = ()
             ) -> None:
        self.sent.append((address, build(first)))

    def send_gossip(self, member: Member) -> None:
        raise AssertionError("a member that is not leaving sends no gossip here")

    def push_pull(self, address: str, reply: bool = False) -> None:
        self.push_pulls.append(address)

    def spread_death(self, claim: Claim) -> None:
        raise AssertionError("no verdict in these tests")

    def take(self) -> list[tuple[str, Message]]:
        out, self.sent = self.sent, []
        return out


class Harness:
    """Member `a`'s detector over a table that knows b, c, d and e as ALIVE."""

    def __init__(self, known: list[str]) -> None:
        keyring = HmacKeyring(NAMES)
        rng = random.Random(7)
        self.table = MemberTable("a", PROFILE, keyring.verifier_for("a"), DisseminationQueue(),
                                 [], rng)
        for name in known:
            alive = sign_claim(ClaimBody(ClaimKind.ALIVE, name, 1, name, f"{name}:1"), name,
                               keyring.signer_for(name))
            self.table.apply(0.0, alive)
        self.health = LocalHealth(PROFILE, self.table)
        self.out = RecordingOutbox()
        self.merged: list[tuple[Claim, ...]] = []
        self.accused: list[tuple[str, int]] = []
        self.stats = {"probes_sent": 0, "indirect_probes": 0, "unmatched_acks": 0,
                      "deaths_declared": 0}
        self.detector = FailureDetector(
            "a", "a:1", PROFILE, self.table, self.health, self.out, keyring.signer_for("a"),
            rng, self.stats, 0.0,
            merge=lambda now, claims: self.merged.append(claims),
            accuse=lambda now, member, incarnation: self.accused.append(
                (member.name, incarnation)),
            leaving=lambda: False)

    def probe(self) -> tuple[float, Ping]:
        """Serve the detector's timer until it probes; returns the time and the Ping."""
        now = self.detector.next_deadline()
        self.detector.handle_timer(now, stalled=False)
        pings = [msg for _, msg in self.out.take() if isinstance(msg, Ping)]
        assert len(pings) == 1
        return now, pings[0]


def test_an_unanswered_probe_asks_helpers_then_accuses_the_target() -> None:
    h = Harness(["b", "c", "d", "e"])
    now, ping = h.probe()
    assert h.stats["probes_sent"] == 1
    probe = h.detector.probe_round
    assert probe is not None and probe.target == ping.target
    assert h.detector.next_deadline() == probe.indirect_at  # the indirect stage is next

    h.detector.handle_timer(probe.indirect_at, stalled=False)
    requests = [msg for _, msg in h.out.take() if isinstance(msg, PingReq)]
    assert len(requests) == PROFILE.indirect_checks
    assert {r.target for r in requests} == {ping.target}

    h.detector.handle_timer(h.detector.next_probe_at, stalled=False)
    assert h.accused == [(ping.target, 1)]
    # No helper even nacked: the fault is likely ours, so the score rises by one per helper.
    assert h.health.score == PROFILE.indirect_checks
    assert h.table.timeout_scale == h.health.scale == PROFILE.indirect_checks + 1


def test_an_ack_in_time_is_merged_and_accuses_nobody() -> None:
    h = Harness(["b", "c", "d", "e"])
    h.health.change(+2)
    now, ping = h.probe()
    h.detector.on_ack(now + 0.01, f"{ping.target}:1", Ack(ping.seq, ping.target, ()))
    assert h.merged == [()]
    assert h.detector.probe_round is not None and h.detector.probe_round.acked
    assert h.health.score == 1  # an answer in time lowers the score
    h.detector.handle_timer(h.detector.next_probe_at, stalled=False)
    assert h.accused == []


def test_an_ack_nobody_asked_for_is_counted() -> None:
    h = Harness(["b"])
    h.detector.on_ack(0.0, "b:1", Ack(12345, "b", ()))
    assert h.stats["unmatched_acks"] == 1


def test_alone_it_retries_its_seeds_with_a_growing_backoff() -> None:
    h = Harness([])
    h.detector.add_seeds(["a:1", "s1:1", "s2:1"])
    now = 0.0
    retried_at = []
    while now < 3.0:
        now = h.detector.next_deadline()
        before = len(h.out.push_pulls)
        h.detector.handle_timer(now, stalled=False)
        if len(h.out.push_pulls) > before:
            retried_at.append(now)
    assert h.out.push_pulls[:3] == ["s1:1", "s2:1", "s1:1"]  # never our own address
    gaps = [later - earlier for earlier, later in pairwise(retried_at)]
    assert len(gaps) >= 2 and all(shorter < longer for shorter, longer in pairwise(gaps))


def test_local_health_stays_within_its_bounds() -> None:
    table = MemberTable("a", PROFILE, HmacKeyring(NAMES).verifier_for("a"),
                        DisseminationQueue(), [], random.Random(1))
    health = LocalHealth(PROFILE, table)
    health.change(-3)
    assert health.score == 0 and health.scale == 1
    health.change(+100)
    assert health.score == PROFILE.max_health
    assert table.timeout_scale == PROFILE.max_health + 1


@pytest.mark.parametrize(("rtt", "scale"), [
    (0.01, 1),  # 0.01 + 4 * 0.005 is within one probe timeout (0.15 s)
    (0.12, 3),  # 0.12 + 4 * 0.06 = 0.36 s: three probe timeouts
    (60.0, PROFILE.max_health + 1),  # capped like the score
])
def test_a_measured_round_trip_stretches_the_scale(rtt: float, scale: int) -> None:
    table = MemberTable("a", PROFILE, HmacKeyring(NAMES).verifier_for("a"),
                        DisseminationQueue(), [], random.Random(1))
    health = LocalHealth(PROFILE, table)
    health.sample_rtt(-1.0)  # a clock that went backwards says nothing
    assert health.scale == 1
    health.sample_rtt(rtt)
    assert health.score == 0
    assert health.scale == table.timeout_scale == scale
