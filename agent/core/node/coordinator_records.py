"""The records a workflow's Coordinator core's actions make on the Node (called from
negotiation.py `run`, in order): the round record, whose write its round's PREPAREs
wait for (a submission's first PREPAREs to peers under Paxos Commit leave with that
write instead: prepares_ahead.py), the proposal cell, the decision record (the row
marked committed), the decision sent (a re-placement's COMMIT only once told,
replacement_telling.py), and the workflow lifecycle moved on Finished, with an
explicit cancelled flag (also when a cancel waited on record while a COMMIT was
proposed and ABORT was chosen: cancel.py). The core's refusals are kept in the write
group under way (`keep_refusals`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedorch.core.negotiation.coordinator import (
    Coordinator,
    Finished,
    PersistDecision,
    SendDecision,
    SendPrepare,
)
from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.core.negotiation.messages import Decision, PersistProposal
from fedorch.core.node.prepares_ahead import sends_ahead
from fedorch.core.node.records import CoordRow, PrepareMsg, WfInfo
from fedorch.core.workflow import lifecycle


def coordinator_action(negotiation: Any, now: float, core: Coordinator, a: object) -> None:
    """One action of a workflow's Coordinator core (`negotiation`'s `run`, in order)."""
    n = negotiation.n
    d = n.state
    wf = core.workflow_id
    row = d.rows[wf]
    if isinstance(a, SendPrepare):
        if row.round != a.round:  # the round record, in the write its PREPAREs wait for
            n.point("round record")
            i = row.info  # built directly: dataclasses.replace is generic, slow
            row = CoordRow(row.workflow_id, WfInfo(i.spec, dict(a.placement), n.name,
                                                   i.submission, i.stated, i.lost),
                           row.state, a.round, a.acceptors, row.committed,
                           row.finished, row.reason, core.created_ms())
            d.rows[wf] = row
            keep_refusals(n, wf, core)  # why the earlier rounds were redone
        tx = core.tx()
        assert tx is not None and tx.round == a.round
        caps = {s.id: s.capability for s in row.info.spec.steps}
        msg = PrepareMsg(tx, tuple((s, caps[s]) for s in a.steps), row.info)
        if sends_ahead(negotiation, wf, a):  # with its round's write (prepares_ahead.py)
            n.out.ahead = True
            try:
                n.send(a.domain, msg)
            finally:
                n.out.ahead = False
            n.stats["submission's PREPARE marked to go with its write"] += 1
        else:
            n.send(a.domain, msg)
    elif isinstance(a, PersistProposal):
        n.point("PersistProposal")
        if (wf, a.round) not in d.cells:
            d.cells[(wf, a.round)] = a.value
        elif d.cells[(wf, a.round)] != a.value:
            raise LocalProtocolError(f"{wf} round {a.round}: the proposal cell changed")
    elif isinstance(a, PersistDecision):
        value = core.decision(a.round)
        assert value is not None
        n.point("PersistDecision")
        if (wf, a.round) not in d.records:
            d.records[(wf, a.round)] = value
        elif d.records[(wf, a.round)] != value:
            raise LocalProtocolError(f"{wf} round {a.round}: the decision record changed")
        if value.commit:  # rows built directly: dataclasses.replace is slow
            d.rows[wf] = CoordRow(row.workflow_id, row.info, row.state, row.round,
                                  row.acceptors, True, row.finished, row.reason,
                                  row.created_ms)
            d.committed[wf] = a.round
        elif d.cells.get((wf, a.round), value).commit:
            n.stats["coordinator proposed commit, abort chosen"] += 1
        n.note("decided", (wf, a.round), value, now)
    elif isinstance(a, SendDecision):
        value = core.decision(a.round)
        if value is not None and not value.commit:
            n.send(a.domain, Decision((wf, a.round), value, n.name))
        elif value is not None and n.replacement.may_send_commit(wf, a.domain):
            # Naming the steps placed elsewhere since (placed_here.py, `moved_away`).
            moved = n.placed_here.moved_away(wf, a.domain)
            if moved is not None:
                n.send(a.domain, Decision((wf, a.round), value, n.name, moved=moved))
    elif isinstance(a, Finished):
        n.point("Finished")
        cancelled = not a.committed and not a.cancelled and n.cancels.finished_cancelled(wf)
        if cancelled:  # a cancel waited for a COMMIT proposed, and ABORT was chosen
            a = replace(a, cancelled=True, reason=f"cancelled: {d.cancels[wf]}")
        event = lifecycle.Committed() if a.committed else lifecycle.Cancelled(a.reason) \
            if a.cancelled else lifecycle.Aborted(a.reason)
        state = lifecycle.step(row.state, event)
        d.rows[wf] = CoordRow(row.workflow_id, row.info, state, row.round,
                              row.acceptors, row.committed, True, a.reason,
                              row.created_ms)
        keep_refusals(n, wf, core)
        if a.committed and row.acceptors and state is lifecycle.WorkflowState.RUNNING:
            # Paxos Commit: the COMMIT is chosen, durable at a majority of the round's
            # acceptors: RUNNING may be told before this write (ready.py, `chosen`).
            n.out.chosen(wf, state)
        else:
            n.out.status.append((wf, state))
        if a.committed:
            n.cancels.before_start(wf)  # a waiting cancel overtaken: void first
            n.running.resume(now, wf)
        else:
            n.mark(wf, ended=True)
        negotiation.collect(core)
    else:  # pragma: no cover
        raise LocalProtocolError(f"no route for {a!r}")

def keep_refusals(n: Any, wf: str, core: Coordinator) -> None:
    """The core's refusals so far (it only adds), in the write group under way:
    the status shows them, a restored core starts from them."""
    if len(core.refusals) != len(n.state.refusals.get(wf, ())):
        n.state.refusals[wf] = tuple(
            (r.round, r.domain, tuple(r.steps), r.reason) for r in core.refusals)
