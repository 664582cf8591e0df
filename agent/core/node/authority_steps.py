"""Who speaks for a step: the authority rules of results, placements and compensations.

Theory of operation
-------------------
A step's result, and the report of its compensation, come from the domain the
committed placement puts it on (`placed_on`), or, for a step placed again
(replacement.py), from its new domain or the one it was lost with, or, a SUCCEEDED
result of an older placement, from any domain it was placed on before
(`placed_before`, from the list of them its placement on record carries, `earlier_of`:
taken for its saga, which owes a compensation there; running.py fences it out of the
progress by its epoch); the coordinator followed here may relay
a result whose domain this Node's view says is gone, and the original's relay reaches
a Node that ended the workflow in a later epoch, to be answered with that end
(`relayed_by_overtaken_original`: never taken, running.py). The
saga's driver, after the end, takes a SUCCEEDED result from any party of the workflow
of a step it knows no new placement of (`saga_run_elsewhere`: placed again in an
epoch it never learned of; the run owes a compensation there, and the domain runs one
only on its own record of the run), and that domain's report of it. A new
placement is told, and where steps are asked after a restart is answered, by the
workflow's coordinator as known here: the original, or the holder of the epoch
followed (a successor showing its epoch's certificate may tell one to a Node that
has not followed it yet); an elector answers the Node that drives the workflow, back
from a restart (the original holding epoch 0, or a successor acting in the epoch it
won), that it holds that epoch for it too (`_elector_holds_our_epoch`: nothing else).
Only the workflow's parties ask where its steps are. A compensation is told by the
coordinator as known here, or by the original one when the attempt already ended here
or the later epoch's holder is gone in this Node's view (compensating.py), or has not
shown here that it won (saga_unproven_holder.py).

`epoch_of` is the fact most rules start from: the coordinator epoch held here for a
workflow and its participants (the committed placement's and each step's placed
again since); authority_rounds.py and authority_ends.py read it too.

Pure: reads the Node, changes nothing.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.identity.authority import Facts, Refused, authorize, coordinator_of
from fedorch.core.node.records import (
    CompensatedMsg,
    CompensateMsg,
    PlacedMsg,
    PlacementAnswer,
    PlacementQuery,
    ResultMsg,
)
from fedorch.core.node.saga_unproven_holder import drivers_too
from fedorch.core.workflow.lifecycle import OWING


def result(node: Any, src: str, msg: ResultMsg, votes: Any, proven: Any) -> None:
    retain = getattr(node, "retain", None)
    if retain is not None and retain.ends.overtaken(src, msg.workflow_id) is not None:
        return  # forgotten, a successor's end kept: answered with it (ended_records.py)
    try:
        placed = placed_on(node.state, msg)
    except Refused:
        if node.early_results.may_hold(src, msg):
            return  # held until its COMMIT, then judged again (early_results.py)
        raise
    moved = node.state.placements.get(msg.workflow_id, {}).get(msg.step_id)
    if moved is not None and src in (moved[1], moved[2]):
        # A step placed again (replacement.py): its new domain speaks for it, and the
        # one it was lost with may still report; the Node refuses an older placement's
        # result by its epoch (running.py), and counts it.
        placed = src
    elif moved is not None and ran_before(node, src, msg, moved[0]):
        # A domain the step was placed on before the placement's lost one (a step placed
        # again twice: its first domain) reports a run of its older placement that
        # SUCCEEDED: taken for the saga only (its compensation is owed there:
        # saga_results.late); running.py fences it out of the progress by its epoch.
        placed = src
    elif placed is not None and src != placed and saga_run_elsewhere(node, src, msg):
        return
    elif placed is not None and src != placed and node.member_loss.gone(placed):
        held, _ = epoch_of(node.state, msg.workflow_id)
        if held is not None and src == held[1]:
            # The coordinator followed here relays the result of a step whose domain
            # this Node's view says is gone (Running.relay_gone_results: it held it,
            # the producer died before it reached this Node).
            return
    if placed is not None and src != placed and relayed_by_overtaken_original(node, src, msg):
        return  # answered with the later end, never taken (running.py)
    authorize("step_result", src, Facts(workflow_id=msg.workflow_id, placed_on=placed))


def relayed_by_overtaken_original(node: Any, src: str, msg: ResultMsg) -> bool:
    """Is `msg` the original coordinator's relay of another domain's result
    (Running.relay_gone_results), to this Node that ended the workflow in a later
    epoch and keeps its proof (EndNotices.end_proof)? The original is back, unaware of
    that end: refused here, it was answered nothing and stayed RUNNING for ever, its
    successor dead for good and every other domain following the later epoch
    (takeover soak seed 87000414). Let through, it is answered with the later end and
    its proof (EndNotices.tell_overtaken), never taken: the step ran at its domain."""
    d = node.state
    wf = msg.workflow_id
    if src != coordinator_of(wf) or wf not in d.final:
        return False
    proof = node.end_notices.end_proof(wf)
    if proof is None or proof[1] == src:
        return False
    moved = d.placements.get(wf, {}).get(msg.step_id)
    if moved is not None and (src in (moved[1], moved[2])
                              or ran_before(node, src, msg, moved[0])):
        return False  # a run of its own: its own report, ruled above
    return placed_on(d, msg) not in (None, src)


def placed(node: Any, src: str, msg: PlacedMsg, votes: Any, proven: Any) -> None:
    # A new placement is told by the coordinator that placed the step again
    # (replacement.py): the original, whatever epoch is followed here (it tells on a
    # placement it decided after it follows a later epoch, and the holder of that
    # epoch and its followers take it, a committed round's fact, and acknowledge it),
    # or a successor, the holder of its epoch (its own round, or a handover).
    d = node.state
    coordinator = coordinator_of(msg.workflow_id)
    if src == coordinator:
        return
    held, _ = epoch_of(d, msg.workflow_id)
    if held is not None and src == held[1]:
        # The holder of the epoch followed here: its own round's placement, or one it
        # tells again, handing the round's COMMIT out (replacement_handover.py).
        return
    if msg.held_epoch >= 1 and msg.won and proven is not None \
            and (held is None or msg.held_epoch >= held[0]) \
            and proven(msg.workflow_id, msg.held_epoch, src, msg.won):
        # A successor tells it, showing its epoch's certificate: a new domain not
        # committed here yet, or a member that has not followed it yet, takes it from
        # the holder (replacement_successor.py, replacement_handover.py).
        return
    raise Refused("not_coordinator", f"{src} told a new placement in"
                                     f" {msg.workflow_id}, coordinated by {coordinator}")


def placement_query(node: Any, src: str, msg: PlacementQuery, votes: Any,
                     proven: Any) -> None:
    # A restarted participant asks where the steps are (restart_check.py): one of the
    # workflow's domains as known here (unknown here: nothing is answered anyway); or
    # its original coordinator, back from a restart (original_asks.py).
    _, participants = epoch_of(node.state, msg.workflow_id)
    if participants is not None and src not in participants \
            and src != coordinator_of(msg.workflow_id):
        raise Refused("not_party", f"{src} asked the placements of {msg.workflow_id},"
                                   " in which it places no step")


def placement_answer(node: Any, src: str, msg: PlacementAnswer, votes: Any,
                      proven: Any) -> None:
    # Only the coordinator asked, the one followed or granted here, answers it.
    d = node.state
    held, _ = epoch_of(d, msg.workflow_id)
    granted = d.granted.get(msg.workflow_id, (0, ""))
    epoch, holder = (granted if granted[0] > held[0] else held) if held is not None \
        else (None, None)
    if src != holder and not _elector_holds_our_epoch(node, src, msg, holder, epoch):
        raise Refused("not_coordinator", f"{src} answered where the steps of"
                                         f" {msg.workflow_id} are, coordinated by {holder}")


def _elector_holds_our_epoch(node: Any, src: str, msg: PlacementAnswer,
                             holder: str | None, epoch: int | None) -> bool:
    """An elector of the workflow tells the Node that drives it in the epoch held here
    (the original in epoch 0, or a successor in the epoch it won), which asked it back
    from a restart, that it holds that epoch for it too: its word alone, no step nor
    placement to take (original_asks.py, "Its own steps")."""
    wf = msg.workflow_id
    takeover = getattr(node, "takeover", None)
    return takeover is not None and msg.epoch == epoch and not msg.steps \
        and not msg.placements and not msg.before and holder == node.name \
        and (epoch != 0 or coordinator_of(wf) == node.name) \
        and src in (takeover.electorate_of(wf) or ())


def compensate(node: Any, src: str, msg: CompensateMsg, votes: Any, proven: Any) -> None:
    # Only the workflow's coordinator as known here tells a compensation: the holder
    # of the epoch followed (a successor after a takeover), else the original one; a
    # coordinator whose epoch is over here is refused (compensating.py).
    d = node.state
    held, _ = epoch_of(d, msg.workflow_id)
    if held is None:
        # Not committed here: forgotten (retention), or never known. The step's domain
        # had it committed, so this is no tell to take: the Node answers it failed at
        # once and writes nothing (compensating.run_here), so its driver is not left
        # resending for ever.
        return
    if src != held[1] and not _recorded_for_the_original(d, src, msg) \
            and not _original_drives(node, src, msg, held):
        raise Refused("not_coordinator", f"{src} told a compensation of"
                                         f" {msg.workflow_id}, coordinated by {held[1]}"
                                         f" in epoch {held[0]}")


def _recorded_for_the_original(d: Any, src: str, msg: CompensateMsg) -> bool:
    """A tell from the workflow's original coordinator of an attempt that ended here:
    answered with its record, never run (the record is the attempt's idempotency key).
    An original that a later epoch's driver never told its end (that driver gone for
    good) drives the saga on in epoch 0: so its saga ends too."""
    recorded = d.comp_runs.get((msg.workflow_id, msg.step_id, msg.attempt))
    return recorded is not None and recorded[0] != "running" \
        and src == msg.workflow_id.rpartition(".")[0]


def _original_drives(node: Any, src: str, msg: CompensateMsg, held: tuple[int, str]) -> bool:
    """A tell from the workflow's original coordinator while the holder of the later
    epoch followed here is gone in this Node's view (DEAD or LEFT): that holder will
    never tell it, and the original, which no later end reached, drives the saga in
    epoch 0; or while that holder has not shown here that it won
    (saga_unproven_holder.py): both drive. The tell is taken and reported to it
    (compensating.py, `reports_to`)."""
    if held[0] >= 1 and src in drivers_too(node, msg.workflow_id):
        return True  # and the driver followed before the grant (saga_unproven_holder.py)
    return held[0] >= 1 and src == coordinator_of(msg.workflow_id) \
        and node.member_loss.gone(held[1])


def compensated(node: Any, src: str, msg: CompensatedMsg, votes: Any, proven: Any) -> None:
    # Only the step's domain reports its compensation: a step placed again
    # (replacement.py), its new domain, where it ran and its compensation is planned
    # now, or the one it was lost with (which answers a tell it refuses, or one its
    # driver made before it knew the new placement).
    placed = placed_on(node.state, msg)  # reads its workflow and step only
    moved = node.state.placements.get(msg.workflow_id, {}).get(msg.step_id)
    if moved is not None and src in (moved[1], moved[2]):
        return
    if moved is not None and src in placed_before(node, msg.workflow_id, msg.step_id):
        return  # a run there of an older placement owes its compensation (saga_runs.py)
    if placed is not None and src != placed and _saga_entry_of(node, src, msg):
        return  # a run there the saga owes a compensation (saga_results.late)
    if placed is not None and src != placed:
        raise Refused("not_placed", f"{src} reported the compensation of"
                                    f" {msg.workflow_id}/{msg.step_id}, placed on {placed}")


def placed_before(node: Any, wf: str, step: str) -> set[str]:
    """The domains `step` of `wf` was placed on before its current placement, as known
    here: the list its placement on record carries (`earlier_of`: every one, in order,
    written with the placement, told with it, carried by grants and placement answers,
    so a driver that restarted, a successor and a new domain know each), and, for a
    placement written before the list was kept, the committed placement's (a step
    placed again keeps its first domain there; a new domain committed by the round
    that placed the step on it knows the one it was lost with, the round's `lost`, and
    the round's `before`), the one its placement on record was lost with, and, while
    the workflow runs here, each its progress saw lost (`replaced_from`, in memory)."""
    d = node.state
    moved = d.placements.get(wf, {}).get(step)
    if moved is None:
        return set()
    row = d.rows.get(wf)
    info = row.info if row is not None else d.info.get((wf, d.committed[wf])) \
        if wf in d.committed else None
    before = {moved[2], *earlier_of(d, wf, step)}
    if info is not None:
        before.add(info.placement.get(step, ""))
        if info.lost and info.placement.get(step) == node.name:
            before |= {info.lost, *info.before}
    p = node.progress.get(wf)
    s = p.steps.get(step) if p is not None else None
    if s is not None:
        before |= {*s.replaced_from, s.lost_to}
    before -= {moved[1], ""}
    return before


def earlier_of(d: Any, wf: str, step: str) -> tuple[str, ...]:
    """The domains `step` of `wf` was placed on before its placement on record, oldest
    first (its `lost` last): the list written with it (`earlier_domains`); for one
    written before the list was kept, its `lost` alone, after the committed placement's
    domain where that is another. (): not placed again."""
    moved = d.placements.get(wf, {}).get(step)
    if moved is None:
        return ()
    kept = d.earlier_domains.get(wf, {}).get(step)
    if kept:
        return kept
    row = d.rows.get(wf)
    info = row.info if row is not None else d.info.get((wf, d.committed[wf])) \
        if wf in d.committed else None
    first = info.placement.get(step, "") if info is not None else ""
    return in_order((first, moved[2]), moved[1])


def earlier_for(d: Any, wf: str, step: str, lost: str, told: tuple[str, ...] = (),
                domain: str = "") -> tuple[str, ...]:
    """The list a new placement of `step` on `domain`, after `lost` was lost, carries:
    `told` with it (PlacedMsg.before, a round's WfInfo.before), and any other domain
    the list of the placement on record names, then `lost` (each re-placement appends
    its lost domain; a tell from a sender that kept no list carries none)."""
    return in_order((*told, *earlier_of(d, wf, step), lost), domain)


def in_order(domains: Any, leave_out: str = "") -> tuple[str, ...]:
    """`domains` once each, in their first order, without "" and `leave_out`."""
    out: list[str] = []
    for x in domains:
        if x and x != leave_out and x not in out:
            out.append(x)
    return tuple(out)


def ran_before(node: Any, src: str, msg: ResultMsg, epoch: int) -> bool:
    """Is `msg` a SUCCEEDED result of an older placement than the current one (of
    `epoch`), from a domain the step was placed on before (`placed_before`)? Such a
    run's side effects are there: its saga owes them a compensation (saga_results.late)."""
    return getattr(msg.state, "value", msg.state) == "SUCCEEDED" and msg.epoch < epoch \
        and src in placed_before(node, msg.workflow_id, msg.step_id)


def saga_run_elsewhere(node: Any, src: str, msg: ResultMsg) -> bool:
    """Is `msg` a SUCCEEDED result, from a party of the workflow, reaching the driver
    of its saga after the end, of a step this Node knows no new placement of? The
    step was placed again on `src` in an epoch this driver never learned of (a
    claimant's end, never won, planned from the placement it held: takeover soak seed
    109463), and ran there: the saga owes a compensation there (saga_results.late).
    Taken for the saga only: the workflow is over here, so it moves no progress."""
    d = node.state
    wf = msg.workflow_id
    if getattr(msg.state, "value", msg.state) != "SUCCEEDED" \
            or d.final.get(wf) not in OWING or msg.step_id in d.placements.get(wf, {}) \
            or node.compensating.driver(wf) != node.name:
        return False
    _, participants = epoch_of(d, wf)
    return participants is not None and src in participants


def _saga_entry_of(node: Any, src: str, msg: CompensatedMsg) -> bool:
    """Does this Node's saga of the workflow owe the step's compensation in `src`
    (a row of a run there, `saga_run_elsewhere`: the step's first, or a further one)?"""
    d = node.state
    first = d.compensations.get((msg.workflow_id, msg.step_id))
    return first is not None and first.domain == src \
        or (msg.workflow_id, msg.step_id, src) in d.extra_compensations


def placed_on(d: Any, msg: ResultMsg | CompensatedMsg) -> str | None:
    """The step's domain as this Node knows the committed placement. A result of a
    workflow not committed here yet is refused (unacknowledged, so it comes again;
    one whose round is in doubt here is held until its COMMIT: early_results.py);
    one of a workflow over here changes nothing and is let through to be acknowledged."""
    wf = msg.workflow_id
    row = d.rows.get(wf)
    if row is not None:
        placement = row.info.placement
    elif wf in d.committed and (wf, d.committed[wf]) in d.info:
        placement = d.info[(wf, d.committed[wf])].placement
    elif wf in d.final:
        return None
    else:
        raise Refused("not_known", f"a result of {wf}, not committed here yet")
    return placement.get(msg.step_id, "")


def epoch_of(d: Any, wf: str) -> tuple[tuple[int, str] | None, set[str] | None]:
    """The coordinator epoch held here for `wf` and its participants, if committed here."""
    row = d.rows.get(wf)
    info = row.info if row is not None else d.info.get((wf, d.committed[wf])) \
        if wf in d.committed else None
    if info is None or not info.placement:
        return None, None
    # The coordinator followed (or acted as): our own claim, not yet won, is no
    # coordinator. An older epoch's end reaching it meanwhile is taken only with that
    # epoch's certificate; one without is refused (authority_ends.py, `_claiming_later`):
    # the claim learns a made end from its answers, or wins and decides.
    # The participants: the committed placement's, and each step's placed again since
    # (replacement.py): its new domain and the one it was lost on (a new domain knows
    # of the lost one only so, and hears its takeover claims); a new domain committed by
    # its own round knows it from the round's `lost` too, its own placement maybe over
    # (2PC takeover soak seed 4920613: that domain's end refused, a reservation held for
    # ever). Safe: a participant at every other Node; this view only comes to agree.
    participants = set(info.placement.values()) | {info.lost}
    for step, (_, domain, lost) in d.placements.get(wf, {}).items():
        # And every domain the step was placed on before (Replacements.domains_of).
        participants |= {domain, lost, *d.earlier_domains.get(wf, {}).get(step, ())}
    participants.discard("")
    return d.epochs.get(wf, (0, info.coordinator)), participants
