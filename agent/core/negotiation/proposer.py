"""Proposer core: drives one transaction's consensus instance to a chosen value, sans I/O.

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
backoff, then a higher ballot; unanswered messages are resent every `resend_s`.
Recovery proposers are given `order`, the participants in their turn to propose
(Termination's rank): one pre-empted by a ballot of a proposer before it in that order
yields, for `resend_s` × 4 × (its rank + 1), doubled with each further yield (to twice
that), long enough for the earlier one's two phases to end even when each is resent
twice while messages are lost or take a second or two (a shorter first yield ended as
such a ballot was about to be chosen, and cost it a third one); one pre-empted by a
later proposer retries after `backoff_s` alone. Two
proposers then never duel for long: the later one stands aside, the earlier one wins,
whatever the delays, with no randomness (a random backoff lets two ballots pre-empt
each other for as long as chance keeps their retries within a round trip). A dead
earlier proposer only delays the later one by its yield, which is finite: liveness
stands. Without an order (the coordinator's own proposer, or a rival outside the
order) the backoff is random (injected random.Random) and doubles with each Reject. A
Decision from anyone ends it at once.
Every phase 1 first emits PersistBallot: a restarted proposer is given that
ballot back as `floor` and starts above it, so a ballot never carries two values.

Own acceptor first. A proposer that is an acceptor sends its Accept to its own
acceptor first, and to the others once that accepted (`_vouched`), saying so
(`Accept.proposer_accepted`), which spares messages (acceptor.py). Its own acceptor
may refuse the Accept with nothing sent back: any refusal on the wire (a round past
its life or forgotten there, a value it will not take), where a Reject (a higher
promise) or a Decision would have answered. So a first resend goes to our own
acceptor alone, as the Accept did; from the second on, with ours still silent, the
Accept goes to every acceptor still silent, vouching for nothing
(`proposer_accepted=False`), as a proposer that is no acceptor sends it: a majority of
the others can choose the value without ours. Safe: Paxos's phase 2 may go to any
acceptors in any order, the ballot and value are the same (one value per ballot), and
`proposer_accepted` is set only once our own acceptor's Accepted came back. When ours
accepts later, the ones still silent get the vouched Accept at once, as before. With
ours accepting in the same turn (the fault-free path) nothing changes.

Transitions (one table, `_PROPOSER_TABLE`):

    (phase,   input)          -> phase    effect
    (PHASE1,  Promise b=mine) -> PHASE1   count; majority -> PHASE2, Accept to all
    (PHASE2,  Accepted b=mine)-> PHASE2   count; majority -> DONE, value chosen
    (any,     Accepted any b) -> DONE     when a majority accepted one value in b (learner)
    (PHASE1|2, Reject b=mine) -> BACKOFF  wait (yield to an earlier proposer in `order`,
                                          `backoff_s` after a later one, else a random
                                          while), then a higher ballot
    (BACKOFF, timer)          -> PHASE1   PaxosPrepare with the next ballot
    (PHASE1|2, timer)         -> same     resend to the acceptors still silent (our
                                          acceptor's phase 2 not accepted: the first
                                          resend to ours alone, then to every one)
    (any,     Decision)       -> DONE     the value is chosen (learned)
    (DONE,    anything)       -> DONE     ignored; so is any reply for another ballot

Every PaxosPrepare and Accept carries the transaction as the proposer holds it,
`TxInfo.round_tx` included: the coordinator's signed round (the coordinator's own, or
the one a participant kept with its YES), without which an acceptor that has no record
of the round makes none (acceptor.py, Records only of stated rounds).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

from fedorch.core.identity.authority import ballot_in_reach
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    Ballot,
    Decision,
    PaxosPrepare,
    PersistBallot,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
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
        order: tuple[str, ...] = (),
    ) -> None:
        """`order`: the proposers in their turn to propose (see the header); () none."""
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
        self._order = order
        self._yields = 0
        self._vouched = False  # our own acceptor accepted our current phase 2
        self._own_resent = False  # our phase 2 resent to ours alone once (handle_timer)
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
            self._backoff(now, msg.promised.proposer)

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
        waiting = self.tx.acceptors
        if self.phase is ProposerPhase.PHASE2 and self.is_acceptor and not self._vouched \
                and not self._own_resent:
            # Phase 2: ours alone once more; then every one, ours silent (see the header).
            self._own_resent = True
            waiting = (self.me,)
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
        self._vouched = self._own_resent = False
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

    def _backoff(self, now: float, rival: str) -> None:
        self.phase = ProposerPhase.BACKOFF
        self._rejections += 1
        if self.me in self._order and rival in self._order:
            rank = self._order.index(self.me)
            if self._order.index(rival) < rank:  # the rival's turn came first: yield
                self._yields += 1
                # Two phases, each resent twice, per proposer up to this one.
                wait = self._resend_s * 4 * (rank + 1) * 2 ** min(self._yields - 1, 1)
            else:  # ours came first: the rival yields to us, so no need to wait long
                wait = self._backoff_s
            self._next_at = now + wait
            return
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
