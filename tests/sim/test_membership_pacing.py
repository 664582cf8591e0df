"""How a member paces itself: probe timings that follow measured round trips, updates
that leave while probing is stretched, and a full-state exchange soon after news of an
unknown member (see tests/sim/test_membership_starved.py for what they are for)."""

from __future__ import annotations

import random

import pytest
from fedorch.core.membership.swim import SETTLE_PUSH_PULL_PERIODS, Swim
from fedorch.core.membership.swim_profiles import make_profile
from fedorch.core.membership.swim_types import Ack, Gossip, Ping, PushPull
from fedorch.sim.membership import HmacKeyring


def members(names: list[str], known: list[str]) -> tuple[dict[str, Swim], HmacKeyring]:
    """Members of `names`; those in `known` already know each other (as after a push-pull)."""
    keyring = HmacKeyring(names)
    made = {n: Swim(n, f"{n}:1", make_profile("lan"), keyring.signer_for(n),
                    keyring.verifier_for(n), random.Random(n), 0.0) for n in names}
    claims = tuple(made[n].own_claim for n in known)
    for n in known:
        made[n].handle_message(0.0, "seed:1", PushPull("seed", True, claims))
        made[n].events()
        made[n].datagrams_to_send()
    return made, keyring


def probe_and_answer(a: Swim, now: float, rtt: float) -> float:
    """Serve `a`'s timers from `now` until it probes, answer that probe after `rtt`;
    returns the time of the answer."""
    while True:
        now = max(now, a.get_timer())
        a.handle_timer(now)
        pings = [msg for _, msg in a.datagrams_to_send() if isinstance(msg, Ping)]
        if pings:
            ping = pings[0]
            a.handle_message(now + rtt, f"{ping.target}:1", Ack(ping.seq, ping.target, ()))
            a.datagrams_to_send()
            return now + rtt


def next_probe_timings(a: Swim, now: float) -> tuple[float, float]:
    """(probe timeout, probe period) of `a`'s next probe, served from `now`."""
    while True:
        now = max(now, a.get_timer())
        a.handle_timer(now)
        if any(isinstance(msg, Ping) for _, msg in a.datagrams_to_send()):
            probe = a._detector.probe_round
            assert probe is not None
            return probe.indirect_at - now, a._detector.next_probe_at - now


def test_a_slow_round_trip_stretches_probe_timeout_and_period_without_sickness() -> None:
    m, _ = members(["a", "b", "c", "d"], ["a", "b", "c", "d"])
    a = m["a"]
    profile = a.profile
    now = probe_and_answer(a, 0.0, rtt=0.12)  # in time (timeout 0.15), but slow
    assert a.health == 0  # an answer in time is no sign of our own sickness
    timeout, period = next_probe_timings(a, now)
    # Smoothed as TCP's retransmission timeout: 0.12 + 4 * 0.06 = 0.36 s -> 3 timeouts.
    assert timeout == pytest.approx(3 * profile.probe_timeout)
    assert period == pytest.approx(3 * profile.probe_interval)


def test_quick_round_trips_bring_the_timings_back() -> None:
    m, _ = members(["a", "b", "c", "d"], ["a", "b", "c", "d"])
    a = m["a"]
    now = probe_and_answer(a, 0.0, rtt=0.12)
    for _ in range(40):
        now = probe_and_answer(a, now, rtt=0.001)
    timeout, period = next_probe_timings(a, now)
    assert timeout == pytest.approx(a.profile.probe_timeout)
    assert period == pytest.approx(a.profile.probe_interval)


def _drain_updates(a: Swim, now: float) -> float:
    """Serve `a` (answering its probes at once) until no update waits to be sent."""
    while len(a._queue):
        now = probe_and_answer(a, now, rtt=0.001)
        assert now < 60.0
    return now


def _slow_down(a: Swim, now: float) -> float:
    """Answer `a`'s probes 0.2 s late (past the base timeout) until it probes every two
    base periods or more."""
    for _ in range(20):
        now = probe_and_answer(a, now, rtt=0.2)
    assert a.timeout_scale >= 2
    return now


def _serve(a: Swim, now: float, periods: int, rtt: float) -> tuple[float, list]:
    """Serve `a` for `periods` base probe periods, answering its probes after `rtt`;
    returns the time and what it sent (time, message)."""
    sent = []
    end = now + periods * a.profile.probe_interval
    while now < end:
        now = max(now, a.get_timer())
        a.handle_timer(now)
        for _, msg in a.datagrams_to_send():
            sent.append((now, msg))
            if isinstance(msg, Ping):
                now += rtt
                a.handle_message(now, f"{msg.target}:1", Ack(msg.seq, msg.target, ()))
                sent.extend((now, m) for _, m in a.datagrams_to_send())
    return now, sent


def test_updates_leave_each_base_period_while_probing_is_stretched() -> None:
    m, _ = members(["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "e"])
    a = m["a"]
    now = _slow_down(a, _drain_updates(a, 0.0))
    a.publish_record(now, b"new labels")  # an update waits
    now, sent = _serve(a, now, 4, rtt=0.2)
    carried = [t for t, msg in sent if isinstance(msg, Gossip) and any(
        c.parsed.subject == "a" and c.parsed.record == b"new labels" for c in msg.claims)]
    # Between two probes (two base periods or more apart) the update left on its own.
    assert carried


def test_nothing_extra_is_sent_when_no_update_waits() -> None:
    m, _ = members(["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "e"])
    a = m["a"]
    now = _slow_down(a, _drain_updates(a, 0.0))
    assert len(a._queue) == 0
    now, sent = _serve(a, now, 20, rtt=0.2)
    assert a.timeout_scale >= 2  # probing stayed stretched all along
    assert [msg for _, msg in sent if isinstance(msg, Gossip)] == []


def test_news_of_an_unknown_member_brings_the_full_state_exchange_forward() -> None:
    m, _ = members(["a", "b", "c", "z"], ["a", "b", "c"])
    a, z = m["a"], m["z"]
    settle = SETTLE_PUSH_PULL_PERIODS * a.profile.probe_interval
    now, _ = _serve(a, 0.0, 80, rtt=0.001)  # past the first exchange (a random phase)
    assert a._next_push_pull_at > now + settle  # the next one a lan period (20 s) away
    a.handle_message(now, "b:1", Gossip("b", (z.own_claim,)))
    assert a.member("z") is not None
    assert a._next_push_pull_at <= now + settle
    pulled = False
    end = now + settle
    while now <= end and not pulled:
        now = max(now, a.get_timer())
        a.handle_timer(now)
        pulled = any(isinstance(msg, PushPull) for _, msg in a.datagrams_to_send())
    assert pulled


def test_news_of_known_members_changes_no_exchange() -> None:
    m, _ = members(["a", "b", "c"], ["a", "b", "c"])
    a = m["a"]
    due = a._next_push_pull_at
    a.handle_message(1.0, "b:1", Gossip("b", (m["b"].own_claim, m["c"].own_claim)))
    assert a._next_push_pull_at == due
