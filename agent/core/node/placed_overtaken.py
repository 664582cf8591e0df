"""A placement told by a coordinator whose word is over here: answered, never taken.

Theory of operation
-------------------
placed_here.py takes a told placement (PlacedMsg) and acknowledges it; the original
coordinator counts an elector's acknowledgement toward the majority that must hold the
placement before its COMMIT leaves (replacement_telling.py, "Told before made"). Two
tells are not taken nor acknowledged here, but answered with what overtook their
teller, so that it follows and ends its resends:

- a grant is a promise (`answer_older_epoch`): once this Node granted (or follows) an epoch
  e >= 1, a placement told by a coordinator of an older epoch (the original, at 0)
  that is not the round on record here (a later round of the step known here is no
  sign that this one was held when we granted: takeover soak seed 102364, the
  original, back, placed again a step its successor had placed and ended with, and
  counted that successor) never counts toward the majority that lets its COMMIT
  leave. Once a successor's majority granted its epoch, a placement none of them held
  cannot be held by a majority any more: the successor knows every placement whose
  COMMIT can ever leave, and may answer a round it does not know void
  (replacement_handover.py). It is answered with the epoch held here and its holder
  (its certificate where kept here), as an older epoch's end notice is (elector_ends.py),
  so its sender follows a proven live holder or, that holder gone, claims the next
  epoch (agent/core/workflow/takeover_overtaken.py); or, ended here, with the end and
  its proof (EndNotices.tell_overtaken), which it follows (takeover soak seed 4900724:
  told nothing, it told the placement for ever). Ended here as that epoch's holder,
  its new domain is told our end first (placed_here.py `_end_to_new_domain`, before
  this part is called: it learns no COMMIT any more);
- a workflow this Node forgot (`answer_forgotten`): retention compacted it, keeping its
  end as a record (ended_records.py), and its `promised` epoch went with its rows, so the
  tell was taken as news and acknowledged: nothing written (retention forgets what it
  does not know again), yet the acknowledgement counted toward the majority, and the
  original's COMMIT left to a new domain for a workflow that had ended in a later
  epoch. Answered now from the record, as the other forgotten-workflow paths are (a
  claim, an older end notice: elector_ends.py `forgotten_later_end`): the original is
  told the later end and its proof where the record keeps one
  (EndNotices.tell_overtaken reads it, ended_records.py `overtaken`), else the end,
  the epoch held and its holder, no grant; any teller of an epoch older than the
  record's alike. It takes that end (takeover_claims.py), and the end drops its tells
  (replacement.py, `ended`). A tell of the record's epoch or a later one is taken as
  before: the record has no word over it.

Why the answer is the one the kept workflow gave: kept, this Node had granted or
followed the record's epoch (it is the record's `epoch`), so the older tell met the
first rule above, and was answered with that epoch or the end. The end is the one end
there is, so an answer from a record days old is still true.

Pure: reads the Node's tables and writes its outbox only.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import ClaimAnswerMsg, PlacedMsg
from fedorch.core.node.takeover_claims import held_of

__all__ = ["answer_forgotten", "answer_older_epoch"]


def answer_older_epoch(n: Any, src: str, msg: PlacedMsg) -> None:
    """A placement of an epoch older than one granted or followed at Node `n`, not the
    round on record here (placed_here.py decides so): answered with the end, or the
    epoch held here, never acknowledged (see the header)."""
    wf = msg.workflow_id
    n.stats["placement of an older epoch refused: a later one granted"] += 1
    if wf in n.state.final:
        # The later end and its proof, as the original's end notice would be answered
        # (takeover soak seed 4900724, the successor's end told first).
        n.end_notices.tell_overtaken(src, wf)
    elif n.takeover is not None:
        epoch, holder = held_of(n.state, wf, wf.rpartition(".")[0])
        n.stats["placement of an older epoch answered with the later epoch"] += 1
        n.send(src, ClaimAnswerMsg(wf, msg.held_epoch, False, epoch, holder,
                                   won=n.takeover.proof.proof_of(wf, epoch, holder)))


def answer_forgotten(n: Any, src: str, msg: PlacedMsg) -> bool:
    """A placement of a workflow Node `n` forgot, told in an epoch older than its end
    record's: answered from the record (see the header). False: no such record, or
    none that overtakes the teller (the tell is taken as before)."""
    wf = msg.workflow_id
    rec = n.retain.ends.of(wf) if n.retain is not None and n.takeover is not None \
        else None
    if rec is None or msg.held_epoch >= rec[1]:
        return False
    n.stats["placement of a forgotten workflow answered from its record"] += 1
    if n.end_notices.tell_overtaken(src, wf):
        return True  # the original, a successor's end and its proof kept
    n.send(src, ClaimAnswerMsg(wf, msg.held_epoch, False, rec[1], rec[2], rec[0]))
    return True
