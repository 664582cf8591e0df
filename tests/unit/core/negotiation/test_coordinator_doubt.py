"""A restored coordinator in doubt past its round's life: it asks, and stops balloting.

The round: coordinator c, one participant p1, acceptors c, p1 and x (an extra one).
c's COMMIT proposal is on record without a decision, so its restore settles it with a
recovery ballot (coordinator_recovery.py), and asks the round's parties too
(coordinator_doubt.py).
"""

from __future__ import annotations

import random

from fedorch.core.negotiation.coordinator import (
    ConsensusOptions,
    Coordinator,
    Finished,
    PersistDecision,
    Phase,
    RoundRecord,
)
from fedorch.core.negotiation.messages import (
    ABORT,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
    Send,
    Value,
    VoteIn,
)
from fedorch.core.workflow.placement import Placement

KEY = ("c.wf", 1)
ACCEPTORS = ("c", "p1", "x")
INTERVAL = 2.0


def _placer(excluded):
    return Placement({"s1": "p1"}, {})


COMMIT = Value(True, (VoteIn(1, "p1", True, "", b"p1/1"),))


def _restored(now: float = 3.0) -> Coordinator:
    record = RoundRecord(1, {"s1": "p1"}, ACCEPTORS, proposal=COMMIT, ballot=Ballot(2, "c"))
    return Coordinator.restore("c.wf", record, now=now, placer=_placer, max_rounds=1,
                               prepare_timeout_s=5.0,
                               consensus=ConsensusOptions("c", random.Random(6)),
                               query_interval_s=INTERVAL)


def _sent(actions: list, kind: type) -> list[str]:
    return [a.to for a in actions if isinstance(a, Send) and isinstance(a.msg, kind)]


def _past_life(core: Coordinator, now: float, *senders: str) -> None:
    for s in senders:
        core.receive_answer(now, DecisionAnswer(KEY, s, AnswerStatus.PAST_LIFE))


def _run(core: Coordinator, until: float) -> list:
    """Every timer of `core` up to `until`; the actions they made."""
    out = []
    while (t := core.get_timer()) is not None and t <= until:
        core.handle_timer(t)
        out.extend(core.next_actions())
    return out


def test_a_recovery_ballot_not_over_in_query_interval_s_asks_every_party_too() -> None:
    core = _restored()
    actions = core.next_actions()
    assert _sent(actions, PaxosPrepare) == list(ACCEPTORS)
    assert _sent(actions, DecisionQuery) == []  # a ballot that ends soon asks nobody
    asked = _run(core, 3.0 + INTERVAL)
    assert _sent(asked, DecisionQuery) == ["c", "p1", "x"]  # ourselves: our acceptor
    again = _run(core, 3.0 + 2 * INTERVAL)
    assert _sent(again, DecisionQuery) == ["c", "p1", "x"]  # every query_interval_s


def test_a_majority_of_past_life_answers_stops_every_ballot_for_good() -> None:
    core = _restored()
    core.next_actions()
    _run(core, 5.0)  # its questions out
    _past_life(core, 5.5, "x", "c")  # two of three acceptors: a majority
    assert core.in_doubt_past_life()
    later = _run(core, 300.0)
    assert _sent(later, PaxosPrepare) == []  # no ballot, no resend, ever
    queries = _sent(later, DecisionQuery)
    assert queries and set(queries) == {"p1", "x"}  # asked again; not ourselves
    assert len(queries) <= 2 * (300.0 - 5.5) / INTERVAL + 2  # only every query_interval_s
    # In doubt: nothing decided, the workflow not finished (its reservation held).
    assert core.phase is Phase.DECIDING
    assert not [a for a in later if isinstance(a, PersistDecision | Finished)]
    assert core.answer_query(300.0, 1).status is AnswerStatus.UNKNOWN


def test_one_past_life_answer_stops_nothing() -> None:
    core = _restored()
    core.next_actions()
    _run(core, 5.0)  # its questions out
    _past_life(core, 5.5, "x")
    _past_life(core, 5.6, "x")  # the same acceptor twice is one
    _past_life(core, 5.7, "mallory")  # no acceptor of the round
    assert not core.in_doubt_past_life()
    assert _sent(_run(core, 10.0), PaxosPrepare)  # the ballot runs on


def test_a_decided_answer_settles_it_even_past_the_rounds_life() -> None:
    core = _restored()
    core.next_actions()
    _run(core, 5.0)  # its questions out
    _past_life(core, 5.5, "x", "c")
    _run(core, 20.0)
    core.receive_answer(21.0, DecisionAnswer(KEY, "p1", AnswerStatus.DECIDED, COMMIT))
    actions = core.next_actions()
    assert core.phase is Phase.COMMITTED and core.decision(1) == COMMIT
    assert PersistDecision(1, True, {"s1": "p1"}, (b"p1/1",), "") in actions
    assert isinstance(actions[-1], Finished) and actions[-1].committed
    assert _sent(_run(core, 40.0), PaxosPrepare) == []


def test_a_decided_abort_while_the_ballot_runs_ends_it_aborted() -> None:
    core = _restored()
    core.next_actions()
    _run(core, 5.0)  # its questions out
    core.receive_answer(5.5, DecisionAnswer(KEY, "x", AnswerStatus.DECIDED, ABORT))
    actions = core.next_actions()
    assert core.phase is Phase.ABORTED and core.decision(1) == ABORT
    assert isinstance(actions[-1], Finished) and not actions[-1].committed
    assert core.get_timer() is None


def test_what_proves_nothing_settles_nothing() -> None:
    core = _restored()
    core.next_actions()
    _run(core, 5.0)  # its questions out
    bare = Value(True, ())  # a COMMIT without its certificate
    core.receive_answer(5.5, DecisionAnswer(KEY, "p1", AnswerStatus.DECIDED, bare))
    core.receive_answer(5.5, DecisionAnswer(KEY, "mallory", AnswerStatus.DECIDED, ABORT))
    core.receive_answer(5.5, DecisionAnswer(KEY, "p1", AnswerStatus.UNKNOWN))
    assert core.phase is Phase.DECIDING and not core.next_actions()


def test_a_decision_still_reaches_it_past_the_rounds_life() -> None:
    core = _restored()
    core.next_actions()
    _run(core, 5.0)  # its questions out
    _past_life(core, 5.5, "x", "p1")
    core.receive_paxos(9.0, Decision(KEY, COMMIT, "p1"))
    assert core.phase is Phase.COMMITTED


def test_the_fast_path_asks_nobody() -> None:
    core = Coordinator("c.wf", placer=_placer, max_rounds=1, prepare_timeout_s=5.0,
                       consensus=ConsensusOptions("c", random.Random(6),
                                                  extra_acceptors=["x", "y"]))
    core.start(0.0)
    core.next_actions()
    core.receive_vote(0.1, VoteIn(1, "p1", True, "", b"p1/1"))
    assert core.phase is Phase.DECIDING
    assert _sent(core.next_actions() + _run(core, 10.0), DecisionQuery) == []
    assert not core.asking(1)
