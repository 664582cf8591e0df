"""An original coordinator restored while its workflow runs asks its domains where it stands.

Theory of operation
-------------------
A participant reports a step's result to the coordinator it follows (running.py): the
original in epoch 0, or the holder of a later epoch once it followed (or granted) one.
While the original coordinator is down, a successor may take the workflow over
(takeover.py), take the results that were owed to the original, end the workflow, tell
its end to every domain and to the original (takeover_ends.py `told`, resent until
acknowledged), and die for good before the original is back: the original's end
notice was sent to a Node that was down, and its resends died with their sender.
Restored, the original holds the workflow RUNNING in epoch 0 and waits for the
results of its unfinished steps, which their domains sent to the successor and which
that successor acknowledged: nobody sends them again, and nobody tells it the end.

Some such originals learn the end already, each by a message of its own that a
domain which ended the workflow in the later epoch answers with that end and its
proof (EndNotices.tell_overtaken, answer_overtaken: running_ends.py): its end notice
(a loss verdict's, a cancel's), a result it reports as the one that drives, a gone
domain's result it relays (Running.relay_gone_results). One with none of these to
send waits for ever (takeover soak seed 87000414: the last result it took, written
before the crash, left no step owing a relay; before that result's write moved
ahead of the crash, the relay went and drew the end back). Nothing about the case is
rare in time: a step's RUNNING report may reach the original after the step's
result, or the crash may fall just after a result's write, on any base.

The rule (`restored`, at the end of the Node's restore): with coordinator takeover on,
for each workflow this Node is the original coordinator of, RUNNING here in epoch 0
(no later epoch followed or granted here), with a step unfinished in its progress on
another domain (a result it may be owed by a domain that now follows someone else),
the original asks every domain of the workflow but itself the restarted
participant's question, `PlacementQuery` (restart_check.py): no new message. The
first ask waits `takeover_after_s` from the restore, the silence after which a
successor acts: a successor alive and acting tells its end again within it (its
notice is resent every `reliable_resend_s` until acknowledged), and the original's own
reports, relays and end notices draw the end first where they go (so those paths keep
their word, and a restart that finds the results coming in, or the end, asks
nothing). Asked again after `reliable_resend_s`, the wait doubling, while it stays at
most `ASK_AT_MOST_S` (a few asks, against a lost ask or answer), then no more; asked
no more as soon as the workflow ends here, a later epoch is followed or granted here,
or this Node no longer drives it (each checked at every ask).

The answers (restart_check.py `on_query`): a domain that ended the workflow in a
later epoch and keeps its proof (or forgot it and keeps its record's) answers the
original as it answers the original's report, with `tell_overtaken`: the later end,
its epoch, holder and certificate, a `ClaimAnswerMsg` the original takes as a denial
of an older epoch showing the end (takeover_claims.py): it follows the later epoch
and ends the workflow as its successor did. A domain that runs the workflow answers
nothing (it drives nothing); one that drives it (a successor acting, back or never
gone) answers its placements, which the original, holding nothing back, drops; that
successor's own end notice reaches the original as before.

Why it is safe. The question changes nothing where it is asked (a query writes
nothing, restart_check.py), and the answer is the one a domain gives the original's
report already: the end is the one end there is, proven by the later epoch's
certificate, which the original checks before it follows (authority.py).

The cost. Off the usual path: only a restart of an original coordinator with
takeover asks, for a workflow it drives that still waits on another domain
`takeover_after_s` after the restore, a few times, each of its domains; a workflow that nothing took over is asked
about the same way (the original cannot tell, back from a crash, whether it was
down long enough for a successor to act), and its domains answer nothing.

Not built yet: an original that was back before its successor ended the workflow,
whose successor then died for good before its end notice to the original got
through (a cut, say), is not covered by these asks (they are over by then); nor a
successor restored in an epoch later overtaken, waiting on results that went to the
next holder (it follows that holder once one of its claims or notices is denied).

Pure: reads the Node's tables, writes its outbox only; the schedule is in memory
(a restart asks again).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.node.records import PlacementQuery
from fedorch.core.node.takeover_claims import held_of
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES

# The longest wait between two asks; the asks stop once the next wait would be longer.
ASK_AT_MOST_S = 4.0


class OriginalAsks:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node
        # Workflow -> (when to ask next, the wait after that ask).
        self.asks: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        self.asks = {}

    def timer(self) -> float | None:
        return min((at for at, _ in self.asks.values()), default=None)

    def restored(self, now: float) -> None:
        """The Node is whole again: every workflow it waits on as a restored original
        is asked about `takeover_after_s` from now (see the header)."""
        self.asks = {}
        if self.n.takeover is None:
            return
        for wf in sorted(self.n.state.rows):
            if self._waits(wf):
                self.asks[wf] = (now + self.n.takeover.after_s, self.n.t.reliable_resend_s)

    def tick(self, now: float) -> None:
        for wf in sorted(wf for wf, (at, _) in self.asks.items() if at <= now):
            _, wait = self.asks.pop(wf)
            if self._waits(wf):
                self._ask(now, wf, wait)

    def _ask(self, now: float, wf: str, wait: float) -> None:
        n = self.n
        n.stats["original back asked its domains where the workflow stands"] += 1
        for dst in sorted(n.replacement.domains_of(wf) - {n.name}):
            n.send(dst, PlacementQuery(wf))
        if wait <= ASK_AT_MOST_S:
            self.asks[wf] = (now + wait, wait * 2)

    def _waits(self, wf: str) -> bool:
        """Is this Node the original coordinator of `wf`, RUNNING in epoch 0, with a step
        unfinished on another domain?"""
        n = self.n
        d = n.state
        row = d.rows.get(wf)
        p = n.progress.get(wf)
        if row is None or p is None or row.state is not WorkflowState.RUNNING \
                or wf in d.final or coordinator_of(wf) != n.name \
                or held_of(d, wf, n.name)[0] != 0 or not n.domain_loss.drives(wf):
            return False
        return any(s.state not in TERMINAL_STEP_STATES and s.domain not in ("", n.name)
                   for s in p.steps.values())
