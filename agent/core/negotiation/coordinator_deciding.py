"""How a coordinator's round that every participant voted YES ends decided, sans I/O.

Classic mode announces the COMMIT at once. Consensus mode first compare-and-sets the
round's proposal cell to COMMIT (the log's), then runs a ballot (termination's
Proposer) for it, phase DECIDING; once a value is chosen (by our ballot, a Decision
or a decided answer: coordinator_doubt) `settle` announces the COMMIT, or aborts the
round and places the workflow again (ended ABORTED after a restart). The theory of
operation, and the transitions that call these, are coordinator.py's.

Apart from coordinator.py because the way to a decision is a whole of its own: the
functions take the coordinator (typed loosely: it imports this module) and read and
set its own fields (the round, the outbox, the ballot and its questions) as its
methods did; the rounds' bookkeeping (begun, failed, aborted, next) stays the
coordinator's. coordinator_recovery calls
`after_proposer` for a restarted coordinator's recovery ballot.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.coordinator_doubt import CoordinatorDoubt
from fedorch.core.negotiation.messages import Value
from fedorch.core.negotiation.rounds import (
    Finished,
    PersistDecision,
    Phase,
    RoundState,
    SendDecision,
)
from fedorch.core.negotiation.termination import Proposer


def cas(core: Any, round_: int, value: Value) -> None:
    """Compare-and-set the round's write-once proposal cell (the log's), written first."""
    core._outbox.extend(core.log.propose(round_, value))


def commit(core: Any, now: float, rnd: RoundState) -> None:
    value = Value(True, tuple(rnd.votes[d] for d in sorted(rnd.votes)))
    if core._consensus is None:
        announce_commit(core, now, rnd, value)
        return
    cas(core, rnd.number, value)
    core.phase = Phase.DECIDING
    c = core._consensus
    tx = core.tx()
    assert tx is not None
    core._proposer = Proposer(c.me, tx, preferred=value, rng=c.rng, resend_s=c.resend_s,
                              backoff_s=c.backoff_s, fast=True)
    core._proposer.start(now)
    after_proposer(core, now)


def after_proposer(core: Any, now: float) -> None:
    p = core._proposer
    assert p is not None and core._round is not None
    core._outbox.extend(p.next_actions())
    if p.chosen is None:
        if core._doubt is None and p.ballot.n > 0:  # a recovery ballot: ask too, later
            core._doubt = CoordinatorDoubt(p.tx, now, core._query_interval_s)
        return
    settle(core, now, p.chosen)


def settle(core: Any, now: float, value: Value) -> None:
    """The round's chosen value: from our ballot, a Decision or a decided answer."""
    rnd = core._round
    assert rnd is not None
    core._proposer = core._doubt = None
    if value.commit:
        announce_commit(core, now, rnd, value)
        return
    # The participants' recovery chose ABORT before our COMMIT was chosen.
    core._abort_round(rnd, "the participants' recovery chose ABORT", everyone=True)
    if core._restored:
        core._finish_aborted(rnd.number, "coordinator restarted before deciding: aborted")
    else:
        core._next_round(now, rnd)


def announce_commit(core: Any, now: float, rnd: RoundState, value: Value) -> None:
    core.phase = Phase.COMMITTED
    core.log.decided[rnd.number] = value
    votes = tuple(v.raw for v in value.votes)
    core._outbox.append(PersistDecision(rnd.number, True, dict(rnd.placement), votes, ""))
    c = core._consensus
    if c is None:
        core._outbox.extend(SendDecision(d, rnd.number) for d in rnd.participants())
    else:
        # The participants learn it from the acceptors and acknowledge; the COMMIT
        # goes now only to ourselves, to the others if they are silent (timer).
        core._outbox.extend(SendDecision(d, rnd.number) for d in core._unacked()
                            if d == c.me)
    core._resends.commit_announced(now, rnd)
    core._outbox.append(Finished(True, rnd.number, dict(rnd.placement), ""))
