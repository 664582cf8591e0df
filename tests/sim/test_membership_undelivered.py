"""Gossip on a message that did not arrive is owed again: a member whose calls time out
(a loaded host) still gets its new record to the others, and nothing stale comes back."""

from __future__ import annotations

from collections.abc import Callable

from fedorch.core.membership.swim import Swim
from fedorch.core.membership.swim_dissemination import DisseminationQueue
from fedorch.core.membership.swim_profiles import retransmit_limit
from fedorch.core.membership.swim_types import ClaimBody, ClaimKind, PushPull, sign_claim
from fedorch.sim.membership import HmacKeyring

from tests.unit.core.membership.test_swim import make_members


def _members(names: list[str]) -> dict[str, Swim]:
    return make_members(names, profile="local")[1]


def _run(members: dict[str, Swim], start: float, seconds: float, record: bytes,
         lose: Callable[[int], bool]) -> tuple[int, float]:
    """Serve every member's timers for `seconds`, delivering at once what they send.
    Counts p3's messages that carry its claim with `record`; the n-th of those (from 0)
    is lost when `lose(n)`, and p3's shell says so (`undelivered`)."""
    p3, carried = members["p3"], 0
    now, end = start, start + seconds
    while True:
        now = max(now, min(m.get_timer() for m in members.values()))
        if now >= end:
            return carried, end
        for m in members.values():
            m.handle_timer(now)
        pending = [(name, out) for name, m in members.items() for out in m.datagrams_to_send()]
        while pending:
            sender, (address, msg) = pending.pop(0)
            if sender == "p3" and not isinstance(msg, PushPull) and any(
                    c.parsed.subject == "p3" and c.parsed.record == record for c in msg.claims):
                carried += 1
                if lose(carried - 1):
                    p3.undelivered([msg])
                    continue
            receiver = address.split(":")[0]
            members[receiver].handle_message(now, f"{sender}:1", msg)
            pending += [(receiver, out) for out in members[receiver].datagrams_to_send()]


def test_a_record_whose_messages_were_lost_is_sent_again_then_only_its_due():
    m = _members(["p1", "p2", "p3"])
    p3 = m["p3"]
    limit = retransmit_limit(p3.profile, p3.live)
    p3.publish_record(1.0, b"work 2/2 free")
    # Its first `limit` calls carrying the record time out (a starved host): it goes out
    # again, `limit` more times, and reaches both others.
    sent, _ = _run(m, 1.0, 10.0, b"work 2/2 free", lose=lambda n: n < limit)
    assert sent == 2 * limit
    assert all(m[o].member("p3").record == b"work 2/2 free" for o in ("p1", "p2"))


def test_messages_that_arrived_are_not_sent_again():
    m = _members(["p1", "p2", "p3"])
    p3 = m["p3"]
    limit = retransmit_limit(p3.profile, p3.live)
    p3.publish_record(1.0, b"work 1/2 free")
    sent, _ = _run(m, 1.0, 10.0, b"work 1/2 free", lose=lambda n: False)
    assert sent == limit
    assert all(m[o].member("p3").record == b"work 1/2 free" for o in ("p1", "p2"))


def _alive(keyring: HmacKeyring, name: str, incarnation: int, record: bytes):
    body = ClaimBody(ClaimKind.ALIVE, name, incarnation, name, f"{name}:1", incarnation, record)
    return sign_claim(body, name, keyring.signer_for(name))


def test_a_superseded_claim_is_never_given_back():
    keyring = HmacKeyring(["n1"])
    queue = DisseminationQueue()
    old = _alive(keyring, "n1", 1, b"held")
    queue.push(old)
    assert queue.select(10_000, 1) == [old]  # its one transmission: spent
    assert queue.give_back([old], 1) == 1  # lost: queued again, for one more
    assert queue.select(10_000, 1) == [old]
    new = _alive(keyring, "n1", 2, b"free")
    queue.push(new)
    # The old claim's last message is reported lost after the new claim came: only the
    # new one travels.
    assert queue.give_back([old], 1) == 0
    assert queue.select(10_000, 1) == [new]
    assert queue.select(10_000, 1) == []
    queue.push(old)  # (what a relay of an old claim would do is the table's to judge)


def test_a_claim_never_queued_here_is_not_added():
    keyring = HmacKeyring(["n1", "n2"])
    queue = DisseminationQueue()
    buddy = _alive(keyring, "n2", 3, b"")  # a buddy claim put first, not from the queue
    assert queue.give_back([buddy], 4) == 0
    assert len(queue) == 0


def test_a_queued_claim_gets_its_transmission_back_once_per_loss():
    keyring = HmacKeyring(["n1"])
    queue = DisseminationQueue()
    claim = _alive(keyring, "n1", 1, b"r")
    queue.push(claim)
    for _ in range(3):
        assert queue.select(10_000, 4) == [claim]
    assert queue.give_back([claim], 4) == 1
    # Three counted, one given back: two more before it is spent.
    assert [queue.select(10_000, 4) for _ in range(3)] == [[claim], [claim], []]
