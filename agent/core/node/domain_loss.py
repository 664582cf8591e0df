"""What membership's DEAD and LEFT do to a committed workflow's steps, in the Node.

Theory of operation
-------------------
member_loss.py acts on negotiations when the view says a member is gone (DEAD or
LEFT; SUSPECT changes nothing); this part acts on the steps of committed workflows.
A step placed on a gone domain will never report: its workflow would wait for it for
ever. So the Node that drives a RUNNING workflow resolves every step placed there
that is not terminal through the pure core's loss table (Progress.domain_lost,
LOSS_TABLE in core/workflow/domain_loss.py), the reasons naming the domain and
whether it was DEAD or LEFT:

- a step that had started there (or could have: it was ready) and is not idempotent,
  or whose spec says `on_domain_loss: fail`, FAILS;
- a step the table would place again (not started, or idempotent, with `replace`)
  FAILS too, its reason saying it was not placed again: the Node runs no re-placement
  round yet (`can_replace=False`; docs/architecture.md, "Not built yet in the node
  engine"). Nothing waits for a lost domain for ever.

The workflow then ends as the lifecycle says (FAILED, its saga run by compensating.py,
its end told to every participant): the outcome path of running.py, unchanged.

Who drives. The original coordinator (its row here, epoch 0, RUNNING, no later epoch
followed), or the successor acting in a later epoch after a coordinator takeover
(takeover.py; its core ACTING at epoch >= 1). A participant that only follows does
nothing: its coordinator tells it the end. Every other Node's Progress is left as it
is.

When. On each change of the view that makes a member gone (`lost`, after
member_loss), for every workflow this Node drives in which the member holds a step;
and when this Node starts driving one (`resolve_gone`: a coordinator whose round has just
committed, or a successor that has just won its epoch, resolves the steps of every
member the view already says is gone, a dead predecessor's own steps among them). A restored Node knows no view until its driver
posts it again (node.py): the same changes then act as above.

Durable first. A resolved step's FAILED result is written in the results table, in the
Ready of the view change, under the point "step lost"; the end and its notices follow
in the same Ready, after it. A restart rebuilds the step FAILED from that row.

Fencing, what there is of it. A step's terminal result on record is never replaced by
a later report (running.py, `on_result`): a lost domain that comes back and reports the
step it ran cannot turn the FAILED the loss wrote into its own result; counted in
`stats` ("result of a lost placement refused"). Placement epochs on the wire (a
re-placed step's fencing token) come with re-placement.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES
from fedorch.core.workflow.takeover import Role


class DomainLoss:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node

    def drives(self, wf: str) -> bool:
        """Does this Node decide `wf`'s outcome now (original coordinator at epoch 0 of
        a RUNNING workflow, or an acting successor)?"""
        n = self.n
        d = n.state
        if wf not in n.progress or wf in d.final:
            return False
        row = d.rows.get(wf)
        if row is not None and d.epochs.get(wf, (0, ""))[0] == 0:
            return row.state is WorkflowState.RUNNING
        if n.takeover is None:
            return False
        core = n.takeover.core(wf)
        return core is not None and core.role is Role.ACTING and core.epoch >= 1

    def lost(self, now: float, domains: list[str]) -> None:
        """The view now says each of `domains` is DEAD or LEFT (it did not before)."""
        for wf in list(self.n.progress):
            if self.drives(wf):
                self._resolve(now, wf, domains)

    def resolve_gone(self, now: float, wf: str) -> None:
        """This Node has just started driving `wf` (committed here, or a successor won
        its epoch): the steps of every member the view already says is gone are
        resolved now."""
        n = self.n
        if not self.drives(wf):
            return
        placed = {s.domain for s in n.progress[wf].steps.values()}
        gone = sorted(d for d in placed if n.member_loss.gone(d))
        if gone:
            self._resolve(now, wf, gone)

    def _resolve(self, now: float, wf: str, domains: list[str]) -> None:
        n = self.n
        p = n.progress[wf]
        resolved: list[str] = []
        for domain in domains:
            if not n.member_loss.gone(domain):
                continue
            for step, action in p.domain_lost(domain, state=n.members[domain],
                                              can_replace=False):
                n.stats[f"step lost with its domain: {action.value}"] += 1
                n.note("step_lost", (wf, step), domain, action.value, now)
                resolved.append(step)
        if not resolved:
            return
        n.point("step lost")
        # Every step the loss changed (its downstream SKIPPED too, as Progress left it).
        results = dict(n.state.results.get(wf, {}))
        for s in p.steps.values():
            if s.state in TERMINAL_STEP_STATES and s.id not in results:
                results[s.id] = (s.attempts, s.state, dict(s.outputs), s.error)
        n.state.results[wf] = results
        n.running.check_outcome(now, wf)  # FAILED: the end, its saga, its notices
