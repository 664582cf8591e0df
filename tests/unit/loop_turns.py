"""Waiting for tasks that are all on the test's own loop: a few turns of it suffice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], turns: int = 100) -> None:
    """Yield to the loop until `condition` holds; fail after `turns` turns."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")
