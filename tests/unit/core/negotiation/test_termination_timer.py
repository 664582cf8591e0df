"""Termination's deadlines come from a table, not a walk over every transaction in doubt
(agent/core/negotiation/termination.py, "Deadlines").

`walked_timer` below is what `get_timer` computed before: the least of every doubt's
`next_at` and of every recovery proposer's timer. Any sequence of Termination's inputs
over several transactions (tracks before, at and long after their leases, classic 2PC
ones, membership's word that a coordinator is DEAD or back, forgets, any message, ticks
at any time or at the deadline) must leave `get_timer` equal to it, and a tick must do
what a tick that walks every doubt does. A Node asks `get_timer` after every turn: with
hundreds in doubt and nothing due it must read a handful of them, not all.
"""

from __future__ import annotations

import random

from fedorch.core.negotiation import proposer as proposer_module
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    Accepted,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAnswer,
    Promise,
    Reject,
    TxInfo,
    Value,
    VoteIn,
)
from fedorch.core.negotiation.termination import DoubtState, Termination
from hypothesis import given, settings
from hypothesis import strategies as st

# p1 is "me": a participant of each; c, d and e coordinate; the last is classic 2PC.
TXS = (
    TxInfo("c.a", 1, "c", ("p1", "p2"), ("c", "p1", "p2")),
    TxInfo("d.b", 1, "d", ("p1", "p3"), ("d", "p1", "p3")),
    TxInfo("c.c", 2, "c", ("p1", "p2", "p3"), ("c", "p1", "p2")),
    TxInfo("e.d", 1, "e", ("p1", "p2"), ()),
)
COORDINATORS = ("c", "d", "e")


def walked_timer(t: Termination) -> float | None:
    """The walk `get_timer` was: every doubt's own deadline and its proposer's."""
    times = []
    for d in t._doubts.values():
        times.append(d.next_at)
        if d.proposer is not None:
            timer = d.proposer.get_timer()
            if timer is not None:
                times.append(timer)
    return min(times) if times else None


class Walking(Termination):
    """A tick as it was: every doubt in doubt, in the order tracked, due or not."""

    def handle_timer(self, now: float) -> None:
        for d in list(self._doubts.values()):
            self._fire(d, now)


def _commit(tx: TxInfo) -> Value:
    return Value(True, tuple(VoteIn(tx.round, p, True, "", b"v") for p in tx.participants))


names = st.sampled_from(["c", "d", "e", "p1", "p2", "p3", "x"])
keys = st.sampled_from([tx.key for tx in TXS] + [("c.z", 1)])
ballots = st.builds(Ballot, st.integers(0, 4), names)
values = st.sampled_from([ABORT, *(_commit(tx) for tx in TXS), Value(True, ())])
# Replies to p1's own ballots, as its proposer numbers them, reach every move of it.
own = st.builds(Ballot, st.sampled_from([1, 1, 1, 2, 3]), st.just("p1"))
messages = st.one_of(
    st.builds(Promise, keys, ballots | own, names, st.none() | ballots, st.none() | values),
    st.builds(Accepted, keys, ballots | own, names, values),
    st.builds(Reject, keys, own | ballots, names, ballots),
    st.builds(Decision, keys, values, names, st.booleans()),
    st.builds(DecisionAnswer, keys, names, st.sampled_from(list(AnswerStatus)),
              st.none() | values),
)
# Those that move a doubt or its proposer: a majority saying PAST_LIFE, a promise, an
# accept or a pre-emption of p1's own ballot.
acceptors = st.sampled_from(["c", "d", "p1", "p2", "p3"])
tx_keys = st.sampled_from([tx.key for tx in TXS])
fitting = st.one_of(
    st.builds(DecisionAnswer, tx_keys, acceptors, st.just(AnswerStatus.PAST_LIFE),
              st.none()),
    st.builds(Promise, tx_keys, own, acceptors, st.none(), st.none()),
    st.builds(Accepted, tx_keys, own, acceptors, st.just(ABORT)),
    st.builds(Reject, tx_keys, own, acceptors,
              st.builds(Ballot, st.integers(2, 6), st.sampled_from(["c", "p2", "p3"]))),
)
inputs = st.one_of(
    st.tuples(st.just("track"), st.integers(0, len(TXS) - 1),
              st.sampled_from([-3600.0, -1.0, 0.0, 0.5, 4.0, 30.0]), st.none() | own),
    st.tuples(st.just("lost"), st.sampled_from(COORDINATORS)),
    st.tuples(st.just("view"), st.sampled_from(COORDINATORS),
              st.sampled_from(["ALIVE", "SUSPECT", "DEAD", "LEFT"])),
    st.tuples(st.just("forget"), keys),
    st.tuples(st.just("msg"), messages | fitting),
    st.tuples(st.just("timer"), st.sampled_from([0.0, 0.3, 1.0, 2.5, 10.0, 100.0])),
    # The next deadlines, one tick at each, as a driver's ticks.
    st.tuples(st.just("due"), st.sampled_from([1, 2, 3, 6])),
)
# Each run starts with some of them tracked (a lease in a few seconds, or passed) and
# often goes to the next deadline: recovery, and the proposers' moves, within reach.
starts = st.lists(st.tuples(st.integers(0, len(TXS) - 1), st.sampled_from([-1.0, 0.0, 2.0])),
                  max_size=len(TXS))
steps_of = st.lists(inputs | st.tuples(st.just("msg"), fitting),
                    min_size=1, max_size=40)


def _pair(view: dict[str, str]) -> tuple[Termination, Walking]:
    def make(cls):
        return cls("p1", rng=random.Random(11), query_timeout_s=2.0, query_interval_s=3.0,
                   resend_s=1.0, backoff_s=0.5,
                   coordinator_gone=lambda c: view.get(c) in ("DEAD", "LEFT"))
    return make(Termination), make(Walking)


def _ticks(steps):
    """The steps, a ("due", k) as k ticks, each at the deadline the one before left."""
    for step in steps:
        for _ in range(step[1] if step[0] == "due" else 1):
            yield step


@settings(max_examples=400, deadline=None)
@given(starts, steps_of)
def test_the_timer_is_the_walks_and_a_tick_does_what_the_walk_did(start, steps) -> None:
    view: dict[str, str] = {}
    t, walking = _pair(view)
    now = 0.0
    for i, lease in start:
        t.track(now, TXS[i], lease)
        walking.track(now, TXS[i], lease)
    for step in _ticks(steps):
        if step[0] == "due":
            timer = t.get_timer()
            if timer is None:
                continue
            now = max(now, timer)
        elif step[0] == "timer":
            now += step[1]
        outcomes = []
        for core in (t, walking):
            try:
                if step[0] == "track":
                    _, i, lease, floor = step
                    core.track(now, TXS[i], now + lease, floor)
                elif step[0] == "lost":
                    outcomes.append(core.coordinator_lost(now, step[1]))
                elif step[0] == "view":
                    view[step[1]] = step[2]
                elif step[0] == "forget":
                    core.forget(step[1])
                elif step[0] == "msg":
                    core.receive(now, step[1])
                else:
                    core.handle_timer(now)
            except RemoteProtocolError as e:
                outcomes.append(type(e))
        assert outcomes[:1] == outcomes[1:], (step, outcomes)
        assert t.get_timer() == walked_timer(t), (step, now)
        assert walked_timer(walking) == walked_timer(t), (step, now)
        assert t.in_doubt() == walking.in_doubt()
        assert [t.state(k) for k in t.in_doubt()] == [walking.state(k)
                                                      for k in walking.in_doubt()]
        assert t.next_actions() == walking.next_actions(), (step, now)


# ---- a turn with hundreds in doubt and nothing due ------------------------------------

class Deadline(float):
    """A lease that counts how often it is compared: the walk compares every one."""
    compared = 0

    def _count(op):
        def compare(self, other):
            Deadline.compared += 1
            return op(self, other)
        return compare

    __lt__ = _count(float.__lt__)
    __le__ = _count(float.__le__)
    __gt__ = _count(float.__gt__)
    __ge__ = _count(float.__ge__)
    __eq__ = _count(float.__eq__)
    __hash__ = float.__hash__
    del _count


def _in_doubt(waiting: int, recovering: int) -> Termination:
    """`waiting` doubts with leases far off and `recovering` ones whose proposers and
    queries are due far off too: nothing is due for a long while."""
    t = Termination("p1", rng=random.Random(2), query_timeout_s=1.0,
                    query_interval_s=1e5, resend_s=1e5, backoff_s=0.5, stagger_s=1.0)
    for i in range(recovering):
        t.track(0.0, TxInfo(f"c.r{i}", 1, "c", ("p1", "p2"), ("c", "p1", "p2")), 0.0)
    t.handle_timer(0.0)   # asked the coordinator
    t.handle_timer(10.0)  # no answer: recovering, a ballot started
    assert all(t.state(k) is DoubtState.RECOVERING for k in t.in_doubt())
    for i in range(waiting):
        t.track(10.0, TxInfo(f"c.w{i}", 1, "c", ("p1", "p2"), ("c", "p1", "p2")),
                Deadline(1e6 + i))
    t.next_actions()
    # As the Node does after every turn: the deadlines the ticks above replaced leave
    # stale items in the heap, popped here once (their amortised cost), not per turn.
    t.get_timer()
    return t


def test_a_turn_reads_no_doubt_but_the_earliest(monkeypatch) -> None:
    t = _in_doubt(waiting=300, recovering=300)
    expected = walked_timer(t)
    assert expected is not None and expected > 1e4
    asked = []
    original = proposer_module.Proposer.get_timer
    monkeypatch.setattr(proposer_module.Proposer, "get_timer",
                        lambda self: asked.append(self.tx.key) or original(self))
    Deadline.compared = 0
    for turn in range(5):  # a Node asks after every turn; a tick with nothing due
        assert t.get_timer() == expected
        t.handle_timer(20.0 + turn)
        assert t.next_actions() == []
    # The walk compared all 300 leases and asked all 300 proposers, at every call.
    assert Deadline.compared <= 10 and asked == [], (Deadline.compared, len(asked))
