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
otherwise the step is final. A FAILED step skips everything downstream of it.
The workflow SUCCEEDS when every step has, and FAILS as soon as any step has
FAILED: the coordinator then cancels what is still running elsewhere.

Domain loss (the coordinator's input `domain_lost`, when membership says a domain
is DEAD; never on SUSPECT) resolves each unfinished step placed there through one
table, LOSS_TABLE in agent/core/workflow/domain_loss.py; the loss ends that
placement (its epoch moves on), and `refuse_result` then turns away whatever the
lost placement still reports (fencing).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from fedorch.core.workflow import values
from fedorch.core.workflow.domain_loss import LossAction, LossCase, loss_action, loss_reason
from fedorch.gen.fedorch.v1 import spec_pb2


class StepState(enum.StrEnum):
    PENDING = "PENDING"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"
    # Sagas: set only by a workflow's compensation (core/workflow/compensation.py) on a
    # step that SUCCEEDED, after the workflow ended; Progress itself never moves to them.
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"


TERMINAL_STEP_STATES = frozenset(
    {StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED,
     StepState.COMPENSATED, StepState.COMPENSATION_FAILED}
)


class Outcome(enum.StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass
class StepProgress:
    id: str
    capability: str
    needs: tuple[str, ...]
    domain: str
    max_attempts: int
    timeout_s: float | None
    params: dict
    idempotent: bool = False
    # Domain loss: the spec's on_domain_loss, the placement's epoch (fencing token) and
    # the domain a loss took the step from.
    on_domain_loss: str = "replace"
    epoch: int = 0
    lost_to: str = ""
    state: StepState = StepState.WAITING
    attempts: int = 0
    outputs: dict = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class StartAttempt:
    step_id: str
    attempt: int
    params: dict
    inputs: dict[str, dict]
    timeout_s: float | None


class Progress:
    def __init__(self, spec: spec_pb2.WorkflowSpec, placement: Mapping[str, str], me: str) -> None:
        self.me = me
        self.steps: dict[str, StepProgress] = {}
        for s in spec.steps:
            self.steps[s.id] = StepProgress(
                id=s.id,
                capability=s.capability,
                needs=tuple(s.needs),
                domain=placement.get(s.id, ""),
                max_attempts=1 + s.retries,
                timeout_s=s.timeout_s or None,
                params=values.read_object(s, "params"),
                idempotent=s.idempotent,
                on_domain_loss=s.on_domain_loss or "replace",
            )
        self._downstream: dict[str, list[str]] = {k: [] for k in self.steps}
        for s in self.steps.values():
            for n in s.needs:
                self._downstream[n].append(s.id)

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
            self._skip_downstream(step_id)
        return True

    def start_ready(self) -> list[StartAttempt]:
        """Local steps whose inputs are ready move to RUNNING with their next attempt."""
        started = []
        for step in self.steps.values():
            if step.domain != self.me or step.state is not StepState.WAITING:
                continue
            if any(self.steps[n].state is not StepState.SUCCEEDED for n in step.needs):
                continue
            step.state = StepState.RUNNING
            step.attempts += 1
            step.error = ""
            started.append(StartAttempt(
                step.id, step.attempts, dict(step.params),
                {n: dict(self.steps[n].outputs) for n in step.needs}, step.timeout_s,
            ))
        return started

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
            self._skip_downstream(step_id)
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
        self._skip_downstream(step_id)
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

    def domain_lost(self, domain: str, *,
                    can_replace: bool = False) -> list[tuple[str, LossAction]]:
        """`domain` is DEAD: resolve each of its steps that is not terminal, through
        LOSS_TABLE. The lost placement ends (the step's epoch moves on, so what it still
        reports is refused: refuse_result). FAIL_* and REPLACE without `can_replace`
        (re-placement is not built) fail the step, skipping what is downstream; REPLACE
        with it sends the step back to PENDING, unplaced, for a new negotiation round.
        Returns the resolved step ids with their actions."""
        if not domain or domain == self.me:
            return []
        resolved = []
        for step in self.steps.values():
            if step.domain != domain or step.state in TERMINAL_STEP_STATES:
                continue
            case = LossCase(self._may_have_started(step), step.idempotent,
                            step.on_domain_loss == "fail")
            action = loss_action(case)
            step.epoch += 1
            step.lost_to = domain
            if action is LossAction.REPLACE and can_replace:
                step.state, step.domain, step.error = StepState.PENDING, "", ""
            else:
                step.state = StepState.FAILED
                step.error = loss_reason(domain, action, case, can_replace)
                self._skip_downstream(step.id)
            resolved.append((step.id, action))
        return resolved

    def refuse_result(self, step_id: str, sender: str, epoch: int) -> str | None:
        """Why a result or RUNNING report from `sender` for `step_id` under placement
        `epoch` must be refused (it comes from a placement that is over), or None."""
        step = self.steps.get(step_id)
        if step is None or epoch >= step.epoch:
            return None
        lost = f" (lost with domain {step.lost_to})" if step.lost_to else ""
        return (f"step {step_id} placement epoch {epoch} from {sender} is over{lost};"
                f" the step is at epoch {step.epoch}")

    def _may_have_started(self, step: StepProgress) -> bool:
        # Known to have started (a RUNNING report or an attempt), or ready to: a step
        # starts without a word for its first 0.2 s, so ready counts as started.
        return step.attempts > 0 or step.state is StepState.RUNNING or all(
            self.steps[n].state is StepState.SUCCEEDED for n in step.needs)

    # ---- queries -----------------------------------------------------------------

    def outcome(self) -> Outcome | None:
        states = [s.state for s in self.steps.values()]
        if any(s is StepState.FAILED for s in states):
            return Outcome.FAILED
        if all(s is StepState.SUCCEEDED for s in states):
            return Outcome.SUCCEEDED
        return None

    def local_steps(self) -> list[StepProgress]:
        return [s for s in self.steps.values() if s.domain == self.me]

    def result_recipients(self, step_id: str, coordinator: str) -> list[str]:
        """Domains that must hear a step's result: the coordinator and downstream owners."""
        targets = {coordinator}
        targets.update(self.steps[d].domain for d in self._downstream[step_id])
        targets.discard(self.me)
        targets.discard("")
        return sorted(targets)

    def _skip_downstream(self, step_id: str) -> None:
        pending = list(self._downstream[step_id])
        while pending:
            sid = pending.pop()
            step = self.steps[sid]
            if step.state in (StepState.WAITING, StepState.PENDING):
                step.state, step.error = StepState.SKIPPED, f"upstream step {step_id} failed"
                pending.extend(self._downstream[sid])
