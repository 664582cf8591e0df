"""Running committed workflows in a simulated agent: step attempts, results, the end.

Theory of operation
-------------------
A mixin of SimAgent. Every agent that knows a committed workflow keeps one
agent.workflow.progress.Progress for it, rebuilt from the disk after a crash
(`_resume`). An attempt's start is recorded on disk under its idempotency key
(workflow, step, attempt) before it runs and is never started again: an attempt
found running after a restart counts as failed. Executors are instant fakes:
the end of an attempt is a simulation event. Results go, resent until
acknowledged, to the coordinator and the owners of downstream steps; the
coordinator decides the outcome and tells every participant, which releases
what the workflow still holds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from fedorch.core.workflow import lifecycle
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, Outcome, Progress, StepState
from fedorch.sim.negotiation.disk import (
    AckMsg,
    FinalMsg,
    ResultMsg,
    WfInfo,
    copy_hold,
)
from fedorch.sim.negotiation.takeover import SimTakeover

if TYPE_CHECKING:
    from fedorch.core.negotiation.participant import Participant
    from fedorch.sim.negotiation.disk import Disk, Timing
    from fedorch.sim.negotiation.world import World


class StepRunner(SimTakeover):
    sim: World
    name: str
    disk: Disk
    t: Timing
    participant: Participant
    progress: dict[str, Progress]
    pending: dict[tuple, list]

    def _point(self, what: str) -> None:
        raise NotImplementedError

    def _send(self, dst: str, msg: object) -> None:
        raise NotImplementedError

    def step_done(self, now: float, wf: str, step: str, attempt: int) -> None:
        p = self.progress.get(wf)
        if p is None:
            return
        ok = self.rng.random() < 0.9
        state = p.attempt_ended(step, attempt, ok, {"by": self.name} if ok else {},
                                "" if ok else "executor failed")
        self._step_end(now, wf, step, state)
        self._start_ready(now, wf)

    def _on_result(self, now: float, src: str, msg: ResultMsg) -> None:
        d = self.disk
        if msg.workflow_id not in d.final:
            known = d.results.setdefault(msg.workflow_id, {}).get(msg.step_id)
            if known is None or known[0] <= msg.attempt:
                self._point("step result")
                d.results[msg.workflow_id][msg.step_id] = (
                    msg.attempt, msg.state, msg.outputs, msg.error)
            p = self.progress.get(msg.workflow_id)
            if p is not None and p.apply_result(msg.step_id, msg.attempt, msg.state,
                                                msg.outputs, msg.error):
                self._check_outcome(now, msg.workflow_id)
                self._start_ready(now, msg.workflow_id)
        self._send(src, AckMsg(("result", msg.workflow_id, msg.step_id, self.name)))

    def _on_final(self, now: float, src: str, msg: FinalMsg) -> None:
        if msg.workflow_id not in self.disk.final:
            self.follow_end(now, msg.workflow_id, msg.epoch, src, msg.state)
            self._end_here(msg.workflow_id, msg.state)
        self._send(src, AckMsg(("final", msg.workflow_id, self.name)))

    def _on_ack(self, now: float, src: str, msg: AckMsg) -> None:
        if self.pending.pop(msg.msg_id, None) is not None and msg.msg_id[0] == "final":
            self._point("final acked")
            self.disk.final_acked.setdefault(msg.msg_id[1], set()).add(src)

    def _info(self, wf: str) -> WfInfo:
        row = self.disk.rows.get(wf)
        if row is not None:
            return row.info
        return self.disk.info[(wf, self.disk.committed[wf])]

    def _resume(self, now: float, wf: str) -> None:
        """Committed here: build its progress from the disk and run what is ready."""
        if wf in self.progress or wf in self.disk.final:
            return
        info = self._info(wf)
        p = Progress(info.spec, info.placement, self.name)
        self.progress[wf] = p
        for step, (attempt, state, outputs, error) in self.disk.results.get(wf, {}).items():
            p.apply_result(step, attempt, state, outputs, error)
        started: dict[str, int] = {}
        for w, step, attempt in self.disk.runs:
            if w == wf:
                started[step] = max(started.get(step, 0), attempt)
        for s in p.local_steps():
            if wf not in self.progress:
                return  # it ended meanwhile
            if s.state in TERMINAL_STEP_STATES:
                self._report(wf, s.id)
            elif started.get(s.id, 0) > s.attempts:  # running when the agent stopped
                p.apply_result(s.id, started[s.id], StepState.RUNNING, {}, "")
                self._step_end(now, wf, s.id, p.interrupted(s.id, "interrupted by a restart"))
        self._check_outcome(now, wf)
        self._start_ready(now, wf)

    def _start_ready(self, now: float, wf: str) -> None:
        p = self.progress.get(wf)
        while p is not None and wf not in self.disk.final:
            ready = p.start_ready()
            if not ready:
                return
            for a in ready:
                run = (wf, a.step_id, a.attempt)
                self._point("step start")
                if run in self.disk.runs:  # started before a crash: never again
                    state = p.attempt_ended(a.step_id, a.attempt, False, {}, "interrupted")
                    self._step_end(now, wf, a.step_id, state)
                    continue
                self.disk.runs.add(run)
                self.sim.checker.step_started(self.name, run, now)
                self.sim.schedule_step(self, run, self.rng.uniform(0.05, 0.6))

    def _step_end(self, now: float, wf: str, step: str, state: StepState) -> None:
        p = self.progress[wf]
        s = p.steps[step]
        if state in TERMINAL_STEP_STATES:
            self._point("step end")
            self.disk.results.setdefault(wf, {})[step] = (s.attempts, state, s.outputs, s.error)
            hold = self.participant.step_ended(wf, step)
            if hold is not None:
                if hold.steps:
                    self.disk.holds[hold.key] = copy_hold(hold)
                else:
                    self.disk.holds.pop(hold.key, None)
            self._report(wf, step)
            self._check_outcome(now, wf)

    def _report(self, wf: str, step: str) -> None:
        p = self.progress.get(wf)
        if p is None:
            return
        s = p.steps[step]
        msg = ResultMsg(wf, step, s.attempts, s.state, dict(s.outputs), s.error)
        for dst in p.result_recipients(step, self.coordinator_now(wf)):
            self._reliable(dst, ("result", wf, step, dst), msg)

    def _check_outcome(self, now: float, wf: str) -> None:
        row = self.disk.rows.get(wf)
        p = self.progress.get(wf)
        if row is None or self.disk.epochs.get(wf, (0, ""))[0] > 0:
            self.successor_outcome(now, wf)  # a takeover's coordinator, if acting here
            return
        if p is None or row.state is not WorkflowState.RUNNING:
            return
        outcome = p.outcome()
        if outcome is None:
            return
        self._point("workflow outcome")
        event = lifecycle.Succeeded() if outcome is Outcome.SUCCEEDED else lifecycle.Failed()
        state = lifecycle.step(row.state, event)
        self.disk.rows[wf] = replace(row, state=state)
        self.sim.checker.coordinator_ended(self.name, wf, 0, state)
        self._end_here(wf, state)
        for dst in sorted(set(row.info.placement.values()) - {self.name}):
            self._reliable(dst, ("final", wf, dst), FinalMsg(wf, state))

    def _end_here(self, wf: str, state: WorkflowState) -> None:
        """The workflow is over: stop its steps, release what it holds here."""
        self._point("workflow over")
        self.disk.final[wf] = state
        self.sim.checker.ended_here(self.name, wf, self.sim.now)
        p = self.progress.pop(wf, None)
        if p is not None:
            p.cancel(f"workflow {state.name}")
        for h in self.participant.release_workflow(wf):
            self.disk.holds.pop(h.key, None)
        self.pending = {k: v for k, v in self.pending.items()
                        if not (k[0] == "result" and k[1] == wf)}

    def _reliable(self, dst: str, msg_id: tuple, msg: object) -> None:
        """Send until acknowledged (resends are in memory; boot() re-reports from disk)."""
        self.pending[msg_id] = [dst, msg, self.sim.now + self.t.reliable_resend_s,
                                self.t.reliable_resend_s]
        self._send(dst, msg)
