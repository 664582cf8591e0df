"""Consensus cores on their own: acceptor table, proposer, termination, coordinator fast path."""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.acceptor import Acceptor, AcceptorRecord, PersistAcceptor
from fedorch.core.negotiation.coordinator import (
    ConsensusOptions,
    Coordinator,
    Finished,
    PersistDecision,
    Phase,
    RoundRecord,
    SendDecision,
    SendPrepare,
)
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
    PersistProposal,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
    VoteIn,
)
from fedorch.core.negotiation.termination import DoubtState, Proposer, ProposerPhase, Termination

TX = TxInfo("c.wf", 1, "c", ("p1", "p2"), ("c", "p1", "p2"))
B0 = Ballot(0, "c")


def yes(domain: str, rnd: int = 1) -> VoteIn:
    return VoteIn(rnd, domain, True, "", f"{domain}/{rnd}".encode())


COMMIT = Value(True, (yes("p1"), yes("p2")))


def sends(actions: list) -> list[tuple[str, object]]:
    return [(a.to, a.msg) for a in actions if isinstance(a, Send)]


# ---- acceptor -------------------------------------------------------------------------


def test_acceptor_promises_then_persists_before_it_replies() -> None:
    a = Acceptor("p1")
    a.receive("p2", PaxosPrepare(TX, Ballot(1, "p2")))
    persist, reply = a.next_actions()
    assert persist == PersistAcceptor(TX.key, AcceptorRecord(TX, promised=Ballot(1, "p2")))
    assert reply == Send("p2", Promise(TX.key, Ballot(1, "p2"), "p1", None, None))


def test_acceptor_rejects_lower_ballots_and_reports_what_it_accepted() -> None:
    a = Acceptor("p1", notify_learners=False)
    a.receive("c", Accept(TX, B0, COMMIT))
    assert sends(a.next_actions()) == [("c", Accepted(TX.key, B0, "p1", COMMIT))]
    a.receive("p2", PaxosPrepare(TX, Ballot(2, "p2")))
    assert sends(a.next_actions()) == [
        ("p2", Promise(TX.key, Ballot(2, "p2"), "p1", B0, COMMIT))]
    a.receive("p1", PaxosPrepare(TX, Ballot(1, "p1")))  # lower: rejected, nothing persisted
    assert a.next_actions() == [Send("p1", Reject(TX.key, Ballot(1, "p1"), "p1", Ballot(2, "p2")))]
    a.receive("c", Accept(TX, B0, COMMIT))  # a late ballot-0 Accept is refused too
    assert a.next_actions() == [Send("c", Reject(TX.key, B0, "p1", Ballot(2, "p2")))]
    a.receive("p2", Accept(TX, Ballot(2, "p2"), COMMIT))
    actions = a.next_actions()
    assert isinstance(actions[0], PersistAcceptor)
    assert actions[0].record.accepted_ballot == Ballot(2, "p2")


def test_acceptor_duplicates_are_idempotent() -> None:
    a = Acceptor("p1", notify_learners=False)
    a.receive("c", Accept(TX, B0, COMMIT))
    first = a.next_actions()
    a.receive("c", Accept(TX, B0, COMMIT))
    assert a.next_actions() == first[1:]  # same reply, nothing new to persist


def test_an_accept_without_the_proposers_word_goes_to_every_participant_as_learner() -> None:
    a = Acceptor("p1")
    a.receive("c", Accept(TX, B0, COMMIT))
    assert [to for to, _ in sends(a.next_actions())] == ["c", "p1", "p2"]


def test_our_own_proposal_is_answered_to_the_proposer_alone() -> None:
    a = Acceptor("c")
    a.receive("c", Accept(TX, B0, COMMIT))
    assert sends(a.next_actions()) == [("c", Accepted(TX.key, B0, "c", COMMIT))]


def test_a_vouched_accept_teaches_its_participant_and_spares_the_others() -> None:
    a = Acceptor("p1")
    a.receive("c", Accept(TX, B0, COMMIT, proposer_accepted=True))
    actions = a.next_actions()
    assert isinstance(actions[0], PersistAcceptor)  # durable before any of the replies
    assert sends(actions) == [
        ("c", Accepted(TX.key, B0, "p1", COMMIT)),   # the RPC's reply
        ("p1", Accepted(TX.key, B0, "c", COMMIT)),   # the proposer's word, to our learner
        ("p1", Accepted(TX.key, B0, "p1", COMMIT)),  # our own acceptance, to our learner
    ]
    # Those two alone are a majority of three: p1 learns with no message from p2.
    t = _termination("p1")
    t.track(0.0, TX, 10.0)
    for _, msg in sends(actions)[1:]:
        t.receive(1.0, msg)
    assert t.next_actions() == [Learned(TX.key, COMMIT, TX, by_coordinator=True)]


def test_a_vouched_accept_among_five_acceptors_still_tells_every_participant() -> None:
    tx = TxInfo("c.wf", 1, "c", ("p1", "p2", "p3"), ("c", "m", "p1", "p2", "p3"))
    value = Value(True, (yes("p1"), yes("p2"), yes("p3")))
    a = Acceptor("m")  # an acceptor that is no participant: it has no learner to tell
    a.receive("c", Accept(tx, B0, value, proposer_accepted=True))
    assert [to for to, _ in sends(a.next_actions())] == ["c", "p1", "p2", "p3"]
    b = Acceptor("p2")
    b.receive("c", Accept(tx, B0, value, proposer_accepted=True))
    assert [(to, m.acceptor) for to, m in sends(b.next_actions())] == [
        ("c", "p2"), ("p2", "c"), ("p1", "p2"), ("p2", "p2"), ("p3", "p2")]


@pytest.mark.parametrize(("sender", "msg", "why"), [
    ("c", Accept(TX, B0, Value(True, (yes("p1"),))), "lacks a YES"),
    ("c", Accept(TX, B0, Value(True, (yes("p1"), yes("p2", 2)))), "lacks a YES"),
    ("p1", Accept(TX, Ballot(0, "p1"), ABORT), "ballot 0 belongs"),
    ("c", PaxosPrepare(TX, B0), "no phase 1"),
    ("p2", PaxosPrepare(TX, Ballot(1, "p1")), "sent a ballot of"),
    ("p1", PaxosPrepare(TxInfo("c.wf", 1, "c", ("p1",), ("c", "p1", "p2")),
     Ballot(1, "p1")),
     "differs"),
    ("p1", PaxosPrepare(TxInfo("c.wf", 1, "c", ("p1",), ("p1", "c")), Ballot(1, "p1")),
     "sorted"),
])
def test_illegal_inputs_are_remote_errors_that_change_nothing(sender, msg, why) -> None:
    a = Acceptor("p2")
    a.receive("p1", PaxosPrepare(TX, Ballot(1, "p1")))
    a.next_actions()
    before = a.record(TX.key)
    with pytest.raises(RemoteProtocolError, match=why):
        a.receive(sender, msg)
    assert a.record(TX.key) == before
    assert a.next_actions() == []


def test_a_decided_acceptor_answers_with_the_decision() -> None:
    a = Acceptor("p1")
    a.learn(TX, ABORT)
    assert a.next_actions() == []  # the learner's log holds it: nothing to write
    a.receive("c", Accept(TX, B0, COMMIT))
    assert a.next_actions() == [Send("c", Decision(TX.key, ABORT, "p1"))]
    with pytest.raises(RemoteProtocolError):
        a.learn(TX, COMMIT)


def test_a_restored_acceptor_takes_its_decision_from_the_learned_log() -> None:
    a = Acceptor("p1")
    a.receive("c", Accept(TX, B0, ABORT))
    records = [x.record for x in a.next_actions() if isinstance(x, PersistAcceptor)]
    b = Acceptor("p1")
    b.restore(records, {TX.key: ABORT})
    b.receive("p2", PaxosPrepare(TX, Ballot(3, "p2")))
    assert b.next_actions() == [Send("p2", Decision(TX.key, ABORT, "p1"))]
    c = Acceptor("p1")
    c.restore(records)  # without it the record is open again: it promises, reporting
    c.receive("p2", PaxosPrepare(TX, Ballot(3, "p2")))  # what it accepted
    assert isinstance(c.next_actions()[-1].msg, Promise)


def test_a_restored_acceptor_keeps_its_promise() -> None:
    a = Acceptor("p1")
    a.receive("p2", PaxosPrepare(TX, Ballot(3, "p2")))
    records = [x.record for x in a.next_actions() if isinstance(x, PersistAcceptor)]
    b = Acceptor("p1")
    b.restore(records)
    b.receive("c", Accept(TX, B0, COMMIT))
    assert b.next_actions() == [Send("c", Reject(TX.key, B0, "p1", Ballot(3, "p2")))]


# ---- proposers and duels ---------------------------------------------------------------


def _duel(seed: int, proposers: int, acceptors: int) -> list[Value]:
    """Proposers and acceptors exchange messages in a random order, with loss."""
    rng = random.Random(seed)
    names = tuple(sorted(f"a{i}" for i in range(acceptors)))
    tx = TxInfo("a0.wf", 1, "a0", names, names)
    accs = {n: Acceptor(n, notify_learners=False) for n in names}
    props = {n: Proposer(n, tx, preferred=COMMIT if n == "a0" else ABORT, rng=rng,
                         resend_s=1.0, backoff_s=0.3, fast=n == "a0")
             for n in names[:proposers]}
    chosen: dict[tuple, set[str]] = {}
    inflight: list = []
    now = 0.0
    commit = Value(True, tuple(yes(n) for n in names))
    props["a0"].preferred = commit
    for p in props.values():
        p.start(now)

    def drain(src: str, actions: list) -> None:
        for act in actions:
            if isinstance(act, Send):
                inflight.append((src, act.to, act.msg))
            elif isinstance(act, PersistAcceptor) and act.record.accepted_ballot is not None:
                key = (act.record.accepted_ballot, act.record.accepted_value)
                chosen.setdefault(key, set()).add(src)

    for n, p in props.items():
        drain(n, p.next_actions())
    for _ in range(5000):
        if all(p.chosen is not None for p in props.values()):
            break
        now += 0.05
        if inflight and rng.random() < 0.8:
            src, dst, msg = inflight.pop(rng.randrange(len(inflight)))
            if rng.random() < 0.1:
                continue  # lost
            if isinstance(msg, (PaxosPrepare, Accept)):
                accs[dst].receive(src, msg)
                drain(dst, accs[dst].next_actions())
            elif dst in props:
                props[dst].receive(now, msg)
                drain(dst, props[dst].next_actions())
        else:
            for n, p in props.items():
                p.handle_timer(now)
                drain(n, p.next_actions())
    values = {v for (_, v), who in chosen.items() if len(who) >= tx.majority}
    assert len(values) <= 1, f"seed {seed}: two values chosen"
    learned = [p.chosen for p in props.values() if p.chosen is not None]
    assert all(v in values for v in learned)
    return learned


@pytest.mark.parametrize("seed", range(60))
def test_duelling_proposers_never_choose_two_values(seed: int) -> None:
    learned = _duel(seed, proposers=3, acceptors=5)
    assert len(set(learned)) <= 1


def test_recovery_proposer_adopts_the_highest_accepted_value() -> None:
    p = Proposer("p1", TX, preferred=ABORT, rng=random.Random(1), resend_s=1.0, backoff_s=0.5)
    p.start(0.0)
    first = p.next_actions()
    assert first[0] == PersistBallot(TX.key, Ballot(1, "p1"))  # durable before phase 1
    assert [to for to, _ in sends(first)] == ["c", "p1", "p2"]
    p.receive(0.1, Promise(TX.key, Ballot(1, "p1"), "p1", None, None))
    p.receive(0.1, Promise(TX.key, Ballot(1, "p1"), "p2", B0, COMMIT))
    assert {m.value for _, m in sends(p.next_actions())} == {COMMIT}
    p.receive(0.2, Accepted(TX.key, Ballot(1, "p1"), "p2", COMMIT))
    p.receive(0.2, Accepted(TX.key, Ballot(1, "p1"), "p2", COMMIT))  # a duplicate counts once
    assert p.chosen is None
    p.receive(0.2, Accepted(TX.key, Ballot(1, "p1"), "p1", COMMIT))
    assert p.chosen == COMMIT and p.phase is ProposerPhase.DONE


def test_a_proposer_asks_its_own_acceptor_first_then_the_others_with_its_word() -> None:
    p = Proposer("c", TX, preferred=COMMIT, rng=random.Random(1), resend_s=1.0,
                 backoff_s=0.5, fast=True)
    p.start(0.0)
    assert p.next_actions() == [Send("c", Accept(TX, B0, COMMIT))]
    p.handle_timer(1.0)  # ours not accepted yet: resent to ourselves alone
    assert p.next_actions() == [Send("c", Accept(TX, B0, COMMIT))]
    p.receive(1.1, Accepted(TX.key, B0, "c", COMMIT))
    vouched = Accept(TX, B0, COMMIT, proposer_accepted=True)
    assert p.next_actions() == [Send("p1", vouched), Send("p2", vouched)]
    p.receive(1.2, Accepted(TX.key, B0, "c", COMMIT))  # a duplicate sends nothing again
    assert p.next_actions() == []
    p.handle_timer(2.1)  # the silent ones get it again, still vouched for
    assert p.next_actions() == [Send("p1", vouched), Send("p2", vouched)]
    p.receive(2.2, Accepted(TX.key, B0, "p2", COMMIT))
    assert p.chosen == COMMIT


def test_a_proposer_whose_own_acceptor_refuses_tells_no_one_else() -> None:
    p = Proposer("c", TX, preferred=COMMIT, rng=random.Random(1), resend_s=1.0,
                 backoff_s=0.5, fast=True)
    p.start(0.0)
    p.next_actions()
    p.receive(0.1, Reject(TX.key, B0, "c", Ballot(1, "p1")))
    assert p.phase is ProposerPhase.BACKOFF and p.next_actions() == []
    with pytest.raises(RemoteProtocolError, match="not its acceptor"):
        Proposer("x", TX, preferred=ABORT, rng=random.Random(1), resend_s=1.0, backoff_s=0.5)


def test_a_rejected_proposer_backs_off_then_goes_higher_and_a_restart_starts_above() -> None:
    p = Proposer("p1", TX, preferred=ABORT, rng=random.Random(2), resend_s=1.0, backoff_s=0.5)
    p.start(0.0)
    p.next_actions()
    p.receive(0.1, Reject(TX.key, Ballot(1, "p1"), "c", Ballot(4, "p2")))
    assert p.phase is ProposerPhase.BACKOFF and p.next_actions() == []
    p.handle_timer(p.get_timer())
    assert p.ballot == Ballot(5, "p1")
    again = Proposer("p1", TX, preferred=ABORT, rng=random.Random(2), resend_s=1.0,
                     backoff_s=0.5, floor=Ballot(5, "p1"))
    again.start(0.0)
    assert again.ballot == Ballot(6, "p1")


# ---- termination ------------------------------------------------------------------------


def _termination(me: str = "p1") -> Termination:
    return Termination(me, rng=random.Random(3), query_timeout_s=2.0, query_interval_s=2.0,
                       resend_s=1.0, backoff_s=0.5, stagger_s=1.0)


def test_in_doubt_asks_the_coordinator_then_everyone_then_proposes() -> None:
    t = _termination()
    t.track(0.0, TX, 10.0)
    assert t.get_timer() == 10.0
    t.handle_timer(9.9)
    assert t.next_actions() == []  # a YES voter never acts before its lease
    t.handle_timer(10.0)
    assert t.next_actions() == [Send("c", DecisionQuery(TX.key, "p1"))]
    assert t.state(TX.key) is DoubtState.ASKING
    t.receive(10.5, DecisionAnswer(TX.key, "c", AnswerStatus.UNKNOWN))
    t.handle_timer(t.get_timer())
    actions = t.next_actions()
    assert t.state(TX.key) is DoubtState.RECOVERING
    assert ("c", DecisionQuery(TX.key, "p1")) in sends(actions)
    assert ("p2", DecisionQuery(TX.key, "p1")) in sends(actions)
    assert any(isinstance(m, PaxosPrepare) for _, m in sends(actions))


def test_a_certified_commit_from_anyone_ends_the_doubt_an_uncertified_one_does_not() -> None:
    t = _termination()
    t.track(0.0, TX, 10.0)
    t.receive(11.0, DecisionAnswer(TX.key, "p2", AnswerStatus.DECIDED, Value(True, (yes("p1"),))))
    assert t.next_actions() == [] and t.in_doubt() == [TX.key]
    t.receive(11.0, DecisionAnswer(TX.key, "p2", AnswerStatus.DECIDED, COMMIT))
    assert t.next_actions() == [Learned(TX.key, COMMIT, TX)]
    assert t.in_doubt() == []


def test_a_commit_learned_without_the_coordinator_is_not_marked_as_its_notice() -> None:
    """Only the coordinator's own ballot, learned while still within the lease, is as
    fresh as its notice; one learned after the lease, a recovery ballot or a relayed
    Decision is not (the participant then holds the workflow's steps back until the
    coordinator answers with their placement epochs: core/workflow/self_fencing.py)."""
    late = _termination("p2")
    late.track(0.0, TX, 10.0)
    late.handle_timer(10.0)  # the lease passed: asking the coordinator
    late.next_actions()
    late.receive(10.5, Accepted(TX.key, B0, "c", COMMIT))
    late.receive(10.5, Accepted(TX.key, B0, "p1", COMMIT))
    assert late.next_actions() == [Learned(TX.key, COMMIT, TX, by_coordinator=False)]
    recovery = _termination("p2")
    recovery.track(0.0, TX, 10.0)
    b1 = Ballot(1, "p1")
    recovery.receive(1.0, Accepted(TX.key, b1, "c", COMMIT))
    recovery.receive(1.0, Accepted(TX.key, b1, "p1", COMMIT))
    assert recovery.next_actions() == [Learned(TX.key, COMMIT, TX, by_coordinator=False)]
    relayed = _termination("p2")
    relayed.track(0.0, TX, 10.0)
    relayed.receive(1.0, Decision(TX.key, COMMIT, "p1"))
    assert relayed.next_actions() == [Learned(TX.key, COMMIT, TX, by_coordinator=False)]


def test_a_majority_of_accepted_notices_is_learned_without_a_proposer() -> None:
    t = _termination("p2")
    t.track(0.0, TX, 10.0)
    t.receive(1.0, Accepted(TX.key, B0, "c", COMMIT))
    t.receive(1.0, Accepted(TX.key, Ballot(1, "p1"), "p1", ABORT))  # another ballot
    assert t.next_actions() == []
    t.receive(1.1, Accepted(TX.key, B0, "p1", COMMIT))
    assert t.next_actions() == [Learned(TX.key, COMMIT, TX, by_coordinator=True)]


def test_recovery_that_chooses_announces_to_everyone_after_learning() -> None:
    t = _termination()
    t.track(0.0, TX, 0.0)
    t.handle_timer(0.0)
    t.handle_timer(t.get_timer())
    prepare = next(m for _, m in sends(t.next_actions()) if isinstance(m, PaxosPrepare))
    for acc in ("p1", "p2"):
        t.receive(5.0, Promise(TX.key, prepare.ballot, acc, None, None))
    assert [to for to, _ in sends(t.next_actions())] == ["p1"]  # our own acceptor first
    t.receive(5.1, Accepted(TX.key, prepare.ballot, "p1", ABORT))
    vouched = Accept(TX, prepare.ballot, ABORT, proposer_accepted=True)
    assert sends(t.next_actions()) == [("c", vouched), ("p2", vouched)]
    t.receive(5.1, Accepted(TX.key, prepare.ballot, "c", ABORT))
    actions = t.next_actions()
    assert actions[0] == Learned(TX.key, ABORT, TX)
    assert sends(actions[1:]) == [("c", Decision(TX.key, ABORT, "p1")),
                                  ("p2", Decision(TX.key, ABORT, "p1"))]


# ---- coordinator, consensus mode ------------------------------------------------------


class _Placer:
    def __init__(self, assignment: dict[str, str]) -> None:
        self.assignment = assignment

    def __call__(self, excluded):
        from fedorch.core.workflow.placement import Placement
        left = {s: d for s, d in self.assignment.items() if d not in excluded.get(s, ())}
        missing = {s: "refused" for s in self.assignment if s not in left}
        return Placement(left, missing)


def _coordinator(extra=("x",), rounds: int = 1) -> Coordinator:
    opts = ConsensusOptions("c", random.Random(4), extra_acceptors=list(extra))
    core = Coordinator("c.wf", placer=_Placer({"s1": "p1"}), max_rounds=rounds,
                       prepare_timeout_s=5.0, consensus=opts)
    core.start(0.0)
    return core


def test_a_wide_rounds_commit_notices_wait_in_proportion_to_its_width() -> None:
    # 40 participants learn the COMMIT from the acceptors and acknowledge it (or report
    # a result) one by one through the coordinator: the COMMIT is sent to the silent
    # ones only after commit_notice_s x 40 / notice_share, and resent at that pace too.
    opts = ConsensusOptions("c", random.Random(4))
    domains = [f"p{i:02d}" for i in range(40)]
    core = Coordinator("c.wf", placer=_Placer({f"s{d}": d for d in domains}), max_rounds=1,
                       prepare_timeout_s=5.0, consensus=opts)
    core.start(0.0)
    core.next_actions()
    for d in domains:
        core.receive_vote(1.0, yes(d))
    core.next_actions()
    value = Value(True, tuple(yes(d) for d in domains))
    acceptors = core.tx().acceptors
    for acceptor in acceptors[:3]:  # a majority of the five
        core.receive_paxos(2.0, Accepted(("c.wf", 1), B0, acceptor, value))
    assert core.phase is Phase.COMMITTED
    core.next_actions()
    scale = 40 / opts.notice_share
    assert core.get_timer() == pytest.approx(2.0 + opts.commit_notice_s * scale)
    core.receive_ack(3.0, "p07", 1)
    core.handle_timer(core.get_timer())
    assert core.next_actions() == [SendDecision(d, 1) for d in domains if d != "p07"]
    assert core.get_timer() == pytest.approx(
        2.0 + opts.commit_notice_s * scale + opts.decision_resend_s * scale)


def test_prepare_carries_acceptors_topped_up_with_extra_members() -> None:
    core = _coordinator()
    assert core.next_actions() == [SendPrepare("p1", 1, ("s1",), {"s1": "p1"}, ("c", "p1", "x"))]
    assert core.tx() == TxInfo("c.wf", 1, "c", ("p1",), ("c", "p1", "x"))


def test_commit_is_announced_only_once_a_majority_accepted() -> None:
    core = _coordinator()
    core.next_actions()
    core.receive_vote(1.0, yes("p1"))
    actions = core.next_actions()
    value = Value(True, (yes("p1"),))
    assert actions[0] == PersistProposal(1, value)  # the write-once cell, before any Accept
    assert [to for to, _ in sends(actions)] == ["c"]  # its own acceptor first
    assert core.phase is Phase.DECIDING
    assert core.answer_query(1.5, 1).status is AnswerStatus.UNKNOWN
    core.receive_paxos(2.0, Accepted(("c.wf", 1), B0, "c", value))
    assert [(to, m.proposer_accepted) for to, m in sends(core.next_actions())] == [
        ("p1", True), ("x", True)]
    core.receive_paxos(2.0, Accepted(("c.wf", 1), B0, "c", value))  # a duplicate
    assert core.next_actions() == []
    core.receive_paxos(2.1, Accepted(("c.wf", 1), B0, "x", value))
    # p1 learns it from the acceptors: the COMMIT is not sent to it at once.
    assert core.next_actions() == [
        PersistDecision(1, True, {"s1": "p1"}, (b"p1/1",), ""),
        Finished(True, 1, {"s1": "p1"}, ""),
    ]
    assert core.answer_query(3.0, 1) == DecisionAnswer(("c.wf", 1), "c", AnswerStatus.DECIDED,
                                                       value)
    # Unacknowledged after commit_notice_s: sent; acknowledged: the record may be collected.
    assert core.collectable() == []
    assert core.get_timer() == pytest.approx(2.1 + ConsensusOptions("c", None).commit_notice_s)
    core.handle_timer(core.get_timer())
    assert core.next_actions() == [SendDecision("p1", 1)]
    core.handle_timer(core.get_timer())
    assert core.next_actions() == [SendDecision("p1", 1)]  # and again, until acknowledged
    core.receive_ack(9.0, "p1", 1)
    assert core.collectable() == [("c.wf", 1)] and core.get_timer() is None
    core.collected(("c.wf", 1))
    assert core.answer_query(9.0, 1).status is AnswerStatus.FORGOTTEN  # never ABORT
    with pytest.raises(RemoteProtocolError):
        core.receive_ack(9.0, "mallory", 1)


def test_a_participant_that_learned_first_is_not_sent_the_commit() -> None:
    core = _coordinator()
    core.next_actions()
    core.receive_vote(1.0, yes("p1"))
    value = Value(True, (yes("p1"),))
    core.next_actions()
    core.receive_paxos(2.0, Accepted(("c.wf", 1), B0, "c", value))
    core.next_actions()  # the Accepts to the others
    core.receive_ack(2.0, "p1", 1)  # from a majority of the acceptors' Accepted, before us
    assert core.phase is Phase.DECIDING
    core.receive_paxos(2.1, Accepted(("c.wf", 1), B0, "x", value))
    assert [type(a).__name__ for a in core.next_actions()] == ["PersistDecision", "Finished"]
    assert core.get_timer() is None and core.collectable() == [("c.wf", 1)]


def test_recovery_choosing_abort_aborts_the_coordinators_round() -> None:
    core = _coordinator()
    core.next_actions()
    core.receive_vote(1.0, yes("p1"))
    core.next_actions()
    core.receive_paxos(12.0, Decision(("c.wf", 1), ABORT, "p1"))
    actions = core.next_actions()
    assert PersistDecision(1, False, {"s1": "p1"}, (), "the participants' recovery chose ABORT") \
        in actions
    assert isinstance(actions[-1], Finished) and not actions[-1].committed
    assert core.answer_query(12.0, 1).value == ABORT


def test_a_no_sets_the_cell_to_abort_before_the_decision() -> None:
    core = _coordinator(rounds=1)
    core.next_actions()
    core.receive_vote(1.0, VoteIn(1, "p1", False, "full", b""))
    actions = core.next_actions()
    assert actions[:2] == [PersistProposal(1, ABORT),
                           PersistDecision(1, False, {"s1": "p1"}, (),
                                           "a participant refused or did not vote")]
    assert core.collectable() == [("c.wf", 1)]  # presumed abort: the record is not needed


def test_restore_presumes_abort_without_a_commit_proposal() -> None:
    opts = ConsensusOptions("c", random.Random(5))
    core = Coordinator.restore("c.wf", RoundRecord(1, {"s1": "p1"}, ("c", "p1", "x")), now=3.0,
                               placer=_Placer({}), max_rounds=1, prepare_timeout_s=5.0,
                               consensus=opts)
    actions = core.next_actions()
    assert actions[0] == PersistProposal(1, ABORT)
    assert isinstance(actions[1], PersistDecision) and not actions[1].commit
    assert SendDecision("p1", 1) in actions and isinstance(actions[-1], Finished)
    assert core.answer_query(3.0, 1).value == ABORT


def test_restore_with_a_commit_proposal_settles_it_with_a_recovery_ballot() -> None:
    opts = ConsensusOptions("c", random.Random(6))
    value = Value(True, (yes("p1"),))
    record = RoundRecord(1, {"s1": "p1"}, ("c", "p1", "x"), proposal=value,
                         ballot=Ballot(2, "c"))
    core = Coordinator.restore("c.wf", record, now=3.0, placer=_Placer({}), max_rounds=1,
                               prepare_timeout_s=5.0, consensus=opts)
    assert core.phase is Phase.DECIDING
    actions = core.next_actions()
    assert actions[0] == PersistBallot(("c.wf", 1), Ballot(3, "c"))
    assert core.answer_query(3.0, 1).status is AnswerStatus.UNKNOWN
