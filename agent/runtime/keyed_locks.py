"""Locks by key: one asyncio.Lock per key, made on first use and dropped with its last user."""

from __future__ import annotations

import asyncio
import contextlib


class KeyedLocks:
    """One asyncio.Lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}  # lock, users

    def __contains__(self, key: object) -> bool:
        return key in self._locks

    @contextlib.asynccontextmanager
    async def hold(self, key: object):
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
