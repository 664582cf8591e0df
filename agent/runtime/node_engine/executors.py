"""The node engine's Executors port: step attempts through the daemon's executors.

Theory of operation
-------------------
The Node hands the driver `start_steps` (workflow, step, attempt) only once the
attempt's start record is durable (its idempotency key), so a started attempt is
never started again, not even after a restart (the Node counts one found started
without a result as failed). `start` looks the step up in the Node's progress of
that workflow (its capability, params, timeout, and the outputs of the steps it
needs), picks the executor the agent built for the capability from its config (the
registry of agent/runtime/executors: builtin, command, ...), and runs the attempt as
a task its owner's TaskGroup keeps (`spawn`). The attempt's end comes back as a
`StepEnded` input posted to the driver loop; an executor that raises is an attempt
that failed, with the exception as its error. `stop` cancels an attempt still
running (its workflow ended): no `StepEnded` follows, and none is needed.

Processes. Each attempt carries its run marker (domain/workflow/step/attempt); the
command executor runs it in a process group of its own that dies with the agent
(step_guard.py) and tells the group's id, which `StepGroups` keeps until the
attempt's processes are gone (step_processes.py: what a restarted agent stops before
its Node resolves the attempts it finds started without a result). An attempt's
task ends only once its processes are gone (the executor kills and reaps its group on
every path, cancellation included).

Reload. `reconfigure(executors)` swaps the executors for the attempts started from
then on (a config reload, applied in the driver's turn: reload.py); an attempt
already running keeps the executor it started with.

Compensations (core/node/compensating.py). A start entry (workflow, step, attempt,
"compensate") is a compensation attempt, handed out once its start is durable like a
step's: run by the executor of `compensate.capability` (else the step's), with its
params and the step's recorded outputs on stdin (StepInvocation.compensating); its end comes back as a `CompensationEnded`. It is not stopped when
its workflow ends (it runs because the workflow ended).

Observed (observed.py). Each attempt, a step's or a compensation's, runs inside a span
of the workflow's trace when tracing is on (its id derived from the domain, step and
attempt; a step attempt's parent is this domain's vote of the round that committed
it, a compensation attempt's the step attempt it undoes), and inside `logs.about`,
so what is logged meanwhile names its workflow and step; its end is counted in
`fedorch_step_attempts_total{result}`.

Inputs are the Progress's (core/workflow/progress.py): the outputs of the steps a
step needs, by step id; a fan-out step's as {domain: outputs} of its instances that
SUCCEEDED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fedorch.core.node.inputs import CompensationEnded, StepEnded
from fedorch.core.workflow import values
from fedorch.runtime import logs, telemetry
from fedorch.runtime.executors.base import Executor, StepInvocation, StepOutcome
from fedorch.runtime.executors.leftovers import run_marker
from fedorch.runtime.node_engine.step_processes import StepGroups

__all__ = ["NodeExecutors"]

log = logging.getLogger("fedorch.node_engine")

Run = tuple[str, str, int]


class NodeExecutors:
    def __init__(self, domain: str, node: Any, executors: Mapping[str, Executor],
                 post: Callable[[object], None],
                 spawn: Callable[[Awaitable[None], str], asyncio.Task[None] | None],
                 groups: StepGroups | None = None, attempts: Any = None) -> None:
        """`executors`: capability -> Executor (Agent.executors, from the config);
        `post`: the driver loop's; `spawn`: a task of the engine's TaskGroup, or None
        when it is stopping; `groups`: where attempts' process groups are kept (None:
        nowhere, their markers alone find them after a restart); `attempts`: the
        counter of step attempts by result (AgentMetrics.steps; None: not counted)."""
        self.domain = domain
        self.node = node
        self.executors = executors
        self.post = post
        self.spawn = spawn
        self.groups = groups
        self.running: dict[Run, asyncio.Task[None]] = {}
        self.started = 0
        self._ended = None if attempts is None else {
            True: attempts.labels("ok"), False: attempts.labels("failed")}

    def start(self, run: Run | tuple[str, str, int, str]) -> None:
        if len(run) == 4:  # (workflow, step, attempt, "compensate"): compensating.py
            self._compensate(run[0], run[1], run[2])
            return
        wf, step_id, attempt = run
        progress = self.node.progress.get(wf)
        step = progress.steps.get(step_id) if progress is not None else None
        if step is None:  # the Node starts only steps of workflows it runs: a bug if not
            raise RuntimeError(f"attempt {run} of a step the Node does not run")
        executor = self.executors.get(step.capability)
        if executor is None:
            self.post(StepEnded(wf, step_id, attempt, False, {},
                                f"no executor for capability {step.capability!r} in"
                                f" {self.domain}"))
            return
        inputs = progress.inputs(step_id)  # a fan-out need's by domain (progress.py)
        marker = run_marker(self.domain, wf, step_id, attempt)
        groups = self.groups
        invocation = StepInvocation(
            wf, step_id, attempt, dict(step.params), inputs, step.timeout_s,
            run_marker=marker,
            on_started=None if groups is None
            else lambda pgid: groups.record(marker, pgid))
        # The span's parent: this domain's vote of the round that committed the step.
        traced = None if telemetry.tracing() is None else (
            "fedorch.step.attempt", ("attempt", self.domain, step_id, attempt),
            ("vote", self.domain, self.node.state.committed.get(wf, 0)),
            {"fedorch.step": step_id, "fedorch.attempt": attempt,
             "fedorch.capability": step.capability})
        task = self.spawn(self._run(run, executor, invocation, traced=traced),
                          f"step {wf}/{step_id}")
        if task is not None:
            self.running[run] = task
            self.started += 1

    def _compensate(self, wf: str, step_id: str, attempt: int) -> None:
        """Start a compensation attempt: the executor of `compensate.capability` (else
        the step's own), its params, and the step's outputs as the Node recorded them."""
        node = self.node
        info = node.running.info(wf)
        step = next(s for s in info.spec.steps if s.id == step_id)
        capability = step.compensate.capability or step.capability
        result = node.state.results.get(wf, {}).get(step_id)
        outputs = dict(result[2]) if result is not None else {}
        executor = self.executors.get(capability)
        if executor is None:
            self.post(CompensationEnded(wf, step_id, attempt, False,
                                        f"no executor for capability {capability!r} in"
                                        f" {self.domain}"))
            return
        marker = run_marker(self.domain, wf, f"{step_id}.compensate", attempt)
        groups = self.groups
        invocation = StepInvocation(
            wf, step_id, attempt, values.read_object(step.compensate, "params"), {},
            step.compensate.timeout_s or None, run_marker=marker,
            on_started=None if groups is None
            else lambda pgid: groups.record(marker, pgid),
            compensating=outputs)
        run = (wf, f"{step_id}.compensate", attempt)
        # The span's parent: the attempt it undoes (the step's result's, run here).
        traced = None if telemetry.tracing() is None else (
            "fedorch.compensation.attempt", ("compensation", self.domain, step_id, attempt),
            ("attempt", self.domain, step_id, result[0] if result is not None else 0),
            {"fedorch.step": step_id, "fedorch.attempt": attempt,
             "fedorch.capability": capability})
        task = self.spawn(self._run(run, executor, invocation, compensation=step_id,
                                    traced=traced), f"compensate {wf}/{step_id}")
        if task is not None:
            self.running[run] = task
            self.started += 1

    def stop(self, run: Run) -> None:
        task = self.running.pop(run, None)
        if task is not None:
            task.cancel()

    def reconfigure(self, executors: Mapping[str, Executor]) -> None:
        """The executors of the attempts started from now on (a config reload)."""
        self.executors = executors

    async def _run(self, run: Run, executor: Executor, invocation: StepInvocation,
                   compensation: str | None = None, traced: tuple | None = None) -> None:
        """`compensation`: the step id whose compensation this attempt is (its end is a
        CompensationEnded); None: a step's attempt. `traced`: its span's name, key,
        parent key and attributes (see the header); None: tracing is off."""
        try:
            with logs.about(run[0], compensation or run[1]), \
                    telemetry.derived_span(run[0], *traced) if traced is not None \
                    else telemetry.NO_TRACE as span:
                try:
                    outcome = await executor.run(invocation)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # an executor's bug fails the attempt, not the agent
                    log.error("executor of %s/%s failed", run[0], run[1], exc_info=e)
                    outcome = StepOutcome.failure(
                        f"executor error: {type(e).__name__}: {e}")
                if outcome.ok and compensation is None:
                    outcome = _json_outputs(outcome)
                span.ended(outcome.ok, outcome.error)
        finally:
            if self.running.get(run) is asyncio.current_task():
                del self.running[run]
            if self.groups is not None:  # the executor reaped its group: nothing left
                self.groups.forget(invocation.run_marker)
        if compensation is not None:
            self.post(CompensationEnded(run[0], compensation, run[2], outcome.ok,
                                        outcome.error))
            return
        if self._ended is not None:
            self._ended[outcome.ok].inc()
        self.post(StepEnded(run[0], run[1], run[2], outcome.ok, dict(outcome.outputs),
                            outcome.error))


def _json_outputs(outcome: StepOutcome) -> StepOutcome:
    """A success whose outputs are not a JSON object (an in-process executor's, a
    plugin's) is a failed attempt saying why, as the command executor fails a step
    whose last stdout line is not one: no peer would take such outputs (the authority
    table refuses them, `not_json`), no status or audit hash could be made of them."""
    outputs = outcome.outputs
    if not isinstance(outputs, dict):
        return StepOutcome.failure(
            f"outputs must be a JSON object, got {type(outputs).__name__}")
    try:
        values.check(outputs, "outputs")
    except values.JsonValueError as e:
        return StepOutcome.failure(f"outputs are not JSON data: {e}")
    return outcome
