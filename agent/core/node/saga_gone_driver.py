"""A step's domain asks about a workflow whose saga's driver is gone: who tells it.

Theory of operation
-------------------
A Node that ended a workflow and no longer drives its saga (it follows a later
epoch's holder, which ended it too) is silent when a domain that still holds a step
of it asks for the placements (restart_check.py, `_tell_end`): the saga's driver
tells that domain the end together with the plan it owes (takeover soak seed
5200672: told the end alone first, the domain later drove a saga that missed a
step). That rule waits on the driver. When the view here says the driver is gone
(DEAD or LEFT: `gone`) and no plan of it was ever told here, nobody will ever tell
the asker anything: it holds its reservation and asks for ever (takeover soak seed
109000128: the original coordinator d1, restarted, told its loss verdict's end
FAILED before it made it; d0 claimed epoch 1, was denied with that end, told it on
in its epoch with no plan, and died for good; d1 took d0's end and followed it; d3,
back from restarts, held s0's SUCCEEDED run, whose compensation is owed, and s1
waiting, and asked d1 every 4 s until the run's end).

The rule (`tell_or_claim`), for a Node asked by a domain holding a step, the
workflow ended here, its saga's driver another Node that the view says is gone,
and no plan of it held here:
- if the results held here owe compensations (a SUCCEEDED step with a `compensate`
  block: core/workflow/compensation.plan, where each ran), they become this Node's
  plan, written (`plans`), as if the gone driver had told it: the takeover core
  kept for an open plan (takeover.py, `live`) claims the next epoch once the driver
  is silent or DEAD past `takeover_after_s`, as every holder of an open plan does,
  and the winner adopts the plan and drives the saga (saga_plans.py, `adopt`): it
  tells the end and the plan in its epoch, the asker follows it (its grant) and
  reports its own SUCCEEDED results again, which join the saga (`late_result`).
  Nothing is told the asker now: told the end first, it would grant no claim (an
  ended workflow is not taken over, its plan not open there) and, with the gone
  driver's vote missing, the claim could find no majority;
- otherwise the end is told as for a saga that is over (`_tell_end`'s `whole`):
  this Node has nothing to plan, and no driver lives to plan anything.

Why it is safe. The end told is the one end there is (the workflow ended once; this
Node holds it as its driver told it). A plan written here is only a claim's reason:
what runs is decided by the winner of a later epoch (one per epoch, by a majority of
the electorate's grants), and a domain runs a compensation only where its own record
says the step SUCCEEDED, each attempt number once whoever asks (compensating.py). A
driver that was only cut off, back, follows the later epoch's end (later_end) and
drives nothing; what it had told is answered from the domains' records.

Limits. With nothing owed here the asker is told the end alone: a SUCCEEDED run that
only the gone driver knew of (its report acknowledged there, never here) stays
uncompensated, as before (saga_results.py, "Limits"). Without a majority of the
electorate alive the claim never wins: the plan stays open here, and the asker held,
as any open plan without a successor (saga_plans.py, "Limits").
"""

from __future__ import annotations

from typing import Any

from fedorch.core.workflow.compensation import plan


def driver_gone(n: Any, wf: str) -> bool:
    """Is the driver of `wf`'s saga, as known here, another Node the view says is gone,
    with no plan of it held here (open or closed)? Never without coordinator takeover:
    the original then drives every saga, and is the one asked."""
    if n.takeover is None:
        return False
    driver = n.compensating.driver(wf)
    return driver != n.name and n.member_loss.gone(driver) and wf not in n.state.plans


def tell_or_claim(n: Any, wf: str) -> bool:
    """`wf` ended here, its saga's driver gone (`driver_gone`), asked about by a domain
    holding a step of it: True if its end is to be told now (nothing owed here), False
    if the compensations the results here owe became this Node's open plan (its
    takeover core claims the next epoch, and the winner drives the saga)."""
    c = n.compensating
    info = n.running.info(wf)
    states = {step: getattr(r[1], "value", r[1])
              for step, r in n.state.results.get(wf, {}).items()}
    owed = tuple((o.step_id, o.domain, o.max_attempts)
                 for o in plan(info.spec, states, c.results.domain_of(wf)))
    if not owed:
        n.stats["saga driver gone, nothing owed here: the end is the whole end"] += 1
        return True
    n.point("saga plan")
    n.state.plans[wf] = owed
    n.stats["saga driver gone: the results here owe a plan, the next epoch claimed"] += 1
    n.takeover.resumed(n.now, wf)  # its core watches the gone driver: a claim follows
    return False
