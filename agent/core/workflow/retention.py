"""Retention: which ended workflows may be compacted, given what is known of them.

Pure: the store gathers the facts of a few candidate workflows, this module decides,
the store deletes. The rule (docs/retention.md has the argument) is that nothing a
peer may still ask about is ever selected:

- a workflow not ended here, or still held in memory (a core or a driver acts on it);
- one this agent holds a reservation for (it is itself a participant in doubt, or
  holds slots), has a step or compensation attempt without a result, or owes a
  compensation;
- one whose COMMIT certificate is still kept: some participant may not have it and
  may ask for it (the certificate sweep drops it once every one has acknowledged);
- one this agent is an acceptor for whose outcome is not learned here: a recovery
  ballot may still need its promise and accepted value.

Nothing goes before it ended more than `settle_s` ago (the agent passes twice the
replay window): a signed message sent before the end — a late DecisionQuery, an old
ballot's accept — is refused by every receiver after that, so none can reach a
record that is gone and be answered as if the workflow were unknown.

An acceptor record whose outcome is learned goes only once the workflow ended more
than `keep_ended_s` ago, never for the count bound alone: a participant in doubt
asks the acceptors, and one silent longer than `keep_ended_s` is the documented limit.
Everything else that ended goes once it is older than `keep_ended_s` or beyond the
newest `max_ended_workflows`.

What a coordinator answers about a round of a workflow it no longer has a record of:
`forgotten_here` (the older engine's store: UNKNOWN for an id no newer than its
horizon) and `presumes_abort` (the Node, whose retention keeps every undecided round
and every COMMIT not all participants acknowledged: ABORT for a classic round of its
own range; node/retention.py says why safe).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.workflow.epoch_certificate import epoch_of_round


@dataclass(frozen=True)
class EndedWorkflow:
    """What this agent knows of one workflow in a terminal state."""

    workflow_id: str
    ended_at: float  # when it ended (updated last), on the clock of `now`
    rank: int  # its place among the ended here, newest first (0: the newest)
    live: bool = False  # a coordinator core or a driver still holds it in memory
    holds_reservation: bool = False  # this agent holds a reservation of it
    unfinished_runs: bool = False  # a step or compensation attempt without a result
    open_compensations: bool = False  # a compensation still owed (PENDING or RUNNING)
    kept_certificate: bool = False  # a COMMIT whose certificate not every participant has
    acceptor_record: bool = False  # this agent was an acceptor of one of its rounds
    acceptor_undecided: bool = False  # ... and has not learned that round's outcome


def may_be_asked(w: EndedWorkflow) -> bool:
    """True when a peer (or this agent itself) may still need this workflow's records."""
    return (w.live or w.holds_reservation or w.unfinished_runs or w.open_compensations
            or w.kept_certificate or w.acceptor_undecided)


def compactable(candidates: Iterable[EndedWorkflow], *, now: float, keep_ended_s: float,
                max_ended_workflows: int, limit: int, settle_s: float = 0.0) -> list[str]:
    """The ids of at most `limit` candidates that may be compacted, oldest first."""
    if keep_ended_s <= 0 or max_ended_workflows <= 0 or limit <= 0:
        raise ValueError("keep_ended_s, max_ended_workflows and limit must be positive")
    if settle_s < 0:
        raise ValueError("settle_s must not be negative")
    chosen: list[EndedWorkflow] = []
    for w in candidates:
        if may_be_asked(w) or now - w.ended_at <= settle_s:
            continue
        expired = now - w.ended_at > keep_ended_s
        beyond_count = w.rank >= max_ended_workflows
        if expired or (beyond_count and not w.acceptor_record):
            chosen.append(w)
    chosen.sort(key=lambda w: (w.ended_at, w.workflow_id))
    return [w.workflow_id for w in chosen[:limit]]


def created_ms_of(workflow_id: str) -> int | None:
    """The creation time its coordinator wrote into a workflow id (DOMAIN.<12 hex digits
    of wall ms><8 hex digits>), or None for an id not of that form."""
    stamp = workflow_id.rpartition(".")[2][:12]
    if len(stamp) != 12:
        return None
    try:
        return int(stamp, 16)
    except ValueError:
        return None


def forgotten_here(workflow_id: str, domain: str, horizon_ms: int) -> bool:
    """Whether an id this domain named, of which it has no record, may be one retention
    removed: created no later than the newest it removed (`horizon_ms`). A coordinator
    saves a workflow before any PREPARE leaves, so an id with no record and no vote
    anywhere is harmless either way; one retention removed must not be presumed
    aborted: it may have committed (its certificate collected, then compacted)."""
    if workflow_id.rpartition(".")[0] != domain:
        return False
    created = created_ms_of(workflow_id)
    return created is not None and created <= horizon_ms


def presumes_abort(workflow_id: str, round_: int, *, me: str, known: bool,
                   classic: bool) -> bool:
    """Whether a DecisionQuery about round `round_` of `workflow_id`, asked of `me`, is
    answered ABORT by presumption (docs/negotiation.md, "Presumed abort"): `me` named
    the workflow and coordinated that round (the original's range, epoch 0: a later
    epoch's round is a successor's, of which the original's log has no word), keeps no
    record of the workflow (`known` false: retention forgot it, or it was never saved,
    and then no PREPARE left), and runs classic 2PC (`classic`: under Paxos Commit a
    participant in doubt asks the acceptors, whose records are never forgotten).

    Safe because a coordinator forgets a workflow only once every round of its own is
    decided (its row finished, every re-placement round ended) and every COMMIT record
    of it collected (each participant acknowledged the COMMIT, or started a step of
    it), and a restarted coordinator presumes ABORT of any round it had not decided: so
    a round of its own it has no record of is one it aborted, or one whose participants
    all know it committed and none asks about."""
    return not known and classic and coordinator_of(workflow_id) == me \
        and round_ >= 0 and epoch_of_round(round_) == 0


@dataclass(frozen=True)
class Leftover:
    """Records of a workflow this agent has no row of and holds no reservation for: an
    acceptor's record and learned decision (an extra acceptor, or a round aborted before
    it committed here), a PREPARE's hold_tx whose reservation is gone."""

    workflow_id: str
    acceptor_undecided: bool = False  # an acceptor record whose outcome is not learned


def leftovers_compactable(leftovers: Iterable[Leftover], *, now_ms: int, keep_ended_s: float,
                          settle_s: float, limit: int) -> list[str]:
    """The ids of at most `limit` leftovers that may go: outcome learned, and created
    (by the time in its id) more than `keep_ended_s` and `settle_s` ago. Created is
    earlier than ended: an asker in doubt that long since the round began was silent
    longer than keep_ended_s, the documented limit; an id with no time is kept."""
    if keep_ended_s <= 0 or settle_s < 0 or limit <= 0:
        raise ValueError("keep_ended_s and limit must be positive, settle_s not negative")
    horizon = now_ms - max(keep_ended_s, settle_s) * 1000
    chosen = []
    for item in leftovers:
        created = created_ms_of(item.workflow_id)
        if item.acceptor_undecided or created is None or created >= horizon:
            continue
        chosen.append((created, item.workflow_id))
    return [workflow_id for _, workflow_id in sorted(chosen)[:limit]]
