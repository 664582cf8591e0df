"""Single cores driven by hand: refutation, the buddy system, Lifeguard suspicion,
profiles and the fair piggy-back queue."""

from __future__ import annotations

import random

import pytest
from fedorch.core.membership.swim import Swim
from fedorch.core.membership.swim_dissemination import DisseminationQueue
from fedorch.core.membership.swim_members import LAST_CHANCE_CHECKS, MemberTable
from fedorch.core.membership.swim_profiles import (
    make_profile,
    push_pull_interval,
    retransmit_limit,
    suspicion_bounds,
    suspicion_timeout,
)
from fedorch.core.membership.swim_types import (
    Ack,
    Claim,
    ClaimBody,
    ClaimKind,
    Gossip,
    IndirectAck,
    MemberState,
    Ping,
    PingReq,
    PushPull,
    sign_claim,
)
from fedorch.sim.membership import HmacKeyring, Simulation

NAMES = ["a", "b", "c", "d", "e", "f"]


def make_members(names: list[str], profile: str = "lan") -> tuple[HmacKeyring, dict[str, Swim]]:
    """Members that already know each other (as after a push-pull)."""
    keyring = HmacKeyring(names)
    members = {n: Swim(n, f"{n}:1", make_profile(profile), keyring.signer_for(n),
                       keyring.verifier_for(n), random.Random(n), 0.0) for n in names}
    claims = tuple(m.own_claim for m in members.values())
    for member in members.values():
        member.handle_message(0.0, "seed:1", PushPull("seed", True, claims))
        member.events()
        member.datagrams_to_send()
    return keyring, members


def accusation(keyring: HmacKeyring, accuser: str, subject: str, incarnation: int,
               kind: ClaimKind = ClaimKind.SUSPECT) -> Claim:
    return sign_claim(ClaimBody(kind, subject, incarnation, accuser), accuser,
                      keyring.signer_for(accuser))


def run_until_sent(member: Swim, wanted, now: float, limit: float = 30.0):
    """Serve the member's timers from ``now`` until it sends a message matching ``wanted``."""
    while True:
        deadline = max(now, member.get_timer())
        assert deadline < limit, "nothing matching was sent"
        member.handle_timer(deadline)
        now = deadline
        for destination, msg in member.datagrams_to_send():
            if wanted(destination, msg):
                return deadline, destination, msg


def test_suspected_member_refutes_with_a_higher_incarnation():
    keyring, m = make_members(["a", "b", "c"])
    suspicion = accusation(keyring, "c", "b", 0)
    m["a"].handle_message(1.0, "c:1", Gossip("c", (suspicion,)))
    assert m["a"].member("b").state is MemberState.SUSPECT

    m["b"].handle_message(1.0, "c:1", Gossip("c", (suspicion,)))
    assert m["b"].incarnation == 1 and m["b"].stats["refutations"] == 1
    # b's refutation rides on its next message; a accepts it and clears the suspicion.
    _, _, ping = run_until_sent(m["b"], lambda dest, msg: isinstance(msg, Ping), 1.0)
    assert any(c.parsed.kind is ClaimKind.ALIVE and c.parsed.incarnation == 1
               for c in ping.claims)
    m["a"].handle_message(2.0, "b:1", Gossip("b", ping.claims))
    view = m["a"].member("b")
    assert view.state is MemberState.ALIVE and view.incarnation == 1

    # The old suspicion, replayed, no longer matters anywhere.
    m["a"].handle_message(3.0, "c:1", Gossip("c", (suspicion,)))
    assert m["a"].member("b").state is MemberState.ALIVE
    assert m["b"].incarnation == 1


def test_buddy_system_puts_the_suspicion_first_and_the_ack_refutes():
    keyring, m = make_members(["a", "b", "c"])
    suspicion = accusation(keyring, "c", "b", 0)
    m["a"].handle_message(0.5, "c:1", Gossip("c", (suspicion,)))
    when, destination, ping = run_until_sent(
        m["a"], lambda dest, msg: isinstance(msg, Ping) and msg.target == "b", 0.5)
    assert destination == "b:1" and ping.claims[0] == suspicion

    m["b"].handle_message(when + 0.01, "a:1", ping)
    [(reply_to, ack)] = m["b"].datagrams_to_send()
    assert reply_to == "a:1" and isinstance(ack, Ack)
    assert ack.claims[0].parsed.kind is ClaimKind.ALIVE and ack.claims[0].parsed.subject == "b"

    m["a"].handle_message(when + 0.02, "b:1", ack)
    assert m["a"].member("b").state is MemberState.ALIVE
    assert m["a"].member("b").incarnation == 1


def test_stale_doubt_is_answered_with_the_current_claim():
    keyring, m = make_members(["a", "b", "c"])
    m["b"].handle_message(1.0, "c:1", Gossip("c", (accusation(keyring, "c", "b", 0),)))
    m["b"].datagrams_to_send()
    # a missed the refutation and still pings b with the old suspicion attached.
    old = accusation(keyring, "a", "b", 0)
    m["b"].handle_message(2.0, "a:1", Ping(9, "a", "b", (old,)))
    [(_, ack)] = m["b"].datagrams_to_send()
    assert ack.claims[0] == m["b"].own_claim and m["b"].incarnation == 1


def test_unrefuted_suspicion_becomes_dead_after_two_last_chance_checks():
    sim = Simulation(3, seed=3)
    sim.bootstrap()
    sent: list[tuple[float, str, str, object]] = []
    sim.send_hook = lambda sender, dest, msg: sent.append((sim.now, sender, dest, msg))
    sim.run_for(2.0)
    crashed_at = sim.now
    sim.crash("m0001")
    sim.run_for(20.0)
    judge = next(v for v in sim.dead_verdicts if v.observer == v.accuser)
    assert judge.subject == "m0001"
    mine = [(t, dest, msg) for t, sender, dest, msg in sent
            if sender == judge.observer and t <= judge.at]
    victim = sim.addresses[1]
    # A check pings the suspect and asks helpers to at one instant, the suspicion first
    # in each (a regular probe asks helpers only after its probe timeout).
    checks = sorted({t for t, dest, msg in mine if dest == victim and isinstance(msg, Ping)
                     and any(u == t and isinstance(m, PingReq) for u, _, m in mine)})
    assert len(checks) == LAST_CHANCE_CHECKS == 2
    for t, dest, msg in mine:
        if t in checks and (dest == victim or isinstance(msg, PingReq)):
            assert msg.claims[0].parsed.kind is ClaimKind.SUSPECT
    period = sim.profile.probe_interval
    shortest, _ = suspicion_bounds(sim.profile, 3)
    slack = 1e-9  # float sums of virtual time
    assert checks[1] - checks[0] >= period - slack
    assert judge.at - checks[1] >= period - slack
    assert judge.at - crashed_at >= shortest + period
    # The verdict goes out at once, not on the next probe.
    assert any(t == judge.at and isinstance(msg, Gossip)
               and msg.claims[0].parsed.kind is ClaimKind.DEAD for t, _, msg in mine)


def test_a_helper_brings_back_the_refutation_the_accuser_missed():
    keyring, m = make_members(["a", "b", "c", "d"])
    a, b, d = m["a"], m["b"], m["d"]
    suspicion = accusation(keyring, "c", "b", 0)
    a.handle_message(0.5, "c:1", Gossip("c", (suspicion,)))
    b.handle_message(0.5, "c:1", Gossip("c", (suspicion,)))  # b refutes; a never hears it
    b.datagrams_to_send()
    assert b.incarnation == 1
    # a's last-chance check through d; d had heard of neither the suspicion nor the
    # refutation, so it passes the suspicion on with its ping ...
    d.handle_message(1.0, "a:1", PingReq(7, "a", "b", "b:1", (suspicion,)))
    [(dest, ping)] = [(x, msg) for x, msg in d.datagrams_to_send() if isinstance(msg, Ping)]
    assert dest == "b:1" and ping.claims[0] == suspicion
    # ... so b's ack carries its refutation, which d puts first in its answer to a.
    b.handle_message(1.01, "d:1", ping)
    [(_, ack)] = b.datagrams_to_send()
    d.handle_message(1.02, "b:1", ack)
    [(dest, answer)] = d.datagrams_to_send()
    assert dest == "a:1" and isinstance(answer, IndirectAck)
    assert answer.claims[0] == b.own_claim
    a.handle_message(1.03, "d:1", answer)
    view = a.member("b")
    assert view.state is MemberState.ALIVE and view.incarnation == 1


def test_a_verdict_heard_from_gossip_is_forwarded_at_once_and_only_once():
    keyring, m = make_members(NAMES)
    a = m["a"]
    death = accusation(keyring, "c", "b", 0, ClaimKind.DEAD)
    a.handle_message(1.0, "c:1", Gossip("c", (death,)))
    assert a.member("b").state is MemberState.DEAD
    sent = a.datagrams_to_send()
    assert len(sent) == a.profile.indirect_checks
    assert all(isinstance(msg, Gossip) and msg.claims[0] == death for _, msg in sent)
    assert not {dest for dest, _ in sent} & {"a:1", "b:1", "c:1"}
    a.handle_message(1.1, "d:1", Gossip("d", (death,)))  # old news: not forwarded again
    assert a.datagrams_to_send() == []


def test_suspicion_timeout_shrinks_with_independent_confirmations():
    profile = make_profile("lan")
    shortest, longest = suspicion_bounds(profile, 100)
    timeouts = [suspicion_timeout(profile, 100, c) for c in range(6)]
    assert timeouts[0] == pytest.approx(longest)
    assert all(x > y for x, y in zip(timeouts[:3], timeouts[1:4], strict=True))
    assert timeouts[3] == pytest.approx(shortest) and timeouts[5] == pytest.approx(shortest)
    assert longest == pytest.approx(profile.suspicion_beta * shortest)

    keyring = HmacKeyring(NAMES)
    table = MemberTable("a", profile, keyring.verifier_for("a"), DisseminationQueue(), [],
                        random.Random(1))
    for name in NAMES[1:]:
        body = ClaimBody(ClaimKind.ALIVE, name, 0, name, f"{name}:1")
        table.apply(0.0, sign_claim(body, name, keyring.signer_for(name)))
    deadlines = []
    for accuser in ("c", "d", "d", "e", "f"):
        table.apply(10.0, accusation(keyring, accuser, "b", 0))
        deadlines.append(table.members["b"].suspicion.deadline)
    n = table.live
    # The deadline is that of the first last-chance check; the last falls at the timeout.
    early = (LAST_CHANCE_CHECKS - 1) * profile.probe_interval
    assert deadlines[0] == pytest.approx(10.0 + suspicion_timeout(profile, n, 0) - early)
    assert deadlines[0] > deadlines[1] == deadlines[2] > deadlines[3]  # a repeat is no news
    assert deadlines[4] == pytest.approx(10.0 + suspicion_bounds(profile, n)[0] - early)


def test_profiles_are_overridable_field_by_field():
    wan = make_profile("wan", probe_interval=4.0)
    assert wan.probe_interval == 4.0 and wan.suspicion_alpha == make_profile("wan").suspicion_alpha
    assert make_profile().probe_interval < make_profile("wan").probe_interval
    with pytest.raises(ValueError):
        make_profile("lan", no_such_field=1)
    with pytest.raises(ValueError):
        make_profile("moon")
    with pytest.raises(ValueError):
        make_profile("lan", probe_timeout=2.0)  # longer than the interval
    lan = make_profile("lan")
    assert push_pull_interval(lan, 32) == lan.push_pull_interval
    assert push_pull_interval(lan, 64) == 2 * lan.push_pull_interval
    assert push_pull_interval(lan, 1024) == 6 * lan.push_pull_interval
    assert retransmit_limit(lan, 9) == 4 and retransmit_limit(lan, 1000) == 16


def test_piggyback_prefers_least_sent_and_never_exceeds_the_budget():
    keyring = HmacKeyring([f"n{i}" for i in range(10)])
    queue = DisseminationQueue()
    claims = []
    for i in range(10):
        name = f"n{i}"
        body = ClaimBody(ClaimKind.ALIVE, name, 1, name, f"{name}:1", 1, bytes(100))
        claims.append(sign_claim(body, name, keyring.signer_for(name)))
        queue.push(claims[-1])
    size = claims[0].wire_size
    sent_counts = {c: 0 for c in claims}
    for _ in range(10):
        chosen = queue.select(3 * size + size // 2, limit=100)
        assert len(chosen) == 3 and sum(c.wire_size for c in chosen) <= 3.5 * size
        for claim in chosen:
            sent_counts[claim] += 1
    assert set(sent_counts.values()) == {3}  # fair: everyone sent equally often
    # A newer claim about a member replaces the queued one.
    newer = sign_claim(ClaimBody(ClaimKind.ALIVE, "n0", 2, "n0", "n0:1"), "n0",
                       keyring.signer_for("n0"))
    queue.push(newer)
    assert queue.contains(newer) and not queue.contains(claims[0])
    assert queue.select(size, limit=100) == [newer]  # least sent goes first


def test_local_health_stretches_probing_when_our_own_probes_go_unanswered():
    _, m = make_members(["a", "b", "c", "d", "e"])
    a = m["a"]
    ping_times, now = [], 0.0
    while now < 20.0:  # nothing is ever delivered: no acks, no nacks
        now = max(now, a.get_timer())
        a.handle_timer(now)
        ping_times += [now for _, msg in a.datagrams_to_send() if isinstance(msg, Ping)]
    assert a.health > 0
    gaps = [later - earlier for earlier, later in zip(ping_times, ping_times[1:], strict=False)]
    assert max(gaps) > 2 * a.profile.probe_interval  # probing slowed down


def test_a_stalled_member_judges_nobody_for_the_probe_it_missed():
    _, m = make_members(["a", "b", "c"])
    a = m["a"]
    now = a.get_timer()
    a.handle_timer(now)  # a probe starts
    assert any(isinstance(msg, Ping) for _, msg in a.datagrams_to_send())
    a.handle_timer(now + 3.0)  # the loop stalled past the probe's whole period
    assert a.stats["stalls"] == 1 and a.health == 1
    assert a.stats["suspicions_raised"] == 0
    assert all(v.state is MemberState.ALIVE for v in a.members())


def _first_probe(a: Swim) -> tuple[float, Ping]:
    now = a.get_timer()
    a.handle_timer(now)
    pings = [msg for _, msg in a.datagrams_to_send() if isinstance(msg, Ping)]
    assert len(pings) == 1
    return now, pings[0]


def test_an_ack_after_the_probe_timeout_makes_the_prober_more_patient():
    # On a saturated host every answer comes late: a prober that counted late answers
    # as healthy ones kept its shortest timeouts and accused members that were only slow.
    _, m = make_members(["a", "b", "c", "d", "e"])
    a = m["a"]
    now, ping = _first_probe(a)
    now += a.profile.probe_timeout * 1.5  # past the direct timeout, within the period
    a.handle_timer(now)
    assert any(isinstance(msg, PingReq) for _, msg in a.datagrams_to_send())
    a.handle_message(now, f"{ping.target}:1", Ack(ping.seq, ping.target, ()))
    assert a.health == 1
    # The next probe waits at least (health + 1) times as long before asking helpers (the
    # slow round trip it measured may ask for more: tests/sim/test_membership_pacing.py).
    now = a.get_timer()
    a.handle_timer(now)
    assert a.get_timer() - now >= 2 * a.profile.probe_timeout - 1e-9
    assert a.stats["suspicions_raised"] == 0


def test_an_ack_in_time_lowers_the_local_health_score():
    _, m = make_members(["a", "b", "c", "d", "e"])
    a = m["a"]
    a._health.change(+2)
    now, ping = _first_probe(a)
    a.handle_message(now + 0.01, f"{ping.target}:1", Ack(ping.seq, ping.target, ()))
    assert a.health == 1


def test_a_suspect_heard_from_since_the_last_check_is_checked_again_not_judged():
    # On a starved host a live member answers too late for any check to count, and its
    # refutation is still on its way; its own messages in the meantime prove it alive.
    keyring, m = make_members(["a", "b", "c", "d"])
    a = m["a"]
    a.handle_message(1.0, "c:1", Gossip("c", (accusation(keyring, "c", "b", 0),)))
    assert a.member("b").state is MemberState.SUSPECT
    now = 1.0
    while now < 30.0:  # b keeps talking to a (a ping of its own), never refutes
        now = max(now, a.get_timer())
        a.handle_timer(now)
        a.datagrams_to_send()
        now += 0.01
        a.handle_message(now, "b:1", Gossip("b", ()))
        assert a.member("b").state is MemberState.SUSPECT  # (c and d may die: no acks)
    while now < 60.0:  # b falls silent (crashed): the verdict comes
        now = max(now, a.get_timer())
        a.handle_timer(now)
        a.datagrams_to_send()
        if a.member("b").state is MemberState.DEAD:
            break
    assert a.member("b").state is MemberState.DEAD and now < 35.0
