"""The node engine's commit (runtime/node_engine/commit_thread.py): the transaction in
the commit thread, a storage fault kept by write_behind on the loop's thread, a retry
written synchronously, any other error raised."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from fedorch.core.node.ready import PUT, Op, Write
from fedorch.runtime.node_engine.commit_thread import EngineCommit, Replayed
from fedorch.runtime.node_engine.write_behind import HeldDurable, WriteFault


def full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = sqlite3.SQLITE_FULL
    return error


class Store:
    """A Durable that records each write's thread; `fail` raises instead."""

    def __init__(self) -> None:
        self.written: list[tuple[str, list[Write]]] = []
        self.fail: BaseException | None = None

    def write(self, writes) -> None:
        if self.fail is not None:
            raise self.fail
        self.written.append((threading.current_thread().name, list(writes)))


def group(name: str) -> Write:
    return Write(name, [Op("committed", PUT, name, 1)])


def build():
    store, fault = Store(), WriteFault()
    replayed = Replayed(store)
    faults: list[str] = []
    held = HeldDurable(replayed, fault, on_fault=lambda: faults.append("fault"))
    return store, fault, held, EngineCommit(store, replayed, held, fault), faults


async def test_a_commit_is_written_once_in_the_commit_thread():
    store, fault, held, commit, _ = build()
    try:
        await commit.write([group("a")])
    finally:
        commit.close()
    assert len(store.written) == 1  # not written again by HeldDurable's replay
    thread, writes = store.written[0]
    assert thread.startswith("node-commit") and writes[0].point == "a"
    assert not fault.active


async def test_a_storage_fault_is_kept_and_the_retry_writes_on_the_callers_thread():
    store, fault, held, commit, faults = build()
    store.fail = full()
    try:
        await commit.write([group("a")])  # kept, not raised: the driver goes on
        assert fault.active and faults == ["fault"]
        store.fail = None
        await commit.write([group("b")])  # kept behind "a", no I/O while the fault holds
        assert store.written == []
        assert held.retry()
    finally:
        commit.close()
    thread, writes = store.written[0]
    assert thread == threading.current_thread().name  # the retry: not the commit thread
    assert [w.point for w in writes] == ["a", "b"]
    assert not fault.active


async def test_any_other_error_of_the_commit_is_raised():
    store, fault, held, commit, _ = build()
    store.fail = ValueError("not a storage fault")
    try:
        with pytest.raises(ValueError, match="not a storage fault"):
            await commit.write([group("a")])
    finally:
        commit.close()
    assert not fault.active
