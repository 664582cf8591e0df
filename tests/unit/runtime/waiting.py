"""Waiting on a condition in the runtime's tests: polled, with a deadline, never a
sleep standing in for the condition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def until(condition: Callable[[], T], what: str, deadline_s: float = 30.0) -> T:
    """Wait until `condition()` is truthy and return it; past `deadline_s` fail, naming
    `what` was waited for."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while not (value := condition()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return value
