"""Coordinator recovery: a restarted coordinator rebuilt from its round record, sans I/O.

Theory of operation
-------------------
A restarted coordinator is rebuilt with `Coordinator.restore()` (this module's
`restore`) from its round record and finishes what its log says: a COMMIT on
record is resent until acknowledged; an ABORT on record, or no decision and no
COMMIT proposal, ends the workflow ABORTED (presumed abort, written first); a
COMMIT proposal without a decision is settled by a recovery ballot (phase
DECIDING), since a participant's recovery may have chosen ABORT meanwhile, while
its parties are asked (a round past its life at its acceptors refuses every ballot:
then it is only asked, in doubt, coordinator_doubt; never on its wall clock alone:
"A restart" there).
Rounds before the recorded one are ABORT: an earlier round is never the one
that commits.

`restore` is the coordinator's second constructor (Coordinator.restore is this
function): it builds the core with `cls(...)` and sets the coordinator's own fields
to what its log implies before the first input, as a constructor would; so it
changes together with coordinator.py, which reads those fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import TypeVar

from fedorch.core.negotiation.coordinator_deciding import after_proposer
from fedorch.core.negotiation.messages import ABORT
from fedorch.core.negotiation.rounds import (
    ConsensusOptions,
    Finished,
    Phase,
    PlacementResult,
    Placer,
    RoundRecord,
    RoundState,
    SendDecision,
)
from fedorch.core.negotiation.termination import Proposer

CoordinatorT = TypeVar("CoordinatorT")


def restore(
    cls: type[CoordinatorT],
    workflow_id: str,
    record: RoundRecord | None,
    *,
    now: float,
    placer: Placer | Callable[[Mapping[str, AbstractSet[str]]], PlacementResult],
    max_rounds: int,
    prepare_timeout_s: float,
    consensus: ConsensusOptions | None = None,
    me: str = "",
    resend_s: float | None = None,
    decision_resend_s: float | None = None,
    query_interval_s: float | None = None,
) -> CoordinatorT:
    """Rebuild a coordinator from its log and finish what the log says.

    A COMMIT on record is resent (until acknowledged); an ABORT on record,
    or no decision and no COMMIT proposal, ends the workflow ABORTED
    (presumed abort, written first); a COMMIT proposal without a decision
    is settled by a recovery ballot, since a participant may have chosen
    ABORT meanwhile; its parties are asked too, every `query_interval_s`
    (coordinator_doubt), and past the round's life only asked.
    """
    core = cls(workflow_id, placer=placer, max_rounds=max_rounds,
               prepare_timeout_s=prepare_timeout_s, consensus=consensus,
               me=me, resend_s=resend_s, decision_resend_s=decision_resend_s,
               query_interval_s=query_interval_s)
    core._restored = True
    presumed = "coordinator restarted before deciding: presumed abort"
    if record is None or record.round < 1:
        core.phase = Phase.ABORTED
        if record is None or not record.finished:
            core._outbox.append(Finished(False, 0, {}, presumed))
        return core
    core.refusals = list(record.refusals)
    rnd = RoundState(record.round, dict(record.placement), now, record.acceptors,
                     next_resend=now, created_ms=record.created_ms)
    core._round = rnd
    for r in range(1, record.round):
        core.log.decided[r] = ABORT  # an earlier round is never the one that commits
        core.log.told_abort[r] = set()
    if record.proposal is not None:
        core.log.cells[record.round] = record.proposal
    decision = record.decision
    if record.committed or decision is not None and decision.commit:
        core.phase = Phase.COMMITTED
        if decision is not None:
            core.log.decided[record.round] = decision
        else:
            core.log.collected.add(record.round)
        if not record.finished:
            if consensus is None:
                core._outbox.extend(SendDecision(d, rnd.number) for d in rnd.participants())
            core._outbox.append(Finished(True, rnd.number, dict(rnd.placement), ""))
    elif decision is None and consensus is not None and record.proposal is not None \
            and record.proposal.commit:
        core.phase = Phase.DECIDING
        tx = core.tx()
        assert tx is not None
        core._proposer = Proposer(consensus.me, tx, preferred=record.proposal,
                                  rng=consensus.rng, resend_s=consensus.resend_s,
                                  backoff_s=consensus.backoff_s, floor=record.ballot)
        core._proposer.start(now)
        after_proposer(core, now)
    else:
        core.phase = Phase.ABORTED
        if decision is None:
            core._abort_round(rnd, presumed, everyone=True)
        else:
            core.log.decided[rnd.number] = ABORT
            core.log.told_abort[rnd.number] = set(rnd.participants())
            if not record.finished:
                core._outbox.extend(SendDecision(d, rnd.number) for d in rnd.participants())
        if not record.finished:
            core._finish_aborted(rnd.number, presumed)
    return core
