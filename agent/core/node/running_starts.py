"""A step's start, told its coordinator only when its result does not follow at once.

Theory of operation
-------------------
A participant that starts a step attempt tells its coordinator (running.py,
`_tell_start`): a ResultMsg in state RUNNING, after the start is written. At the
coordinator that tell does three things, and the step's result does each of them too:
- its status shows the step RUNNING (the result shows where it ended);
- it stands for the participant's DecisionAck of the workflow's round
  (commit_acks.py: any result of a first-placement step does, SUCCEEDED or not);
- from a domain lost since, it is the word that the step started there
  (replacement_heard.py: a RUNNING or a SUCCEEDED is; a FAILED is not, as a
  self-fenced attempt that never ran ends FAILED too).
A step that ends within a turn or two (a builtin no-op step: its end comes back as
the next turn's `StepEnded`) sent both, the tell a whole message for nothing: an
envelope's share signed and verified, decoded, a Node input at the coordinator.

So a tell is held (`hold`), `HOLD_S` at most from the start, and goes at that
deadline (`tick`: the Node's timer, `timer`) unless a message that implies it goes
to the same coordinator first (`sending`, which the Node calls for every ResultMsg it
sends while a tell is held): a result of the same step, placement epoch and attempt
or a later one, in state SUCCEEDED (the start implied, every rule above served by
it), or a later attempt's RUNNING (which replaces the held one and keeps its
deadline). A result in any other state (a FAILED, say) takes the held tell out in
front of it, in the same turn: nothing waits for it then, and the coordinator still
hears first that the attempt started. The result's path is not touched: it leaves
as it did, in the turn of its `StepEnded`.

| event                                               | the held tell of (wf, step, to) |
|-----------------------------------------------------|---------------------------------|
| attempt started, `to` another domain (`hold`)        | held until start + HOLD_S       |
| started as its COMMIT is learned, DecisionAck owed  | not held: sent at once (below)  |
| a later attempt started while one is held           | replaced, its deadline kept     |
| SUCCEEDED of that epoch, attempt >= held, to `to`   | dropped (counted in stats)      |
| any other result of that epoch, attempt >= held     | sent just before it             |
| the deadline (`tick`)                               | sent                            |
| a restore (`reset`)                                 | lost (see below)                |

Started with its COMMIT. An end the coordinator makes before every participant
acknowledged the round's COMMIT is told `settled=False` (running.py, `settled`), and a
participant forgets such a workflow by age only, never beyond the count
(retention.py). A step that starts at the very `now` its COMMIT is learned here (in
that turn: a driver steps a turn's inputs at one `now`; a step with no needs, say:
every parallel step of a workflow) acknowledged the COMMIT at once with its tell;
held, a sibling that fails at once would end the workflow unsettled (the load
simulation, agent/sim/negotiation/load.py: about one ended workflow in twenty kept
past `max_ended_workflows` at each Node). So such a tell, while it stands for our
owed DecisionAck, goes at once as before. A step that starts later (its
needs' results came since) had its acknowledgement deferred already (commit_acks.py,
up to `decision_ack_s`); held, it comes no later than that deferral allowed (the
DecisionAck's own deadline still stands), so the ends left unsettled are of the kind
commit_acks.py accepts.

The bound. `HOLD_S` is 0.2 s, what docs/architecture.md ("Run") and the loss table's
header (core/workflow/domain_loss.py) already say of a step: it sends nothing for its
first 0.2 s, so a ready step counts as started; a long step's RUNNING shows in its
coordinator's status at most that much later than before. It is below the
DecisionAck's wait (`Timing.decision_ack_s`, 0.5 s), so a tell that stands for that
acknowledgement still leaves in time for a step that starts at its commit.

A crash between the start and its tell, or a restore while one is held, loses the tell
(held in memory only). Nothing may wait on it, and nothing does: a crash right after
the start's write, before its send, lost it before this hold too (the simulator
crashes before each send). The start itself is durable, so a restart ends the attempt
interrupted and reports that (running.py, `resume`), and the rules read no tell:
- the loss table counts a ready step as started whether or not it heard a word
  (Progress._may_have_started; the successor's verdicts with `reports_missed`,
  domain_loss_verdict.py), and the start asks mark a step started when the coordinator
  answers, not when a tell comes (start_asks.py);
- a lost domain's word that it started a step (replacement_heard.py) is one that may
  never come: "a report that never comes proves nothing" is that header's open case,
  and a held tell only comes later, within HOLD_S, as a slow network would bring it
  (so the window in which a domain lost right after a start leaves no word of it
  grows from the instant between the start's write and its send to HOLD_S);
- a DecisionAck that no tell or result stood for is sent at its own deadline
  (commit_acks.py), and one a restart lost is asked again by the coordinator's notice.

Pure: reads the Node's owed DecisionAcks and timing, writes its outbox and stats. The deadlines are one
constant after the Node's `now`, which never goes back within a Node's life, and a
replaced tell keeps its place, so the dict's first entry is the earliest (`timer`).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import ResultMsg
from fedorch.core.workflow.progress import StepState

__all__ = ["HOLD_S", "StartTells"]

# How long a step's start tell waits for its result (seconds; see the header).
HOLD_S = 0.2


class StartTells:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts,
        # never the reverse, so the import graph has no cycle).
        self.n = node
        # (workflow, step, coordinator) -> (the RUNNING tell, when it goes): held.
        self.held: dict[tuple[str, str, str], tuple[ResultMsg, float]] = {}

    def reset(self) -> None:
        """A restore: what was held is lost (see the header)."""
        self.held = {}

    def hold(self, now: float, to: str, msg: ResultMsg) -> None:
        """`msg`, the RUNNING tell of a start just written, goes to `to` at
        now + HOLD_S unless the step's result goes there first; at once if the step
        starts at the `now` its COMMIT was learned here, while our DecisionAck to `to`
        is owed (see "Started with its COMMIT" in the header)."""
        if self.n.commit_acks.deferred_at(now, msg.workflow_id, to):
            self.n.stats["start told at once: it acknowledges the COMMIT"] += 1
            self.n.send(to, msg)
            return
        key = (msg.workflow_id, msg.step_id, to)
        entry = self.held.get(key)
        # A later attempt's start replaces the held one and keeps its deadline.
        self.held[key] = (msg, now + HOLD_S if entry is None else entry[1])

    def timer(self) -> float | None:
        for _, due in self.held.values():
            return due  # the first entry is the earliest (see the header)
        return None

    def tick(self, now: float) -> None:
        """Send the tells whose hold is over."""
        held = self.held
        while held:
            key = next(iter(held))
            msg, due = held[key]
            if due > now:
                return
            del held[key]
            self.n.stats["start told after its hold"] += 1
            self.n.send(key[2], msg)

    def sending(self, to: str, msg: ResultMsg) -> None:
        """`msg` goes to `to` now: a tell held for the same step is dropped if `msg`
        implies it, or sent just before it (see the header's table)."""
        key = (msg.workflow_id, msg.step_id, to)
        entry = self.held.get(key)
        if entry is None:
            return
        held = entry[0]
        if msg.epoch != held.epoch or msg.attempt < held.attempt:
            return  # another placement's or an earlier attempt's: implies nothing
        del self.held[key]
        if msg.state is StepState.SUCCEEDED:
            self.n.stats["start tell left to the result"] += 1
            return
        self.n.out.send(to, held)  # told first: a FAILED says nothing of a start
