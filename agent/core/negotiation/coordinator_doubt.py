"""The coordinator in doubt: its questions while a recovery ballot settles its round, sans I/O.

Theory of operation
-------------------
A coordinator whose COMMIT proposal is on record without a decision (restored, phase
DECIDING: coordinator_recovery), or whose ballot 0 was pre-empted, settles its round
with a recovery ballot (proposer.py). Once the round is past its life at its
acceptors (acceptor.py, `past_life`; docs/retention.md) every acceptor that recorded
or forgot it refuses that ballot, and the refusal (`RoundPastLife`) is a refusal on
the wire: nothing comes back, and the ballot alone would be resent for good. So once
its first recovery ballot has run `query_interval_s` without a chosen value, the
coordinator also asks, as a participant in doubt does (termination.py): a
DecisionQuery to every acceptor and participant of the round, itself included (the
Node answers its own query as its acceptor: node/coordinator_doubt.py), and again
every `query_interval_s`. A ballot that ends sooner (a restart's usual case) asks
nobody: no message more than before.

    (state,     input)                   -> state      effect
    (none,      first recovery ballot)   -> ASKING     nothing yet: due in query_interval
    (ASKING,    timer, +query_interval)  -> ASKING     DecisionQuery to every acceptor and
                                                       participant, ourselves too; again
                                                       every query_interval (the ballot
                                                       runs on)
    (any,       decided answer)          -> (settled)  the value, as any learned one: a
                                                       COMMIT only with its certificate,
                                                       from a party of the round only
    (ASKING,    PAST_LIFE of a majority  -> PAST_LIFE  the ballot is dropped: no ballot,
                 of the acceptors)                     no resend any more; counted
    (PAST_LIFE, timer, +query_interval)  -> PAST_LIFE  the others asked again (one may
                                                       still hold the decision)
    (any,       other answers)           -> same       ignored (unknown, not prepared)

A restart. A coordinator's own acceptor counts a record's age in this life from the
restore (acceptor.py: its monotonic bound), so a coordinator that had stopped its
ballot runs it again once restarted, until the others' PAST_LIFE answers stop it
within one query_interval. Starting a restore with no ballot where the round looks
past its life by this agent's wall clock was tried and dropped: only the acceptors
know they refuse a round, and a wall clock stepped an hour forward while every
acceptor could still accept the round left its coordinator in doubt for good
(simulator seed 145002563; core/node/negotiation_restore.py).

Safety: no second value is ever chosen, and the coordinator never decides wrongly.
It adopts only a value some party holds as decided: a COMMIT carries the YES of every
participant (`certifies`), and only the coordinator proposes COMMIT, with its cell
holding it, so that COMMIT is the one chosen; an ABORT is held decided only once it
was chosen (a participant's Learned, an acceptor's decided record), and one value
only is ever chosen (Paxos). Dropping the ballot on a majority of PAST_LIFE answers
decides nothing: the workflow stays NEGOTIATING, its reservation held, its proposal
cell as it was. And no ballot could have helped: an acceptor that answers PAST_LIFE
refuses every ballot of the round, so with a majority of them no ballot can gather a
majority (one acceptor's word alone, a liar's perhaps, stops nothing).
"""

from __future__ import annotations

import enum

from fedorch.core.negotiation.messages import (
    AnswerStatus,
    DecisionAnswer,
    DecisionQuery,
    Send,
    TxInfo,
    Value,
    certifies,
)

# As the Node's Timing (records.py) has it; a restored coordinator is given the Node's.
QUERY_INTERVAL_S = 2.0


class DoubtState(enum.Enum):
    ASKING = "asking"        # a recovery ballot runs, the round's parties are asked too
    PAST_LIFE = "past life"  # a majority of the acceptors refuse it: in doubt for good


class CoordinatorDoubt:
    """The questions of one round's coordinator while its recovery ballot runs."""

    def __init__(self, tx: TxInfo, now: float, query_interval_s: float) -> None:
        self.tx = tx
        self.state = DoubtState.ASKING
        self.next_at = now + query_interval_s  # if the ballot has not ended by then
        self._interval = query_interval_s
        self._past_life: set[str] = set()  # acceptors that answered PAST_LIFE

    @property
    def past_life(self) -> bool:
        return self.state is DoubtState.PAST_LIFE

    def due(self, now: float) -> list[Send]:
        """The questions due at `now`: to every acceptor and participant, ourselves too
        while the ballot runs (our acceptor's word counts), the others only after."""
        if now < self.next_at:
            return []
        self.next_at = now + self._interval
        tx = self.tx
        whom = sorted({*tx.acceptors, *tx.participants})
        if self.past_life:
            whom = [w for w in whom if w != tx.coordinator]
        q = DecisionQuery(tx.key, tx.coordinator, tx.coordinator, tx.created_ms)
        return [Send(w, q) for w in whom]

    def answer(self, now: float, msg: DecisionAnswer) -> Value | None:
        """A value to settle the round with, or None; a majority of the acceptors'
        PAST_LIFE answers moves it to PAST_LIFE (see the header)."""
        tx = self.tx
        if msg.key != tx.key or msg.sender not in tx.acceptors \
                and msg.sender not in tx.participants:
            return None  # not a party of the round: nothing it says counts
        if msg.status is AnswerStatus.DECIDED and msg.value is not None:
            return msg.value if certifies(tx, msg.value) else None
        if msg.status is AnswerStatus.PAST_LIFE and msg.sender in tx.acceptors \
                and not self.past_life:
            self._past_life.add(msg.sender)
            if len(self._past_life) >= tx.majority:
                self.state = DoubtState.PAST_LIFE
                self.next_at = now + self._interval
        return None
