"""What a classic-2PC coordinator answers about a round of a workflow it no longer has a
record of (retention forgot it): ABORT, by presumption, for a round of its own range
(core/node/retention.py asks; docs/negotiation.md "Presumed abort" says why it is safe)."""

from __future__ import annotations

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.workflow.epoch_certificate import epoch_of_round


def presumes_abort(workflow_id: str, round_: int, *, me: str, known: bool,
                   classic: bool) -> bool:
    """Whether a DecisionQuery about round `round_` of `workflow_id`, asked of `me`, is
    answered ABORT by presumption: `me` named the workflow and coordinated that round
    (the original's range, epoch 0: a later epoch's round is a successor's, of which the
    original's log has no word), keeps no record of the workflow (`known` false:
    retention forgot it, or it was never saved: then no PREPARE of a classic round left,
    and a Paxos Commit round's first PREPAREs that left with the lost write
    (core/node/prepares_ahead.py) had no ballot 0, so ABORT is all it can be), and runs
    classic 2PC (`classic`: under Paxos Commit a participant in doubt asks the
    acceptors, whose records are kept for the round's life).

    Safe because a coordinator forgets a workflow only once every round of its own is
    decided (its row finished, every re-placement round ended) and every COMMIT record
    of it collected (each participant acknowledged the COMMIT, or started a step of
    it), and a restarted coordinator presumes ABORT of any round it had not decided: so
    a round of its own it has no record of is one it aborted, or one whose participants
    all know it committed and none asks about."""
    return not known and classic and coordinator_of(workflow_id) == me \
        and round_ >= 0 and epoch_of_round(round_) == 0
