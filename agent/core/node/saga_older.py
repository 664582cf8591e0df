"""Results of a step's older placement: fenced out of the progress, left to the saga.

Theory of operation
-------------------
A step placed again (replacement.py) has a new placement epoch; a result told in an
older one is over for the workflow's progress (`older_placement`: running.py refuses
it), else a run the coordinator placed away would count beside the new domain's.
Refused, it is acknowledged as a rule, so its domain stops resending it.

A SUCCEEDED run of an older placement still has its side effects where it ran: a saga
owes it a compensation there (saga_runs.py), and its driver learns of it only from
that domain's report. Acknowledged before the end, the report was gone: its domain
re-reports a run of a step placed elsewhere at the end only when it knows the step was
placed elsewhere (SagaRuns.report_elsewhere), and one cut off while the step was
placed again, its tells of the new placement lost with a driver's restart (held in
memory only), never learns it; the end came from the driver it reported to already,
so nothing reported the run again, and a workflow that ended FAILED or CANCELLED never
compensated it (the story of tests/unit/core/node/test_saga_runs_placed_again_thrice.py
with the driver crashed before its end's write was durable:
test_saga_older_result_after_restart.py).

So the saga's driver leaves such a result unacknowledged (`left_to_saga`): a SUCCEEDED
result, of a step with a `compensate` block, of an older placement, from a domain the
step was placed on before (authority_steps.ran_before, from the list its placement on
record carries, `earlier_of`). Its domain resends it until the end is made here; then
running.py hands it to the saga (saga_results.late: it adds the compensation in that
domain, `compensation owed by a run in a second domain`) and acknowledges it (an
owed result is acknowledged after the end). A SUCCEEDED end drops the domain's resends
(an end drops results that owe nothing), and a domain that ends it resends only what
a saga owes (SagaResults.owed), which a Node that ended it acknowledges.

Why no run is lost: nothing is acknowledged before the Node that plans from it has
taken it. A driver's crash before the end loses nothing (no acknowledgement left here,
nothing was kept); a crash of the domain loses its resends, which its restart makes
again (running.resume reports its ended steps; after its end, SagaResults.again). A
driver whose epoch ends (a takeover) is no driver: the domain reports to the later one
when it follows it (saga_plans.report_again).

Why no run is compensated twice: the result only makes the saga owe an entry per
(step, domain) (saga_runs.extra: a repeated report finds its entry and adds nothing;
SagaRuns.report_elsewhere resends the same result under the same key), and the domain
runs each attempt number once, on its own record that the step SUCCEEDED there
(Compensating._refusal). Nothing here runs anything.

Not for the progress: the result is still refused there (its epoch), and not on a
Node that does not drive the saga (a consumer of the step, a claimant not won), which
acknowledges it as before. A step without a `compensate` block, and so every workflow
without a saga, is acknowledged as before.

Pure: reads the Node, changes nothing.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.authority_steps import ran_before
from fedorch.core.node.domain_loss import was_lost
from fedorch.core.node.records import ResultMsg


def older_placement(node: Any, wf: str, src: str, msg: ResultMsg) -> int | None:
    """The step's placement epoch here, if `msg` is from an older one (else None).
    The progress's epoch counts while this Node drives the workflow, or where a
    placement on record has it: the original's own loss of a step (the step waits
    to be placed again: replacement.py) is void once it follows a later epoch, whose
    holder decides (takeover soak seed 4001691: the result refused, the original
    waited for ever on a need its successor had taken)."""
    p = node.progress.get(wf)
    s = p.steps.get(msg.step_id) if p is not None else None
    placed = node.state.placements.get(wf, {}).get(msg.step_id)
    if s is not None and msg.epoch < s.epoch and (
            node.domain_loss.drives(wf) or (placed is not None
                                            and msg.epoch < placed[0])):
        return s.epoch
    if placed is not None and msg.epoch < placed[0] and src != placed[1]:
        return placed[0]
    return None


def left_to_saga(node: Any, wf: str, src: str, msg: ResultMsg, epoch: int) -> bool:
    """Is `msg`, refused as of a placement older than `epoch`, a SUCCEEDED run from a
    domain the step was placed on before, of a step with a `compensate` block, told
    this Node, its saga's driver? Then it is left unacknowledged until the end (see
    the header)."""
    return node.compensating.driver(wf) == node.name and node.compensating.owes(msg) \
        and ran_before(node, src, msg, epoch)


def relayed_over_verdict(node: Any, wf: str, src: str, msg: ResultMsg,
                         known: tuple) -> bool:
    """Is `msg` the step's own result relayed by the coordinator followed here
    (Running.relay_gone_results) over a loss verdict on record for the step's domain?
    The verdict is void once this Node follows a later epoch (domain_loss.py), and
    the step's own result is then taken: told by its domain, or, that domain gone
    for good, relayed by its holder (takeover soak seed 117826: refused, a step
    that needs it never started, the workflow RUNNING for ever)."""
    p = node.progress.get(wf)
    s = p.steps.get(msg.step_id) if p is not None else None
    followed = node.state.epochs.get(wf)
    return s is not None and followed is not None and followed[0] >= 1 \
        and src == followed[1] and was_lost(s.domain or s.lost_to, known[1], known[3])
