"""The loss verdict: what DEAD or LEFT does to each step of a committed workflow.

Theory of operation
-------------------
The part of domain_loss.py (`DomainLoss`, whose header says when and why) that works
out a verdict: for each gone domain, the pure core's loss table (Progress.domain_lost,
LOSS_TABLE in core/workflow/domain_loss.py) says of each step placed there, not
terminal, whether it FAILS or is placed again (replacement.py). With takeover the
verdict is worked out on a copy of the workflow's progress and only written as the
steps' results (under the point "step lost"): the progress takes it when the end is
made, and a FAILED outcome holds the end, told first (`DomainLoss._hold`). Without
takeover it goes into the progress at once and the end is made as on any result.
`was_lost` knows a verdict on record by its reason, as the loss table words it.

A successor judges with `reports_missed` (a need on a third domain that may have
succeeded counts as met), and that also stands for the mark the original set when it
told a participant asking before a start that the step is still placed there
(`Progress.start_asked`, start_asks.py), which a successor never sees. The original
confirms only a step the asker found ready, so each of its needs had SUCCEEDED as far as
the asker saw; at the successor each such need is SUCCEEDED on record, or counts as
possibly SUCCEEDED: placed anywhere but on the successor itself (a third domain, the
lost asker, the lost original, or where a loss sent it since), with `reports_missed`
each of these may have succeeded unheard, its own needs judged by the same rule; placed
on the successor, its success is on record there, written before it left (a wave
barrier met by an end that is no success is met at the successor as the end is
known there, or counts as possibly SUCCEEDED as above). A step with no needs always
counts as started; a retry asks with the needs its first attempt had. So a step
confirmed by the original and lost with its asker under a successor is never judged not
started there (tests/unit/core/node/test_start_asks_successor.py: a first step, a need
on a third domain, on the original, on the successor, a retry, a fan-out's next wave).
"""

from __future__ import annotations

import copy
from typing import Any

from fedorch.core.workflow.domain_loss import LossAction
from fedorch.core.workflow.progress import Outcome, StepState

__all__ = ["placed", "resolve", "was_lost"]


def was_lost(domain: str, state: StepState, error: str) -> bool:
    """Is this result a loss verdict on a step placed on `domain` (its reason, as
    core/workflow/domain_loss.py words every one)?"""
    return state is StepState.FAILED and error.startswith(f"domain {domain} was lost (")


def placed(p: Any, step: str) -> str:
    """The domain a step is (or, waiting to be placed again, was last) placed on."""
    s = p.steps[step]
    return s.domain or s.lost_to


def resolve(loss: Any, now: float, wf: str, domains: list[str]) -> None:
    """Resolve the steps of `wf` placed on `domains` (those the view says are gone)."""
    n = loss.n
    p = n.progress[wf]
    # With takeover, the verdict is worked out on a copy: the workflow's progress
    # takes it only when its end is made (`DomainLoss._release_if_told`), so a coordinator
    # whose epoch ends meanwhile goes on as a participant its verdict never touched.
    judged = p if n.takeover is None else copy.deepcopy(p)
    if loss.epoch(wf) >= 1:
        # A successor's progress is a participant's: producers report to the
        # original coordinator and to their consumers, not to it, so a need on a
        # third domain may have reached the lost one unheard here (seed 4800265:
        # re-placed as not started, the step ran twice). It also covers the
        # original's start marks, never seen here (the header).
        judged.reports_missed = True
    resolved: dict[str, str] = {}  # step -> the domain it was lost with
    replaced = False
    for domain in domains:
        if not n.member_loss.gone(domain):
            continue
        # The coordinator of the current epoch places a step again, a successor
        # on a fresh majority of its electorate (replacement_successor.py).
        can_replace = True
        for step, action in judged.domain_lost(domain, state=n.members[domain],
                                           can_replace=can_replace):
            n.stats[f"step lost with its domain: {action.value}"] += 1
            n.note("step_lost", (wf, step), domain, action.value, now)
            if action is LossAction.REPLACE and can_replace:  # a new round (replacement.py)
                n.replacement.step_lost(wf, step, domain, n.members[domain])
                replaced = True
            else:
                resolved[step] = domain
    if replaced and not resolved:
        n.replacement.start(now, wf)
        return
    if not resolved:
        return
    n.point("step lost")
    results = dict(n.state.results.get(wf, {}))
    for step in resolved:
        s = judged.steps[step]
        results[step] = (s.attempts, s.state, {}, s.error)
    n.state.results[wf] = results
    for step, domain in resolved.items():
        # The verdict replaces the step's result: what was recorded of the run behind
        # the one it replaces goes with it (saga_results.py).
        n.compensating.results.ran_in(wf, step, judged.steps[step].state, domain)
    if judged is not p and judged.outcome() is Outcome.FAILED:
        loss._hold(wf)  # nothing is placed again: the workflow's end is coming
        return
    if judged is not p:  # no end follows from it (a fan-out step goes on): taken now
        loss._apply(wf)
    n.running.check_outcome(now, wf)  # ends it where nothing holds it
    if replaced and wf in n.progress:
        n.replacement.start(now, wf)
