"""Partitions in the re-placement schedule: a cut-off domain fences its own steps.

Theory of operation
-------------------
A ReplacementWorld (agent/sim/negotiation/replacement.py) in which workers are also
cut off for a while, alive but hearing nothing and heard by no one: every message to
or from a cut worker is lost, at sending or at arrival. The coordinator sees a cut
worker DEAD `dead_after_s` after the cut (membership) and resolves its steps as for a
death: an idempotent step that had started there is placed again elsewhere, so two
copies of it may run. The cut worker, in its own view, sees every other domain DEAD
after the same delay and runs the self-fencing rule of the agent
(agent/core/workflow/self_fencing.py) every `FENCE_LOOK_S` and, as the agent's timer
does, at the rule's `next_look` (so a fence falls at its deadline, not up to a look
later): an attempt past its deadline is stopped and its step ends FAILED with the
rule's reason, not retried here, as the agent's shell does
(agent/runtime/self_fencing.py). The rule reads what the agent's does: the last message
the worker received (every message here is from the coordinator or a participant, so
all of them are contact, as membership's `last_heard` is in the agent) and, per
workflow, the `WorkflowHeard` moment the agent keeps (the workflow's first start here,
at its COMMIT or a result it needed; never a later start). An attempt about to start
when the rule fences its workflow already (a retry or the next step of a chain here,
started by a local end while cut off, past the lease since the last message) is never
run: it ends fenced at once, as the agent's StepRuns does when `refusal` says so (a run
of no length in the check).
Attempts here run up to three leases, so that without fencing two copies would
overlap for longer than a lease. When the cut heals, the coordinator sends the worker
the end of every workflow that ended meanwhile (the notices it lost), then the decision
of every round the worker still holds PREPARED, in doubt (its query at the lease),
once the workflow has ended (its end sent first). A COMMIT of a round whose workflow
is still running is learned from the acceptors (`acceptor_commits`: Paxos Commit's
recovery ballot, the coordinator unreachable or its lease past), not from the
coordinator, so it says nothing of the placements made since: under the rule
(`learned_commit_rule`, agent/core/workflow/self_fencing.py, A COMMIT learned without
the coordinator) the workflow is set up `not_heard`, nothing of it starts, and the
worker asks the coordinator as a restarted one does (the answer with each step's
placement epoch). With `learned_commit_rule=False` the COMMIT is contact, as before,
and what is ready starts at once with a whole lease, beside the replacement placed
while the worker was cut; the check fires (tests/sim/negotiation/test_fencing.py
names the seeds). With `commit_cuts`, a targeted schedule: a worker is cut at the
moment the coordinator sends it a COMMIT (at most once a run, a random of its own),
so that it holds a YES and learns the COMMIT only after the cut heals, the workflow
often still running and its steps placed elsewhere meanwhile.

Restarts: half the cut workers restart while cut (a random of their own, so the rest
of the schedule is the same with or without): their step processes die, their
membership view and their workflows' heard moments are blank, their interrupted
attempts end (retried when idempotent with attempts left), and, under the rule
(`restart_rule`, agent/core/workflow/self_fencing.py, After a restart), each of their
workflows is `restored`: nothing of it starts until the worker hears from it. Healed,
the worker asks the coordinator about each workflow held back; the answer carries the
end, or each step's placement epoch, as the agent's QueryDecision answer does: with an
epoch above its own for an unfinished step here, nothing starts and it asks again a
second later; else the answer is a message of this life and what is ready starts.
With `restart_rule=False` the retry starts at the restart with a whole lease (the
code before), and the check fires (seed 4576); with `answer_epochs=False` any answer
is contact, whatever it says of the placement, and the check fires too (seed 1219: the
retry starts at the answer, beside the replacement placed while the worker was cut).

The check (check_replacement) holds "no step runs in two domains at once beyond one
lease" per (workflow, step) over every attempt's interval; `self_fencing=False` turns
the rule off, and the check must then fire (tests/sim/negotiation/test_fencing.py).

Clock steps: each cut worker's wall clock steps once while it is cut (+-2 s or +-1 h,
drawn apart from the schedule, at most a lease after the cut), and the worker reads the
rule's three times (its workflow's heard moment, the last message heard, now) off its
clock: the monotonic one, as the agent does (the simulation's time, which never steps),
or, with `fence_clock="wall"`, a broken agent's wall clock. Every fence is checked at
once, in true time, against `clock_check.fenced_early`: never before the lease has run
from the later of the workflow's heard moment here (passed as its `started`) and the
last message the worker received
(tests/sim/negotiation/test_clock_check.py catches the wall-clock variant).
"""

from __future__ import annotations

import random

from fedorch.core.workflow import self_fencing
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, StepState
from fedorch.core.workflow.self_fencing import WorkflowHeard
from fedorch.sim.negotiation.clock_check import CLOCK_STEPS_S, fenced_early
from fedorch.sim.negotiation.replacement import CO, ReplacementWorld, Run
from fedorch.sim.negotiation.replacement_check import ReplacementFailure

FENCE_LOOK_S = 0.25  # a cut worker evaluates the rule this often (the agent: a timer)


class PartitionedWorld(ReplacementWorld):
    def __init__(self, seed: int, *, self_fencing: bool = True, fence_clock: str = "monotonic",
                 restarts: bool = True, restart_rule: bool = True, answer_epochs: bool = True,
                 acceptor_commits: bool = True, learned_commit_rule: bool = True,
                 commit_cuts: bool = False, **kw) -> None:
        super().__init__(seed, **kw)
        if fence_clock not in ("monotonic", "wall"):
            raise ValueError(f"fence_clock is monotonic or wall, not {fence_clock!r}")
        self.self_fencing = self_fencing
        self.fence_clock = fence_clock
        self.step_time_s = (0.2, 3 * self.lease_s)
        self.cut: dict[str, float] = {}      # worker -> since when it is cut off
        self.heard_at: dict[str, float] = {}  # worker -> the last message it received
        self.decisions: dict[tuple[str, str, int], tuple] = {}  # (worker, wf, round) -> args
        # Each fenced attempt, the last message its worker heard, its workflow's heard moment.
        self.fences: list[tuple[Run, float | None, float]] = []
        self.workflow_heard: dict[str, WorkflowHeard] = {
            name: WorkflowHeard() for name in self.workers}
        self.restart_rule = restart_rule
        self.answer_epochs = answer_epochs  # False: an answer is contact, whatever it says
        self.acceptor_commits = acceptor_commits  # running workflows' COMMITs, learned late
        self.learned_commit_rule = learned_commit_rule  # False: such a COMMIT is contact
        # A cut at a COMMIT's sending (a random of its own: the schedule below is the same).
        self.commit_cuts = random.Random(seed * 65_537 + 17) if commit_cuts else None
        self.restarted: set[str] = set()  # workers whose membership view is blank
        self.held: set[tuple[str, str]] = set()  # (worker, workflow) held back since
        cuts = []
        for victim in self.rng.sample(sorted(self.workers), self.rng.choice([1, 2])):
            start = self.rng.uniform(0.5, 4.0)
            heal = start + self.rng.uniform(1.5, 4.0) * self.lease_s
            cuts.append((victim, start, heal))
            self._at(start, self._cut, victim)
            self._at(heal, self._heal, victim)
        # Restarts while cut (a random of its own: the schedule above is the same).
        again = random.Random(seed * 104_729 + 5)
        for victim, start, heal in cuts:
            if restarts and again.random() < 0.5:
                self._at(again.uniform(start + 0.5 * self.lease_s, heal - 0.1),
                         self._restart, victim)
        # A random of its own, so that the schedule above is the same with or without.
        steps = random.Random(seed * 7_927 + 11)
        self.clock_steps: dict[str, list[tuple[float, float]]] = {}  # worker -> (at, s)
        for victim, start, _ in cuts:
            step_s = steps.choice(CLOCK_STEPS_S)
            self.clock_steps.setdefault(victim, []).append(
                (start + steps.uniform(0.0, self.lease_s), step_s))
            self.stats[f"clock stepped {step_s:+g} s"] += 1

    def _send(self, src: str, dst: str, fn, *args) -> None:
        if fn == self._decide:  # kept, to be sent again to a worker that lost it
            self.decisions[(args[0], args[1], args[2])] = args
            cuts = self.commit_cuts
            if cuts is not None and args[3] and dst not in self.cut \
                    and self.workers[dst].alive and cuts.random() < 0.15:
                self.commit_cuts = None  # once a run
                self.stats["cut at its COMMIT"] += 1
                self._cut(dst)
                self._at(self.now + cuts.uniform(1.5, 4.0) * self.lease_s, self._heal, dst)
        if src in self.cut or dst in self.cut:
            self.stats["message lost to a partition"] += 1
            return

        def arrive() -> None:
            if src in self.cut or dst in self.cut:
                return
            if dst != CO:
                self.heard_at[dst] = self.now
            fn(*args)
        super()._send(src, dst, arrive)

    def _cut(self, name: str) -> None:
        if not self.workers[name].alive or name in self.cut:
            return
        self.cut[name] = self.now
        self.last_fault = self.now
        self.stats["partition"] += 1
        self._at(self.now + self.dead_after_s, self._dead, name)  # the coordinator's view
        self._at(self.now + FENCE_LOOK_S, self._fence_look, name)

    def _heal(self, name: str) -> None:
        if self.cut.pop(name, None) is None:
            return
        self.last_fault = self.now
        for wf, flow in sorted(self.flows.items()):
            if flow.ended:  # the end notice it lost, sent again
                self._send(CO, name, self._end_at, name, wf)
        self._at(self.now + 0.1, self._in_doubt, name)  # after the ends have arrived
        self._at(self.now + 0.1, self._ask_held, name)

    # ---- restarts (self-fencing after a restart) ----------------------------------------

    def _restart(self, name: str) -> None:
        """The cut worker's agent restarts: its step processes die with it, its
        membership view and its workflows' heard moments are blank, its interrupted
        attempts end (retried when idempotent with attempts left), and, under the rule,
        each of its workflows is `restored`: nothing of it starts until heard from."""
        worker = self.workers[name]
        if name not in self.cut or not worker.alive:
            return
        self.stats["restart while cut"] += 1
        for run in self.runs:
            if run.domain == name and run.end is None:
                run.end = self.now
        self.heard_at.pop(name, None)
        self.restarted.add(name)
        heard = self.workflow_heard[name] = WorkflowHeard()
        for wf, progress in sorted(worker.progress.items()):
            if wf in worker.ended:
                continue
            if self.restart_rule:
                heard.restored(wf)
            for step in progress.local_steps():
                if step.state is StepState.RUNNING:
                    state = progress.interrupted(step.id, "interrupted by an agent restart")
                    if state in TERMINAL_STEP_STATES:
                        worker.participant.step_ended(wf, step.id)
                        self._report(worker, wf, step.id)
        for wf in sorted(worker.progress):
            self._start_ready(worker, wf)

    def _ask_held(self, name: str) -> None:
        """The healed worker asks the coordinator about each workflow held back."""
        for worker, wf in sorted(self.held):
            if worker == name:
                self._send(name, CO, self._answer_query, name, wf)

    def _answer_query(self, name: str, wf: str) -> None:
        """The coordinator's answer: the end, or each step's placement epoch."""
        flow = self.flows[wf]
        if flow.ended or flow.progress is None:
            self._send(CO, name, self._end_at, name, wf)
            return
        epochs = {s.id: s.epoch for s in flow.progress.steps.values()}
        self._send(CO, name, self._answered, name, wf, epochs)

    def _answered(self, name: str, wf: str, epochs: dict[str, int]) -> None:
        worker = self.workers[name]
        progress = worker.progress.get(wf)
        if progress is None or wf in worker.ended:
            self.held.discard((name, wf))
            return
        if self.answer_epochs and any(
                epochs.get(s.id, s.epoch) > s.epoch for s in progress.local_steps()
                if s.state not in TERMINAL_STEP_STATES):
            self.stats["restart: steps placed elsewhere, none started"] += 1
            self._at(self.now + 1.0, self._send, name, CO, self._answer_query, name, wf)
            return
        self.held.discard((name, wf))
        self.workflow_heard[name].heard(wf, self.now)
        self.stats["restart: heard, started"] += 1
        self._start_ready(worker, wf)

    def _in_doubt(self, name: str) -> None:
        """The healed worker's holds still PREPARED: their decisions, once their workflow
        has ended (its end sent first); looked at again until none is left."""
        worker = self.workers[name]
        if name in self.cut or not worker.alive:
            return
        doubt = [h.key for h in worker.participant.holds() if h.state.value == "prepared"]
        for wf, round_ in doubt:
            args = self.decisions.get((name, wf, round_))
            if args is not None and self.acceptor_commits and not self.flows[wf].ended \
                    and wf not in worker.ended and args[3]:
                self._learned_from_acceptors(name, args)
                continue
            if args is not None and self.flows[wf].ended:
                if wf not in worker.ended:
                    self._send(CO, name, self._end_at, name, wf)
                    continue  # the decision next time, after the end
                self._send(CO, name, self._decide, *args)
        if doubt:
            self._at(self.now + 1.0, self._in_doubt, name)

    def _learned_from_acceptors(self, name: str, args: tuple) -> None:
        """The healed worker learns a COMMIT of a running workflow from the acceptors,
        not from the coordinator: set up, and under the rule held back until the
        coordinator answers with each step's placement epoch."""
        wf = args[1]
        self.stats["COMMIT learned from the acceptors"] += 1
        if self.learned_commit_rule:
            self.workflow_heard[name].not_heard(wf)
        self._decide(*args)
        if (name, wf) in self.held:
            self._send(name, CO, self._answer_query, name, wf)

    def _start_ready(self, worker, wf: str) -> None:
        """Start what is ready, as the agent's StepRuns does: an attempt the rule already
        fences (its workflow's lease since the last contact is over) ends at once."""
        if not self.workflow_heard[worker.name].may_start(wf):
            self.held.add((worker.name, wf))  # restored, not heard from in this life
            return
        new = len(self.runs)
        super()._start_ready(worker, wf)
        for run in self.runs[new:]:
            heard_at = self.workflow_heard[worker.name].starting(wf, self.now)
            heard = self.heard_at.get(worker.name)
            read = self._reader(worker.name)
            if self.self_fencing and run.end is None and self_fencing.fenced(
                    self._contacts(worker.name, heard, read), read(heard_at), self.lease_s,
                    read(self.now)):
                self.stats["fenced before it started"] += 1
                self._fence(worker, run, heard)

    def _contacts(self, name: str, heard: float | None, read) -> list[self_fencing.Contact]:
        """The worker's contacts as its membership sees them (the coordinator)."""
        since = self.cut.get(name)
        state = "ALIVE" if since is None else \
            "DEAD" if self.now - since >= self.dead_after_s else "SUSPECT"
        if name in self.restarted and heard is None:
            state = ""  # restarted, nothing heard since: unknown to its membership
        return [self_fencing.Contact(CO, state, None if heard is None else read(heard))]

    def _fence_look(self, name: str) -> None:
        """The cut worker's self-fencing timer: its contacts as its membership sees them."""
        since = self.cut.get(name)
        worker = self.workers[name]
        if since is None or not worker.alive:
            return
        heard = self.heard_at.get(name)
        read = self._reader(name)
        contacts = self._contacts(name, heard, read)
        look = self.now + FENCE_LOOK_S
        for run in self.runs:
            if run.domain != name or run.end is not None:
                continue
            if not self.self_fencing:
                continue
            heard_at = read(self.workflow_heard[name].starting(run.workflow, run.start))
            if self_fencing.fenced(contacts, heard_at, self.lease_s, read(self.now)):
                self._fence(worker, run, heard)
                continue
            # The agent's watcher arms its timer at the rule's next look (not a poll): a
            # look at that moment too, so that a fence is not later than the agent's. A
            # timer runs its delay in true time, whatever the clock read says.
            due = self_fencing.next_look(contacts, heard_at, self.lease_s, read(self.now))
            look = min(look, self.now + (due - read(self.now)))
        self._at(look, self._fence_look, name)

    def _reader(self, name: str):
        """How the worker reads a true instant off the clock its rule uses: the monotonic
        clock reads true time; a wall clock adds the steps made by then."""
        if self.fence_clock == "monotonic":
            return lambda at: at
        steps = self.clock_steps.get(name, [])
        return lambda at: at + sum(step_s for t, step_s in steps if t <= at)

    def _fence(self, worker, run, heard: float | None) -> None:
        heard_at = self.workflow_heard[worker.name].starting(run.workflow, run.start)
        early = fenced_early(heard_at, heard, self.now, self.lease_s)
        if early is not None:  # reported at once, with the clock steps that made it
            raise ReplacementFailure(
                f"seed {self.seed}: {run.workflow} {run.step} on {run.domain}: {early}"
                f" (clock steps: {self.clock_steps.get(run.domain, [])})")
        run.end = self.now
        self.fences.append((run, heard, heard_at))
        self.stats["fenced"] += 1
        progress = worker.progress.get(run.workflow)
        if progress is None:
            return
        why = self_fencing.reason([CO], self.now - max(heard_at, heard or heard_at))
        # Not retried here, as in the agent: its placement is over.
        progress.steps[run.step].max_attempts = run.attempt
        progress.attempt_ended(run.step, run.attempt, False, {}, why)


def run(seed: int, *, fencing: bool = True, fence_clock: str = "monotonic",
        restarts: bool = True, restart_rule: bool = True, answer_epochs: bool = True,
        acceptor_commits: bool = True, learned_commit_rule: bool = True,
        commit_cuts: bool = False) -> PartitionedWorld:
    """One seeded schedule with partitions, checked (ReplacementFailure names the seed)."""
    return PartitionedWorld(seed, self_fencing=fencing, fence_clock=fence_clock,
                            restarts=restarts, restart_rule=restart_rule,
                            answer_epochs=answer_epochs, acceptor_commits=acceptor_commits,
                            learned_commit_rule=learned_commit_rule,
                            commit_cuts=commit_cuts).run()
