"""A round's life at the Acceptor core (acceptor.py, "A round's life"): a recovery
ballot of a round recorded here and older than its life is refused; a round forgotten
here is refused below its coordinator's horizon, whatever the wall clock says; a round
with no creation time has no life; a coordinator's clock far behind does not age its
round. And the Termination core stops its ballots once an acceptor answers PAST_LIFE,
staying in doubt."""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.acceptor import Acceptor, PersistAcceptor, RoundPastLife
from fedorch.core.negotiation.messages import (
    ABORT,
    Accept,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
    Promise,
    Send,
    TxInfo,
    Value,
    VoteIn,
)
from fedorch.core.negotiation.termination import DoubtState, Termination, answer_query

LIFE_MS = 50_000
LIFE_S = LIFE_MS / 1000
CREATED = 1_800_000_000_000
TX = TxInfo("c.wf", 1, "c", ("a", "p"), ("a", "c", "p"), created_ms=CREATED)
OLDER = TxInfo("c.wf", 2, "c", ("a", "p"), ("a", "c", "p"), created_ms=CREATED - 5_000)
UNSTATED = TxInfo("c.wf", 3, "c", ("a", "p"), ("a", "c", "p"))  # no creation time
COMMIT = Value(True, tuple(VoteIn(1, d, True, "", b"v") for d in ("a", "p")))


def _acceptor() -> Acceptor:
    return Acceptor("a", round_life_ms=LIFE_MS)


def _replies(a: Acceptor) -> list[object]:
    return [x.msg for x in a.next_actions() if isinstance(x, Send)]


def test_a_recovery_ballot_is_refused_past_the_life_of_a_round_recorded_here() -> None:
    a = _acceptor()
    a.receive("p", PaxosPrepare(TX, Ballot(1, "p")), CREATED + 10, 0.0)
    assert isinstance(_replies(a)[0], Promise)
    a.receive("p", PaxosPrepare(TX, Ballot(2, "p")), CREATED + LIFE_MS, LIFE_S)  # its life
    assert isinstance(_replies(a)[0], Promise)
    with pytest.raises(RoundPastLife) as refused:
        a.receive("p", PaxosPrepare(TX, Ballot(3, "p")), CREATED + LIFE_MS + 1, LIFE_S + 1)
    assert (refused.value.key, refused.value.sender, refused.value.why) \
        == (TX.key, "p", "past its life")
    assert a.record(TX.key).promised == Ballot(2, "p") and a.next_actions() == []
    assert a.past_life(TX.key, CREATED + LIFE_MS + 1, LIFE_S + 1)


def test_an_acceptor_that_never_recorded_the_round_takes_it_blank() -> None:
    """It never accepted anything of the round: a majority of such could have chosen
    nothing, so a ballot they promise chooses no second value."""
    a = _acceptor()
    a.receive("p", PaxosPrepare(TX, Ballot(1, "p")), CREATED + 10 * LIFE_MS)
    assert _replies(a) == [Promise(TX.key, Ballot(1, "p"), "a", None, None)]


def test_a_wall_clock_stepped_by_an_hour_does_not_age_a_round_held_briefly() -> None:
    """Its coordinator's clock an hour behind (the round states a creation time an hour
    ago), or this agent's an hour ahead: the record is held a life here first."""
    behind = TxInfo("c.wf", 1, "c", ("a", "p"), ("a", "c", "p"),
                    created_ms=CREATED - 3_600_000)
    a = _acceptor()
    a.receive("c", Accept(behind, Ballot(0, "c"), COMMIT), CREATED, 100.0)  # ballot 0
    a.next_actions()
    a.receive("p", PaxosPrepare(behind, Ballot(1, "p")), CREATED + 1_000, 101.0)
    assert isinstance(_replies(a)[0], Promise)
    with pytest.raises(RoundPastLife):
        a.receive("p", PaxosPrepare(behind, Ballot(2, "p")), CREATED + 1_000,
                  100.0 + LIFE_S + 1)
    b = _acceptor()  # restored: held since the restore, in its new life
    b.restore(a.records(), {}, {}, now=7.0)
    b.receive("p", PaxosPrepare(behind, Ballot(3, "p")), CREATED + 10**7, 8.0)
    assert isinstance(_replies(b)[0], Promise)


def test_a_round_past_its_life_is_refused_though_its_record_is_held() -> None:
    """Accepted, decided: alike. Forgetting the record later changes no answer."""
    a = _acceptor()
    a.receive("c", Accept(TX, Ballot(0, "c"), COMMIT), CREATED + 10, 0.0)
    assert a.record(TX.key).accepted_value == COMMIT
    a.next_actions()
    late = (CREATED + LIFE_MS + 1, LIFE_S + 1)
    for msg in (PaxosPrepare(TX, Ballot(1, "p")), Accept(TX, Ballot(1, "p"), ABORT)):
        with pytest.raises(RoundPastLife):
            a.receive("p", msg, *late)
    a.learn(TX, COMMIT)  # decided: still refused (not answered with the Decision)
    with pytest.raises(RoundPastLife):
        a.receive("p", PaxosPrepare(TX, Ballot(2, "p")), *late)
    assert a.next_actions() == []
    assert a.record(TX.key).promised == Ballot(0, "c")  # no promise moved
    a.receive("p", PaxosPrepare(TX, Ballot(2, "p")), CREATED + LIFE_MS, LIFE_S)  # in it
    assert _replies(a) == [Decision(TX.key, COMMIT, "a")]
    # The coordinator's ballot 0 is no recovery ballot: a late Accept of it meets the
    # record (here decided) as ever, never a blank one.
    a.receive("c", Accept(TX, Ballot(0, "c"), COMMIT), *late)
    assert _replies(a) == [Decision(TX.key, COMMIT, "a")]


def test_a_forgotten_round_is_refused_below_the_horizon_after_a_clock_step_back() -> None:
    a = _acceptor()
    a.receive("c", Accept(TX, Ballot(0, "c"), COMMIT), CREATED + 10)
    a.next_actions()
    assert a.forget(TX.key, TX) == CREATED  # the new horizon, for the shell to write
    assert a.horizon("c") == CREATED and a.record(TX.key) is None
    # The wall clock stepped back: the round looks young again. It is refused, never
    # met blank (a blank record would promise and report nothing accepted).
    with pytest.raises(RoundPastLife) as refused:
        a.receive("p", PaxosPrepare(TX, Ballot(1, "p")), CREATED + 1_000)
    assert refused.value.why == "forgotten"
    with pytest.raises(RoundPastLife):  # an older round of that coordinator too
        a.receive("p", PaxosPrepare(OLDER, Ballot(1, "p")), CREATED + 1_000)
    newer = TxInfo("c.wf", 4, "c", ("a", "p"), ("a", "c", "p"), created_ms=CREATED + 1)
    a.receive("p", PaxosPrepare(newer, Ballot(1, "p")), CREATED + 1_000)
    assert isinstance(_replies(a)[0], Promise)
    other = TxInfo("d.wf", 1, "d", ("a", "p"), ("a", "d", "p"), created_ms=CREATED - 1)
    a.receive("p", PaxosPrepare(other, Ballot(1, "p")), CREATED + 1_000)  # another's
    assert isinstance(_replies(a)[0], Promise)
    assert a.forget(OLDER.key, OLDER) is None  # an older round: the horizon stays


def test_a_restart_keeps_the_horizon() -> None:
    a = _acceptor()
    a.restore([], {}, {"c": CREATED})
    with pytest.raises(RoundPastLife):
        a.receive("p", PaxosPrepare(TX, Ballot(1, "p")), CREATED + 1_000)
    a.restore([], {}, {"c": CREATED - 9})  # an older horizon lowers nothing
    assert a.horizon("c") == CREATED


def test_a_round_without_a_creation_time_has_no_life_and_is_never_forgotten() -> None:
    a = _acceptor()
    a.receive("c", Accept(UNSTATED, Ballot(0, "c"), ABORT), 10**13)
    a.receive("p", PaxosPrepare(UNSTATED, Ballot(1, "p")), 10**14)  # no life: taken
    assert [type(x) for x in a.next_actions()][0] is PersistAcceptor
    with pytest.raises(ValueError):
        a.forget(UNSTATED.key, UNSTATED)
    assert not a.past_life(UNSTATED.key, 10**13, 10**9)
    b = Acceptor("a")  # no life: nothing is past it
    b.receive("c", Accept(TX, Ballot(0, "c"), COMMIT), CREATED)
    assert not b.past_life(TX.key, 10**13, 10**9)


def test_a_query_about_a_round_past_its_life_is_answered_past_life_unless_decided() -> None:
    assert answer_query("a", TX.key, None, None, past_life=True).status \
        is AnswerStatus.PAST_LIFE
    assert answer_query("a", TX.key, None, "prepared", past_life=True).status \
        is AnswerStatus.PAST_LIFE
    decided = answer_query("a", TX.key, COMMIT, None, past_life=True)
    assert (decided.status, decided.value) == (AnswerStatus.DECIDED, COMMIT)


def test_a_participant_refused_past_the_life_stays_in_doubt_and_runs_no_ballot() -> None:
    t = Termination("p", rng=random.Random(1), query_timeout_s=2.0, query_interval_s=2.0,
                    resend_s=1.0, backoff_s=0.5)
    t.track(0.0, TX, lease_expires=8.0)
    t.handle_timer(8.0)  # asks the coordinator
    t.handle_timer(20.0)  # recovers: a ballot
    assert t.state(TX.key) is DoubtState.RECOVERING
    t.next_actions()
    t.receive(20.5, DecisionAnswer(TX.key, "x", AnswerStatus.PAST_LIFE))  # no acceptor
    assert t.state(TX.key) is DoubtState.RECOVERING
    t.receive(20.5, DecisionAnswer(TX.key, "a", AnswerStatus.PAST_LIFE))
    assert t.state(TX.key) is DoubtState.RECOVERING  # one acceptor's word stops nothing
    t.receive(20.5, DecisionAnswer(TX.key, "c", AnswerStatus.PAST_LIFE))  # a majority
    assert t.state(TX.key) is DoubtState.PAST_LIFE and t.in_doubt() == [TX.key]
    t.next_actions()
    for at in (22.5, 24.5, 100.0):
        t.handle_timer(at)
        sent = t.next_actions()
        assert sent == [Send("c", DecisionQuery(TX.key, "p"))], sent  # no ballot
        assert t.state(TX.key) is DoubtState.PAST_LIFE
    t.receive(101.0, DecisionAnswer(TX.key, "c", AnswerStatus.DECIDED, COMMIT))
    assert t.in_doubt() == []  # the coordinator still knew: learned
