"""Proposer and termination cores: how an in-doubt transaction gets its decision, sans I/O.

Theory of operation
-------------------
:class:`Proposer` drives one transaction's consensus instance to a chosen value.
The coordinator runs one on its fast path: ballot 0 is its own, so it skips
phase 1 and sends Accept(0, value) at once. A recovery proposer picks a ballot
(n, me) above every ballot it has seen, sends PaxosPrepare to every acceptor,
and from a majority of promises adopts the value accepted in the highest
ballot, or its preferred value when none was accepted (ABORT, for anyone but
the coordinator); then phase 2. The value is chosen when a majority accepted it
in one ballot. A proposer need not be an acceptor (a participant beyond
`max_acceptors`): it then sends its Accept to every acceptor at once and counts
only theirs. A Reject (an acceptor promised higher) sends the proposer into a
random backoff (injected random.Random), then a higher ballot; unanswered
messages are resent every `resend_s`. A Decision from anyone ends it at once.
Every phase 1 first emits PersistBallot: a restarted proposer is given that
ballot back as `floor` and starts above it, so a ballot never carries two values.

Transitions (one table, `_PROPOSER_TABLE`):

    (phase,   input)          -> phase    effect
    (PHASE1,  Promise b=mine) -> PHASE1   count; majority -> PHASE2, Accept to all
    (PHASE2,  Accepted b=mine)-> PHASE2   count; majority -> DONE, value chosen
    (any,     Accepted any b) -> DONE     when a majority accepted one value in b (learner)
    (PHASE1|2, Reject b=mine) -> BACKOFF  wait a random while, then a higher ballot
    (BACKOFF, timer)          -> PHASE1   PaxosPrepare with the next ballot
    (PHASE1|2, timer)         -> same     resend to the acceptors still silent
    (any,     Decision)       -> DONE     the value is chosen (learned)
    (DONE,    anything)       -> DONE     ignored; so is any reply for another ballot

:class:`Termination` is the participant side. A participant that voted YES and
has no decision when its lease passes never releases on a timer; it asks the
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
                                                    acceptors first)
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

`get_timer()` is never before the `now` of the last input. A transaction tracked past
its lease (a restart) is due at `now`: the query goes out on that timer, from the one
transition that sends it (WAITING, timer), so `track` only records, and the query's
timeout runs from when it is asked; no driver needs a second pass for a stale deadline.

A coordinator membership says is DEAD (`coordinator_lost`; never on SUSPECT) will
not answer: waiting out the lease only delays the decision. Starting recovery
early is safe whatever the truth: Paxos lets any participant propose at any
time, and only one value is ever chosen (at worst a live coordinator's COMMIT
loses to an early ABORT, never both).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from fedorch.core.identity.authority import ballot_in_reach
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
    Key,
    Learned,
    PaxosPrepare,
    PersistBallot,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
    certifies,
)


class ProposerPhase(enum.Enum):
    PHASE1 = "phase1"
    PHASE2 = "phase2"
    BACKOFF = "backoff"
    DONE = "done"


class Proposer:
    def __init__(
        self,
        me: str,
        tx: TxInfo,
        *,
        preferred: Value,
        rng: random.Random,
        resend_s: float,
        backoff_s: float,
        fast: bool = False,
        floor: Ballot | None = None,
    ) -> None:
        if fast and me != tx.coordinator:
            raise RemoteProtocolError("only the coordinator owns ballot 0")
        if me not in tx.acceptors and me not in tx.participants:
            raise RemoteProtocolError(f"{me} proposes in {tx.key} but is not its acceptor"
                                      " nor a participant")
        self.me = me
        # A participant beyond max_acceptors proposes without accepting: its phase 2 goes
        # to every acceptor at once, vouching for nothing (see _phase2).
        self.is_acceptor = me in tx.acceptors
        self.tx = tx
        self.preferred = preferred
        self.chosen: Value | None = None
        self.phase = ProposerPhase.PHASE1
        self._fast = fast
        self._rng = rng
        self._resend_s = resend_s
        self._backoff_s = backoff_s
        self._ballot = Ballot(0, me)
        self._highest_seen = floor if floor is not None else Ballot(0, "")
        self._value: Value = preferred
        self._replies: dict[str, Promise | Accepted] = {}
        self._accepts: dict[tuple[Ballot, Value], set[str]] = {}
        self._next_at = 0.0
        self._rejections = 0
        self._vouched = False  # our own acceptor accepted our current phase 2
        self._outbox: list[Send | PersistBallot] = []

    @property
    def ballot(self) -> Ballot:
        return self._ballot

    def next_actions(self) -> list[Send | PersistBallot]:
        actions, self._outbox = self._outbox, []
        return actions

    def get_timer(self) -> float | None:
        return None if self.phase is ProposerPhase.DONE else self._next_at

    # ---- inputs --------------------------------------------------------------------

    def start(self, now: float) -> None:
        if self._fast:
            self._phase2(now, self._ballot, self.preferred)
        else:
            self._phase1(now)

    def receive(self, now: float, msg: object) -> None:
        """A Promise, Accepted, Reject or Decision for this transaction."""
        if getattr(msg, "key", None) != self.tx.key:
            raise RemoteProtocolError("a reply for another transaction")
        if isinstance(msg, Promise | Accepted | Reject) and msg.acceptor not in self.tx.acceptors:
            # Only the round's acceptors count towards its majorities (authority table).
            raise RemoteProtocolError(f"{msg.acceptor} is not an acceptor of {self.tx.key}")
        handler = _PROPOSER_TABLE.get((self.phase, type(msg)))
        if handler is None:
            raise RemoteProtocolError(f"{type(msg).__name__} is not a proposer's input")
        handler(self, now, msg)

    # ---- handlers (the `_PROPOSER_TABLE`) --------------------------------------------

    def _on_promise(self, now: float, msg: Promise) -> None:
        if msg.ballot != self._ballot:
            return  # a reply for an older ballot of ours: stale
        self._replies[msg.acceptor] = msg
        if len(self._replies) >= self.tx.majority:
            self._phase2(now, self._ballot, self._adopt())

    def _on_accepted(self, now: float, msg: Accepted) -> None:
        if msg.ballot == self._ballot and self.phase is ProposerPhase.PHASE2:
            if msg.value != self._value:
                raise RemoteProtocolError(f"{msg.acceptor} accepted another value in our ballot")
            self._replies[msg.acceptor] = msg
            if msg.acceptor == self.me and not self._vouched:
                # Ours is durable: the others' Accept can say so (see _phase2).
                self._vouched = True
                self._outbox.extend(Send(a, self._message()) for a in self.tx.acceptors
                                    if a not in self._replies)
        # Learner: a majority accepting one value in one ballot chose it, whoever proposed.
        voters = self._accepts.setdefault((msg.ballot, msg.value), set())
        voters.add(msg.acceptor)
        if len(voters) >= self.tx.majority:
            self._learn(msg.value)

    def _on_reject(self, now: float, msg: Reject) -> None:
        if not ballot_in_reach(msg.promised.n, self._ballot.n):
            return  # a promise no proposer could have asked for: ballots are not exhausted
        self._highest_seen = max(self._highest_seen, msg.promised)
        if msg.ballot == self._ballot and self.phase is not ProposerPhase.BACKOFF \
                and msg.promised > self._ballot:
            self._backoff(now)

    def _on_decision(self, now: float, msg: Decision) -> None:
        self._learn(msg.value)

    def _ignore(self, now: float, msg: object) -> None:
        pass

    def handle_timer(self, now: float) -> None:
        if self.phase is ProposerPhase.DONE or now < self._next_at:
            return
        if self.phase is ProposerPhase.BACKOFF:
            self._phase1(now)
            return
        self._next_at = now + self._resend_s
        waiting = self.tx.acceptors if self._vouched or self.phase is ProposerPhase.PHASE1 \
            or not self.is_acceptor else (self.me,)  # phase 2: the others once ours accepted
        for acceptor in waiting:
            if acceptor not in self._replies:
                self._outbox.append(Send(acceptor, self._message()))

    # ---- steps ---------------------------------------------------------------------

    def _phase1(self, now: float) -> None:
        n = max(self._ballot.n, self._highest_seen.n) + 1
        self._ballot = Ballot(n, self.me)
        self.phase = ProposerPhase.PHASE1
        self._replies = {}
        self._next_at = now + self._resend_s
        msg = PaxosPrepare(self.tx, self._ballot)
        self._outbox.append(PersistBallot(self.tx.key, self._ballot))
        self._outbox.extend(Send(a, msg) for a in self.tx.acceptors)

    def _phase2(self, now: float, ballot: Ballot, value: Value) -> None:
        # Our own acceptor first; the others once it accepted, told so in their Accept:
        # each counts it as our Accepted, so with three acceptors a participant learns
        # the value from its Accept alone (see agent.negotiation.acceptor).
        self.phase = ProposerPhase.PHASE2
        self._value = value
        self._replies = {}
        self._vouched = False
        self._next_at = now + self._resend_s
        if not self.is_acceptor:  # nothing of ours to vouch for: every acceptor at once
            self._outbox.extend(Send(a, Accept(self.tx, ballot, value))
                                for a in self.tx.acceptors)
            return
        self._outbox.append(Send(self.me, Accept(self.tx, ballot, value)))

    def _adopt(self) -> Value:
        best: tuple[Ballot, Value] | None = None
        for p in self._replies.values():
            assert isinstance(p, Promise)
            if p.accepted_ballot is not None and p.accepted_value is not None \
                    and (best is None or p.accepted_ballot > best[0]):
                best = (p.accepted_ballot, p.accepted_value)
        return best[1] if best is not None else self.preferred

    def _backoff(self, now: float) -> None:
        self.phase = ProposerPhase.BACKOFF
        self._rejections += 1
        spread = self._backoff_s * (2 ** min(self._rejections, 5))
        self._next_at = now + self._rng.uniform(0.0, spread)

    def _learn(self, value: Value) -> None:
        self.chosen = value
        self.phase = ProposerPhase.DONE

    def _message(self) -> PaxosPrepare | Accept:
        if self.phase is ProposerPhase.PHASE1:
            return PaxosPrepare(self.tx, self._ballot)
        return Accept(self.tx, self._ballot, self._value, proposer_accepted=self._vouched)


_P = ProposerPhase
_PROPOSER_TABLE: dict[tuple[ProposerPhase, type], Callable[[Proposer, float, object], None]] = {
    (_P.PHASE1, Promise): Proposer._on_promise,
    (_P.PHASE1, Accepted): Proposer._on_accepted,
    (_P.PHASE1, Reject): Proposer._on_reject,
    (_P.PHASE1, Decision): Proposer._on_decision,
    (_P.PHASE2, Promise): Proposer._ignore,        # phase 1 is over for this ballot
    (_P.PHASE2, Accepted): Proposer._on_accepted,
    (_P.PHASE2, Reject): Proposer._on_reject,
    (_P.PHASE2, Decision): Proposer._on_decision,
    (_P.BACKOFF, Promise): Proposer._ignore,
    (_P.BACKOFF, Accepted): Proposer._on_accepted,  # still a learner
    (_P.BACKOFF, Reject): Proposer._on_reject,
    (_P.BACKOFF, Decision): Proposer._on_decision,
    (_P.DONE, Promise): Proposer._ignore,
    (_P.DONE, Accepted): Proposer._ignore,
    (_P.DONE, Reject): Proposer._ignore,
    (_P.DONE, Decision): Proposer._ignore,
}


# ---- the participant's side ------------------------------------------------------------


def answer_query(me: str, key: Key, decided: Value | None, hold: str | None) -> DecisionAnswer:
    """How any agent but the coordinator answers a DecisionQuery, from its own log.

    `decided`: the decision it holds (as participant, acceptor or proposer); `hold`:
    Participant.status(key). A YES voter without a decision is in doubt itself
    (UNKNOWN); a NO voter, a reservation never confirmed, or no PREPARE seen is
    NOT_PREPARED. Any holder of a decision answers with it.
    """
    if decided is not None:
        return DecisionAnswer(key, me, AnswerStatus.DECIDED, decided)
    if hold in ("prepared", "committed"):
        return DecisionAnswer(key, me, AnswerStatus.UNKNOWN)
    return DecisionAnswer(key, me, AnswerStatus.NOT_PREPARED)


class DoubtState(enum.Enum):
    WAITING = "waiting"
    ASKING = "asking"
    RECOVERING = "recovering"


@dataclass
class _Doubt:
    tx: TxInfo
    lease_expires: float
    state: DoubtState = DoubtState.WAITING
    next_at: float = 0.0
    proposer: Proposer | None = field(default=None, repr=False)
    accepts: dict[tuple[Ballot, Value], set[str]] = field(default_factory=dict, repr=False)
    floor: Ballot | None = None


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
    ) -> None:
        self.me = me
        self._rng = rng
        self._stagger_s = resend_s if stagger_s is None else stagger_s
        self._query_timeout_s = query_timeout_s
        self._query_interval_s = query_interval_s
        self._resend_s = resend_s
        self._backoff_s = backoff_s
        self._doubts: dict[Key, _Doubt] = {}
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
            self._doubts[tx.key] = _Doubt(tx, lease_expires, next_at=max(now, lease_expires),
                                          floor=floor)

    def coordinator_lost(self, now: float, coordinator: str) -> list[Key]:
        """Membership says `coordinator` is DEAD: its transactions in doubt here ask
        everyone now, and recover after this participant's turn instead of after the
        lease. Returns their keys."""
        moved = []
        for d in self._doubts.values():
            if d.tx.coordinator != coordinator or d.state is DoubtState.RECOVERING:
                continue
            d.state = DoubtState.ASKING
            self._ask(d, self._everyone(d.tx))
            d.next_at = min(d.next_at, now + self._turn(d.tx))
            moved.append(d.tx.key)
        return moved

    def forget(self, key: Key) -> None:
        """The decision arrived by another way (and was applied)."""
        self._doubts.pop(key, None)

    def receive(self, now: float, msg: object) -> None:
        key = getattr(msg, "key", None)
        d = self._doubts.get(key) if key is not None else None
        if d is None:
            return  # nothing in doubt here: late or duplicated
        if isinstance(msg, DecisionAnswer):
            if msg.status is AnswerStatus.DECIDED and msg.value is not None:
                self._learned(d, msg.value, announce=False)
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
        times = []
        for d in self._doubts.values():
            times.append(d.next_at)
            if d.proposer is not None:
                t = d.proposer.get_timer()
                if t is not None:
                    times.append(t)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for d in list(self._doubts.values()):
            if d.proposer is not None:
                d.proposer.handle_timer(now)
                if self._drain(d):
                    continue
            if now < d.next_at:
                continue
            if d.state is DoubtState.WAITING:
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
                    backoff_s=self._backoff_s, floor=d.floor,
                )
                d.proposer.start(now)
                self._drain(d)
            else:
                self._ask(d, self._everyone(d.tx))
                d.next_at = now + self._query_interval_s

    # ---- helpers -------------------------------------------------------------------

    def _turn(self, tx: TxInfo) -> float:
        # Participants take turns (by rank) to start a ballot: fewer duels. Acceptors go
        # first: one accepts its own proposal, which spares a round trip.
        others = sorted((p for p in tx.participants if p != tx.coordinator),
                        key=lambda p: (p not in tx.acceptors, p))
        rank = others.index(self.me) if self.me in others else len(others)
        return rank * self._stagger_s + self._rng.uniform(0.0, self._backoff_s)

    def _everyone(self, tx: TxInfo) -> list[str]:
        # The acceptors, the coordinator first: every one of them hears the outcome (the
        # participants among them learn it, the others see its Accept or Decision).
        others = [a for a in tx.acceptors if a != self.me and a != tx.coordinator]
        return [tx.coordinator, *others]

    def _ask(self, d: _Doubt, whom: list[str]) -> None:
        q = DecisionQuery(d.tx.key, self.me)
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
        self._outbox.append(Learned(d.tx.key, value, d.tx, by_coordinator))
        if announce:
            notice = Decision(d.tx.key, value, self.me)
            targets = {d.tx.coordinator, *d.tx.participants} - {self.me}
            self._outbox.extend(Send(t, notice) for t in sorted(targets))
