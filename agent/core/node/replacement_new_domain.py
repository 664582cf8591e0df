"""The new domain's side of a handover: a later holder's COMMIT or void taken here.

Part of the Node's re-placement handover (replacement_handover.py, whose header tells
the whole and why it is safe). A successor acting in a later epoch hands out the COMMIT
of a placement it was told, or answers a round it knows no placement of void; these
are what the round's new domain does with either: learns the COMMIT of its YES held
(`made_here`), releases its YES (`voided_here`), and says, told a placement or sent a
COMMIT of a round it holds nothing of, that nothing ever runs under it here
(`released_here`, `commit_released`). It is its own module because these run at the
new domain, on its own holds, apart from the holder's side that hands out and voids;
they read and write the Node `n` only.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.messages import Decision, Value, VoteIn
from fedorch.core.negotiation.participant import HoldState
from fedorch.core.node.records import AckMsg, PlacedMsg


def made_here(n: Any, now: float, src: str, msg: PlacedMsg) -> None:
    """The holder of a later epoch hands out the COMMIT of our placement: our YES of
    the round, PREPARED, is committed (see replacement_handover.py's header); anything
    else (learned already, released at the end) changes nothing."""
    key = (msg.workflow_id, msg.epoch)
    hold = n.participant.hold(key)
    if hold is None or hold.state is not HoldState.PREPARED:
        return
    n.stats["re-placement COMMIT learned from a successor"] += 1
    raw = n.votes.seal([(key, True)])[0]
    n.negotiation.learn(now, key, Value(True, (VoteIn(msg.epoch, n.name, True, "", raw),)),
                        hold.tx)
    if n.takeover is not None and msg.held_epoch >= 1 and msg.won \
            and msg.workflow_id in n.progress:
        n.takeover.follow_proven(now, msg.workflow_id, src, msg.held_epoch, msg.won)


def voided_here(n: Any, now: float, src: str, msg: PlacedMsg) -> None:
    """The holder of a later epoch (its certificate checked at the boundary:
    authority.py) answers our round void: our YES of it, PREPARED, is released, as
    at the workflow's end (placed_here.py, `ended`): nothing ever runs under it, and
    a COMMIT that came later would find nothing held. Where we keep the workflow's
    progress we follow that holder (an older epoch's tell is then refused here:
    placed_here.py). A void from an epoch older than one we grant or follow changes
    nothing: that epoch's holder may know the placement."""
    wf = msg.workflow_id
    key = (wf, msg.epoch)
    hold = n.participant.hold(key)
    info = n.state.info.get(key)
    if hold is None or hold.state is not HoldState.PREPARED or info is None \
            or not info.lost or msg.domain != n.name or msg.held_epoch < 1 \
            or src == hold.coordinator or msg.held_epoch < n.placed_here.promised(wf):
        return
    n.participant.decide(now, wf, msg.epoch, False)
    n.termination.forget(key)
    n.point("hold released")
    n.state.holds.pop(key, None)
    n.note("released_void", key, now)
    n.mark(wf)  # as every release: held results settled (early_results.py), retention
    n.stats["re-placement YES released: void in a later epoch"] += 1
    if n.takeover is not None and msg.won and wf in n.progress:
        n.takeover.follow_proven(now, wf, src, msg.held_epoch, msg.won)


def released_here(n: Any, msg: PlacedMsg) -> bool:
    """Told a placement of a round whose new domain we are: do we hold nothing of
    that round (no YES held, no COMMIT learned), the workflow not ended here? Then
    nothing ever runs under it here, and our acknowledgement says so (AckMsg.void;
    see replacement_handover.py's header)."""
    key = (msg.workflow_id, msg.epoch)
    if msg.domain != n.name or msg.workflow_id in n.state.final:
        return False
    learned = n.state.learned.get(key)
    return n.participant.hold(key) is None and (learned is None or not learned.commit)


def commit_released(n: Any, src: str, msg: Decision) -> bool:
    """A COMMIT of a round whose new domain we are, told its placement, that we hold
    nothing of (no YES held, no COMMIT learned, the workflow not ended here: see
    `released_here`): answered as a tell of the placement would be, `void` (see
    replacement_handover.py's header, "A COMMIT after a void"). False: any other
    decision, taken as before."""
    wf, round_ = msg.key
    if not msg.value.commit or wf in n.state.final or n.participant.hold(msg.key) \
            is not None:
        return False
    learned = n.state.learned.get(msg.key)
    if learned is not None and learned.commit:
        return False
    step = next((s for s, (e, dom, _) in sorted(n.state.placements.get(wf, {}).items())
                 if e == round_ and dom == n.name), None)
    if step is None:
        return False
    n.stats["re-placement COMMIT after a void answered void"] += 1
    n.send(src, AckMsg(("placed", wf, step, round_, n.name), True))
    return True
