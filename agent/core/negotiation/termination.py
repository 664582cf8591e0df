"""Termination core: how an in-doubt transaction gets its decision, sans I/O.

Theory of operation
-------------------
:class:`Termination` is the participant side; its recovery proposers are
:class:`~fedorch.core.negotiation.proposer.Proposer` (proposer.py), each given the
transaction as this participant voted YES in it, with the coordinator's signed round
it kept, which every recovery PaxosPrepare and Accept carries. A participant that
voted YES and has no decision when its lease passes never releases on a timer; it asks the
coordinator (DecisionQuery). If no decision comes within `query_timeout_s` it
asks the other acceptors too (only they are sure to be told the outcome: a
participant beyond `max_acceptors` is one more learner, and asking every one of
fifty participants is N² queries; a COMMIT is accepted from anyone because its
certificate proves it) and becomes a recovery proposer, an acceptor or not.
Whatever the coordinator does, even dying forever at any point, a majority of
live acceptors lets every live participant reach the one chosen value. On learning it emits Learned (persist, apply) and, when it learned it
from its own consensus, sends the Decision to every participant and the
coordinator.

    (state,      input)              -> state       effect
    (WAITING,    timer at lease)     -> ASKING      DecisionQuery to the coordinator
    (ASKING,     timer, +query_t/o)  -> RECOVERING  queries to the acceptors; Proposer
                                                    (participants start in turn, by rank:
                                                    acceptors first; a later one pre-empted
                                                    by an earlier one yields to it)
    (any,        majority Accepted)  -> (gone)      Learned (from the acceptors, ours too;
                                                    `by_coordinator` when in ballot 0
                                                    and still WAITING)
    (RECOVERING, timer)              -> RECOVERING  proposer resends; queries repeat
    (any,        decided answer)     -> (gone)      Learned
    (any,        Decision)           -> (gone)      Learned
    (RECOVERING, proposer chosen)    -> (gone)      Learned, then Decision to everyone
    (any,        other answers)      -> same        ignored (unknown, not prepared)
    (WAITING|ASKING, coordinator DEAD) -> ASKING    queries to the acceptors at once; recovery
                                                    after this participant's turn (by rank),
                                                    not after the lease
    (track,      coordinator DEAD)   -> WAITING     due at once (`coordinator_gone` says so)
    (WAITING,    timer, still DEAD)  -> ASKING      as `coordinator DEAD` above
    (WAITING,    timer, not DEAD)    -> WAITING     due at the lease again, as any other
    (any,        PAST_LIFE answers)  -> PAST_LIFE   of a majority of the acceptors: the
                                                    round is past its life there, or
                                                    forgotten there (each query states
                                                    the round's coordinator and creation
                                                    time for that: acceptor.py,
                                                    `past_life`), they refuse every
                                                    ballot of it, so no ballot is run any
                                                    more; stays in doubt (its reservation
                                                    held), never decided wrongly
    (PAST_LIFE,  timer)              -> PAST_LIFE   the coordinator asked again, every
                                                    query_interval_s (it may still hold
                                                    the decision: a COMMIT record is kept
                                                    until every participant holds it)

Deadlines. A doubt is due at the earlier of its own `next_at` and its proposer's
timer. The Node asks `get_timer()` after every turn, so a walk over every doubt would
cost each turn as much as the transactions in doubt here, however few the turn touched:
the doubts' deadlines are kept in a `DeadlineTable` (core/deadlines.py) instead, set
again at the end of each input for the one doubt it touched (`_refresh`) and dropped
with the doubt, so `get_timer()` is the table's earliest (amortised O(1)) and a tick
fires only the doubts due, in the order they were tracked, as the walk did: a doubt
not due would have done nothing (neither its proposer's timer nor its own is due).

`get_timer()` is never before the `now` of the last input. A transaction tracked past
its lease (a restart) is due at `now`: the query goes out on that timer, from the one
transition that sends it (WAITING, timer), so `track` only records, and the query's
timeout runs from when it is asked; no driver needs a second pass for a stale deadline.

A coordinator membership says is DEAD (`coordinator_lost`; never on SUSPECT) will
not answer: waiting out the lease only delays the decision. Starting recovery
early is safe whatever the truth: Paxos lets any participant propose at any
time, and only one value is ever chosen (at worst a live coordinator's COMMIT
loses to an early ABORT, never both). A YES voted while the view already says the
coordinator is DEAD (its PREPARE was delayed past its death, or the view came before
the vote) would miss that change: `coordinator_gone`, a predicate over the view the
owner injects, is read when such a transaction is tracked, and makes it due at once;
the questions then go out from its timer, so `track` still only records.

Classic 2PC (a TxInfo with no acceptors: `negotiation.commit: 2pc`). The decision is
the coordinator's alone, so nobody else may propose one: no ballot is ever started.
At the lease the coordinator is asked, then again every `query_interval_s` for as long
as the doubt lasts (a restarted coordinator answers from its log, presuming abort).
Once membership says the coordinator is gone, the other participants are asked too
(cooperative termination): a participant that learned the decision answers with it (a
COMMIT with its certificate), which is safe because every decision it can hold came
from the coordinator; one that voted NO answers ABORT once its NO is on record (its
owner keeps that NO as the round's ABORT, core/node/no_votes.py: a COMMIT needs
every participant's YES, so that round can never commit); one in doubt itself, or
that never voted, tells nothing, and the asker keeps waiting (2PC blocks while its
coordinator is down and nobody learned or refused).

    (WAITING,  timer at lease)       -> ASKING      DecisionQuery to the coordinator
    (ASKING,   timer, +query_interval) -> ASKING    the same again (and to the
                                                    participants, coordinator gone)
    (WAITING|ASKING, coordinator DEAD) -> ASKING    coordinator and participants asked
    (any,      Promise/Accepted/Reject) -> error    no acceptor: nobody's ballot
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from fedorch.core.deadlines import DeadlineTable
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    Accepted,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAnswer,
    DecisionQuery,
    Key,
    Learned,
    PersistBallot,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
    certifies,
)

# The proposer core lived here; its names stay importable from this module.
from fedorch.core.negotiation.proposer import _PROPOSER_TABLE as _PROPOSER_TABLE
from fedorch.core.negotiation.proposer import Proposer as Proposer
from fedorch.core.negotiation.proposer import ProposerPhase as ProposerPhase

# ---- the participant's side ------------------------------------------------------------


def answer_query(me: str, key: Key, decided: Value | None, hold: str | None,
                 past_life: bool = False) -> DecisionAnswer:
    """How any agent but the coordinator answers a DecisionQuery, from its own log.

    `decided`: the decision it holds (as participant, acceptor or proposer); `hold`:
    Participant.status(key). A YES voter without a decision is in doubt itself
    (UNKNOWN); a NO voter, a reservation never confirmed, or no PREPARE seen is
    NOT_PREPARED, unless it holds a decision: any holder of one answers with it (a
    classic round's NO voter holds its ABORT on record, core/node/no_votes.py).
    `past_life`: the round is past its life here (Acceptor.past_life): without a
    decision, PAST_LIFE.
    """
    if decided is not None:
        return DecisionAnswer(key, me, AnswerStatus.DECIDED, decided)
    if past_life:
        return DecisionAnswer(key, me, AnswerStatus.PAST_LIFE)
    if hold in ("prepared", "committed"):
        return DecisionAnswer(key, me, AnswerStatus.UNKNOWN)
    return DecisionAnswer(key, me, AnswerStatus.NOT_PREPARED)


class DoubtState(enum.Enum):
    WAITING = "waiting"
    ASKING = "asking"
    RECOVERING = "recovering"
    PAST_LIFE = "past life"  # refused by the acceptors: in doubt for good


@dataclass
class _Doubt:
    tx: TxInfo
    lease_expires: float
    state: DoubtState = DoubtState.WAITING
    next_at: float = 0.0
    proposer: Proposer | None = field(default=None, repr=False)
    accepts: dict[tuple[Ballot, Value], set[str]] = field(default_factory=dict, repr=False)
    floor: Ballot | None = None
    gone: bool = False  # membership said its coordinator is DEAD (or LEFT)
    past_life: set[str] = field(default_factory=set, repr=False)  # acceptors that said so


TerminationAction = Learned | Send | PersistBallot


class Termination:
    def __init__(
        self,
        me: str,
        *,
        rng: random.Random,
        query_timeout_s: float,
        query_interval_s: float,
        resend_s: float,
        backoff_s: float,
        stagger_s: float | None = None,
        coordinator_gone: Callable[[str], bool] | None = None,
    ) -> None:
        """`coordinator_gone(domain)`: does membership say it is DEAD (or LEFT) now?
        Read when a transaction is tracked (see the header); None: never."""
        self.me = me
        self._gone = coordinator_gone
        self._rng = rng
        self._stagger_s = resend_s if stagger_s is None else stagger_s
        self._query_timeout_s = query_timeout_s
        self._query_interval_s = query_interval_s
        self._resend_s = resend_s
        self._backoff_s = backoff_s
        self._doubts: dict[Key, _Doubt] = {}
        # Each doubt's deadline (see the header): every change of a `next_at` or of a
        # proposer's timer happens inside an input, which refreshes it before it returns.
        self._deadlines = DeadlineTable()
        self._outbox: list[TerminationAction] = []

    def next_actions(self) -> list[TerminationAction]:
        actions, self._outbox = self._outbox, []
        return actions

    def in_doubt(self) -> list[Key]:
        return list(self._doubts)

    def state(self, key: Key) -> DoubtState | None:
        d = self._doubts.get(key)
        return d.state if d is not None else None

    # ---- inputs --------------------------------------------------------------------

    def track(self, now: float, tx: TxInfo, lease_expires: float,
              floor: Ballot | None = None) -> None:
        """This agent voted YES in `tx` (its prepare record is durable) and has no decision.

        Due at the lease, or at `now` if the lease has passed (see the header).
        `floor`: the last ballot persisted for it (PersistBallot) before a restart.
        """
        if tx.key not in self._doubts:
            d = _Doubt(tx, lease_expires, next_at=max(now, lease_expires), floor=floor)
            if self._gone is not None and self._gone(tx.coordinator):
                d.gone, d.next_at = True, now  # asked from the timer, at once
            self._doubts[tx.key] = d
            self._refresh(d)

    def coordinator_lost(self, now: float, coordinator: str) -> list[Key]:
        """Membership says `coordinator` is DEAD: its transactions in doubt here ask
        everyone now, and recover after this participant's turn instead of after the
        lease. Returns their keys."""
        moved = []
        for d in self._doubts.values():
            if d.tx.coordinator != coordinator \
                    or d.state in (DoubtState.RECOVERING, DoubtState.PAST_LIFE):
                continue
            self._lose(d, now)
            moved.append(d.tx.key)
        return moved

    def forget(self, key: Key) -> None:
        """The decision arrived by another way (and was applied)."""
        self._doubts.pop(key, None)
        self._deadlines.pop(key, None)

    def receive(self, now: float, msg: object) -> None:
        key = getattr(msg, "key", None)
        d = self._doubts.get(key) if key is not None else None
        if d is None:
            return  # nothing in doubt here: late or duplicated
        try:
            self._receive(now, d, msg)
        finally:  # refused (RemoteProtocolError) or not, its deadline as it stands now
            if self._doubts.get(d.tx.key) is d:
                self._refresh(d)

    def _receive(self, now: float, d: _Doubt, msg: object) -> None:
        if isinstance(msg, DecisionAnswer):
            if msg.status is AnswerStatus.DECIDED and msg.value is not None:
                self._learned(d, msg.value, announce=False)
            elif msg.status is AnswerStatus.PAST_LIFE and msg.sender in d.tx.acceptors \
                    and d.state is not DoubtState.PAST_LIFE:
                d.past_life.add(msg.sender)
                if len(d.past_life) >= d.tx.majority:
                    # A majority refuses every ballot of the round now: none can be
                    # chosen, so none is run any more (one acceptor's word, a liar's
                    # perhaps, stops nothing).
                    d.state, d.proposer = DoubtState.PAST_LIFE, None
                    d.next_at = now + self._query_interval_s
            return
        if isinstance(msg, Decision):
            self._learned(d, msg.value, announce=False)
            return
        if isinstance(msg, Promise | Accepted | Reject) and msg.acceptor not in d.tx.acceptors:
            # An outsider's Accepted(ABORT) must not make a majority (authority table).
            raise RemoteProtocolError(f"{msg.acceptor} is not an acceptor of {d.tx.key}")
        if isinstance(msg, Accepted):  # from the acceptors (see Acceptor): learn from them
            voters = d.accepts.setdefault((msg.ballot, msg.value), set())
            voters.add(msg.acceptor)
            if len(voters) >= d.tx.majority:  # announce what our own ballot chose
                ours = d.proposer is not None and msg.ballot == d.proposer.ballot
                # The coordinator's fast path, learned before this lease passed.
                fast = msg.ballot.n == 0 and d.state is DoubtState.WAITING
                self._learned(d, msg.value, announce=ours, by_coordinator=fast)
                return
        if d.proposer is not None:
            d.proposer.receive(now, msg)
            self._drain(d)

    def get_timer(self) -> float | None:
        return self._deadlines.earliest()

    def handle_timer(self, now: float) -> None:
        for key in self._deadlines.due(now):
            d = self._doubts[key]
            try:
                self._fire(d, now)
            finally:
                if self._doubts.get(key) is d:
                    self._refresh(d)

    def _fire(self, d: _Doubt, now: float) -> None:
        """One doubt's timers at `now`: its proposer's, then its own."""
        if d.proposer is not None:
            d.proposer.handle_timer(now)
            if self._drain(d):
                return
        if now < d.next_at:
            return
        if d.state is DoubtState.WAITING and d.gone:
            if self._gone is not None and self._gone(d.tx.coordinator):
                self._lose(d, now)
                return
            d.gone = False  # ALIVE again before it asked: back to its lease
            d.next_at = max(now, d.lease_expires)
            if now < d.next_at:
                return
        if d.state is DoubtState.PAST_LIFE:  # the coordinator may still know
            self._ask(d, [d.tx.coordinator])
            d.next_at = now + self._query_interval_s
            return
        if not d.tx.acceptors:  # classic 2PC: ask again, never a ballot
            d.state = DoubtState.ASKING
            d.gone = self._gone is not None and self._gone(d.tx.coordinator)
            self._ask(d, self._everyone(d.tx) if d.gone else [d.tx.coordinator])
            d.next_at = now + self._query_interval_s
        elif d.state is DoubtState.WAITING:
            d.state = DoubtState.ASKING
            self._ask(d, [d.tx.coordinator])
            # From now, not from the lease: after a restart long past the lease the
            # coordinator must still get its query timeout to answer.
            start = max(now, d.lease_expires)
            d.next_at = start + self._query_timeout_s + self._turn(d.tx)
        elif d.state is DoubtState.ASKING:
            d.state = DoubtState.RECOVERING
            self._ask(d, self._everyone(d.tx))
            d.next_at = now + self._query_interval_s
            d.proposer = Proposer(
                self.me, d.tx, preferred=ABORT, rng=self._rng, resend_s=self._resend_s,
                backoff_s=self._backoff_s, floor=d.floor, order=self._order(d.tx),
            )
            d.proposer.start(now)
            self._drain(d)
        else:
            self._ask(d, self._everyone(d.tx))
            d.next_at = now + self._query_interval_s

    # ---- helpers -------------------------------------------------------------------

    def _lose(self, d: _Doubt, now: float) -> None:
        """Its coordinator is gone: ask everyone now; this participant's ballot after
        its turn, or when it was due if sooner (but not at once: what is due now is a
        track's doing, and the turn keeps the participants' ballots apart)."""
        turn = now + (self._query_interval_s if not d.tx.acceptors else self._turn(d.tx))
        d.next_at = min(d.next_at, turn) if d.next_at > now else turn
        d.gone = True
        d.state = DoubtState.ASKING
        self._ask(d, self._everyone(d.tx))
        self._refresh(d)

    def _refresh(self, d: _Doubt) -> None:
        """Its deadline in the table: the earlier of its own and its proposer's."""
        due = d.next_at
        if d.proposer is not None:
            t = d.proposer.get_timer()
            if t is not None and t < due:
                due = t
        self._deadlines[d.tx.key] = due

    @staticmethod
    def _order(tx: TxInfo) -> tuple[str, ...]:
        # Participants take turns (by rank) to start a ballot, and a proposer pre-empted
        # by an earlier one yields to it (proposer.py): no duels. Acceptors go first: one
        # accepts its own proposal, which spares a round trip.
        return tuple(sorted((p for p in tx.participants if p != tx.coordinator),
                            key=lambda p: (p not in tx.acceptors, p)))

    def _turn(self, tx: TxInfo) -> float:
        others = self._order(tx)
        rank = others.index(self.me) if self.me in others else len(others)
        return rank * self._stagger_s + self._rng.uniform(0.0, self._backoff_s)

    def _everyone(self, tx: TxInfo) -> list[str]:
        # The acceptors, the coordinator first: every one of them hears the outcome (the
        # participants among them learn it, the others see its Accept or Decision).
        # Classic 2PC: the participants, who may have learned it from the coordinator.
        if not tx.acceptors:
            return [tx.coordinator, *(p for p in tx.participants
                                      if p != self.me and p != tx.coordinator)]
        others = [a for a in tx.acceptors if a != self.me and a != tx.coordinator]
        return [tx.coordinator, *others]

    def _ask(self, d: _Doubt, whom: list[str]) -> None:
        q = DecisionQuery(d.tx.key, self.me, d.tx.coordinator, d.tx.created_ms)
        self._outbox.extend(Send(w, q) for w in whom)

    def _drain(self, d: _Doubt) -> bool:
        assert d.proposer is not None
        self._outbox.extend(d.proposer.next_actions())
        if d.proposer.chosen is not None:
            self._learned(d, d.proposer.chosen, announce=True)
            return True
        return False

    def _learned(self, d: _Doubt, value: Value, *, announce: bool,
                 by_coordinator: bool = False) -> None:
        if not certifies(d.tx, value):
            return  # a COMMIT without its certificate proves nothing: keep asking
        del self._doubts[d.tx.key]
        del self._deadlines[d.tx.key]
        self._outbox.append(Learned(d.tx.key, value, d.tx, by_coordinator))
        if announce:
            notice = Decision(d.tx.key, value, self.me)
            targets = {d.tx.coordinator, *d.tx.participants} - {self.me}
            self._outbox.extend(Send(t, notice) for t in sorted(targets))
