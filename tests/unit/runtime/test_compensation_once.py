"""A compensation runs once per attempt at the domain that ran the step, whoever asks:
after a takeover the successor drives the sagas from the start again (attempt 1), and
the old coordinator may have asked for the same attempts before it died. The
participant's `compensation_runs` row, on disk before the run, is the attempt's
idempotency key: a request for an attempt that ran is answered with its recorded end,
and one for an attempt that is running waits for it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.compensation import Compensations
from fedorch.runtime.executors.base import StepOutcome
from fedorch.runtime.store.store import StepRow, Store, WorkflowRow

WF = "alpha.0abc"
SPEC = parse_spec_text("""
name: s
steps:
  - {id: a, capability: c, compensate: {params: {undo: 1}}}
  - {id: f, capability: c, needs: [a]}
""", "test")


class _CountingExecutor:
    """Counts its runs; each waits for `release` so that requests can overlap it."""

    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, invocation) -> StepOutcome:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        return StepOutcome.success({}) if self.ok else StepOutcome.failure("undo failed")


async def _participant(tmp_path, executor) -> tuple[Compensations, Store]:
    store = await Store.open(tmp_path / "data")
    row = WorkflowRow(WF, "s", "alpha", "FAILED", SPEC.SerializeToString(),
                      placement={"a": "beta", "f": "gamma"})
    await store.save_workflow(row, [StepRow(WF, "a", "beta", "SUCCEEDED", 1, {"n": 1}),
                                    StepRow(WF, "f", "gamma", "FAILED", 1, {})])
    agent = SimpleNamespace(store=store, domain="beta", executors={"c": executor},
                            now_ms=lambda: 1_000)
    return Compensations(agent), store  # type: ignore[arg-type]


def _ask(attempt: int, epoch: int = 0) -> peer_pb2.CompensateRequest:
    return peer_pb2.CompensateRequest(workflow_id=WF, step_id="a", attempt=attempt,
                                      epoch=epoch)


async def _take_over(store: Store, successor: str) -> None:
    """This domain learned that `successor` holds epoch 1 (as a takeover leaves it)."""
    row, steps = await store.get_workflow_with_steps(WF)
    row.epoch, row.coordinator = 1, successor
    await store.save_workflow(row, list(steps.values()))


async def test_the_successor_asking_again_for_an_attempt_that_ran_runs_nothing(tmp_path):
    executor = _CountingExecutor(ok=True)
    executor.release.set()
    comp, store = await _participant(tmp_path, executor)
    try:
        first = await comp.run_here("alpha", _ask(1))
        assert first.ok and executor.runs == 1
        await _take_over(store, "gamma")
        again = await comp.run_here("gamma", _ask(1, epoch=1))
        assert again.ok and executor.runs == 1  # answered from the record
        # The old coordinator, its epoch over, may no longer ask at all.
        late = await comp.run_here("alpha", _ask(2))
        assert not late.ok and executor.runs == 1
    finally:
        await store.close()


async def test_requests_for_a_running_attempt_share_its_one_run(tmp_path):
    executor = _CountingExecutor(ok=False)
    comp, store = await _participant(tmp_path, executor)
    try:
        old = asyncio.create_task(comp.run_here("alpha", _ask(1)))
        await asyncio.wait_for(executor.started.wait(), 5)
        duplicate = asyncio.create_task(comp.run_here("alpha", _ask(1)))
        executor.release.set()
        answers = await asyncio.wait_for(asyncio.gather(old, duplicate), 5)
        assert executor.runs == 1
        assert [(r.ok, r.error) for r in answers] == [(False, "undo failed")] * 2
        # A failed attempt is not run again under its number; the next number runs.
        await _take_over(store, "gamma")
        assert (await comp.run_here("gamma", _ask(1, epoch=1))).error == "undo failed"
        assert executor.runs == 1
        await comp.run_here("gamma", _ask(2, epoch=1))
        assert executor.runs == 2
    finally:
        await store.close()

