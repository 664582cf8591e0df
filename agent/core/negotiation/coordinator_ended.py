"""A coordinator core whose workflow ended for good, kept as a small record, sans I/O.

Theory of operation
-------------------
A Coordinator core answers for its workflow after the end: a late or repeated vote
(a YES of a round told ABORT is told it again), an acknowledgement, a decision query
(from its log: a decision on record, FORGOTTEN for a collected COMMIT), Paxos replies
(ignored). Kept whole, it holds its round's votes with their evidence, its resends,
options, placer and log: some 2 KB of Python objects per workflow, for as long as
the workflow is kept (a week, up to 100,000 of them, by default).

Once nothing is left for it to do but answer (`ended`: phase COMMITTED with every
participant's acknowledgement and its COMMIT record collected, or ABORTED; no timer,
no proposer, nothing in its outbox, only ABORTs among the decisions it keeps), what
its answers read is a few round numbers: an `Ended` record. The rest is either
never read again in those phases (votes, resends, excluded domains, proposer) or is
what the Node's tables keep (the round's placement and acceptors in the workflow's
row, the proposal cells, the refusals). `revive` builds the core back from the
record and those rows, field for field as `ended` found it where a later input can
tell: the phase, the round (placement, acceptors, every participant acknowledged),
the log (cells, decisions, rounds told ABORT, rounds collected), the refusals. So
a revived core answers every input as the core did when it was dropped.

Most late messages need no revived core: its phase's rows of the transition table
ignore Paxos replies and decisions; a late vote, a duplicate acknowledgement and a
decision query read only the record's round numbers. `record_tx`, `tells_abort_again`,
`check_ack` and `answer_query` give what the revived core would, from the record (a
query about a round with no decision on record is left to the core: it presumes
ABORT, a write). So a message that is refused, or that an ended core only answers,
costs no core: a liar sending late messages costs a record lookup each, not a core.

Like coordinator_recovery, this is a companion of coordinator.py that reads and sets
the core's own fields: it changes together with coordinator.py (and its log,
coordinator_log.py, whose `answer` `answer_query` follows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from fedorch.core.negotiation.coordinator import Coordinator
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    AnswerStatus,
    DecisionAnswer,
    TxInfo,
    Value,
)
from fedorch.core.negotiation.rounds import (
    ConsensusOptions,
    Phase,
    PlacementResult,
    Placer,
    Refusal,
    RoundState,
)

__all__ = ["Ended", "answer_query", "check_ack", "ended", "record_tx", "revive",
           "tells_abort_again"]

Rounds = tuple[int, ...]
# The round tuples of most records are one of a few ((), (1,), ...): shared, not one
# tuple per workflow.
_SHARED: dict[Rounds, Rounds] = {}


def _rounds(rounds: AbstractSet[int] | Mapping[int, object]) -> Rounds:
    key = tuple(sorted(rounds))
    if len(_SHARED) < 4096:
        return _SHARED.setdefault(key, key)
    return _SHARED.get(key, key)


@dataclass(frozen=True, slots=True)
class Ended:
    """What a dropped Coordinator core's answers read (see the header)."""

    round: int            # its last round (0: none was ever placed)
    committed: bool       # phase COMMITTED, else ABORTED
    consensus: bool       # its rounds ran Paxos Commit (they have proposal cells)
    cells: Rounds         # rounds whose proposal cell its log holds (values: the table)
    aborted: Rounds       # rounds its log has decided ABORT
    told: Rounds          # rounds whose ABORT it told (a late YES of one is told again)
    collected: Rounds     # rounds whose COMMIT record was collected


def ended(core: Coordinator, cells: Callable[[int], Value | None],
          refusals: tuple[tuple, ...]) -> Ended | None:
    """The record `core` may be dropped for, or None while it has more to do than
    answer, or while the tables would not give back what it holds: `cells(round)` is
    the proposal cell on record, `refusals` the refusals on record (rows as the
    refusals table keeps them)."""
    if core.phase is Phase.COMMITTED:
        if core.awaiting_acks():
            return None
    elif core.phase is not Phase.ABORTED:
        return None
    log = core.log
    if core._outbox or core._proposer is not None or core.get_timer() is not None \
            or any(v.commit for v in log.decided.values()):
        return None
    if any(cells(r) != v for r, v in log.cells.items()):
        return None
    if [(r.round, r.domain, tuple(r.steps), r.reason) for r in core.refusals] \
            != [(r[0], r[1], tuple(r[2]), r[3]) for r in refusals]:
        return None
    return Ended(core.round, core.phase is Phase.COMMITTED, core._consensus is not None,
                 _rounds(log.cells), _rounds(log.decided), _rounds(log.told_abort),
                 _rounds(log.collected))


def revive(record: Ended, workflow_id: str, *, placement: Mapping[str, str],
           acceptors: tuple[str, ...], cells: Callable[[int], Value | None],
           refusals: tuple[tuple, ...],
           placer: Placer | Callable[[Mapping[str, AbstractSet[str]]], PlacementResult],
           max_rounds: int, prepare_timeout_s: float, consensus: ConsensusOptions | None,
           me: str, resend_s: float | None, decision_resend_s: float | None,
           now: float) -> Coordinator:
    """The core `record` was made from, back from it and the tables' rows (the last
    round's placement and acceptors, the proposal cells, the refusals)."""
    core = Coordinator(workflow_id, placer=placer, max_rounds=max_rounds,
                       prepare_timeout_s=prepare_timeout_s,
                       consensus=consensus if record.consensus else None, me=me,
                       resend_s=resend_s, decision_resend_s=decision_resend_s)
    core.phase = Phase.COMMITTED if record.committed else Phase.ABORTED
    core.refusals = [Refusal(*r) for r in refusals]  # as Coordinator.restore makes them
    if record.round >= 1:
        rnd = RoundState(record.round, dict(placement), now, acceptors, next_resend=now)
        # A COMMIT record is collected once every participant acknowledged it, and
        # what a collected round acknowledged is never read again (`_unacked`).
        rnd.acked = set(rnd.participants()) if record.committed else set()
        core._round = rnd
    log = core.log
    for r in record.cells:
        value = cells(r)
        assert value is not None, f"{workflow_id} round {r}: its proposal cell is gone"
        log.cells[r] = value
    for r in record.aborted:
        log.decided[r] = ABORT
    for r in record.told:
        log.told_abort[r] = set()  # who was told is never read again: only that it was
    log.collected.update(record.collected)
    return core


# ---- answers from the record (what the revived core would give; see the header) ----

def record_tx(record: Ended, workflow_id: str, *, me: str, placement: Mapping[str, str],
              acceptors: tuple[str, ...]) -> TxInfo | None:
    """`Coordinator.tx` of the core `revive` makes (its round states no created_ms)."""
    if record.round < 1:
        return None
    return TxInfo(workflow_id, record.round, me, tuple(sorted(set(placement.values()))),
                  acceptors)


def tells_abort_again(record: Ended, round_: int, yes: bool) -> bool:
    """A late vote (`Coordinator._late_vote`, both ended phases): a YES of a round told
    ABORT is sent that round's ABORT again; anything else is ignored."""
    return yes and round_ in record.told and round_ in record.aborted


def check_ack(record: Ended, placement: Mapping[str, str], domain: str,
              round_: int) -> None:
    """An acknowledgement of `round_` from `domain` (`Coordinator._on_ack` when
    COMMITTED, ignored when ABORTED): RemoteProtocolError from a domain not asked in
    the record's round; else nothing to change (every participant acknowledged)."""
    if record.committed and round_ == record.round and domain not in placement.values():
        raise RemoteProtocolError(f"{domain} acknowledged round {round_} but was not asked")


def answer_query(record: Ended, workflow_id: str, me: str, round_: int
                 ) -> DecisionAnswer | None:
    """A decision query (`CoordinatorLog.answer` of the revived core, its round decided):
    the answer, or None where that answer presumes ABORT (a write: the core's)."""
    key = (workflow_id, round_)
    if round_ < 1 or round_ > record.round:
        raise RemoteProtocolError(f"{workflow_id} has no round {round_}")
    if round_ in record.aborted:
        return DecisionAnswer(key, me, AnswerStatus.DECIDED, ABORT)
    if round_ in record.collected:
        return DecisionAnswer(key, me, AnswerStatus.FORGOTTEN)
    return None
