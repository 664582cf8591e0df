"""The Node's negotiation restored from its tables: the cores as a restart finds them.

Theory of operation
-------------------
A restarted agent's Node holds only what its tables hold (records.py); `restore`
rebuilds the negotiation cores from them, then lets each core finish what its log
says, in an order chosen so that nothing is decided twice or left undecided:

1. the Participant (holds, with the decisions learned), the Acceptor (its records)
   and the submission guard (admitted submissions) are restored first, since every
   later step reads them. A hold's lease is a monotonic instant of the run that wrote
   it, and the host may have rebooted since: it is counted again from this restore's
   `now` (participant.restarted says why per state), never read back;
2. a hold whose decision was learned is decided now: a committed hold is always one
   (its row stays PREPARED at the commit, the COMMIT learned beside it says the rest:
   negotiation.py), and so is one whose crash came before the hold followed its
   decision (a decision is written on its own before it is applied, unless it is a
   COMMIT of our prepared hold, written with the hold's commit: write combining). The
   decision applied again writes only what it had not written (the same committed
   round and electorate are no new row: ready.py, `unchanged`) and acknowledges the
   COMMIT again;
   a PREPARED hold of a round another domain coordinates is tracked by Termination,
   which asks about it once its lease passes (from the ballot on record, if any);
3. each workflow this Node coordinates gets its Coordinator back from its round
   record (`Coordinator.restore`: a COMMIT on record is resent, no decision and
   no COMMIT proposal is presumed ABORT, a COMMIT proposal is settled by a ballot,
   whatever our wall clock says of the round's age: a ballot stops only on the
   PAST_LIFE answers of a majority of its acceptors, coordinator_doubt.py),
   in the mode its rounds were run in, not the config's: a restart is no time to
   change a round's rules. Its actions run at once. Not `Coordinator.restore`'s
   `past_life` (no ballot, only questions) on our wall clock's word that the round
   is past its life: that clock may have stepped forward (an hour, in the simulator)
   while every acceptor, holding no record of the round above its horizon, can still
   accept it; the coordinator then never decided, its workflow NEGOTIATING for good
   and a cancel taken never carried out (takeover soak seed 145002563, a cut one
   way). Only the acceptors know they refuse the round: the ballot asks them after
   `query_interval_s` and stops on a majority's PAST_LIFE answers, by age or
   forgotten (acceptor.py), so a restore past the life costs one interval of ballots. A workflow that ended here at
   epoch 0 (else a successor ended it) is ended again if the crash came between its
   outcome and its release, and its end is owed, reliably, to every domain of it
   that has not acknowledged it;
4. our own holds in rounds we coordinate are decided by our own log (the core
   answers as it would answer a participant's query), so no hold of ours waits for a
   query to ourselves;
5. holds of workflows that ended here are released (a crash between the end and the
   release), committed workflows not ended are resumed (their steps), and a
   re-placement round a crash cut short is taken up (replacement.py).

Safe because each step only replays what a record already says (a decision, an
end, a COMMIT proposal settled by the same ballot rules as before the crash) or
presumes ABORT where no COMMIT could have been chosen, and each writes through the
Node as any turn does, so the driver persists it before what follows leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedorch.core.negotiation.coordinator import Coordinator, Refusal, RoundRecord
from fedorch.core.negotiation.participant import Hold, HoldState
from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState


def restore_negotiation(negotiation: Any, now: float,
                        restarted: Callable[[Hold, float, float], Hold]) -> None:
    """`negotiation`: the Node's Negotiation part (typed loosely: it imports this
    module, never the reverse), whose Node's tables (`state`) were just read back;
    `restarted`: the rule that counts a hold's lease again (participant.restarted,
    which the Negotiation passes as it looks it up)."""
    n = negotiation.n
    d = n.state
    # Leases are monotonic instants of the run that wrote them: counted again from
    # this restore (participant.restarted says why per state). The tables keep the
    # old instant until the hold is next written; no restore reads it back.
    holds = [restarted(h, now, n.t.lease_s) for h in d.holds.values()]
    n.participant.restore(holds, {k: v.commit for k, v in d.learned.items()})
    n.acceptor.restore(d.acceptor.values(), d.learned, d.horizons, now)
    n.submissions.restore((k, wf, at) for k, (wf, at) in d.admitted.items())
    for h in holds:
        value = d.learned.get(h.key)
        if value is not None:  # learned, crashed before the hold followed
            negotiation.apply_decision(now, h.key, value, h.tx)
        elif h.state is HoldState.PREPARED and h.tx is not None \
                and h.tx.coordinator != n.name:
            n.termination.track(now, h.tx, h.lease_expires, d.ballots.get(h.key))
    for wf, row in list(d.rows.items()):
        record = RoundRecord(
            row.round, dict(row.info.placement), row.acceptors,
            d.cells.get((wf, row.round)), d.records.get((wf, row.round)),
            row.committed, row.finished, ballot=d.ballots.get((wf, row.round)),
            refusals=tuple(Refusal(*r) for r in d.refusals.get(wf, ())),
            created_ms=row.created_ms)
        # The mode its rounds were run in (a classic round has no acceptors), not
        # the config's now: a restart is no time to change a round's rules.
        classic = not row.acceptors if row.round else n.t.classic
        core = Coordinator.restore(wf, record, now=now, placer=n.placer(row.info.spec),
                                   max_rounds=n.t.max_rounds,
                                   prepare_timeout_s=n.t.prepare_timeout_s,
                                   consensus=None if classic else n.consensus(),
                                   me=n.name, resend_s=n.t.resend_s,
                                   decision_resend_s=n.t.decision_resend_s,
                                   query_interval_s=n.t.query_interval_s)
        n.coordinators[wf] = core
        n.stats[f"coordinator restored {core.phase.value}"] += 1
        negotiation.run(now, core.next_actions(), core)
        if (row.state in (WorkflowState.SUCCEEDED, WorkflowState.FAILED)
                or row.state is WorkflowState.CANCELLED and row.committed) \
                and d.epochs.get(wf, (0, ""))[0] == 0:  # else a successor ended it
            if wf not in d.final:  # crashed between the outcome and its release
                n.running.end_here(wf, row.state)
            acked = d.final_acked.get(wf, set())
            settled = n.running.settled(wf)
            for p in sorted(n.replacement.domains_of(wf) - {n.name} - acked):
                n.reliable(p, ("final", wf, p), FinalMsg(wf, row.state, settled=settled))
    for h in holds:  # our own reservations in rounds we coordinate: our log decides
        core = n.coordinators.get(h.workflow_id)
        if core is not None and h.key not in d.learned and h.round <= core.round:
            answer = core.answer_query(now, h.round)
            negotiation.run(now, core.next_actions(), core)
            if answer.value is not None:
                negotiation.learn(now, h.key, answer.value, h.tx)
    for wf in {h.workflow_id for h in n.participant.holds()} & set(d.final):
        n.running.end_here(wf, d.final[wf])  # crashed between its end and the release
    for wf in list(d.committed):
        if wf not in d.final:
            n.running.resume(now, wf)
    n.replacement.restored(now)  # its own YES of a round a crash cut short

