"""Failing writes (disk full, I/O errors): kept and retried, never lost; reads go on;
the store says so while it lasts, and recovers by itself."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from fedorch.runtime.store import database as store_module
from fedorch.runtime.store.store import Store, is_storage_fault


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(tmp_path / "data")
    try:
        yield s
    finally:
        await s.close()


def _full() -> sqlite3.OperationalError:
    e = sqlite3.OperationalError("database or disk is full")
    e.sqlite_errorcode = sqlite3.SQLITE_FULL
    return e


class Disk:
    """Fails every write while `full`, the way SQLite reports it: the whole group
    raising (a failed COMMIT) or, with `per_writer`, each writer's own error."""

    def __init__(self, monkeypatch) -> None:
        self.full = False
        self.per_writer = False
        self.refused = 0
        real = store_module._apply_group

        def apply(db, groups):
            if not self.full:
                return real(db, groups)
            self.refused += 1
            if self.per_writer:
                return [_full() for _ in groups]
            raise _full()

        monkeypatch.setattr(store_module, "_apply_group", apply)


def _write(store: Store, i: int):
    return store.set_meta(f"wf-{i}", "RUNNING")


async def _until(predicate, what: str, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {deadline_s}s waiting for: {what}")
        await asyncio.sleep(0.01)


def test_only_storage_errors_count_as_faults() -> None:
    assert is_storage_fault(_full())
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorcode = sqlite3.SQLITE_IOERR | (3 << 8)  # an extended code: IOERR_WRITE
    assert is_storage_fault(io)
    assert not is_storage_fault(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not is_storage_fault(ValueError("x"))


@pytest.mark.parametrize("per_writer", [False, True])
async def test_failing_writes_wait_and_land_once_the_disk_has_room(
        store: Store, monkeypatch, per_writer: bool) -> None:
    disk = Disk(monkeypatch)
    disk.per_writer = per_writer
    await _write(store, 0)
    assert store.write_fault is None

    disk.full = True
    pending = [asyncio.create_task(_write(store, i)) for i in (1, 2)]
    await _until(lambda: store.write_fault is not None, "the fault to show")
    assert "disk is full" in store.write_fault
    await _until(lambda: disk.refused >= 2, "a retry")
    assert not any(t.done() for t in pending)  # kept, not failed
    # Reads are served meanwhile.
    assert await store.get_meta("wf-0") == "RUNNING"
    assert await store.get_meta("wf-1") is None

    disk.full = False
    await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert store.write_fault is None
    assert [await store.get_meta(f"wf-{i}") for i in range(3)] == ["RUNNING"] * 3


async def test_a_statement_error_is_still_its_callers(store: Store, monkeypatch) -> None:
    Disk(monkeypatch)
    await store.set_meta("a", "1")
    insert = ("INSERT INTO meta(key, value) VALUES('b', '1')", ())
    with pytest.raises(sqlite3.IntegrityError):
        await store.apply([insert, insert])
    assert store.write_fault is None


async def test_closing_gives_up_the_writes_still_failing(tmp_path, monkeypatch) -> None:
    store = await Store.open(tmp_path / "data")
    disk = Disk(monkeypatch)
    disk.full = True
    pending = asyncio.create_task(_write(store, 1))
    await _until(lambda: store.write_fault is not None, "the fault to show")
    await asyncio.wait_for(store.close(), 10)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        await pending
