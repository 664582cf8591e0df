"""Membership tells its core which gossip did not arrive: a SWIM call that
failed (a loaded peer, a timeout), or an answer built after its caller gave up. That
gossip is sent again, so a freed slot is not left unseen until the next push-pull."""

from __future__ import annotations

from fedorch.core.membership import swim_codec
from fedorch.core.membership.swim_profiles import retransmit_limit
from fedorch.core.membership.swim_types import Ping
from fedorch.gen.fedorch.v1 import swim_pb2
from fedorch.runtime.membership import Membership
from fedorch.runtime.peers import PeerCallError


def _ping_from(sender: str, target: str) -> swim_pb2.SwimBatch:
    ping = Ping(seq=1, sender=sender, target=target, claims=())
    return swim_pb2.SwimBatch(reply_to="127.0.0.1:2", messages=[swim_codec.encode(ping)])


def _acks_carrying_own_record(m: Membership, domain: str, times: int,
                              caller_gone=None) -> tuple[int, list]:
    """Answer `times` pings; how many answers carried our own claim, and the answers."""
    carried, answers = 0, []
    own = m.swim.own_claim
    for _ in range(times):
        reply = m.handle_batch("beta", _ping_from("beta", domain), caller_gone=caller_gone)
        for raw in reply.messages:
            msg = swim_codec.decode(raw)
            answers.append(msg)
            carried += sum(1 for c in msg.claims if c.body == own.body)
    return carried, answers


async def test_an_answer_its_caller_gave_up_on_owes_its_gossip(agent) -> None:
    m = Membership(agent, incarnation=5)
    m.publish(agent.current_record(), force=True)
    limit = retransmit_limit(m.profile, m.swim.live)
    # Two answers built after their callers' deadlines: they do not count.
    gone, _ = _acks_carrying_own_record(m, agent.domain, 2, caller_gone=lambda: True)
    assert gone == 2
    carried, _ = _acks_carrying_own_record(m, agent.domain, limit + 3)
    assert carried == limit


async def test_a_failed_call_owes_its_gossip(agent, monkeypatch) -> None:
    m = Membership(agent, incarnation=5)
    m.publish(agent.current_record(), force=True)
    limit = retransmit_limit(m.profile, m.swim.live)
    first, answers = _acks_carrying_own_record(m, agent.domain, 1)
    assert first == 1

    async def timed_out(*args, **kwargs):
        raise PeerCallError("DEADLINE_EXCEEDED", "deadline exceeded")

    monkeypatch.setattr(agent.peers, "call", timed_out)
    # The same message, sent by membership on a call that times out.
    await m._send("127.0.0.1:2", answers)
    rest, _ = _acks_carrying_own_record(m, agent.domain, limit + 3)
    assert first + rest == limit + 1  # the lost one was sent again


def test_the_swim_service_counts_a_caller_gone_only_past_its_deadline() -> None:
    from fedorch.runtime.peer_service import _deadline_passed

    class Served:
        def __init__(self, remaining: float | None) -> None:
            self.remaining = remaining

        def time_remaining(self) -> float | None:
            return self.remaining

    assert _deadline_passed(Served(-0.2)) and _deadline_passed(Served(0.0))
    assert not _deadline_passed(Served(1.5))
    assert not _deadline_passed(Served(None))  # no deadline
    assert not _deadline_passed(object())  # an in-process call: it cannot say
