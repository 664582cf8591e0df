"""In-process steps for demos and tests: echo, sleep, and fail (on purpose, N times).

They need no program on disk, so a scenario can exercise placement, data flow, timeouts
and retries anywhere. Like every executor they report bad params as a failed outcome.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Callable

from fedorch.runtime.executors.base import (
    Executor,
    ExecutorConfigError,
    StepInvocation,
    StepOutcome,
    timed_out_error,
)

DEFAULT_SLEEP_S = 0.1
DEFAULT_FAIL_MESSAGE = "failed on purpose"


def echo_outputs(inv: StepInvocation) -> dict:
    """What echo returns: the params back, the upstream step ids, and which attempt ran."""
    return {
        "echo": copy.deepcopy(inv.params),
        "inputs": sorted(inv.inputs),
        "step": inv.step_id,
        "attempt": inv.attempt,
    }


class EchoExecutor:
    """Succeeds at once with ``echo_outputs``."""

    async def run(self, inv: StepInvocation) -> StepOutcome:
        return StepOutcome.success(echo_outputs(inv))


class SleepExecutor:
    """Sleeps ``params.seconds`` (default 0.1), within the attempt's timeout."""

    async def run(self, inv: StepInvocation) -> StepOutcome:
        seconds = _param(inv, "seconds", DEFAULT_SLEEP_S)
        if not _is_real_number(seconds) or not math.isfinite(seconds) or seconds < 0:
            return StepOutcome.failure(
                f"params.seconds must be a non-negative number of seconds, got {seconds!r}"
            )
        try:
            async with asyncio.timeout(inv.timeout_s):
                await asyncio.sleep(seconds)
        except TimeoutError:
            return StepOutcome.failure(timed_out_error(inv.timeout_s or 0.0))
        return StepOutcome.success({"slept": float(seconds)})


class FailExecutor:
    """Fails while ``attempt <= params.times`` (default: always), then behaves like echo."""

    async def run(self, inv: StepInvocation) -> StepOutcome:
        times = _param(inv, "times", None)
        if times is not None and (not _is_integer(times) or times < 0):
            return StepOutcome.failure(
                f"params.times must be a non-negative integer (attempts to fail), got {times!r}"
            )
        if times is None or inv.attempt <= times:
            message = _param(inv, "message", DEFAULT_FAIL_MESSAGE)
            return StepOutcome.failure(str(message))
        return StepOutcome.success(echo_outputs(inv))


BUILTINS: dict[str, Callable[[], Executor]] = {
    "echo": EchoExecutor,
    "sleep": SleepExecutor,
    "fail": FailExecutor,
}


def build_builtin(name: str) -> Executor:
    try:
        factory = BUILTINS[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(BUILTINS))
        raise ExecutorConfigError(
            f"executor.name {name!r} is not a builtin executor; set it to one of: {valid}"
        ) from None
    return factory()


def _param(inv: StepInvocation, key: str, default: object) -> object:
    params = inv.params if isinstance(inv.params, dict) else {}
    return params.get(key, default)


def _is_integer(value: object) -> bool:
    # 2.0 counts too: params from a spec stored before params kept JSON types (a
    # protobuf Struct's numbers are doubles), or written 2.0 by hand.
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
