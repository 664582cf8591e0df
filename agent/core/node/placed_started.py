"""The lost domain back keeps its own end of a step not idempotent that ran there.

Theory of operation
-------------------
The lost domain, back and told its step was placed again (placed_here.py, `take`),
drops the result its own attempt ended with meanwhile, but not when the step is not
idempotent and that result shows the attempt started here (`ran_here`). Such a step
is placed again only when its coordinator judged it not started, from what it saw: a
need's result that reached this domain and never reached it (lost, or its producer
gone meanwhile) makes that judgement wrong (core/workflow/domain_loss.py, the open
case). This result is then the one word that the step ran. Dropped, this Node,
elected, waited for the step at its new domain and handed that round's COMMIT out
(replacement_handover.py): the step ran twice (takeover soak seed 184100747). Kept,
its progress has the step ended here (the new placement moves only its domain and
epoch: Progress.placed_again leaves a terminal step as it is), so as a successor it
hands nothing out (it hands out only a placement of a step it still waits for),
decides on that end, and the new domain's YES is released at the end
(placed_here.py, `ended`). An idempotent step's result is dropped as before.

Which results show it:

- FAILED as found running at a restore (running.py's INTERRUPTED): the attempt was
  on record as started. Kept, the driver fails the workflow on it. Any other failure
  is dropped as before (a self-fenced one may be of an attempt never begun: not told
  apart here).
- SUCCEEDED, in the progress as in the results: only this domain's own attempt makes
  that of a step placed here (a result is taken only from the step's domain, and an
  older placement's by its epoch for the saga alone: running.py), so it ran here.
  What a kept SUCCEEDED adds to a kept FAILED: the workflow goes on with it, so its
  outputs must be the ones the step's consumers get, and a consumer may be elsewhere.
  There the step is placed on its new domain, whose result never comes once this Node
  drives (it hands no COMMIT out), and this Node's own result is refused by its epoch
  (an older placement's); nothing relays it (the coordinator relays only a gone
  domain's results, running_owed.py): the consumer would wait for ever. So a
  SUCCEEDED result is kept only where every step that needs it is placed here, or
  was until this Node's loss placed it away too, and has ended in this progress
  (`consumed_here`): the consumers here started on these very outputs (start_ready,
  when the attempt ended), or start on them, and none elsewhere waits for them. A
  consumer placed away that ended ran here on them, or at its new domain on the
  outputs that reached it there: these (this Node's result, taken where the step's
  move was not yet known), or the new domain's only where the original sent the
  COMMIT, the step then run twice anyway (below). A consumer that was never here is
  not known here to have run on these: the result is dropped as before. The saga
  agrees: the run's record (saga_results.py `ran_in`, saga_runs.py `succeeded_here`)
  stays with the result, so a compensation is owed here, where it ran, never at the
  new domain, which never ran it. The new domain does not run it either when this
  Node drives: no COMMIT of the round leaves it, and the original, having granted its
  epoch, sends none (replacement_handover.py, "Void", 1).

Safe: it keeps a fact, and only its own; what it changes is this Node's outcome as a
driver, which now agrees with what ran; as a participant following another driver,
the new domain's result, if the original sent the COMMIT, is refused here after a
terminal one (acknowledged: it stops), and the consumers here run on this run's
outputs, as those started before the placement was told did (the driver holds the
new domain's then: the step ran twice, the case left open below). A later successor that never heard this result (it is refused by
its epoch everywhere) hands the COMMIT out as before.

Not built yet: a SUCCEEDED run here is still dropped where a consumer never placed
here needs it (the driver would need to relay it past the fencing, and know what that
consumer ran on); an attempt still running here when the placement is told is
stopped, and its progress moved to the new domain, as before (a successor still hands
that COMMIT out); and the original, still driving, sends the COMMIT as before. Only
asking the need's producer closes those (domain_loss.py).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.running import INTERRUPTED
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, StepState


def ran_here(p: Any, s: Any, known: tuple | None) -> bool:
    """Does `known`, this Node's result of its own attempt of step `s` (of progress
    `p`), show that a step not idempotent started here, and is it kept (the header)?"""
    if s.idempotent or known is None:
        return False
    if known[1] is StepState.SUCCEEDED:
        return s.state is StepState.SUCCEEDED and consumed_here(p, s.id)
    return known[1] is StepState.FAILED and known[3].startswith(INTERRUPTED)


def consumed_here(p: Any, step: str) -> bool:
    """Is every step of `p` that needs `step` placed on this Node, or placed away
    from it by its loss and ended? (The header, SUCCEEDED.)"""
    return all(c.domain == p.me or c.lost_to == p.me and c.state in TERMINAL_STEP_STATES
               for c in p.steps.values() if step in c.needs)
