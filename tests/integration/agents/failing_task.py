"""`fedorch agent run` with one fault: once the agent serves, a task of its own fails.

For the JSON log test: the real daemon (its logging set-up and shutdown), plus an
exception the agent must log with its traceback (Agent.task_failed) and survive.
Usage: failing_task.py CONFIG
"""

from __future__ import annotations

import asyncio
import sys

from fedorch.runtime.agent import Agent
from fedorch.runtime.daemon import main

_run = Agent.run


async def _fail() -> None:
    raise RuntimeError("forced failure\nover two lines")


async def run_then_fail(self: Agent, ready: asyncio.Event | None = None) -> None:
    async def fail_when_ready() -> None:
        if ready is not None:
            await ready.wait()
            self.spawn(_fail(), "forced-failure")

    helper = asyncio.create_task(fail_when_ready())  # owned here, cancelled below
    try:
        await _run(self, ready)
    finally:
        helper.cancel()


Agent.run = run_then_fail  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
