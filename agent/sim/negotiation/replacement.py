"""A seeded schedule of domain deaths and step re-placement, on the real cores.

Theory of operation
-------------------
A small discrete-event world of its own: one coordinator that never dies and a few
worker domains offering one capability, each worker with the real Participant core
(reservations with leases) and a Progress per workflow it takes part in, the
coordinator with the real Coordinator core (classic two-phase commit, as
re-placement rounds run in the agent) and Progress. Messages are delayed at random
and a dead domain neither sends nor receives. Workers are SIGKILLed at random times,
before, during or after the steps they hold (their step processes die with them);
the coordinator sees each death `dead_after_s` later (membership DEAD), resolves the
lost steps through the loss table (Progress.domain_lost) and runs one new round per
step to place again (Coordinator with `first_round` after the rounds used, a placer
that keeps the other steps and excludes every domain the step was lost on), exactly
the path of agent/runtime/replacement.py: on COMMIT the step is placed again
(Progress.placed_again, its epoch the round's number) at the coordinator, the new
domain and every other live domain; on ABORT it FAILS (replacement_failed).

Workflows are chains of steps, each idempotent or not at random, some with retries.
The checks (agent/sim/negotiation/replacement_check.py, `check_replacement`) run at the end of
each seed: no step that is not idempotent runs in two placements and no attempt runs
twice; no two placements of a step run at once beyond one lease; every workflow is
terminal at the coordinator and at every live worker; no live worker holds a
reservation.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from fedorch.core.negotiation.coordinator import (
    Coordinator,
    Finished,
    PersistDecision,
    SendDecision,
    SendPrepare,
    VoteIn,
)
from fedorch.core.negotiation.participant import Participant
from fedorch.core.workflow.domain_loss import LossAction, not_replaced_reason
from fedorch.core.workflow.placement import Candidate, place
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, Progress, StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation.epoch_pieces import candidate
from fedorch.sim.negotiation.replacement_check import check_replacement
from fedorch.sim.negotiation.timeline import Timeline

CO = "co"
CAP = "work"


@dataclass
class Run:
    """One attempt of a step, as run by a worker: the checks' record of side effects."""

    workflow: str
    step: str
    domain: str
    attempt: int
    idempotent: bool
    start: float
    end: float | None = None
    completed: bool = False


@dataclass
class Worker:
    name: str
    participant: Participant
    progress: dict[str, Progress] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    alive: bool = True


@dataclass
class Flow:
    """A workflow as the coordinator holds it."""

    spec: spec_pb2.WorkflowSpec
    progress: Progress | None = None
    core: Coordinator | None = None
    ended: bool = False
    last_round: int = 0
    replacing: str = ""  # the step a re-placement round is placing, if any
    submitted_at: float = 0.0
    ended_at: float | None = None  # at the coordinator


class ReplacementWorld:
    def __init__(self, seed: int, *, workers: int = 4, workflows: int = 3,
                 lease_s: float = 4.0, dead_after_s: float = 0.6) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.timeline = Timeline()
        self.lease_s = lease_s
        self.dead_after_s = dead_after_s
        policy = config_pb2.Policy(accept_from=["*"])
        self.workers = {
            f"w{i}": Worker(f"w{i}", Participant(f"w{i}", policy, {CAP: 4}, lease_s=lease_s,
                                                 query_interval_s=1.0))
            for i in range(workers)}
        self.dead_seen: set[str] = set()
        self.flows: dict[str, Flow] = {}
        self.runs: list[Run] = []
        self.stats: Counter[str] = Counter()
        self.step_time_s = (0.2, 2.0)  # how long an attempt runs (uniform)
        self.last_fault = 0.0  # a death, a cut or its healing: the bound counts from here
        for i in range(workflows):
            self._at(self.rng.uniform(0.0, 1.0), self._submit, f"co.{i}", self._spec())
        for victim in self.rng.sample(sorted(self.workers), self.rng.choice([1, 1, 2])):
            self._at(self.rng.uniform(0.1, 3.0), self._kill, victim)

    # ---- the schedule ----------------------------------------------------------------

    def _spec(self) -> spec_pb2.WorkflowSpec:
        steps = []
        for i in range(self.rng.randint(1, 3)):
            steps.append(spec_pb2.StepSpec(
                id=f"s{i}", capability=CAP, needs=[f"s{i - 1}"] if i else [],
                idempotent=self.rng.random() < 0.5, retries=self.rng.choice([0, 0, 1]),
                on_domain_loss="fail" if self.rng.random() < 0.1 else "replace"))
        return spec_pb2.WorkflowSpec(name="chain", steps=steps)

    def run(self, until: float = 120.0) -> ReplacementWorld:
        self.timeline.run(until)
        check_replacement(self)
        return self

    @property
    def now(self) -> float:
        return self.timeline.now

    def _at(self, when: float, fn, *args) -> None:
        self.timeline.at(when, fn, *args)

    def _send(self, src: str, dst: str, fn, *args) -> None:
        self.timeline.deliver(self.rng.uniform(0.005, 0.08), src, dst, self._alive, fn, *args)

    def _alive(self, name: str) -> bool:
        return name == CO or self.workers[name].alive

    def _kill(self, name: str) -> None:
        worker = self.workers[name]
        worker.alive = False
        self.last_fault = self.now
        for run in self.runs:  # its step processes die with it (PR_SET_PDEATHSIG)
            if run.domain == name and run.end is None:
                run.end = self.now
                self.stats["killed during a step"] += 1
        self._at(self.now + self.dead_after_s, self._dead, name)

    # ---- the coordinator ---------------------------------------------------------------

    def _candidates(self) -> list[Candidate]:
        return [candidate(w, CAP, 4, w not in self.dead_seen) for w in sorted(self.workers)]

    def _submit(self, wf: str, spec: spec_pb2.WorkflowSpec) -> None:
        flow = self.flows[wf] = Flow(spec, submitted_at=self.now)

        def placer(excluded):
            return place(spec, self._candidates(), coordinator=CO, excluded=excluded)

        self._drive(wf, flow, Coordinator(wf, placer=placer, max_rounds=3,
                                          prepare_timeout_s=1.0), None)

    def _drive(self, wf: str, flow: Flow, core: Coordinator, step: str | None) -> None:
        flow.core = core
        core.start(self.now)
        self._act(wf, flow, core, step)

    def _act(self, wf: str, flow: Flow, core: Coordinator, step: str | None) -> None:
        for action in core.next_actions():
            if isinstance(action, SendPrepare):
                self._send(CO, action.domain, self._prepare, wf, flow, action)
            elif isinstance(action, PersistDecision) and action.commit and step is not None:
                self._placed_again(wf, flow, step, action)
            elif isinstance(action, SendDecision):
                decided = core.decision(action.round)
                assert decided is not None
                # A re-placement's COMMIT carries the whole placement, the step and its
                # inputs that had SUCCEEDED (as the runtime's Replacement does).
                replaced = None
                placement = core.placement
                if step is not None and flow.progress is not None:
                    placement = self._current_placement(flow)
                    s = flow.progress.steps[step]
                    done = [n for n in s.needs
                            if flow.progress.steps[n].state is StepState.SUCCEEDED]
                    replaced = (step, s.lost_to, done)
                self._send(CO, action.domain, self._decide, action.domain, wf, action.round,
                           decided.commit, placement, replaced)
            elif isinstance(action, Finished):
                self._finished(wf, flow, core, step, action)
        timer = core.get_timer()
        if timer is not None and flow.core is core:
            self._at(timer, self._timer, wf, flow, core, step)

    def _timer(self, wf: str, flow: Flow, core: Coordinator, step: str | None) -> None:
        if flow.core is core and (core.get_timer() or 0) <= self.now:
            core.handle_timer(self.now)
            self._act(wf, flow, core, step)

    def _vote(self, wf: str, flow: Flow, vote: VoteIn, step: str | None) -> None:
        core = flow.core
        if core is None or core.workflow_id != wf:
            return
        try:
            core.receive_vote(self.now, vote)
        except Exception:  # a late vote of an earlier core: nothing to do
            return
        self._act(wf, flow, core, step)

    def _current_placement(self, flow: Flow) -> dict[str, str]:
        return {s.id: s.domain for s in flow.progress.steps.values()} if flow.progress else {}

    def _finished(self, wf: str, flow: Flow, core: Coordinator, step: str | None,
                  fin: Finished) -> None:
        flow.core = None
        flow.last_round = max(flow.last_round, core.round)
        if step is None:  # the first admission
            if fin.committed:
                flow.progress = Progress(flow.spec, fin.placement, CO)
                for lost in sorted(self.dead_seen & set(fin.placement.values())):
                    self._lose(wf, flow, lost)
            else:
                flow.ended, flow.ended_at = True, self.now
                self.stats["admission aborted"] += 1
            return
        flow.replacing = ""
        if fin.committed:
            self.stats["re-placed"] += 1
        else:
            progress = flow.progress
            s = progress.steps[step]
            progress.replacement_failed(step, not_replaced_reason(
                s.lost_to, progress.may_have_started(step), fin.reason, s.lost_as))
            self.stats["re-placement failed"] += 1
        self._after_progress(wf, flow)

    def _dead(self, name: str) -> None:
        self.dead_seen.add(name)
        for wf, flow in sorted(self.flows.items()):
            if flow.progress is not None and not flow.ended:
                self._lose(wf, flow, name)

    def _lose(self, wf: str, flow: Flow, name: str) -> None:
        resolved = flow.progress.domain_lost(name, can_replace=True)
        for step, action in resolved:
            self.stats[f"loss {action.value}"] += 1
            if action is LossAction.REPLACE:
                self.stats["replace when it may have started"
                           if flow.progress.may_have_started(step)
                           else "replace before start"] += 1
        self._after_progress(wf, flow)

    def _after_progress(self, wf: str, flow: Flow) -> None:
        """End the workflow when its outcome is known, else place the next lost step."""
        progress = flow.progress
        if flow.ended or progress is None:
            return
        if progress.outcome() is not None:
            flow.ended, flow.ended_at = True, self.now
            progress.cancel("workflow over")
            if flow.core is not None:  # a round under way: its ABORT releases its holds
                flow.core.cancel(self.now, "workflow over")
                self._act(wf, flow, flow.core, flow.replacing or None)
            for w in sorted(self.workers):
                self._send(CO, w, self._end_at, w, wf)
            return
        waiting = progress.awaiting_placement()
        if waiting and flow.core is None:
            step = waiting[0]
            flow.replacing = step
            lost = {progress.steps[step].lost_to, *progress.steps[step].replaced_from}
            fixed = {s.id: s.domain for s in progress.steps.values()
                     if s.domain and s.id != step}

            def placer(excluded):
                refused = {k: set(v) for k, v in excluded.items()}
                refused.setdefault(step, set()).update(lost)
                full = place(flow.spec, self._candidates(), coordinator=CO, excluded=refused,
                             fixed=fixed)
                return OneStep(step, full)

            self._drive(wf, flow, Coordinator(wf, placer=placer, max_rounds=2,
                                              prepare_timeout_s=1.0,
                                              first_round=flow.last_round + 1), step)

    def _placed_again(self, wf: str, flow: Flow, step: str, action: PersistDecision) -> None:
        new = action.placement[step]
        lost = flow.progress.steps[step].lost_to
        flow.progress.placed_again(step, new, action.round, lost)
        placement = self._current_placement(flow)
        for w in sorted(set(placement.values()) - {new, ""}):  # the others hear it too
            self._send(CO, w, self._moved, w, wf, step, new, action.round, lost, placement)

    def _result_at_coordinator(self, wf: str, src: str, step: str, attempt: int,
                               state: StepState, epoch: int) -> None:
        flow = self.flows[wf]
        progress = flow.progress
        if progress is None or flow.ended:
            return
        if progress.refuse_result(step, src, epoch) is not None \
                or progress.steps[step].domain != src:
            self.stats["fenced report refused"] += 1
            return
        if progress.apply_result(step, attempt, state, {}, ""):
            self._after_progress(wf, flow)

    # ---- a worker ---------------------------------------------------------------------

    def _prepare(self, wf: str, flow: Flow, action: SendPrepare) -> None:
        worker = self.workers[action.domain]
        out = worker.participant.prepare(
            self.now, workflow_id=wf, round=action.round, coordinator=CO, data_labels={},
            steps=[(s, CAP) for s in action.steps])
        vote = VoteIn(action.round, worker.name, out.yes, out.reason, b"")
        step = flow.replacing or None
        self._send(worker.name, CO, self._vote, wf, flow, vote, step)

    def _decide(self, name: str, wf: str, round_: int, commit: bool,
                placement: dict[str, str], replaced: tuple | None) -> None:
        worker = self.workers[name]
        if worker.participant.status((wf, round_)) is None:
            if not commit:  # remembered: a PREPARE it overtook cannot reserve later
                worker.participant.decide(self.now, wf, round_, False)
            return
        worker.participant.decide(self.now, wf, round_, commit)
        if not commit:
            return
        if wf in worker.ended:  # its end came first: nothing to run
            worker.participant.release_workflow(wf)
            return
        progress = worker.progress.get(wf)
        if progress is None:
            progress = worker.progress[wf] = Progress(self.flows[wf].spec, placement, name)
        if replaced is not None:
            step, lost, done = replaced
            if progress.placed_again(step, name, round_, lost) \
                    and progress.steps[step].state in TERMINAL_STEP_STATES:
                # Run here already, from another round's COMMIT that named this placement
                # first: its report went under the epoch then known (refused); again now.
                self._report(worker, wf, step)
            for other, domain in placement.items():
                if not progress.steps[other].domain:
                    progress.steps[other].domain = domain
            for need in done:
                attempts = max(progress.steps[need].attempts, 1)
                progress.apply_result(need, attempts, StepState.SUCCEEDED, {}, "")
        self._start_ready(worker, wf)

    def _moved(self, name: str, wf: str, step: str, new: str, round_: int, lost: str,
               placement: dict[str, str], tries: int = 0) -> None:
        worker = self.workers[name]
        progress = worker.progress.get(wf)
        if progress is None and wf not in worker.ended and tries < 20:
            # Not set up here yet (its COMMIT on the way): asked to retry, as the runtime's
            # answer says.
            self._send(CO, name, self._moved, name, wf, step, new, round_, lost, placement,
                       tries + 1)
            return
        if progress is not None:
            progress.placed_again(step, new, round_, lost)
            for need in progress.steps[step].needs:  # our results it needs, to it too
                if progress.steps[need].domain == name \
                        and progress.steps[need].state is StepState.SUCCEEDED:
                    self._report(self.workers[name], wf, need)

    def _start_ready(self, worker: Worker, wf: str) -> None:
        progress = worker.progress.get(wf)
        if progress is None or not worker.alive:
            return
        for attempt in progress.start_ready():
            s = progress.steps[attempt.step_id]
            run = Run(wf, attempt.step_id, worker.name, attempt.attempt, s.idempotent,
                      self.now)
            self.runs.append(run)
            self._at(self.now + self.rng.uniform(*self.step_time_s), self._step_done, worker,
                     wf, run, s.epoch)

    def _step_done(self, worker: Worker, wf: str, run: Run, epoch: int) -> None:
        progress = worker.progress.get(wf)
        if not worker.alive or run.end is not None or progress is None:
            return
        run.end, run.completed = self.now, True
        ok = self.rng.random() < 0.9
        state = progress.attempt_ended(run.step, run.attempt, ok, {}, "" if ok else "failed")
        if state in TERMINAL_STEP_STATES:
            worker.participant.step_ended(wf, run.step)
            self._report(worker, wf, run.step)
        self._start_ready(worker, wf)

    def _report(self, worker: Worker, wf: str, step: str) -> None:
        progress = worker.progress[wf]
        s = progress.steps[step]
        self._send(worker.name, CO, self._result_at_coordinator, wf, worker.name, step,
                   s.attempts, s.state, s.epoch)
        for dst in progress.result_recipients(step, CO):
            if dst != CO:
                self._send(worker.name, dst, self._result_at_worker, dst, wf, worker.name,
                           step, s.attempts, s.state, s.epoch)

    def _result_at_worker(self, name: str, wf: str, src: str, step: str, attempt: int,
                          state: StepState, epoch: int) -> None:
        progress = self.workers[name].progress.get(wf)
        if progress is None or progress.refuse_result(step, src, epoch) is not None \
                or progress.steps[step].domain != src:
            return
        if progress.apply_result(step, attempt, state, {}, ""):
            self._start_ready(self.workers[name], wf)

    def _end_at(self, name: str, wf: str) -> None:
        worker = self.workers[name]
        worker.ended.add(wf)
        progress = worker.progress.get(wf)
        if progress is not None:
            progress.cancel("workflow over")
        worker.participant.release_workflow(wf)


@dataclass
class OneStep:
    """The placement a re-placement round proposes: its one step (Placer protocol)."""

    assignment: dict[str, str]
    unplaceable: dict[str, str]

    def __init__(self, step: str, full) -> None:
        self.assignment = {step: full.assignment[step]} if step in full.assignment else {}
        self.unplaceable = {} if self.assignment else {
            step: full.unplaceable.get(step, "no eligible domain")}

    @property
    def ok(self) -> bool:
        return not self.unplaceable


def run(seed: int) -> ReplacementWorld:
    """One seeded schedule, checked (SimulationFailure names the seed)."""
    return ReplacementWorld(seed).run()
