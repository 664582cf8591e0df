"""The results a Node owes other domains when a step's placement changes.

Theory of operation
-------------------
Two moments send results that the ordinary report of a step's end (running.py,
`report`) does not: a step's domain gone in the coordinator's view, whose SUCCEEDED
results the coordinator relays to the steps that need them (`relay_gone_results`), and
a step placed again, whose needs run here are reported to its new domain, and owed no
more to the domains it was placed away from (`report_needs`). Each docstring says why.
Part of the Node's running part (running.py keeps a method of each name, which calls
here), moved out of it with no change of behaviour.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import ResultMsg
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, StepState


def relay_gone_results(n: Any, wf: str, domains: list[str]) -> None:
    """As the coordinator driving `wf`, the view now saying each of `domains` is
    gone: the SUCCEEDED results of their steps on record here go to the domains of
    the steps that need them, not ended there, resent until acknowledged. A
    producer that died for good before its result reached a consumer (lost, or
    refused there before that domain knew the commit) never resends it, and the
    step waiting on it would wait for ever (takeover soak seed 1600618);
    the coordinator holds every result it was told. The consumer takes it only
    from the coordinator it follows, and only while its own view says the step's
    domain is gone (authority.py)."""
    info = n.running.info(wf)
    results = n.state.results.get(wf, {})
    p = n.progress.get(wf)
    moved = n.state.placements.get(wf, {})  # steps placed again: their new domain
    for spec in info.spec.steps:
        consumer = moved[spec.id][1] if spec.id in moved else info.placement.get(spec.id)
        if consumer in (None, n.name) or n.member_loss.gone(consumer) \
                or p is None or p.steps[spec.id].state in TERMINAL_STEP_STATES:
            continue
        for need in spec.needs:
            if info.placement.get(need) not in domains or need not in results:
                continue
            attempt, state, outputs, error = results[need]
            if state is not StepState.SUCCEEDED:
                continue
            n.stats["result of a gone domain relayed by the coordinator"] += 1
            n.reliable(consumer, ("result", wf, need, consumer),
                       ResultMsg(wf, need, attempt, state, dict(outputs), error,
                                 p.steps[need].epoch))


def report_needs(n: Any, wf: str, step: str) -> None:
    """The results of `step`'s needs run here, reported again: `step` was placed
    again, and its new domain needs them (replacement.py). And owed no more to the
    domains it was placed away from, where no other step needs them: resent there
    until acknowledged, such a result would reach a domain cut off while its step
    was placed elsewhere, back before it is told so, and start the step there too
    (a second run of a step not idempotent). One sent before this Node took the
    placement and delivered after it still can (docs/failures.md, not built)."""
    p = n.progress.get(wf)
    if p is None or step not in p.steps:
        return
    # Not the original coordinator's, whatever it holds (a saga may want it there).
    moved_from = [d for d in p.steps[step].replaced_from if d != n.running.info(wf).coordinator]
    coordinator = n.takeover.coordinator_now(wf) if n.takeover is not None \
        else n.running.info(wf).coordinator
    for need in p.steps[step].needs:
        s = p.steps.get(need)
        if s is not None and s.domain == n.name and s.state in TERMINAL_STEP_STATES:
            n.running.report(wf, need)
            wanted = p.result_recipients(need, coordinator)
            for dst in moved_from:
                if dst not in wanted \
                        and n.pending.pop(("result", wf, need, dst), None) is not None:
                    n.stats["result owed a domain a step was placed away from dropped"] += 1
