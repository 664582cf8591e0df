"""The Node's rule for its Coordinator cores whose workflow's end is settled.

Theory of operation
-------------------
A Node keeps the Coordinator core of each workflow it coordinates until retention
forgets the workflow: by default a week, up to 100,000 of them. Once the workflow's
end is settled here, the core has nothing left to do but answer late messages, and
`Coordinators` (coordinator_timers.py) keeps it as an `Ended` record instead
(coordinator_ended.py), reviving the core from the record and the tables when a
message or a part of the Node looks it up. A core is settled (`settle`) when:

- its workflow's row has finished in a terminal state, in the core's last round, and
  nothing of the workflow runs here (no progress);
- as a committed workflow, every participant acknowledged the COMMIT (its record is
  collected: the core keeps no COMMIT) and the end notice (`final_acked`);
- the core itself is done (coordinator_ended.ended: COMMITTED and collected, or
  ABORTED; no timer, nothing to send);
- no successor took it over here and no step of it was placed again (`epochs`,
  `granted`, `placements`, `replaced_rounds`): those parts read the core in ways
  not worth following for the few workflows they touch;
- what the revived core takes from the tables is what the core holds: the round's
  placement and acceptors (the workflow's row), its proposal cells (`cells`), its
  refusals (`refusals`).

Every row it reads stays until retention forgets the workflow, and with it the
record (`del` on `Coordinators`). A restart restores every core from the tables
(negotiation_restore.py) and the first refresh settles the settled ones again.

Answers without a core. A core is revived only for a message that needs it whole,
once the authority table let it through: the table reads the record's transaction
(`ended_tx`), and the late messages an ended core only answers are answered from the
record (negotiation.py, commit_acks.py, through `answering`): Paxos replies and
decisions (ignored), a late vote (a YES of a round told ABORT is told it again), an
acknowledgement (refused from a domain not asked, else nothing, `ended_ack`), a
decision query about a round decided or collected (`ended_query`), a step result of
a committed workflow (ignored). Where the core's answer would change something, it is
revived as before: a query that presumes ABORT, an acknowledgement that lets an ABORT
record on the table be collected, any input while a cancel is on record and the
workflow's end is not (cancel.py reads the core after each of its inputs). Before,
the table's own check rebuilt the core for each late vote or acknowledgement, so a
liar made a coordinator rebuild a core per message (a 1,000-seed takeover soak
revived 7,916 cores; 208 since, every other count the same).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.coordinator import Coordinator, Phase
from fedorch.core.negotiation.coordinator_ended import (
    Ended,
    answer_query,
    check_ack,
    ended,
    record_tx,
    revive,
    tells_abort_again,
)
from fedorch.core.negotiation.messages import ABORT, Decision, DecisionAnswer, Key, TxInfo
from fedorch.core.workflow.lifecycle import TERMINAL

__all__ = ["answering", "ended_ack", "ended_query", "ended_tx", "ended_vote",
           "revive_core", "settle"]

_DONE = (Phase.COMMITTED, Phase.ABORTED)


def settle(n: Any, wf: str, core: Coordinator) -> Ended | None:
    """The record `core` may be kept as, or None while it must stay whole. `n`: the
    Node (typed loosely: the Node imports its parts, never the reverse). Looks up no
    core: it runs inside `Coordinators.refresh`."""
    if core.phase not in _DONE:
        return None
    d = n.state
    row = d.rows.get(wf)
    if row is None or not row.finished or row.state not in TERMINAL \
            or row.round != core.round or wf in n.progress:
        return None
    if wf in d.epochs or wf in d.granted or wf in d.placements or wf in d.replaced_rounds:
        return None
    if row.committed and set(row.info.placement.values()) - {n.name} \
            - d.final_acked.get(wf, set()):
        return None  # its end notice is still owed to a participant
    if row.round and (core.placement != row.info.placement
                      or core.tx() is not None and core.tx().acceptors != row.acceptors):
        return None
    cells = d.cells
    return ended(core, lambda r: cells.get((wf, r)), d.refusals.get(wf, ()))


def revive_core(n: Any, wf: str, record: Ended) -> Coordinator:
    """The core `record` was made from (the same in every answer), from the tables."""
    d = n.state
    row = d.rows[wf]
    t = n.t
    cells = d.cells
    n.stats["coordinator revived after its end"] += 1
    return revive(record, wf, placement=row.info.placement, acceptors=row.acceptors,
                  cells=lambda r: cells.get((wf, r)), refusals=d.refusals.get(wf, ()),
                  placer=n.placer(row.info.spec), max_rounds=t.max_rounds,
                  prepare_timeout_s=t.prepare_timeout_s,
                  consensus=n.consensus() if record.consensus else None, me=n.name,
                  resend_s=t.resend_s, decision_resend_s=t.decision_resend_s, now=n.now)


# ---- answers from the record (see the header) --------------------------------------

def ended_tx(n: Any, wf: str, record: Ended) -> TxInfo | None:
    """The revived core's `tx()`, from the record and the workflow's row."""
    row = n.state.rows[wf]
    return record_tx(record, wf, me=n.name, placement=row.info.placement,
                     acceptors=row.acceptors)


def answering(n: Any, wf: str) -> Ended | None:
    """The record that answers a late message of `wf` itself; None for a core kept
    whole, none kept, or a cancel on record of a workflow whose end is not (cancel.py's
    `after_run` reads the core after each of its inputs until then)."""
    record = n.coordinators.ended.get(wf)
    d = n.state
    if record is None or wf in d.cancels and wf not in d.final:
        return None
    return record


def ended_vote(n: Any, record: Ended, src: str, key: Key, yes: bool) -> None:
    """A late vote of `src` (the voter itself): its round's ABORT told again, or nothing."""
    if tells_abort_again(record, key[1], yes):
        n.send(src, Decision(key, ABORT, n.name))


def ended_ack(n: Any, record: Ended, src: str, key: Key) -> bool:
    """A DecisionAck from `src`: RemoteProtocolError as the core raises it; True when
    answered (nothing to do), False when it lets an ABORT record on the table be
    collected (the core does that: `Negotiation.collect`)."""
    wf = key[0]
    check_ack(record, n.state.rows[wf].info.placement, src, key[1])
    cells, records = n.state.cells, n.state.records
    return not any((wf, r) in records and not (r in record.cells and cells[(wf, r)].commit)
                   for r in record.aborted)


def ended_query(n: Any, key: Key) -> DecisionAnswer | None:
    """A decision query about a round of ours from an ended core's record, or None
    (no record answers: the core does)."""
    record = answering(n, key[0])
    return None if record is None else answer_query(record, key[0], n.name, key[1])
