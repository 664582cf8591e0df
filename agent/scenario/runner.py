"""One scenario run from start to stop: pick the runner, start the federation, run the
schedule, check the expectations, stop every agent that was started (on every path,
Ctrl-C included), and return what happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedorch.runtime.supervisor import SupervisorError, log_tail, sigterm_as_interrupt
from fedorch.scenario.busy import BusyLoad
from fedorch.scenario.expect import check_all, timed_checks
from fedorch.scenario.model import LoadedScenario
from fedorch.scenario.netns_check import NetnsUnavailable
from fedorch.scenario.process import ProcessFederation
from fedorch.scenario.run import (
    Event,
    Outcome,
    RunState,
    StartupError,
    host_load,
    run_schedule,
    start_federation,
)

RUNNERS = ("process", "netns")
LOG_TAILS_SHOWN = 5


@dataclass
class RunResult:
    scenario: str
    runner: str
    workdir: Path
    events: list[Event] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    logs: dict[str, str] = field(default_factory=dict)
    pids: dict[str, list[int]] = field(default_factory=dict)  # all started, all stopped

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.outcomes) and all(o.ok for o in self.outcomes)


def make_federation(loaded: LoadedScenario, runner: str, workdir: Path):
    if runner == "netns":
        from fedorch.scenario.netns import NetnsFederation

        return NetnsFederation(loaded, workdir)
    return ProcessFederation(loaded, workdir)


def check_runner(loaded: LoadedScenario, runner: str, workdir: Path) -> None:
    """Raise UnsupportedFault (or NetnsUnavailable) before anything starts."""
    make_federation(loaded, runner, workdir).check_supported()


async def _run(state: RunState, runs_dir: Path) -> None:
    try:
        await start_federation(state)
        timed: dict[int, Outcome] = {}
        await run_schedule(state, timed_checks(state, timed))
        state.outcomes.extend(await check_all(state, runs_dir, timed))
        measure(state)
    finally:
        await state.close_clients()  # the channels the checks opened after the schedule


def measure(state: RunState) -> None:
    """What the run measured beyond start-up: each submission's mean time from submission
    to admission (first seen RUNNING or past it: placed, every vote in, committed) and to its end, and
    each slowed disk's delayed syncs. Reported, never asserted."""
    for workflow_id, copies in state.copies.items():
        for what, ends in (("admission", [c.admitted_at for c in copies]),
                           ("end", [c.ended_at for c in copies])):
            took = [end - c.submitted_at for c, end in zip(copies, ends, strict=True)
                    if end is not None and c.submitted_at is not None]
            if took:
                state.metrics[f"{workflow_id}: mean seconds from submission to {what} "
                              f"({len(took)} of {len(copies)})"] = round(
                    sum(took) / len(took), 3)
    for domain, (syncs, slept) in getattr(state.fed, "disk_stats", dict)().items():
        state.metrics[f"{domain}: fsyncs delayed (slow_disk)"] = syncs
        state.metrics[f"{domain}: seconds spent in delayed fsyncs"] = round(slept, 3)
    state.metrics["load_1m_at_end"] = host_load()


def execute(
    loaded: LoadedScenario,
    runner: str,
    workdir: Path,
    rpc_timeout: float,
    emit: Callable[[Event], None] = lambda event: None,
    busy: int | None = None,
) -> RunResult:
    """Run the scenario; the result says whether every expectation held. ``busy``:
    how many CPU-bound processes load the host meanwhile (None: the scenario's
    ``load.busy_processes``)."""
    fed = make_federation(loaded, runner, workdir)
    fed.check_supported()
    state = RunState(loaded, fed, rpc_timeout, emit)
    result = RunResult(loaded.name, runner, workdir)
    load = BusyLoad(loaded.scenario.load.busy_processes if busy is None else busy)
    if load.count:
        state.metrics["busy_processes"] = load.count
    try:
        with sigterm_as_interrupt():
            try:
                load.start()  # before the agents: they start on a saturated host
                fed.prepare()
                asyncio.run(_run(state, workdir / "runs"))
            except (SupervisorError, StartupError, NetnsUnavailable) as exc:
                result.error = str(exc)
                state.say("error", str(exc))
            finally:
                try:
                    fed.stop_all()
                finally:
                    load.stop()
    finally:
        result.events = state.events
        # A fault that could not be applied is an outcome of its own (state.outcomes).
        result.outcomes = state.outcomes
        result.metrics = state.metrics
        result.pids = {**fed.pids, **({"busy load": load.pids} if load.pids else {})}
        result.workflows = [
            {"submission": copy.workflow.id, "copy": copy.index, "id": copy.id,
             "submitted_at_s": _round(copy.submitted_at), "ended_at_s": _round(copy.ended_at),
             "error": copy.error, "status": copy.last}
            for copies in state.copies.values() for copy in copies]
    if not result.passed:  # a few agents' last lines; every log stays in the work dir
        shown = [n for n in fed.names if (workdir / f"{n}.log").exists()][:LOG_TAILS_SHOWN]
        result.logs = {name: log_tail(workdir / f"{name}.log", 8) for name in shown}
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
