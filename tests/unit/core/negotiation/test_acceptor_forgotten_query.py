"""A round past its life, asked about where it was forgotten, and a restore.

An acceptor that forgot a round (its record gone, its coordinator's horizon risen to
the round's creation time) answers a DecisionQuery stating that round PAST_LIFE, as it
refuses every ballot of it (acceptor.py, "Answering PAST_LIFE"); the Termination and
coordinator doubt cores state the round in their questions. A restored coordinator
runs its recovery ballot whatever its wall clock says of the round's age
(coordinator_doubt.py, "A restart").
"""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.acceptor import Acceptor, RoundPastLife
from fedorch.core.negotiation.coordinator import (
    ConsensusOptions,
    Coordinator,
    RoundRecord,
)
from fedorch.core.negotiation.messages import (
    AnswerStatus,
    Ballot,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
    Send,
    TxInfo,
    Value,
    VoteIn,
)
from fedorch.core.negotiation.termination import DoubtState, Termination, answer_query
from fedorch.core.workflow.placement import Placement

LIFE_MS = 50_000
CREATED = 1_800_000_000_000
TX = TxInfo("c.wf", 1, "c", ("a", "p"), ("a", "c", "p"), created_ms=CREATED)
NEWER = TxInfo("c.wf2", 1, "c", ("a", "p"), ("a", "c", "p"), created_ms=CREATED + 1)
COMMIT = Value(True, tuple(VoteIn(1, d, True, "", b"v") for d in ("a", "p")))
LATER_MS = CREATED + 10 * LIFE_MS


def _forgot(name: str, tx: TxInfo = TX) -> Acceptor:
    """An acceptor that accepted `tx`'s COMMIT and forgot the round past its life."""
    a = Acceptor(name, round_life_ms=LIFE_MS)
    a.receive("c", PaxosPrepare(tx, Ballot(1, "c")), CREATED + 10, 0.0)
    a.next_actions()
    assert a.forget(tx.key, tx) == tx.created_ms
    return a


def _answer(a: Acceptor, q: DecisionQuery) -> DecisionAnswer:
    """As the Node answers a query no role of it holds (negotiation.py, `_on_query`)."""
    return answer_query(a.me, q.key, None, None,
                        a.past_life(q.key, LATER_MS, 1.0, q.coordinator, q.created_ms))


def test_an_acceptor_that_forgot_a_round_answers_past_life_where_it_refuses_it() -> None:
    a = _forgot("a")
    stated = DecisionQuery(TX.key, "p", TX.coordinator, TX.created_ms)
    assert _answer(a, stated).status is AnswerStatus.PAST_LIFE
    # ...exactly as it refuses every ballot of the round so stated.
    with pytest.raises(RoundPastLife):
        a.receive("p", PaxosPrepare(TX, Ballot(5, "p")), LATER_MS, 1.0)


def test_no_past_life_for_a_round_it_could_still_accept() -> None:
    a = _forgot("a")
    # A newer round of that coordinator, not forgotten here: accepted, so no PAST_LIFE.
    newer = DecisionQuery(NEWER.key, "p", NEWER.coordinator, NEWER.created_ms)
    assert _answer(a, newer).status is AnswerStatus.NOT_PREPARED
    a.receive("p", PaxosPrepare(NEWER, Ballot(1, "p")), CREATED + 20, 1.0)
    a.next_actions()
    # Nothing stated (an older asker's question), or another coordinator's horizon.
    assert _answer(a, DecisionQuery(TX.key, "p")).status is AnswerStatus.NOT_PREPARED
    other = DecisionQuery(TX.key, "p", "d", TX.created_ms)
    assert _answer(a, other).status is AnswerStatus.NOT_PREPARED
    # A round it holds a record of, young here, however old the query says it is.
    young = DecisionQuery(NEWER.key, "p", NEWER.coordinator, CREATED - 1)
    assert not a.past_life(NEWER.key, CREATED + 30, 1.0, young.coordinator, young.created_ms)


def test_a_participant_asking_after_a_majority_forgot_stops_its_ballots() -> None:
    t = Termination("p", rng=random.Random(1), query_timeout_s=2.0, query_interval_s=2.0,
                    resend_s=1.0, backoff_s=0.5)
    t.track(0.0, TX, lease_expires=8.0)
    acceptors = {"a": _forgot("a"), "c": _forgot("c")}
    now = 0.0
    for _ in range(40):
        now = max(now, t.get_timer() or now)
        t.handle_timer(now)
        for act in t.next_actions():
            if isinstance(act, Send) and type(act.msg) is DecisionQuery \
                    and act.to in acceptors:
                assert (act.msg.coordinator, act.msg.created_ms) == ("c", CREATED)
                t.receive(now, _answer(acceptors[act.to], act.msg))
        if t.state(TX.key) is DoubtState.PAST_LIFE:
            break
    assert t.state(TX.key) is DoubtState.PAST_LIFE
    later = []
    for _ in range(10):
        now = t.get_timer()
        t.handle_timer(now)
        later.extend(t.next_actions())
    assert not [x for x in later if isinstance(x, Send) and isinstance(x.msg, PaxosPrepare)]


# ---- the coordinator -------------------------------------------------------------

KEY = ("c.wf", 1)
ACCEPTORS = ("c", "p1", "x")
P1_COMMIT = Value(True, (VoteIn(1, "p1", True, "", b"p1/1"),))


def _restored() -> Coordinator:
    record = RoundRecord(1, {"s1": "p1"}, ACCEPTORS, proposal=P1_COMMIT,
                         ballot=Ballot(2, "c"), created_ms=CREATED)
    return Coordinator.restore("c.wf", record, now=3.0,
                               placer=lambda _: Placement({"s1": "p1"}, {}),
                               max_rounds=1, prepare_timeout_s=5.0,
                               consensus=ConsensusOptions("c", random.Random(6)),
                               query_interval_s=2.0)


def _run(core: Coordinator, until: float) -> list:
    out = core.next_actions()
    while (t := core.get_timer()) is not None and t <= until:
        core.handle_timer(t)
        out.extend(core.next_actions())
    return out


def test_a_coordinator_restored_within_its_rounds_life_ballots_as_before() -> None:
    core = _restored()
    assert not core.in_doubt_past_life()
    actions = _run(core, 3.0)
    assert [a.to for a in actions if isinstance(a, Send) and isinstance(a.msg, PaxosPrepare)]
