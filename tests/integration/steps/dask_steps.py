"""Step functions the dask executor tests run on a real Dask worker (imported there)."""

from __future__ import annotations

import os
import pathlib
import time

from fedorch.runtime.executors.dask_task import step_cancelled


def add(job: dict) -> dict:
    params = job["params"]
    return {
        "sum": params["a"] + params["b"],
        "big": params["big"],
        "upstream": job["inputs"],
        "attempt": job["attempt"],
        "worker_pid": os.getpid(),
    }


def explode(job: dict) -> dict:
    raise RuntimeError(f"no GPU for step {job['step']}")


def not_a_dict(job: dict) -> list:
    return [1, 2]


def wait_for_cancel(job: dict) -> dict:
    """Runs until the agent gives the step up, then says so in a file the test reads."""
    marks = pathlib.Path(job["params"]["marks"])
    (marks / "started").write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if step_cancelled():
            (marks / "stopped").write_text("cancelled")
            return {}
        time.sleep(0.05)
    (marks / "stopped").write_text("never cancelled")
    return {}
