"""An example fedorch executor plugin: the ``greet`` type.

A real plugin would hand the step to an engine (and cancel it there when the attempt is
given up); this one shows the parts every plugin has: a factory that checks its options
without connecting to anything, and an executor whose ``run`` turns one attempt into a
``StepOutcome``, never raising for step-level trouble.
"""

from __future__ import annotations

import asyncio

from fedorch.runtime.executors import ExecutorSettings, StepInvocation, StepOutcome
from fedorch.runtime.executors.options import Options, refuse_unused


def build(settings: ExecutorSettings) -> GreetExecutor:
    """The entry point: called when the agent loads its config (and on every reload)."""
    refuse_unused("greet", settings)  # argv, env, name and cwd mean nothing here
    opts = Options("greet", settings.options, known=("greeting", "delay_s"))
    return GreetExecutor(
        greeting=opts.string("greeting", example="Hello"),
        delay_s=opts.number("delay_s", default=0.01),
    )


class GreetExecutor:
    def __init__(self, greeting: str, delay_s: float) -> None:
        self.greeting = greeting
        self.delay_s = delay_s

    async def run(self, inv: StepInvocation) -> StepOutcome:
        name = inv.params.get("name")
        if not isinstance(name, str):
            return StepOutcome.failure(f"params.name must be a string, got {name!r}")
        try:
            async with asyncio.timeout(inv.timeout_s):
                await asyncio.sleep(self.delay_s)  # the engine's work would go here
        except TimeoutError:
            # Here a real plugin cancels the job in its engine before it reports.
            return StepOutcome.failure(f"timed out after {inv.timeout_s}s")
        return StepOutcome.success({"message": f"{self.greeting}, {name}!",
                                    "attempt": inv.attempt})
