"""The dask executor against a real Dask cluster: a `dask scheduler` and a `dask worker`
process on 127.0.0.1, started here and stopped by their pids.

Cancel and timeout must reach the engine: the task is gone from the scheduler, and the
running step function itself sees that it was given up and stops.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from fedorch.core.workflow import values
from fedorch.runtime.executors import StepInvocation, build_executor

from tests.integration.federation import started_federation, state_name

distributed = pytest.importorskip("distributed", reason="pip install 'fedorch[dask]'")

STEPS_DIR = pathlib.Path(__file__).parent / "steps"
BIG = 2**70
START_DEADLINE_S = 90.0


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The scheduler's address, once one worker has joined it."""
    workdir = tmp_path_factory.mktemp("dask")
    scheduler_file = workdir / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(STEPS_DIR), os.environ.get("PYTHONPATH")]))}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = []
    logs = [open(workdir / "scheduler.log", "wb"), open(workdir / "worker.log", "wb")]  # noqa: SIM115
    try:
        procs.append(subprocess.Popen(
            [*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL,
            stderr=logs[0],
        ))
        deadline = time.monotonic() + START_DEADLINE_S
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert procs[0].poll() is None, (workdir / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address,
             "--host", "127.0.0.1", "--no-nanny", "--no-dashboard", "--nthreads", "2",
             "--name", "fedorch-test-worker"],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL,
            stderr=logs[1],
        ))
        with distributed.Client(address, timeout=START_DEADLINE_S) as client:
            client.wait_for_workers(1, timeout=START_DEADLINE_S)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for log in logs:
            log.close()


def invocation(params: dict, timeout_s: float | None = 60.0) -> StepInvocation:
    return StepInvocation(
        workflow_id="wf-1", step_id="train", attempt=1, params=params,
        inputs={"extract": {"rows": [1, 2]}}, timeout_s=timeout_s,
        run_marker="eu-west/wf-1/train/1",
    )


def dask_executor(address: str, function: str):
    return build_executor("dask", options={"scheduler": address,
                                           "function": f"dask_steps:{function}"})


async def scheduler_task_keys(address: str) -> set[str]:
    async with distributed.Client(address, asynchronous=True, timeout=30,
                                  set_as_default=False) as client:
        def keys(dask_scheduler):
            return [str(key) for key in dask_scheduler.tasks]
        return set(await client.run_on_scheduler(keys))


def read_mark(path: pathlib.Path) -> str | None:
    """A mark file's few bytes, or None while the step has not written it."""
    return path.read_text() if path.exists() else None


async def wait_for_file(path: pathlib.Path, deadline_s: float = 60.0) -> str:
    deadline = time.monotonic() + deadline_s
    while (text := read_mark(path)) is None:
        assert time.monotonic() < deadline, f"{path.name} was never written"
        await asyncio.sleep(0.05)
    return text


async def test_a_step_runs_on_a_worker_with_exact_values(cluster) -> None:
    outcome = await dask_executor(cluster, "add").run(invocation({"a": 1, "b": 2, "big": BIG}))
    assert outcome.ok, outcome.error
    assert outcome.outputs["sum"] == 3 and type(outcome.outputs["sum"]) is int
    assert outcome.outputs["big"] == BIG
    assert outcome.outputs["upstream"] == {"extract": {"rows": [1, 2]}}
    assert outcome.outputs["worker_pid"] != os.getpid()  # it ran in the worker process


async def test_the_steps_exception_is_a_failed_step(cluster) -> None:
    outcome = await dask_executor(cluster, "explode").run(invocation({}))
    assert not outcome.ok
    assert outcome.error == "RuntimeError: no GPU for step train"


async def test_outputs_that_are_not_a_dict_fail(cluster) -> None:
    outcome = await dask_executor(cluster, "not_a_dict").run(invocation({}))
    assert not outcome.ok
    assert "must return a dict of outputs" in outcome.error


async def test_cancelling_the_attempt_cancels_the_task_on_the_cluster(cluster, tmp_path) -> None:
    task = asyncio.create_task(dask_executor(cluster, "wait_for_cancel").run(
        invocation({"marks": str(tmp_path)}, timeout_s=None)
    ))
    await wait_for_file(tmp_path / "started")
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_for_file(tmp_path / "stopped") == "cancelled"
    assert not any(key.startswith("fedorch-eu-west/wf-1/train/1-")
                   for key in await scheduler_task_keys(cluster))


async def test_a_timed_out_step_is_cancelled_on_the_cluster(cluster, tmp_path) -> None:
    outcome = await dask_executor(cluster, "wait_for_cancel").run(
        invocation({"marks": str(tmp_path)}, timeout_s=8.0)
    )
    assert not outcome.ok
    assert outcome.error == "timed out after 8.0s"
    assert read_mark(tmp_path / "started") is not None  # the task did reach the worker
    assert await wait_for_file(tmp_path / "stopped") == "cancelled"
    assert not any(key.startswith("fedorch-eu-west/wf-1/train/1-")
                   for key in await scheduler_task_keys(cluster))


async def test_an_unreachable_scheduler_is_a_failed_step() -> None:
    executor = build_executor("dask", options={
        "scheduler": "tcp://127.0.0.1:9", "function": "dask_steps:add",
        "connect_timeout_s": 2,
    })
    outcome = await executor.run(invocation({"a": 1, "b": 2, "big": 0}))
    assert not outcome.ok
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in outcome.error


@pytest.mark.integration
async def test_agents_run_a_workflow_step_on_the_dask_cluster(cluster, tmp_path) -> None:
    """Two real agents: partner extracts, eu-west's capability runs on the Dask cluster."""
    domains = {
        "partner": {"capabilities": [
            {"name": "data.extract", "capacity": 2,
             "executor": {"type": "builtin", "name": "echo"}},
        ]},
        "eu-west": {"capabilities": [
            {"name": "ml.sum", "capacity": 2,
             "executor": {"type": "dask", "options": {"scheduler": cluster,
                                                      "function": "dask_steps:add"}}},
        ]},
    }
    spec = f"""
name: dask-sum
steps:
  - id: extract
    capability: data.extract
    params: {{n: 1}}
    constraints: {{domains: [partner]}}
  - id: sum
    capability: ml.sum
    needs: [extract]
    params: {{a: 40, b: 2, big: {BIG}}}
    constraints: {{domains: [eu-west]}}
"""
    async with started_federation(tmp_path, domains) as fed:
        wid = await fed.submit("partner", spec)
        status = await fed.wait_state("partner", wid, deadline_s=120)
    assert state_name(status) == "SUCCEEDED", status
    step = next(s for s in status.steps if s.id == "sum")
    assert step.domain == "eu-west"
    outputs = values.loads_object(step.outputs_json)
    assert outputs["sum"] == 42 and outputs["big"] == BIG
    assert outputs["upstream"]["extract"]["echo"] == {"n": 1}
    assert outputs["worker_pid"] not in {proc.pid for proc in fed.procs.values()}
