"""A bounded acceptor set: participants beyond `max_acceptors` are learners only.

The coordinator takes itself and participants up to `max_acceptors` as the round's
acceptors; a participant beyond the bound learns the decision from a majority of the
acceptors' Accepted, and in doubt proposes to the acceptors without accepting itself.
The property at the end runs the real Acceptor, Proposer and Termination cores of a
coordinator and up to ten participants over a network that reorders and loses, and
checks that no two values are ever learned and, once the network is reliable, that
every participant learns the decision.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.negotiation.acceptor import Acceptor, PersistAcceptor
from fedorch.core.negotiation.coordinator import ConsensusOptions, Coordinator, SendPrepare
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    Accept,
    Accepted,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAnswer,
    DecisionQuery,
    Learned,
    PaxosPrepare,
    PersistBallot,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
    VoteIn,
    check_tx,
)
from fedorch.core.negotiation.termination import Proposer, Termination
from hypothesis import given, settings
from hypothesis import strategies as st


@dataclass
class _Result:
    assignment: dict[str, str]
    unplaceable: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.unplaceable


def _prepared(workflow_id: str, participants: list[str], *, max_acceptors: int = 5,
              extras: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The acceptors a coordinator "c" names in the PREPAREs of a round on `participants`."""
    assignment = {f"s{i}": p for i, p in enumerate(participants)}
    core = Coordinator(workflow_id, placer=lambda excluded: _Result(assignment), max_rounds=1,
                       prepare_timeout_s=5.0,
                       consensus=ConsensusOptions("c", random.Random(0), extras,
                                                  max_acceptors=max_acceptors))
    core.start(0.0)
    prepares = [a for a in core.next_actions() if isinstance(a, SendPrepare)]
    assert {p.domain for p in prepares} == set(participants)
    assert len({p.acceptors for p in prepares}) == 1  # one set, in every PREPARE
    return prepares[0].acceptors


# ---- the coordinator's choice ----------------------------------------------------------


def test_up_to_four_participants_are_all_acceptors_as_before() -> None:
    assert _prepared("c.w", ["p1", "p2", "p3", "p4"]) == ("c", "p1", "p2", "p3", "p4")
    assert _prepared("c.w", ["p1", "p2", "p3"]) == ("c", "p1", "p2", "p3")
    # Fewer than three: topped up with live members, as before.
    assert _prepared("c.w", ["p1"], extras=("x", "y")) == ("c", "p1", "x")


def test_a_wide_round_has_max_acceptors_the_coordinator_among_them() -> None:
    participants = [f"p{i:02d}" for i in range(50)]
    acceptors = _prepared("c.w", participants)
    assert len(acceptors) == 5 and "c" in acceptors
    assert set(acceptors) - {"c"} <= set(participants)
    assert list(acceptors) == sorted(acceptors)
    check_tx(TxInfo("c.w", 1, "c", tuple(participants), acceptors))
    narrow = _prepared("c.w", participants, max_acceptors=3)
    assert len(narrow) == 3 and "c" in narrow


def test_the_set_is_fixed_by_the_workflow_and_differs_between_workflows() -> None:
    participants = [f"p{i:02d}" for i in range(20)]
    assert _prepared("c.w1", participants) == _prepared("c.w1", list(reversed(participants)))
    sets = {_prepared(f"c.w{i}", participants) for i in range(10)}
    assert len(sets) > 1  # not the same few domains in every workflow


def test_a_coordinator_that_is_a_participant_counts_once() -> None:
    acceptors = _prepared("c.w", ["c", *[f"p{i}" for i in range(9)]])
    assert len(acceptors) == 5 and acceptors.count("c") == 1


# ---- the shape of a transaction --------------------------------------------------------


def test_a_participant_may_be_no_acceptor_when_there_are_three_or_more() -> None:
    check_tx(TxInfo("c.w", 1, "c", ("p1", "p2", "p3"), ("c", "p1", "p2")))
    with pytest.raises(RemoteProtocolError, match="at least three"):
        check_tx(TxInfo("c.w", 1, "c", ("p1", "p2"), ("c", "p1")))
    with pytest.raises(RemoteProtocolError, match="coordinator"):
        check_tx(TxInfo("c.w", 1, "c", ("p1", "p2", "p3"), ("p1", "p2", "p3")))
    # An outsider in place of a participant: refused (extras only make up the number).
    with pytest.raises(RemoteProtocolError, match="coordinator and participants"):
        check_tx(TxInfo("c.w", 1, "c", ("p1", "p2", "p3"), ("c", "p1", "x")))
    check_tx(TxInfo("c.w", 1, "c", ("p1",), ("c", "p1", "x")))  # as before: made up to three


# ---- learners: the Accepted they get -------------------------------------------------

PARTICIPANTS = ("p1", "p2", "p3", "p4", "p5", "p6")
VOTES = tuple(VoteIn(1, p, True, "", p.encode()) for p in PARTICIPANTS)
COMMIT = Value(True, VOTES)


def _accepted_to(acceptor: Acceptor) -> set[str]:
    return {a.to for a in acceptor.next_actions()
            if isinstance(a, Send) and isinstance(a.msg, Accepted)}


@pytest.mark.parametrize("acceptors", [("c", "p1", "p2"), ("c", "p1", "p2", "p3", "p4")])
def test_every_acceptor_tells_the_participants_that_are_none(acceptors) -> None:
    tx = TxInfo("c.w", 1, "c", PARTICIPANTS, acceptors)
    learners = set(PARTICIPANTS) - set(acceptors)
    own = Acceptor("c")
    own.receive("c", Accept(tx, Ballot(0, "c"), COMMIT))
    assert _accepted_to(own) == {"c"} | learners  # the proposer and the learners only
    other = Acceptor("p1")
    other.receive("c", Accept(tx, Ballot(0, "c"), COMMIT, proposer_accepted=True))
    told = _accepted_to(other)
    assert learners <= told and "p1" in told  # p1 counts the coordinator's word itself
    # Each learner hears from every acceptor: a majority even if the proposer stops.
    assert len(acceptors) - 1 >= tx.majority


def test_a_learner_learns_from_a_majority_of_the_acceptors_not_from_others() -> None:
    tx = TxInfo("c.w", 1, "c", PARTICIPANTS, ("c", "p1", "p2"))
    term = Termination("p6", rng=random.Random(1), query_timeout_s=1.0, query_interval_s=1.0,
                       resend_s=1.0, backoff_s=0.1)
    term.track(0.0, tx, lease_expires=10.0)
    with pytest.raises(RemoteProtocolError, match="not an acceptor"):
        term.receive(0.0, Accepted(tx.key, Ballot(0, "c"), "p5", ABORT))
    term.receive(0.0, Accepted(tx.key, Ballot(0, "c"), "c", COMMIT))
    assert term.next_actions() == []
    term.receive(0.0, Accepted(tx.key, Ballot(0, "c"), "p1", COMMIT))
    assert term.next_actions() == [Learned(tx.key, COMMIT, tx, by_coordinator=True)]


def test_a_learner_in_doubt_asks_and_proposes_to_the_acceptors_only() -> None:
    tx = TxInfo("c.w", 1, "c", PARTICIPANTS, ("c", "p1", "p2"))
    term = Termination("p6", rng=random.Random(1), query_timeout_s=1.0, query_interval_s=1.0,
                       resend_s=1.0, backoff_s=0.1, stagger_s=0.0)
    term.track(0.0, tx, lease_expires=0.0)
    term.handle_timer(0.0)
    assert [(a.to, type(a.msg)) for a in term.next_actions()] == [("c", DecisionQuery)]
    term.handle_timer(5.0)
    actions = term.next_actions()
    queried = {a.to for a in actions if isinstance(a, Send) and isinstance(a.msg, DecisionQuery)}
    prepared = {a.to for a in actions if isinstance(a, Send) and isinstance(a.msg, PaxosPrepare)}
    assert queried == {"c", "p1", "p2"} and prepared == {"c", "p1", "p2"}
    ballot = next(a.ballot for a in actions if isinstance(a, PersistBallot))
    for acceptor in ("c", "p1"):
        term.receive(5.0, Promise(tx.key, ballot, acceptor, None, None))
    accepts = [a for a in term.next_actions() if isinstance(a, Send)]
    # Phase 2 at every acceptor at once, vouching for nothing: p6 accepts nothing itself.
    assert {a.to for a in accepts} == {"c", "p1", "p2"}
    assert all(isinstance(a.msg, Accept) and a.msg.value == ABORT
               and not a.msg.proposer_accepted for a in accepts)
    term.receive(5.0, Accepted(tx.key, ballot, "p1", ABORT))
    term.receive(5.0, Accepted(tx.key, ballot, "p2", ABORT))
    actions = term.next_actions()
    assert actions[0] == Learned(tx.key, ABORT, tx)
    told = {a.to for a in actions[1:] if isinstance(a, Send) and isinstance(a.msg, Decision)}
    assert told == {"c", *PARTICIPANTS} - {"p6"}


def test_only_the_coordinator_owns_ballot_zero() -> None:
    tx = TxInfo("c.w", 1, "c", PARTICIPANTS, ("c", "p1", "p2"))
    with pytest.raises(RemoteProtocolError):
        Proposer("p6", tx, preferred=ABORT, rng=random.Random(0), resend_s=1.0,
                 backoff_s=0.1, fast=True)


# ---- the property: real cores, a lossy network ------------------------------------------


class _Net:
    """The coordinator "c" proposes COMMIT in ballot 0; participants recover with ABORT."""

    def __init__(self, n: int, max_acceptors: int, seed: int) -> None:
        self.participants = tuple(f"p{i}" for i in range(n))
        votes = tuple(VoteIn(1, p, True, "", p.encode()) for p in self.participants)
        self.commit = Value(True, votes)
        core = Coordinator("c.w", placer=lambda excluded: _Result(
            {f"s{i}": p for i, p in enumerate(self.participants)}), max_rounds=1,
            prepare_timeout_s=5.0, consensus=ConsensusOptions(
                "c", random.Random(seed), ("x1", "x2"), max_acceptors=max_acceptors))
        core.start(0.0)
        core.next_actions()
        self.tx = core.tx()
        assert self.tx is not None
        self.acceptors = {a: Acceptor(a) for a in self.tx.acceptors}
        self.coordinator = Proposer("c", self.tx, preferred=self.commit,
                                    rng=random.Random(seed), resend_s=1.0, backoff_s=0.2,
                                    fast=True)
        self.terms = {p: Termination(p, rng=random.Random(seed + i), query_timeout_s=1.0,
                                     query_interval_s=1.0, resend_s=1.0, backoff_s=0.2,
                                     stagger_s=0.5)
                      for i, p in enumerate(self.participants)}
        self.learned: dict[str, Value] = {}
        self.chosen: set[Value] = set()
        self.queue: list[tuple[str, str, object]] = []
        self.now = 0.0
        for term in self.terms.values():
            term.track(0.0, self.tx, lease_expires=2.0)
        self.coordinator.start(0.0)
        self._out("c", self.coordinator.next_actions())

    def _out(self, src: str, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                self.queue.append((src, a.to, a.msg))
            elif isinstance(a, Learned):
                self._learn(src, a.value)
            else:
                assert isinstance(a, PersistAcceptor | PersistBallot)

    def _learn(self, who: str, value: Value) -> None:
        assert self.learned.setdefault(who, value) == value, f"{who} learned two values"
        if who in self.acceptors:
            self.acceptors[who].learn(self.tx, value)
            self._out(who, self.acceptors[who].next_actions())

    def deliver(self, i: int) -> None:
        src, dst, msg = self.queue.pop(i % len(self.queue))
        if isinstance(msg, PaxosPrepare | Accept):
            assert dst in self.acceptors, f"{type(msg).__name__} to {dst}, no acceptor"
            self.acceptors[dst].receive(src, msg)
            self.observe()  # before anything the acceptance sends
            self._out(dst, self.acceptors[dst].next_actions())
        elif isinstance(msg, DecisionQuery):
            known = self.learned.get(dst)
            if known is not None:
                self.queue.append((dst, src, DecisionAnswer(msg.key, dst,
                                                            AnswerStatus.DECIDED, known)))
        elif dst == "c":
            if isinstance(msg, Promise | Accepted | Reject | Decision):
                self.coordinator.receive(self.now, msg)
                self._out("c", self.coordinator.next_actions())
                if self.coordinator.chosen is not None and "c" not in self.learned:
                    self._learn("c", self.coordinator.chosen)
        elif dst in self.terms:
            self.terms[dst].receive(self.now, msg)
            self._out(dst, self.terms[dst].next_actions())

    def tick(self, by: float) -> None:
        self.now += by
        self.coordinator.handle_timer(self.now)
        self._out("c", self.coordinator.next_actions())
        if self.coordinator.chosen is not None and "c" not in self.learned:
            self._learn("c", self.coordinator.chosen)
        for p, term in self.terms.items():
            term.handle_timer(self.now)
            self._out(p, term.next_actions())

    def observe(self) -> None:
        """Add the values a majority of the acceptors accept in one ballot now (their
        records) to those ever chosen: an acceptor may accept a higher ballot later, so a
        chosen value need not have a majority in one ballot at the end."""
        counts: dict[tuple[Ballot, Value], int] = {}
        for acceptor in self.acceptors.values():
            for rec in acceptor.records():
                if rec.accepted_ballot is not None and rec.accepted_value is not None:
                    k = (rec.accepted_ballot, rec.accepted_value)
                    counts[k] = counts.get(k, 0) + 1
        self.chosen |= {v for (_, v), n in counts.items() if n >= self.tx.majority}


steps = st.lists(st.one_of(
    st.tuples(st.just("deliver"), st.integers(0, 1_000)),
    st.tuples(st.just("drop"), st.integers(0, 1_000)),
    st.tuples(st.just("tick"), st.floats(0.1, 3.0)),
), max_size=150)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 10), max_acceptors=st.sampled_from([3, 5]),
       seed=st.integers(0, 1_000), chaos=steps)
def test_learners_and_acceptors_agree_and_all_learn(n, max_acceptors, seed, chaos) -> None:
    net = _Net(n, max_acceptors, seed)
    assert len(net.tx.acceptors) <= max(max_acceptors, 3)
    for kind, arg in chaos:
        if kind == "tick":
            net.tick(arg)
        elif net.queue:
            if kind == "drop":
                net.queue.pop(arg % len(net.queue))
            else:
                net.deliver(arg)
        assert len(net.chosen) <= 1
        assert len(set(net.learned.values())) <= 1
    # The network heals: everything is delivered, timers fire, until all have learned.
    for _ in range(400):
        while net.queue:
            net.deliver(0)
        if set(net.participants) <= set(net.learned):
            break
        net.tick(1.0)
    assert set(net.participants) <= set(net.learned), "a participant never learned"
    assert len(set(net.learned.values())) == 1
    assert set(net.learned.values()) <= net.chosen  # only a chosen value is learned


def test_the_authority_table_lets_a_learner_propose_but_not_answer_as_an_acceptor() -> None:
    tx = TxInfo("c.w", 1, "c", PARTICIPANTS, ("c", "p1", "p2"))
    as_proposer = Facts(workflow_id=tx.workflow_id, coordinator=tx.coordinator,
                        participants=tx.participants)
    authorize("paxos_prepare", "p6", as_proposer)  # a learner recovers: it may propose
    authorize("paxos_accept", "p6", as_proposer)
    with pytest.raises(Refused):
        authorize("paxos_prepare", "x", as_proposer)  # no part in it: no
    as_acceptor = Facts(workflow_id=tx.workflow_id, acceptors=tx.acceptors)
    authorize("paxos_accepted", "p1", as_acceptor)
    for kind in ("paxos_promise", "paxos_accepted", "paxos_reject"):
        with pytest.raises(Refused):
            authorize(kind, "p6", as_acceptor)  # its word counts towards no majority
