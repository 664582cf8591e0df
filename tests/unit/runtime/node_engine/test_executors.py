"""`NodeExecutors`: attempts through the daemon's executors, their process groups on
record while they run, and executors swapped by a reload (real command steps, each
stopped by its attempt's end or by the test), and an attempt whose outputs are not JSON
data failed."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sys
import time
from types import SimpleNamespace

import pytest
from fedorch.core.node.inputs import StepEnded
from fedorch.runtime.executors.base import StepOutcome
from fedorch.runtime.executors.builtin import build_builtin
from fedorch.runtime.executors.command import CommandExecutor
from fedorch.runtime.executors.leftovers import run_marker
from fedorch.runtime.node_engine.executors import NodeExecutors
from fedorch.runtime.node_engine.step_processes import StepGroups

RUN = ("w1", "a", 1)
WAITS = [sys.executable, "-c", "import sys, time; sys.stdin.read(); time.sleep(300)"]
ANSWERS = [sys.executable, "-c", "import sys; sys.stdin.read(); print('{\"ok\": 1}')"]


def _node(capability: str = "test.cap") -> SimpleNamespace:
    step = SimpleNamespace(capability=capability, needs=(), params={}, timeout_s=None,
                           outputs={})
    # A step that needs nothing: its inputs are empty (Progress.inputs).
    return SimpleNamespace(progress={"w1": SimpleNamespace(steps={"a": step},
                                                           inputs=lambda step_id: {})})


class _Engine:
    """What NodeExecutors is handed: the driver's post, the TaskGroup's spawn."""

    def __init__(self) -> None:
        self.posted: list[object] = []
        self.tasks: list[asyncio.Task] = []

    def post(self, event: object) -> None:
        self.posted.append(event)

    def spawn(self, coro, name: str):
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.append(task)
        return task


async def _until(predicate, what: str, deadline_s: float = 10.0):
    deadline = time.monotonic() + deadline_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return value


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_running_attempts_group_is_on_record_until_it_is_stopped(tmp_path):
    engine, groups = _Engine(), StepGroups(tmp_path / "step_groups")
    executors = NodeExecutors("d1", _node(), {"test.cap": CommandExecutor(WAITS)},
                              engine.post, engine.spawn, groups=groups)
    executors.start(RUN)
    marker = run_marker("d1", *RUN)
    try:
        recorded = await _until(groups.recorded, "the attempt's group on record")
        pgid = recorded[marker]
        assert list(recorded) == [marker] and os.getpgid(pgid) == pgid
        executors.stop(RUN)  # its workflow ended: the task is cancelled
        await asyncio.gather(*engine.tasks, return_exceptions=True)
        assert groups.recorded() == {}  # the executor reaped its group: nothing left
        # SIGKILLed with its group; a member other than the one the executor waited for
        # is gone once its new parent reaps it, a moment later
        await _until(lambda: not _group_alive(pgid), "the attempt's group gone")
        assert engine.posted == []  # a stopped attempt reports no end
    finally:
        for task in engine.tasks:
            task.cancel()
        if (left := groups.recorded().get(marker)) is not None:
            os.killpg(left, signal.SIGKILL)


async def test_an_attempt_that_ends_reports_and_leaves_no_record(tmp_path):
    engine, groups = _Engine(), StepGroups(tmp_path / "step_groups")
    executors = NodeExecutors("d1", _node(), {"test.cap": CommandExecutor(ANSWERS)},
                              engine.post, engine.spawn, groups=groups)
    executors.start(RUN)
    await asyncio.gather(*engine.tasks)
    assert engine.posted == [StepEnded("w1", "a", 1, True, {"ok": 1}, "")]
    assert groups.recorded() == {}
    assert list((tmp_path / "step_groups").glob("*.json")) == []


async def test_a_reload_swaps_the_executors_of_the_attempts_started_after_it(tmp_path):
    engine = _Engine()
    executors = NodeExecutors("d1", _node(), {"test.cap": build_builtin("fail")},
                              engine.post, engine.spawn)
    executors.start(RUN)
    await asyncio.gather(*engine.tasks)
    executors.reconfigure({"test.cap": build_builtin("echo")})
    executors.start(("w1", "a", 2))
    await asyncio.gather(*engine.tasks)
    assert [e.ok for e in engine.posted] == [False, True]
    executors.reconfigure({})  # the capability went: the next attempt fails, named
    executors.start(("w1", "a", 3))
    assert not engine.posted[-1].ok and "no executor for capability 'test.cap'" in \
        engine.posted[-1].error


class _Answers:
    """An in-process executor (a plugin's, say) that succeeds with `outputs` as given."""

    def __init__(self, outputs: object) -> None:
        self.outputs = outputs

    async def run(self, inv) -> StepOutcome:
        return StepOutcome(ok=True, outputs=self.outputs, error="")


@pytest.mark.parametrize("outputs, why", [
    ({"x": b"raw"}, "outputs are not JSON data: outputs.x: bytes is not JSON data"),
    ({"n": math.nan}, "outputs are not JSON data: outputs.n: nan is not a JSON number"),
    ({1: "one"}, "outputs are not JSON data: outputs: keys must be strings, got 1"),
    (["a"], "outputs must be a JSON object, got list"),
])
async def test_an_executors_outputs_that_are_not_json_data_fail_the_attempt(outputs, why):
    """As the command executor fails a step whose last line is no JSON object: no peer
    would take such outputs (the authority table refuses them), no status could show
    them; the attempt fails saying why."""
    engine = _Engine()
    executors = NodeExecutors("d1", _node(), {"test.cap": _Answers(outputs)},
                              engine.post, engine.spawn)
    executors.start(RUN)
    await asyncio.gather(*engine.tasks)
    assert engine.posted == [StepEnded("w1", "a", 1, False, {}, why)]
