"""Coordinator core: every (phase, input) pair, in the h2 style.

Each phase is reached by the core's own inputs (classic and consensus mode), then
any sequence of inputs with arbitrary payloads is fed to it. Every pair either moves
to a phase the module's transition table allows, or raises the right protocol error
and changes nothing; COMMITTED and ABORTED never leave. The expected table is written
out here from the module's docs, apart from the core's own.
"""

from __future__ import annotations

import random

from fedorch.core.negotiation.coordinator import ConsensusOptions, Coordinator, Phase
from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Accepted,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAnswer,
    Promise,
    Reject,
    Value,
    VoteIn,
)
from fedorch.core.workflow.placement import Placement
from hypothesis import given, settings
from hypothesis import strategies as st

WF = "c.wf"
PLACEMENT = {"s1": "p1", "s2": "p2"}
DOMAINS = ("c", "p1", "p2", "x")  # x: a domain that is not part of the workflow
ID, P, D, C, A = Phase.IDLE, Phase.PREPARING, Phase.DECIDING, Phase.COMMITTED, Phase.ABORTED
REMOTE = {"vote", "paxos", "ack", "query", "answer"}

# (phase, input) -> phases it may move to; a pair not here must be refused.
EXPECTED: dict[tuple[Phase, str], set[Phase]] = {
    (ID, "start"): {P, A},                 # A: nothing can be placed
    (ID, "cancel"): {ID},
    (P, "vote"): {P, D, C, A},            # D: consensus all YES, C: classic all YES
    (P, "timer"): {P, A},
    (P, "cancel"): {A},
    (P, "paxos"): {P},
    (P, "ack"): {P},
    (P, "query"): {P},
    (D, "vote"): {D},
    (D, "timer"): {D},
    (D, "cancel"): {D},
    (D, "paxos"): {D, C, P, A},           # COMMIT chosen, or ABORT: next round or over
    (D, "ack"): {D},
    (D, "query"): {D},
    (D, "answer"): {D, C, P, A},          # a decided answer, as paxos; else asking on
    **{(phase, "answer"): {phase} for phase in (ID, P)},  # not asking: ignored
    **{(C, kind): {C} for kind in ("vote", "timer", "cancel", "paxos", "ack", "query",
                                   "answer")},
    **{(A, kind): {A} for kind in ("vote", "timer", "cancel", "paxos", "ack", "query",
                                   "answer")},
    # Membership: a domain is DEAD. A silent participant's round aborts at once (next
    # round, or over); anywhere else nothing moves.
    (P, "lost"): {P, A},
    **{(phase, "lost"): {phase} for phase in (ID, D, C, A)},
}


def _votes(round_: int = 1) -> tuple[VoteIn, ...]:
    return tuple(VoteIn(round_, d, True, "", f"vote of {d}".encode()) for d in ("p1", "p2"))


def make(consensus: bool) -> Coordinator:
    options = ConsensusOptions("c", random.Random(7), lambda: ["x"]) if consensus else None
    return Coordinator(WF, placer=lambda excluded: Placement(
        {s: d for s, d in PLACEMENT.items() if d not in excluded.get(s, set())},
        {s: "excluded" for s, d in PLACEMENT.items() if d in excluded.get(s, set())}),
        max_rounds=2, prepare_timeout_s=5.0, consensus=options)


def at(phase: Phase, consensus: bool) -> Coordinator:
    """A core brought to `phase` by its own inputs (DECIDING: consensus mode only)."""
    core = make(consensus)
    if phase is ID:
        return core
    core.start(0.0)
    if phase is A:
        core.cancel(1.0, "by request")
    elif phase in (D, C):
        for vote in _votes():
            core.receive_vote(1.0, vote)
        if phase is C and consensus:
            tx = core.tx()
            assert tx is not None
            for acceptor in tx.acceptors:
                core.receive_paxos(2.0, Accepted((WF, 1), Ballot(0, "c"), acceptor,
                                                 Value(True, _votes())))
    core.next_actions()
    assert core.phase is phase, (core.phase, phase)
    return core


rounds = st.integers(0, 3)
domains = st.sampled_from(DOMAINS)
ballots = st.builds(Ballot, st.integers(0, 3), domains)
values = st.one_of(st.just(Value(False)), st.just(Value(True, _votes())),
                   st.builds(Value, st.just(True), st.just(())))
keys = st.tuples(st.sampled_from([WF, "other.wf"]), rounds)
paxos = st.one_of(
    st.builds(Promise, keys, ballots, domains, st.none() | ballots, st.none() | values),
    st.builds(Accepted, keys, ballots, domains, values),
    st.builds(Reject, keys, ballots, domains, ballots),
    st.builds(Decision, keys, values, domains, st.booleans()),
)
# Inputs a well-behaved federation sends, so that sequences also reach the moves that
# need them (all YES, a majority of Accepted, a chosen ABORT).
fitting = st.sampled_from([
    *[("vote", VoteIn(1, d, True, "", f"vote of {d}".encode())) for d in ("p1", "p2")],
    ("vote", VoteIn(1, "p2", False, "no room", b"v")),
    *[("paxos", Accepted((WF, 1), Ballot(0, "c"), d, Value(True, _votes())))
      for d in ("c", "p1", "p2")],
    ("paxos", Decision((WF, 1), Value(False), "p1")),
    *[("ack", (d, 1)) for d in ("p1", "p2")],
    *[("lost", d) for d in ("p1", "p2")],
])
inputs = st.one_of(
    fitting,
    st.tuples(st.just("start"), st.none()),
    st.tuples(st.just("vote"), st.builds(VoteIn, rounds, domains, st.booleans(),
                                         st.text(max_size=5), st.binary(max_size=4))),
    st.tuples(st.just("timer"), st.floats(0.0, 100.0)),
    st.tuples(st.just("cancel"), st.text(max_size=5)),
    st.tuples(st.just("paxos"), paxos),
    st.tuples(st.just("ack"), st.tuples(domains, rounds)),
    st.tuples(st.just("query"), rounds),
    st.tuples(st.just("lost"), domains),
    st.tuples(st.just("answer"), st.builds(DecisionAnswer, keys, domains,
                                           st.sampled_from(list(AnswerStatus)),
                                           st.none() | values)),
)


def feed(core: Coordinator, kind: str, arg: object, now: float) -> None:
    if kind == "start":
        core.start(now)
    elif kind == "vote":
        core.receive_vote(now, arg)  # type: ignore[arg-type]
    elif kind == "timer":
        core.handle_timer(max(now, arg))  # type: ignore[type-var]
    elif kind == "cancel":
        core.cancel(now, arg)  # type: ignore[arg-type]
    elif kind == "paxos":
        core.receive_paxos(now, arg)
    elif kind == "ack":
        core.receive_ack(now, *arg)  # type: ignore[misc]
    elif kind == "lost":
        core.domain_lost(now, arg)  # type: ignore[arg-type]
    elif kind == "answer":
        core.receive_answer(now, arg)  # type: ignore[arg-type]
    else:
        core.answer_query(now, arg)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(phase=st.sampled_from(list(Phase)), consensus=st.booleans(),
       steps=st.lists(inputs, min_size=1, max_size=8)
       | st.lists(fitting, min_size=1, max_size=8))
def test_every_phase_and_input_moves_as_the_table_says_or_is_refused(
        phase, consensus, steps) -> None:
    if phase is D and not consensus:
        phase = P  # classic two-phase commit has no DECIDING phase
    core = at(phase, consensus)
    now = 10.0
    for kind, arg in steps:
        now += 1.0
        before = core.phase
        allowed = EXPECTED.get((before, kind))
        try:
            feed(core, kind, arg, now)
        except (LocalProtocolError, RemoteProtocolError) as e:
            expected = RemoteProtocolError if kind in REMOTE else LocalProtocolError
            assert isinstance(e, expected), (before, kind, e)
            assert core.phase is before and core.next_actions() == [], (before, kind)
            continue
        assert allowed is not None, f"{before.value} took {kind}, which is not in its table"
        assert core.phase in allowed, (before, kind, arg, core.phase)
        if before in (C, A):
            assert core.phase is before
        core.next_actions()


def test_the_table_covers_exactly_the_expected_pairs() -> None:
    from fedorch.core.negotiation import coordinator

    assert set(coordinator._TRANSITIONS) == set(EXPECTED)
