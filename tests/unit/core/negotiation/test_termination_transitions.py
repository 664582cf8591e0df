"""Proposer and termination cores: every (state, input) pair, in the h2 style.

Any sequence of timers and of Promise, Accepted, Reject, Decision and DecisionAnswer
with arbitrary ballots, senders and values is fed to a recovery proposer, and to a
participant's termination of one in-doubt transaction. Every input either moves as
the module's tables say or is refused with RemoteProtocolError and changes nothing;
DONE (a proposer) and learned (termination) never leave, and what is learned is
certified and learned once. Neither core ever reports a deadline before the `now` of
its last input, even for a transaction tracked long after its lease (a restart).
"""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation import termination as termination_module
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    Accepted,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAnswer,
    Learned,
    PersistBallot,
    Promise,
    Reject,
    TxInfo,
    Value,
    VoteIn,
    certifies,
)
from fedorch.core.negotiation.termination import (
    DoubtState,
    Proposer,
    ProposerPhase,
    Termination,
)
from hypothesis import given, settings
from hypothesis import strategies as st

TX = TxInfo("c.wf", 1, "c", ("p1", "p2"), ("c", "p1", "p2"))
KEY = TX.key
LEASE = 10.0
COMMIT = Value(True, tuple(VoteIn(1, d, True, "", b"v") for d in ("p1", "p2")))
UNCERTIFIED = Value(True, (VoteIn(1, "p1", True, "", b"v"),))
P1, P2, B, DONE = (ProposerPhase.PHASE1, ProposerPhase.PHASE2, ProposerPhase.BACKOFF,
                   ProposerPhase.DONE)
W, ASK, REC = DoubtState.WAITING, DoubtState.ASKING, DoubtState.RECOVERING
PAST = DoubtState.PAST_LIFE

PROPOSER_EXPECTED: dict[tuple[ProposerPhase, str], set[ProposerPhase]] = {
    (P1, "Promise"): {P1, P2},             # P2 with a majority of promises
    (P1, "Accepted"): {P1, DONE},          # DONE: a learner saw a majority in one ballot
    (P1, "Reject"): {P1, B},
    (P1, "Decision"): {DONE},
    (P1, "timer"): {P1},
    (P2, "Promise"): {P2},
    (P2, "Accepted"): {P2, DONE},
    (P2, "Reject"): {P2, B},
    (P2, "Decision"): {DONE},
    (P2, "timer"): {P2},
    (B, "Promise"): {B},
    (B, "Accepted"): {B, DONE},
    (B, "Reject"): {B},
    (B, "Decision"): {DONE},
    (B, "timer"): {B, P1},
    **{(DONE, kind): {DONE} for kind in ("Promise", "Accepted", "Reject", "Decision", "timer")},
}
# None: nothing in doubt any more (learned, and gone).
TERMINATION_EXPECTED: dict[tuple[DoubtState | None, str], set[DoubtState | None]] = {
    (W, "timer"): {W, ASK},
    (ASK, "timer"): {ASK, REC},
    (REC, "timer"): {REC, None},           # None: our own ballot chose a value
    **{(s, kind): {s, None} for s in (W, ASK, REC)
       for kind in ("Accepted", "Decision")},
    # PAST_LIFE once a majority of the acceptors answered so (acceptor.py).
    **{(s, "DecisionAnswer"): {s, PAST, None} for s in (W, ASK, REC)},
    (PAST, "timer"): {PAST}, (PAST, "lost"): {PAST},
    **{(PAST, kind): {PAST, None} for kind in ("Accepted", "Decision", "DecisionAnswer")},
    (PAST, "Promise"): {PAST}, (PAST, "Reject"): {PAST},
    (W, "Promise"): {W}, (ASK, "Promise"): {ASK}, (REC, "Promise"): {REC, None},
    (W, "Reject"): {W}, (ASK, "Reject"): {ASK}, (REC, "Reject"): {REC},
    # Membership says the coordinator is DEAD: ask everyone at once (recovery goes on).
    (W, "lost"): {ASK}, (ASK, "lost"): {ASK}, (REC, "lost"): {REC},
    **{(None, kind): {None} for kind in ("timer", "Accepted", "Decision", "DecisionAnswer",
                                         "Promise", "Reject", "lost")},
}

acceptors = st.sampled_from(["c", "p1", "p2", "x"])
ballots = st.builds(Ballot, st.integers(0, 4), st.sampled_from(["c", "p1", "p2"]))
values = st.sampled_from([ABORT, COMMIT, UNCERTIFIED])
keys = st.sampled_from([KEY, KEY, KEY, ("c.wf", 2)])
messages = st.one_of(
    st.builds(Promise, keys, ballots, acceptors, st.none() | ballots, st.none() | values),
    st.builds(Accepted, keys, ballots, acceptors, values),
    st.builds(Reject, keys, ballots, acceptors, ballots),
    st.builds(Decision, keys, values, acceptors, st.booleans()),
    st.builds(DecisionAnswer, keys, acceptors, st.sampled_from(list(AnswerStatus)),
              st.none() | values),
)
# The proposer's own ballots are (n, "p1"): replies that name them reach every move.
own = st.sampled_from([Ballot(1, "p1"), Ballot(1, "p1"), Ballot(2, "p1"), Ballot(5, "p1")])
fitting = st.one_of(
    st.builds(Promise, st.just(KEY), own, acceptors, st.none(), st.none()),
    st.builds(Accepted, st.just(KEY), own, acceptors, st.just(ABORT)),
    st.builds(Reject, st.just(KEY), own, acceptors, st.builds(Ballot, st.just(4), st.just("c"))),
)
timers = st.tuples(st.just("timer"), st.sampled_from([0.0, 0.5, 2.0, LEASE]))
inputs = st.one_of(timers, st.tuples(st.just("msg"), messages | fitting))
steps_of = st.lists(inputs, min_size=1, max_size=12) | st.lists(
    timers | st.tuples(st.just("msg"), fitting), min_size=1, max_size=12)
# Termination's inputs also include membership's word that the coordinator is DEAD.
doubt_steps_of = st.lists(inputs | st.just(("lost",)), min_size=1, max_size=12) | steps_of
# When a participant starts tracking: before its lease, at it, or restarted long after.
track_times = st.sampled_from([0.0, LEASE, LEASE + 7.5, LEASE + 3600.0])


def _kind(step) -> str:
    return step[0] if step[0] in ("timer", "lost") else type(step[1]).__name__


def _not_past(timer: float | None, now: float) -> bool:
    """A deadline is never before the `now` of the last input. Time moves here only by
    timers, each firing what is due by then, as a driver does."""
    return timer is None or timer >= now


@settings(max_examples=250, deadline=None)
@given(steps=steps_of)
def test_every_proposer_phase_and_input_moves_as_the_table_says(steps) -> None:
    p = Proposer("p1", TX, preferred=ABORT, rng=random.Random(3), resend_s=1.0, backoff_s=1.0)
    p.start(0.0)
    p.next_actions()
    now = 0.0
    for step in steps:
        before, chosen = p.phase, p.chosen
        if step[0] == "timer":
            now += step[1]
            p.handle_timer(now)
        else:
            try:
                p.receive(now, step[1])
            except RemoteProtocolError:
                assert (p.phase, p.chosen, p.next_actions()) == (before, chosen, [])
                continue
        assert _not_past(p.get_timer(), now), (before, step, p.get_timer(), now)
        assert p.phase in PROPOSER_EXPECTED[(before, _kind(step))], (before, step)
        assert (p.chosen is not None) == (p.phase is DONE)
        if before is DONE:
            assert p.chosen is chosen
        p.next_actions()


@settings(max_examples=250, deadline=None)
@given(steps=doubt_steps_of, start=track_times)
def test_every_doubt_state_and_input_moves_as_the_table_says(steps, start: float) -> None:
    t = Termination("p1", rng=random.Random(5), query_timeout_s=2.0, query_interval_s=2.0,
                    resend_s=1.0, backoff_s=1.0)
    t.track(start, TX, LEASE)
    now = start
    assert _not_past(t.get_timer(), now) and t.get_timer() == max(start, LEASE)
    learned: list[Learned] = []
    for step in steps:
        before = t.state(KEY)
        if step[0] == "timer":
            now += step[1]
            t.handle_timer(now)
        elif step[0] == "lost":
            t.coordinator_lost(now, TX.coordinator)
        else:
            try:
                t.receive(now, step[1])
            except RemoteProtocolError:
                assert t.state(KEY) is before and t.next_actions() == []
                assert _not_past(t.get_timer(), now)
                continue
        assert _not_past(t.get_timer(), now), (before, step, t.get_timer(), now)
        after = t.state(KEY)
        assert after in TERMINATION_EXPECTED[(before, _kind(step))], (before, step, after)
        actions = t.next_actions()
        now_learned = [x for x in actions if isinstance(x, Learned)]
        assert (after is None and before is not None) == bool(now_learned)
        learned += now_learned
    assert len(learned) <= 1
    assert all(x.key == KEY and certifies(TX, x.value) for x in learned)


def test_the_proposer_table_covers_exactly_the_expected_pairs() -> None:
    table = {(phase, kind.__name__) for phase, kind in termination_module._PROPOSER_TABLE}
    assert table == {pair for pair in PROPOSER_EXPECTED if pair[1] != "timer"}


@settings(max_examples=100, deadline=None)
@given(late=st.floats(min_value=0.0, max_value=3600.0))
def test_a_query_to_the_coordinator_gets_its_timeout_however_late_the_first_timer(
        late: float) -> None:
    # A participant restarted long after its lease: its first timer asks the coordinator,
    # and recovery starts no sooner than the query timeout after that question.
    t = Termination("p1", rng=random.Random(5), query_timeout_s=2.0, query_interval_s=2.0,
                    resend_s=1.0, backoff_s=1.0)
    t.track(0.0, TX, LEASE)
    now = LEASE + late
    t.handle_timer(now)
    assert t.state(KEY) is ASK
    assert [type(a).__name__ for a in t.next_actions()] == ["Send"]
    timer = t.get_timer()
    assert timer is not None and timer >= now + 2.0
    t.handle_timer(now + 1.999)
    assert t.state(KEY) is ASK


def _gone_termination(view: dict[str, str]) -> Termination:
    return Termination("p1", rng=random.Random(5), query_timeout_s=2.0, query_interval_s=2.0,
                       resend_s=1.0, backoff_s=1.0,
                       coordinator_gone=lambda c: view.get(c) in ("DEAD", "LEFT"))


def test_a_yes_tracked_while_its_coordinator_is_dead_asks_everyone_at_its_first_timer() -> None:
    view = {"c": "DEAD"}
    t = _gone_termination(view)
    t.track(1.0, TX, LEASE)
    assert t.next_actions() == [] and t.get_timer() == 1.0  # track only records
    t.handle_timer(1.0)
    assert t.state(KEY) is ASK
    assert sorted(a.to for a in t.next_actions()) == ["c", "p2"]  # the acceptors
    timer = t.get_timer()
    assert timer is not None and 1.0 < timer <= 1.0 + 1.0  # its turn (rank 0), not the lease
    t.handle_timer(timer)
    assert t.state(KEY) is REC


@pytest.mark.parametrize("state", ["ALIVE", "SUSPECT"])
def test_a_coordinator_back_before_the_first_timer_leaves_the_doubt_to_its_lease(
        state: str) -> None:
    view = {"c": "DEAD"}
    t = _gone_termination(view)
    t.track(1.0, TX, LEASE)
    view["c"] = state
    t.handle_timer(1.0)
    assert t.state(KEY) is W and t.next_actions() == [] and t.get_timer() == LEASE
    t.handle_timer(LEASE)
    assert t.state(KEY) is ASK and [a.to for a in t.next_actions()] == ["c"]


def _recovering(me: str) -> tuple[Termination, Ballot, float]:
    """`me` in TX, its coordinator DEAD, recovering: its first ballot sent."""
    t = Termination(me, rng=random.Random(7), query_timeout_s=2.0, query_interval_s=60.0,
                    resend_s=1.0, backoff_s=1.0, coordinator_gone=lambda c: c == "c")
    t.track(1.0, TX, LEASE)
    t.handle_timer(1.0)
    while t.state(KEY) is not REC:
        timer = t.get_timer()
        assert timer is not None
        t.handle_timer(timer)
    now = t.get_timer()
    assert now is not None
    ballots = [a.ballot for a in t.next_actions() if isinstance(a, PersistBallot)]
    return t, ballots[-1], now


def test_a_recovery_proposer_pre_empted_by_an_earlier_ones_ballot_yields_to_it() -> None:
    # p1 runs its ballot first (rank 0), p2 second: pre-empted by p1's ballot, p2 waits
    # for p1's two phases, each resent twice (2 × 2 × resend_s × (rank + 1)), not a
    # random while in which its next ballot would pre-empt p1's in turn (seed 10002160
    # of the takeover soak), nor a while that ends as p1's ballot, its messages lost,
    # is about to be chosen (seed 18101218: a yield of 4 s cost p1 a third ballot).
    t, mine, now = _recovering("p2")
    t.receive(now, Reject(KEY, mine, "c", Ballot(mine.n + 1, "p1")))
    assert t.get_timer() == now + 8.0
    t.handle_timer(now + 7.999)
    assert t.next_actions() == []  # no new ballot while it yields


def test_a_later_proposers_yields_double_up_to_the_same_longest_wait() -> None:
    # Each further yield doubles, up to 16 s for rank 1 (as before the first yield was
    # lengthened): a dead earlier proposer delays the later one by no more than that.
    p = Proposer("p2", TX, preferred=ABORT, rng=random.Random(1), resend_s=1.0,
                 backoff_s=0.5, order=("p1", "p2"))
    p.start(0.0)
    now, waits = 0.0, []
    for _ in range(4):
        p.receive(now, Reject(KEY, p.ballot, "c", Ballot(p.ballot.n + 1, "p1")))
        timer = p.get_timer()
        assert timer is not None and p.phase is B
        waits.append(timer - now)
        now = timer
        p.handle_timer(now)
        assert p.phase is P1
    assert waits == [8.0, 16.0, 16.0, 16.0]


def test_a_recovery_proposer_pre_empted_by_a_later_ones_ballot_retries_soon() -> None:
    # p1 first in turn: p2 yields to it, so p1 goes again after backoff_s, no longer.
    t, mine, now = _recovering("p1")
    t.receive(now, Reject(KEY, mine, "c", Ballot(mine.n + 1, "p2")))
    assert t.get_timer() == now + 1.0
    t.handle_timer(now + 1.0)
    assert [type(a).__name__ for a in t.next_actions()][:1] == ["PersistBallot"]
