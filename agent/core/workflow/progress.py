"""Workflow progress core: which steps may run, and how the workflow ends.

Theory of operation
-------------------
Every agent that knows a committed workflow keeps one Progress for it: the
coordinator (which decides the workflow's outcome) and each participant (which
runs its own steps). Progress learns step results from anywhere through
apply_result; it is monotone, so duplicated, reordered and late results are
harmless: a terminal step never changes, and an older attempt never overrides
a newer one.

A local step is WAITING until every step it needs has SUCCEEDED; start_ready
then moves it to RUNNING with the next attempt number (the shell records that
attempt durably before running it: an attempt is never started twice). When
an attempt ends, a failure with attempts left sends the step back to WAITING;
otherwise the step is final. A FAILED step skips everything downstream of it
(progress_skips.py).
The workflow SUCCEEDS when every step has, and FAILS as soon as any step has
FAILED: the coordinator then cancels what is still running elsewhere. (The states and
a step's record are progress_states.py's.)

Domain loss (the coordinator's input `domain_lost`, when membership says a domain
is DEAD; never on SUSPECT) resolves each unfinished step placed there through one
table, LOSS_TABLE in agent/core/workflow/domain_loss.py; the loss ends that
placement (its epoch moves on), and `refuse_result` then turns away whatever the
lost placement still reports (fencing). Whether the step may have started there is
judged from what the lost domain may have seen: after a restart (`reports_missed`) a
need's result not yet here may be there (`_may_have_succeeded`; the argument is in
domain_loss.py's header).

Fan-out (agent/core/workflow/fanout.py): the instances of a fan-out step form a group.
Within a group a need is a wave barrier: met when the instance of the earlier wave
SUCCEEDED, or, with on_failure: continue, ended at all; the wave then waits pause_s from
the moment this Progress saw its barrier met (time comes in as `now`). A step outside the
group that needs its instances needs the group to have SUCCEEDED, and receives the
instances' outputs as one input keyed by domain: {"deploy": {"eu-west": {...}, ...}}. A
group SUCCEEDS when every instance has ended and enough of them (min_success, all by
default) SUCCEEDED, and FAILS as soon as that is out of reach, or, with stop, at the
first failure; only a group's failure fails the workflow and skips what is after it.

A FAILED step is final, with one exception: a Node that took the lost domain's FAILED
result of a step (following a later coordinator epoch, it cannot know whether that
epoch's holder took it too: saga_older.py's `older_placement`) and is then told the
holder placed the step again on it drops that result (`placed_again`, afresh). The
skips that result derived go with it (progress_skips.py, `unskip`): the holder's
placement is what decides, and the steps after the step wait for its new run, as at
the holder. A skip another FAILED step also causes stays.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedorch.core.workflow import fanout, values
from fedorch.core.workflow import progress_skips as skips
from fedorch.core.workflow.domain_loss import (
    DEAD,
    LossAction,
    LossCase,
    loss_action,
    loss_reason,
)
from fedorch.core.workflow.progress_states import (
    TERMINAL_STEP_STATES,
    Outcome,
    StartAttempt,
    StepProgress,
    StepState,
)
from fedorch.gen.fedorch.v1 import spec_pb2


class Progress:
    def __init__(self, spec: spec_pb2.WorkflowSpec, placement: Mapping[str, str], me: str) -> None:
        # Built for every workflow on every Node that knows it: one pass over the spec's
        # steps, each protobuf field read once; the fan-out groups only when there are.
        self.me = me
        self.steps: dict[str, StepProgress] = {}
        downstream: dict[str, list[str]] = {}
        fanned = False
        for s in spec.steps:
            sid = s.id
            self.steps[sid] = StepProgress(
                sid, s.capability, tuple(s.needs), placement.get(sid, ""), 1 + s.retries,
                s.timeout_s or None, values.read_object(s, "params"), s.idempotent,
                s.on_domain_loss or "replace")
            downstream[sid] = []
            fanned = fanned or bool(s.instance_of)
        # Rebuilt from the tables after a restart (set by the caller): results sent
        # while this agent was down may have reached other domains and not yet come
        # here, so a domain loss judges needs on third domains as possibly SUCCEEDED.
        self.reports_missed = False
        # Step id -> the domains that asked this coordinator before starting it and were
        # told it is still placed there (agent/core/node/start_asks.py): it may have
        # started there, whatever its needs look like here.
        self.asked_to_start: dict[str, set[str]] = {}
        self.groups = fanout.groups(spec) if fanned else {}
        self._group_of = {i: g.id for g in self.groups.values() for i in g.instances}
        # Instance id -> when this Progress first saw its wave barrier met (for pause_s).
        self._barrier_met_at: dict[str, float] = {}
        for step in self.steps.values():
            for n in step.needs:
                downstream[n].append(step.id)
        self._downstream = downstream

    # ---- inputs ----------------------------------------------------------------

    def apply_result(
        self, step_id: str, attempt: int, state: StepState, outputs: dict, error: str
    ) -> bool:
        """Fold in a result reported by the step's domain. Returns whether anything changed."""
        step = self.steps.get(step_id)
        if step is None or step.state in TERMINAL_STEP_STATES or attempt < step.attempts:
            return False
        if state is StepState.RUNNING and attempt == step.attempts and step.state is state:
            return False
        step.attempts = max(step.attempts, attempt)
        step.state = state
        step.outputs = dict(outputs) if state is StepState.SUCCEEDED else {}
        step.error = error
        if state is StepState.FAILED:
            skips.failed(self, step_id)
        return True

    def start_ready(self, now: float | None = None) -> list[StartAttempt]:
        """Local steps whose inputs are ready move to RUNNING with their next attempt.
        `now` (the caller's clock): a fan-out wave waits its pause_s from when it is first
        seen ready; without `now` no pause is waited (for callers with no fan-out)."""
        started = []
        for step in self.steps.values():
            if step.domain != self.me or step.state is not StepState.WAITING:
                continue
            if not all(self._need_met(step.id, n) for n in step.needs):
                continue
            if now is not None and now < self._pause_ends(step.id, now):
                continue
            step.state = StepState.RUNNING
            step.attempts += 1
            step.error = ""
            started.append(StartAttempt(
                step.id, step.attempts, dict(step.params), self._inputs(step), step.timeout_s,
            ))
        return started

    def next_start_at(self) -> float | None:
        """When a local instance that waits out its wave's pause_s may start (for the
        caller's timer: call start_ready then), or None."""
        if not self._barrier_met_at:
            return None  # no wave seen ready yet (or no fan-out): nothing waits a pause
        due = [self._barrier_met_at[s.id] + self.groups[self._group_of[s.id]].pause_s
               for s in self.local_steps()
               if s.state is StepState.WAITING and s.id in self._barrier_met_at]
        return min(due, default=None)

    def attempt_ended(
        self, step_id: str, attempt: int, ok: bool, outputs: dict, error: str
    ) -> StepState:
        """Record a local attempt's end; returns the step's state afterwards."""
        step = self.steps[step_id]
        if step.state is not StepState.RUNNING or step.attempts != attempt:
            return step.state  # cancelled meanwhile, or a stale attempt
        if ok:
            step.state, step.outputs, step.error = StepState.SUCCEEDED, dict(outputs), ""
        elif attempt < step.max_attempts:
            step.state, step.error = StepState.WAITING, error
        else:
            step.state, step.error = StepState.FAILED, error
            skips.failed(self, step_id)
        return step.state

    def interrupted(self, step_id: str, reason: str, attempt: int | None = None) -> StepState:
        """A local attempt (the latest, unless named) was running when the agent stopped.
        It may have had side effects, so it runs again only if the step is idempotent
        and has attempts left (as a failed attempt would); otherwise the step FAILS."""
        step = self.steps[step_id]
        attempt = step.attempts if attempt is None else attempt
        if step.idempotent:
            return self.attempt_ended(step_id, attempt, False, {}, reason)
        if step.state is not StepState.RUNNING or step.attempts != attempt:
            return step.state
        step.state = StepState.FAILED
        step.error = f"{reason}; not run again: the step is not idempotent (idempotent: false)"
        skips.failed(self, step_id)
        return step.state

    def cancel(self, reason: str) -> list[str]:
        """Cancel every step not yet terminal; returns the ids that were RUNNING here."""
        running_here = []
        for step in self.steps.values():
            if step.state in TERMINAL_STEP_STATES:
                continue
            if step.state is StepState.RUNNING and step.domain == self.me:
                running_here.append(step.id)
            step.state, step.error = StepState.CANCELLED, reason
        return running_here

    # ---- domain loss (the table: agent/core/workflow/domain_loss.py) ------------------

    def domain_lost(self, domain: str, *, state: str = DEAD,
                    can_replace: bool = False) -> list[tuple[str, LossAction]]:
        """`domain` is lost (`state`: DEAD or LEFT, named in the reasons): resolve each of its steps that is not terminal, through
        LOSS_TABLE. The lost placement ends (the step's epoch moves on, so what it still
        reports is refused: refuse_result). FAIL_* and REPLACE without `can_replace`
        (re-placement is not built) fail the step, skipping what is downstream; REPLACE
        with it sends the step back to PENDING, unplaced, for a new negotiation round.
        Returns the resolved step ids with their actions."""
        if not domain or domain == self.me:
            return []
        resolved = []
        # Every case first, from the view before the loss: resolving one step must not
        # change what another step, later in the chain on the same domain, may have done.
        cases = {step.id: LossCase(self._may_have_started(step, domain), step.idempotent,
                                   step.on_domain_loss == "fail")
                 for step in self.steps.values()
                 if step.domain == domain and step.state not in TERMINAL_STEP_STATES}
        for step in self.steps.values():
            case = cases.get(step.id)
            if case is None:
                continue
            action = loss_action(case)
            step.epoch += 1
            step.lost_to, step.lost_as = domain, state
            if action is LossAction.REPLACE and can_replace:
                step.state, step.domain, step.error = StepState.PENDING, "", ""
            else:
                step.state = StepState.FAILED
                step.error = loss_reason(domain, action, case, can_replace, state)
                skips.failed(self, step.id)
            resolved.append((step.id, action))
        return resolved

    def placed_again(self, step_id: str, domain: str, epoch: int, lost: str, *,
                     afresh: bool = False) -> bool:
        """A committed round placed `step_id` again, on `domain`, after `lost` was lost;
        `epoch`: the placement's fencing token (the round's number, above every epoch
        before it). A step not terminal starts afresh there (WAITING, attempts counted
        anew under the new epoch); reports of earlier placements are refused from now on.
        A step already on `domain` here keeps its state and attempts, only its epoch
        moves on: a Progress its new domain rebuilt (a restore) from a round whose whole
        placement names it already holds what ran under this very placement (a lost
        domain is never a candidate for the step again, so it is that same placement);
        starting it afresh would run its attempt 1 a second time beside the first. (A
        step placed here by a round still in doubt here never starts before that round's
        COMMIT: `placement_in_doubt`.) Returns whether anything changed (False for a
        repeat or an older placement). `afresh`: a terminal step too (its new domain
        drops the lost one's result it held: placed_here.py); what that result skipped
        waits again (progress_skips.unskip)."""
        step = self.steps.get(step_id)
        if step is None or epoch < step.epoch or (epoch == step.epoch
                                                  and step.domain == domain):
            return False
        if lost and lost != domain and lost not in step.replaced_from:
            step.replaced_from.append(lost)
        same_placement = step.domain == domain
        step.domain, step.epoch, step.lost_to = domain, epoch, lost
        if (afresh or step.state not in TERMINAL_STEP_STATES) and not same_placement:
            failed = step.state is StepState.FAILED
            step.state, step.attempts, step.outputs, step.error = (
                StepState.WAITING, 0, {}, "")
            if failed:
                skips.unskip(self, step_id)
        return True

    def placement_in_doubt(self, step_id: str) -> bool:
        """The placement this Progress was built from names this agent for `step_id`, but
        by a round whose COMMIT it has not learned (a re-placement round's PREPARE carries
        the coordinator's whole placement, a step placed again on us by another round
        still in doubt here among it): the step is left unplaced, never started here,
        until `placed_again` names this agent under that round's epoch. False if it is
        not this agent's and waiting."""
        step = self.steps.get(step_id)
        if step is None or step.domain != self.me or step.state is not StepState.WAITING \
                or step.attempts:
            return False
        step.domain = ""
        return True

    def replacement_failed(self, step_id: str, reason: str) -> bool:
        """The step waiting to be placed again (PENDING, unplaced) could not be: it FAILS
        with `reason`, skipping what is downstream. False if it was not waiting."""
        step = self.steps.get(step_id)
        if step is None or step.state is not StepState.PENDING or step.domain:
            return False
        step.state, step.error = StepState.FAILED, reason
        skips.failed(self, step_id)
        return True

    def awaiting_placement(self) -> list[str]:
        """Steps a loss sent back to be placed again, not placed yet."""
        return [s.id for s in self.steps.values()
                if s.state is StepState.PENDING and not s.domain and s.lost_to]

    def refuse_result(self, step_id: str, sender: str, epoch: int) -> str | None:
        """Why a result or RUNNING report from `sender` for `step_id` under placement
        `epoch` must be refused (it comes from a placement that is over), or None."""
        step = self.steps.get(step_id)
        if step is None or epoch >= step.epoch:
            return None
        lost = f" (lost with domain {step.lost_to})" if step.lost_to else ""
        return (f"step {step_id} placement epoch {epoch} from {sender} is over{lost};"
                f" the step is at epoch {step.epoch}")

    def may_have_started(self, step_id: str) -> bool:
        """Could the step have started in its placement (a loss's reason says so)?"""
        step = self.steps[step_id]
        return self._may_have_started(step, step.lost_to or step.domain)

    def start_asked(self, step_id: str, domain: str) -> None:
        """`domain`, where `step_id` is placed, asked before starting it and is told it
        is still placed there: from now on it may have started there."""
        self.asked_to_start.setdefault(step_id, set()).add(domain)

    def _may_have_started(self, step: StepProgress, lost: str) -> bool:
        # Known to have started (a RUNNING report or an attempt), or ready to: a step
        # starts without a word for its first 0.2 s, so ready counts as started. Ready
        # as far as `lost` could know: every need's result may have reached it
        # (`_may_have_succeeded`; the argument is in domain_loss.py's header). Or its
        # domain asked before starting it and was told to go on (`start_asked`).
        asked = self.asked_to_start.get(step.id)
        return step.attempts > 0 or step.state is StepState.RUNNING \
            or (asked is not None and (lost in asked or step.domain in asked)) or all(
                self._need_may_be_met(step.id, n, lost) for n in step.needs)

    def _need_may_be_met(self, step_id: str, need: str, lost: str) -> bool:
        """`_need_met` as `lost` may have seen it, for all this Progress knows."""
        group = self._group_of.get(need)
        if group is None:
            return self._may_have_succeeded(need, lost)
        if self._group_of.get(step_id) == group:  # a wave barrier
            return self._may_have_succeeded(need, lost) or (
                self.groups[group].keeps_going
                and self.steps[need].state in TERMINAL_STEP_STATES)
        outcome = self.group_outcome(group)
        if outcome is not None:
            return outcome is Outcome.SUCCEEDED
        return sum(self._may_have_succeeded(i, lost)
                   for i in self.groups[group].instances) >= self.groups[group].need

    def _may_have_succeeded(self, step_id: str, lost: str) -> bool:
        """Could this need have SUCCEEDED and its result have reached `lost`, for all this
        Progress knows? Yes if known SUCCEEDED; no if known ended otherwise, or if it is
        placed here and never was elsewhere (this domain runs it: the success would be
        on record here, written before any result leaves). Else, if it may have started
        itself: placed on `lost`, yes (it may have succeeded there, its result lost with
        it); placed on a third domain, yes where reports may have been missed here
        (`reports_missed`: its producer reports to `lost` and to the coordinator in the
        same turn, and what it sent while this coordinator was down is not here yet),
        no otherwise (its result comes here as it goes there)."""
        step = self.steps[step_id]
        if step.state is StepState.SUCCEEDED or self._started_after(step_id):
            return True
        if step.state in TERMINAL_STEP_STATES:
            return False
        if step.domain == self.me and not step.replaced_from:
            return False
        if step.domain != lost and not self.reports_missed:
            return False
        return self._may_have_started(step, lost)

    def _started_after(self, need: str) -> bool:
        """A step after `need` (no fan-out instance: a wave's barrier may be met by an end
        that is not a success) was heard started: `need` SUCCEEDED, its result sent to
        every domain after it in the turn it was sent here (domain_loss.py's header)."""
        return need not in self._group_of and any(
            self.steps[d].attempts > 0 for d in self._downstream[need])

    # ---- queries -----------------------------------------------------------------

    def outcome(self) -> Outcome | None:
        states = [s.state for s in self.steps.values() if s.id not in self._group_of]
        groups = [self.group_outcome(g) for g in self.groups]
        if StepState.FAILED in states or Outcome.FAILED in groups:
            return Outcome.FAILED
        if all(s is StepState.SUCCEEDED for s in states) \
                and all(g is Outcome.SUCCEEDED for g in groups):
            return Outcome.SUCCEEDED
        return None

    def group_outcome(self, group_id: str) -> Outcome | None:
        """A fan-out step's outcome from its instances' states, or None while open."""
        group = self.groups[group_id]
        states = [self.steps[i].state for i in group.instances]
        succeeded = states.count(StepState.SUCCEEDED)
        lost = sum(1 for s in states if s in TERMINAL_STEP_STATES) - succeeded
        if lost and not group.keeps_going:
            return Outcome.FAILED
        if len(states) - lost < group.need:
            return Outcome.FAILED  # out of reach even if every open instance succeeds
        if succeeded + lost == len(states):
            return Outcome.SUCCEEDED
        return None

    def failure_reasons(self) -> list[str]:
        """Why the workflow failed: its failed steps, and its failed fan-out steps."""
        reasons = [f"step {s.id} failed: {s.error}" for s in self.steps.values()
                   if s.state is StepState.FAILED]
        for group in self.groups.values():
            if self.group_outcome(group.id) is Outcome.FAILED:
                ok = sum(1 for i in group.instances
                         if self.steps[i].state is StepState.SUCCEEDED)
                reasons.append(f"fan-out step {group.id} failed: {ok} of"
                               f" {len(group.instances)} instances succeeded, {group.need}"
                               " needed")
        return reasons

    def local_steps(self) -> list[StepProgress]:
        me = self.me
        return [s for s in self.steps.values() if s.domain == me]

    def result_recipients(self, step_id: str, coordinator: str) -> list[str]:
        """Domains that must hear a step's result: the coordinator and downstream owners."""
        targets = {coordinator}
        targets.update(self.steps[d].domain for d in self._downstream[step_id])
        targets.discard(self.me)
        targets.discard("")
        return sorted(targets)

    # ---- fan-out ------------------------------------------------------------------

    def _need_met(self, step_id: str, need: str) -> bool:
        group = self._group_of.get(need)
        if group is None:
            return self.steps[need].state is StepState.SUCCEEDED
        if self._group_of.get(step_id) == group:  # a wave barrier
            state = self.steps[need].state
            return state is StepState.SUCCEEDED or (
                self.groups[group].keeps_going and state in TERMINAL_STEP_STATES)
        return self.group_outcome(group) is Outcome.SUCCEEDED

    def _pause_ends(self, step_id: str, now: float) -> float:
        """When a ready step may start: at once, unless it is an instance of a later
        wave, which waits pause_s from when its barrier was first seen met."""
        group = self._group_of.get(step_id)
        if group is None or not self.groups[group].pause_s:
            return now
        if not any(self._group_of.get(n) == group for n in self.steps[step_id].needs):
            return now  # the first wave
        met = self._barrier_met_at.setdefault(step_id, now)
        return met + self.groups[group].pause_s

    def inputs(self, step_id: str) -> dict[str, dict]:
        """The inputs an attempt of `step_id` gets (as in its StartAttempt)."""
        return self._inputs(self.steps[step_id])

    def _inputs(self, step: StepProgress) -> dict[str, dict]:
        """A step's inputs: each need's outputs; a fan-out step's as {domain: outputs} of
        its instances that SUCCEEDED; nothing from an instance's own wave barriers."""
        inputs: dict[str, dict] = {}
        own = self._group_of.get(step.id)
        for need in step.needs:
            group = self._group_of.get(need)
            if group is None:
                inputs[need] = dict(self.steps[need].outputs)
            elif group != own and self.steps[need].state is StepState.SUCCEEDED:
                domain = need.removeprefix(f"{group}@")
                inputs.setdefault(group, {})[domain] = dict(self.steps[need].outputs)
        return inputs
