"""The Node's running part: step attempts of committed workflows, results, the end.

Theory of operation
-------------------
Every Node that knows a committed workflow keeps one core/workflow/progress.Progress
for it, rebuilt from the tables on restore (`resume`). An attempt's start is written
under its idempotency key (workflow, step, attempt) and handed to the driver in
`start_steps` of the same Ready, so it starts only once that record is durable; it
is never started again: an attempt found started after a restart counts as failed.
Its start is told the coordinator once, best effort (`_tell_start`): shown RUNNING in
its status only, neither written nor acknowledged there, and nothing waits on it; held
up to 0.2 s and dropped if the step's SUCCEEDED goes there first (running_starts.py). The
coordinator counts the starts it takes in (`starts_shown`): a turn that folds only
such a tell writes nothing, and the read view, which keeps a status until the next
write, would show the step WAITING until then (its result, a step's whole run later).
Its end comes back as a `StepEnded` input. Results go, resent until acknowledged, to
the coordinator and the owners of downstream steps (and, once the view says a step's
domain is gone, the coordinator relays that step's SUCCEEDED result to those owners:
`relay_gone_results`, as the producer may have died before it reached them); the
consumer takes such a relay from the coordinator it follows in a later epoch over a
loss verdict of its own on record for that step, void once it follows (domain_loss.py:
the step's own result is then taken, and this is that result, only relayed; takeover
soak seed 117826); the
coordinator decides the outcome (the lifecycle table), or a cancel ends it
(cancel.py), and tells every participant, which releases what the workflow still
holds here and stops its attempts (`stop_steps`): `end_here`, which a participant
reaches through the end notice it is told (running_ends.py takes it, or answers one of
an overtaken epoch with the later end). No attempt starts while a cancel of its workflow
is on record here, nor, after a restart, before the coordinator it follows confirmed
where the workflow's steps are placed now (restart_check.py: a step placed again while
this Node was down must not start here again), nor, out of touch with that
coordinator, before it said the step is still placed here (start_asks.py: a step
placed again while this Node was cut off must not start here too).

Fan-out (core/workflow/fanout.py). The spec a Node runs is the expanded one (the
coordinator expands at submission; every PREPARE carries it), so instances are steps
like any other and Progress applies the group rules (wave barriers, `on_failure:
continue`, `min_success`). A wave with `pause_s` waits from when this Node first saw
its barrier met: Progress tells when (`next_start_at`), kept here per workflow as a
deadline in the Node's `get_timer()`; at that time the Tick starts what is ready. The
moment a barrier was met is not written down: after a restore the pause is counted
again from the restore, so a wave waits at least its pause_s, never less.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedorch.core.node.authority_steps import relayed_by_overtaken_original
from fedorch.core.node.domain_loss import was_lost
from fedorch.core.node.inputs import StepEnded
from fedorch.core.node.records import (
    AckMsg,
    FinalMsg,
    ResultMsg,
    WfInfo,
    copy_hold,
)
from fedorch.core.node.replacement_heard import heard_started
from fedorch.core.node.running_owed import relay_gone_results, report_needs
from fedorch.core.node.running_starts import StartTells
from fedorch.core.node.saga_older import (
    left_to_saga,
    older_placement,
    relayed_over_verdict,
)
from fedorch.core.workflow import lifecycle
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, Outcome, Progress, StepState

# The error of an attempt a restart found running here, in the shells' words (the
# engine removed since: a client reads what it read before): retried if the step is
# idempotent, else the step FAILS.
INTERRUPTED = "interrupted by an agent restart"


class Running:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts,
        # never the reverse, so the import graph has no cycle).
        self.n = node
        # Workflow -> when a wave waiting out its pause_s here may start (a timer).
        self.pause_due: dict[str, float] = {}
        # Starts told by their domains and taken into a progress here (`on_result`),
        # counted since this Node was made (a restore keeps the count): such a start
        # changes a status without a write, so the read view (runtime status.py), which
        # keeps a status until the next write, counts them to see a kept one is behind.
        self.starts_shown = 0
        # Start tells held for their step's result (running_starts.py).
        self.starts = StartTells(node)

    def reset(self) -> None:
        """A restore: the pauses are counted again as the progress is rebuilt; the
        start tells held are lost (running_starts.py)."""
        self.pause_due = {}
        self.starts.reset()

    def timer(self) -> float | None:
        t = self.starts.timer()
        if self.pause_due:
            due = min(self.pause_due.values())
            return due if t is None or due < t else t
        return t

    def tick(self, now: float) -> None:
        """Send the start tells whose hold is over; start the waves whose pause_s is
        over."""
        if self.starts.held:
            self.starts.tick(now)
        for wf in [wf for wf, t in self.pause_due.items() if t <= now]:
            del self.pause_due[wf]
            self._start_ready(now, wf)

    # ---- inputs ----------------------------------------------------------------------

    def step_ended(self, now: float, e: StepEnded) -> None:
        p = self.n.progress.get(e.workflow_id)
        if p is None:
            return  # the workflow ended meanwhile: the attempt was stopped
        state = p.attempt_ended(e.step_id, e.attempt, e.ok, e.outputs, e.error)
        self._step_end(now, e.workflow_id, e.step_id, state, ran_ok=e.ok)
        self._start_ready(now, e.workflow_id)

    def on_result(self, now: float, src: str, msg: ResultMsg) -> None:
        n = self.n
        d = n.state
        wf = msg.workflow_id
        if n.early_results.hold(src, msg):
            return  # before its COMMIT: stepped again then, unacknowledged (early_results.py)
        n.commit_acks.result_from(now, src, msg)  # as good as its DecisionAck (commit_acks.py)
        if msg.state is StepState.RUNNING:  # a start told (`_start_ready`): shown only
            p = n.progress.get(wf)
            if p is not None and older_placement(n, wf, src, msg) is not None:
                heard_started(n, now, wf, src, msg)  # a lost domain's start (its header)
            elif p is not None \
                    and p.apply_result(msg.step_id, msg.attempt, msg.state, {}, ""):
                self.starts_shown += 1
            return  # not written, not acknowledged: the ack is the final result's
        refused = False
        # The end told the sender before this result (resent below); one this result
        # makes is told by whoever makes it (domain_loss.py, end_as_coordinator).
        told_before = n.pending.get(("final", wf, src))
        if n.retain is not None and not n.retain.knows(wf):
            # Forgotten here (or never ours): acknowledged, nothing kept; from the
            # original, unaware of a successor's end, told that end from its record.
            refused = n.end_notices.tell_overtaken(src, wf)
        elif wf not in d.final:
            known = d.results.get(wf, {}).get(msg.step_id)
            if known is not None and known[1] in TERMINAL_STEP_STATES \
                    and known[1:] != (msg.state, msg.outputs, msg.error) \
                    and (n.domain_loss.drives(wf)
                         or not (was_lost(src, known[1], known[3])
                                 or relayed_over_verdict(n, wf, src, msg, known))):
                # A terminal result on record never changes (as in Progress): a domain
                # a loss verdict failed the step of (domain_loss.py), back with its
                # own, is refused, here and in the progress (which may take the
                # verdict only when its end is made), and not acknowledged: it comes
                # again until the workflow ended here, or the verdict is void (this
                # Node follows a later coordinator epoch), and the result is taken.
                refused = was_lost(src, known[1], known[3])
                n.stats["result of a lost placement refused" if refused
                        else "result after a terminal one refused"] += 1
                if refused:
                    n.domain_loss.verdict_stands(wf)
            elif (over := older_placement(n, wf, src, msg)) is not None:
                # Fencing (replacement.py): placed again since, its older placement is
                # over. Acknowledged, so it stops; not while it waits to be placed again
                # here: it is taken if this Node follows a later epoch first; nor a
                # SUCCEEDED run a saga may owe a compensation, left unacknowledged until
                # the end, which hands it to the saga (saga_older.py).
                p = n.progress.get(wf)
                refused = p is not None and msg.step_id in p.awaiting_placement()
                if refused:
                    heard_started(n, now, wf, src, msg)  # a lost domain's start
                n.stats["result of a step awaiting placement refused" if refused
                        else "result of an older placement refused"] += 1
                if not refused and left_to_saga(n, wf, src, msg, over):
                    refused = True
                    n.stats["result of an older placement left to the saga"] += 1
                n.note("placement_refused", (wf, msg.step_id), src, msg.epoch, over)
            else:
                if known is None or known[0] <= msg.attempt:
                    n.point("step result")
                    d.results[wf] = {**d.results.get(wf, {}), msg.step_id: (
                        msg.attempt, msg.state, msg.outputs, msg.error)}
                    n.compensating.results.ran_in(wf, msg.step_id, msg.state, None)
                p = n.progress.get(wf)
                if p is not None and p.apply_result(msg.step_id, msg.attempt, msg.state,
                                                    msg.outputs, msg.error):
                    self.check_outcome(now, wf)
                    self._start_ready(now, wf)
        elif relayed_by_overtaken_original(n, src, msg):
            # The original's relay of another domain's result, unaware of our later
            # end: told that end, unacknowledged until it follows; never taken for a
            # saga, as a run at the relay's sender (authority_steps.py).
            refused = n.end_notices.tell_overtaken(src, wf)
        else:  # ended here: a step's SUCCEEDED heard only now may owe a compensation
            n.compensating.late_result(now, msg, src)
            # From the original, unaware of our later end: unacknowledged, it comes
            # again until it follows (unless a saga needs it: resent after its end).
            refused = n.end_notices.tell_overtaken(src, wf) and not n.compensating.owes(msg)
        if not refused:
            n.send(src, AckMsg(("result", wf, msg.step_id, n.name), gen=msg.gen))
        entry = n.pending.get(("final", wf, src))
        if entry is not None and entry is told_before \
                and (wf in d.final or n.domain_loss.drives(wf)):
            # The sender has not acknowledged the end told it: told again now, not at
            # the resend's backoff (a domain back after a loss verdict on its step
            # learns the end before it could report to anyone else).
            n.send(src, entry[1])

    def relay_gone_results(self, wf: str, domains: list[str]) -> None:
        """As the coordinator driving `wf`: the SUCCEEDED results of the steps of
        `domains`, gone in the view, relayed to the steps that need them
        (running_owed.py)."""
        relay_gone_results(self.n, wf, domains)

    def on_ack(self, now: float, src: str, msg: AckMsg) -> None:
        n = self.n
        kept = n.pending.acked(msg.msg_id, msg.gen)  # only its own send (pending.py)
        if kept is False:  # an earlier send's: the newer kept is resent until its own
            n.stats["late acknowledgement of an earlier send left the newer"] += 1
            return
        if kept is not None and msg.msg_id[0] == "final":
            wf = msg.msg_id[1]
            n.point("final acked")
            n.state.final_acked[wf] = n.state.final_acked.get(wf, set()) | {src}
            n.mark(wf)
            n.domain_loss.acked(now, wf)  # a loss verdict's end may be made now
            n.replacement.end_acked(wf, src)  # a COMMIT it will never need
            if n.takeover is not None and wf in n.state.late_grants:
                n.takeover.late.acked(wf, src)  # a granter's tell is done
        elif msg.msg_id[0] in ("placed", "made"):  # a placement told, or its COMMIT handed out
            n.replacement.placed_acked(now, src, msg.msg_id, msg.void)
        elif msg.msg_id[0] == "compensated":
            n.compensating.report_acked(msg.msg_id)
        elif msg.msg_id[0] == "saga":  # retention may look at it again (kept_because)
            n.mark(msg.msg_id[1])

    # ---- progress ----------------------------------------------------------------------

    def info(self, wf: str) -> WfInfo:
        # Asked some 20 to 30 times a workflow: `in` and subscripts, not a .get call.
        d = self.n.state
        rows = d.rows
        if wf in rows:
            return rows[wf].info
        return d.info[(wf, d.committed[wf])]

    def resume(self, now: float, wf: str) -> None:
        """Committed here: build its progress from the tables and run what is ready."""
        n = self.n
        d = n.state
        if wf in n.progress or wf in d.final:
            return
        info = self.info(wf)
        p = Progress(info.spec, info.placement, n.name)
        n.progress[wf] = p
        n.placed_here.resumed(wf)  # the steps placed again since, on record
        for step, (attempt, state, outputs, error) in d.results.get(wf, {}).items():
            if step in p.steps and n.domain_loss.deferred(wf, p.steps[step].domain, state,
                                                          error):
                continue  # a loss verdict, taken when its end is made (domain_loss.py)
            p.apply_result(step, attempt, state, outputs, error)
        n.domain_loss.resumed(wf)  # a loss verdict on record holds its end again
        started: dict[str, int] = {}
        for _, step, attempt in d.runs.of(wf):
            started[step] = max(started.get(step, 0), attempt)
        for s in p.local_steps():
            if wf not in n.progress:
                return  # it ended meanwhile
            if s.state in TERMINAL_STEP_STATES:
                self.report(wf, s.id)
            elif started.get(s.id, 0) > s.attempts:  # running when the agent stopped
                p.apply_result(s.id, started[s.id], StepState.RUNNING, {}, "")
                self._step_end(now, wf, s.id, p.interrupted(s.id, INTERRUPTED))
        self.check_outcome(now, wf)
        self._start_ready(now, wf)
        if n.takeover is not None:
            n.takeover.resumed(now, wf)  # its core, told how the view sees its coordinator
        n.domain_loss.resolve_gone(now, wf)  # its steps on members already gone
        n.replacement.retell(wf)  # a COMMIT of a new placement its domain may not have
        n.restart_check.resumed(wf)  # in doubt at a restore: asked about now

    def start_ready(self, now: float, wf: str) -> None:
        """Start what is ready of `wf` here (a step placed again, its inputs told)."""
        self._start_ready(now, wf)

    def report_needs(self, wf: str, step: str) -> None:
        """`step` placed again: the results of its needs run here, to its new domain
        (running_owed.py)."""
        report_needs(self.n, wf, step)

    def _start_ready(self, now: float, wf: str) -> None:
        n = self.n
        p = n.progress.get(wf)
        asks = n.fencing.asks if n.fencing is not None else None
        while p is not None and wf not in n.state.final and not n.cancels.holds_back(wf) \
                and not n.restart_check.holds_back(wf):  # restored, not confirmed yet
            # Out of touch with its coordinator: held, the coordinator asked (start_asks.py).
            check = asks is not None and asks.checks(now, wf)
            errors = {s.id: s.error for s in p.local_steps()} if check else {}
            ready = p.start_ready(now)
            if check:
                ready = asks.let_start(now, wf, p, ready, errors)
            if not ready:
                due = p.next_start_at()
                if due is None:
                    self.pause_due.pop(wf, None)
                else:
                    self.pause_due[wf] = due
                return
            for a in ready:
                run = (wf, a.step_id, a.attempt)
                fenced = n.fencing.starting(now, wf) if n.fencing is not None else None
                if fenced is not None:  # cut off past its lease: never started
                    self.fenced(now, wf, a.step_id, a.attempt, fenced)
                    n.note("step_fenced", run)  # with its FAILED: an attempt that never ran
                    continue
                n.point("step start")
                if run in n.state.runs:  # started before a crash: never again
                    state = p.attempt_ended(a.step_id, a.attempt, False, {}, "interrupted")
                    self._step_end(now, wf, a.step_id, state)
                    continue
                n.state.runs.add(run)
                n.note("step_started", run, now)
                n.out.start.append(run)
                self._tell_start(now, wf, a.step_id, a.attempt, p.steps[a.step_id].epoch)

    def _tell_start(self, now: float, wf: str, step: str, attempt: int, epoch: int) -> None:
        """Its coordinator's status shows the step RUNNING: told once (best effort),
        after the start is written; taken into the coordinator's progress only. Held
        until its result goes there, 0.2 s at most (running_starts.py)."""
        n = self.n
        coordinator = n.takeover.coordinator_now(wf) if n.takeover is not None \
            else self.info(wf).coordinator
        if coordinator != n.name:
            self.starts.hold(now, coordinator,
                             ResultMsg(wf, step, attempt, StepState.RUNNING, {}, "", epoch))

    def fenced(self, now: float, wf: str, step: str, attempt: int, why: str) -> None:
        """Self-fencing stopped this attempt, or refused to start it (self_fencing.py):
        it ends FAILED with `why`, not retried here."""
        p = self.n.progress.get(wf)
        if p is None:
            return  # the workflow ended meanwhile
        p.steps[step].max_attempts = attempt
        self._step_end(now, wf, step, p.attempt_ended(step, attempt, False, {}, why))

    def _step_end(self, now: float, wf: str, step: str, state: StepState,
                  ran_ok: bool = False) -> None:
        n = self.n
        p = n.progress[wf]
        s = p.steps[step]
        if state in TERMINAL_STEP_STATES:
            n.point("step end")
            n.state.results[wf] = {**n.state.results.get(wf, {}),
                                   step: (s.attempts, state, s.outputs, s.error)}
            n.compensating.results.ran_in(wf, step, state, n.name)
        if ran_ok:  # our run's own word, with its result (saga_runs.py)
            n.compensating.runs.succeeded(wf, step, s.attempts, s.epoch,
                                          with_result=state in TERMINAL_STEP_STATES)
        if state in TERMINAL_STEP_STATES:
            hold = n.participant.step_ended(wf, step)
            if hold is not None:
                if hold.steps:
                    n.state.holds[hold.key] = copy_hold(hold)
                else:
                    n.state.holds.pop(hold.key, None)
            self.report(wf, step)
            self.check_outcome(now, wf)

    def report(self, wf: str, step: str) -> None:
        n = self.n
        p = n.progress.get(wf)
        if p is None:
            return
        s = p.steps[step]
        msg = ResultMsg(wf, step, s.attempts, s.state, dict(s.outputs), s.error, s.epoch)
        coordinator = n.takeover.coordinator_now(wf) if n.takeover is not None \
            else self.info(wf).coordinator
        for dst in p.result_recipients(step, coordinator):
            n.reliable(dst, ("result", wf, step, dst), msg)

    # ---- the end -----------------------------------------------------------------------

    def check_outcome(self, now: float, wf: str) -> None:
        n = self.n
        d = n.state
        # After every result and start here: `in` and subscripts, not three .get calls.
        row = d.rows[wf] if wf in d.rows else None
        p = n.progress[wf] if wf in n.progress else None
        if row is None or wf in d.epochs and d.epochs[wf][0] > 0:
            if n.takeover is not None:  # a takeover's coordinator, if acting
                n.takeover.ends.successor_outcome(now, wf)
            return
        if p is None or row.state is not WorkflowState.RUNNING:
            return
        if n.cancels.holds_back(wf):  # a cancel on record ends it, not its steps' outcome
            n.cancels.carry_out(now, wf)
            return
        if n.domain_loss.holds(wf):  # a loss verdict's end, told first (domain_loss.py)
            return
        outcome = p.outcome()
        if outcome is None:
            return
        event = lifecycle.Succeeded() if outcome is Outcome.SUCCEEDED \
            else lifecycle.Failed("; ".join(p.failure_reasons()))  # its status's reason
        if n.domain_loss.tell_end(now, wf, lifecycle.step(row.state, event)):
            return  # told first: made once enough acknowledged it (domain_loss.py)
        n.point("workflow outcome")
        self.end_as_coordinator(now, wf, event)

    def end_as_coordinator(self, now: float, wf: str, event: lifecycle.Event) -> None:
        """As its coordinator (epoch 0), end a RUNNING workflow on `event` (its outcome,
        or a cancel: cancel.py): the row first, then its end here, then the end notice
        to every participant, resent until acknowledged."""
        n = self.n
        d = n.state
        row = d.rows[wf]
        state = lifecycle.step(row.state, event)
        reason = getattr(event, "reason", "")
        d.rows[wf] = replace(row, state=state, reason=reason) if reason \
            else replace(row, state=state)
        n.note("coordinator_ended", wf, 0, state)
        self.end_here(wf, state)
        settled = self.settled(wf)
        # Those that acknowledged this very end told first (domain_loss.py) hold it:
        # not told again, their acknowledgement taken as the made end's would be.
        told = n.domain_loss.acknowledged_as_made(wf, state, settled)
        for dst in sorted(n.replacement.domains_of(wf) - {n.name} - told):
            n.reliable(dst, ("final", wf, dst), FinalMsg(wf, state, settled=settled))
        for dst in sorted(told):
            n.replacement.end_acked(wf, dst)
        n.compensating.ended(now, wf, state)  # a saga's compensations, if it owes any

    def settled(self, wf: str) -> bool:
        """As its coordinator: every participant acknowledged the COMMIT (its record was
        collected), so none is in doubt (FinalMsg.settled; only with retention)."""
        d = self.n.state
        return self.n.retain is not None \
            and not any(d.records[k].commit for k in d.records.of(wf))

    def end_here(self, wf: str, state: WorkflowState) -> None:
        """The workflow is over: stop its steps, release what it holds here."""
        n = self.n
        n.point("workflow over")
        n.state.final[wf] = state
        self.pause_due.pop(wf, None)
        n.replacement.ended(n.now, wf)  # a re-placement round under way aborts
        n.mark(wf, ended=True)
        n.note("ended_here", wf, n.now)
        n.out.status.append((wf, state))
        p = n.progress.pop(wf, None)
        if p is not None:
            # An attempt started in this very turn (its start not handed out yet, as a
            # Cancel in the turn whose COMMIT started it) never starts: the executors
            # would find no step to run. Its start is written, so a restart ends it
            # interrupted, never runs it.
            queued = {run for run in n.out.start if run[0] == wf and len(run) == 3}
            if queued:
                n.out.start[:] = [run for run in n.out.start if run not in queued]
            n.out.stop.extend((wf, s.id, s.attempts) for s in p.local_steps()
                              if s.state is StepState.RUNNING
                              and (wf, s.id, s.attempts) not in queued)
            # Not ended, or ended here with no result of its own (SKIPPED downstream
            # of a failed step): kept as results, its status shows them, not PENDING.
            had = n.state.results.get(wf, {})
            left = [s.id for s in p.steps.values()
                    if s.state not in TERMINAL_STEP_STATES or s.id not in had]
            p.cancel(f"workflow {state.name}")
            if left:
                results = dict(n.state.results.get(wf, {}))
                for step in left:
                    s = p.steps[step]
                    results[step] = (s.attempts, s.state, dict(s.outputs), s.error)
                n.state.results[wf] = results
                for step in left:  # a result replaced here drops its run's record
                    n.compensating.results.ran_in(wf, step, p.steps[step].state, None)
        for h in n.participant.release_workflow(wf):
            n.state.holds.pop(h.key, None)
        n.pending.drop(wf, lambda k, v: k[0] == "result"
                       and not n.compensating.owed_result(state, v[1]))  # a saga needs it
        n.compensating.runs.report_elsewhere(wf, state)  # our runs of steps moved since
        if n.takeover is not None:
            n.takeover.forget(wf)
        if n.fencing is not None:
            n.fencing.forget(wf)
        n.restart_check.forget(wf)
