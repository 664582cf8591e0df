"""Store: schema and pragmas, group commits, meta, reopen, versions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedorch.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION
from fedorch.runtime.store.store import Store, StoreError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data")
    try:
        yield s
    finally:
        await s.close()


async def pragma(store: Store, name: str) -> object:
    async with store._database.connection.execute(f"PRAGMA {name}") as cur:
        row = await cur.fetchone()
    return row[0]


# ---- schema -------------------------------------------------------------------------------


async def test_schema_is_created_with_wal_and_full_sync(store: Store, tmp_path: Path) -> None:
    assert await pragma(store, "journal_mode") == "wal"
    assert await pragma(store, "synchronous") == 2  # FULL
    assert await store.get_meta("schema_version") == str(SCHEMA_VERSION)
    async with store._database.connection.execute(
        "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"
    ) as cur:
        tables = {r[0] for r in await cur.fetchall()}
    assert {"meta", "workflows", "steps", "decisions", "reservations", "step_runs"} <= tables
    assert (tmp_path / "data" / "agent.db").exists()


_PUT = "INSERT INTO meta(key, value) VALUES(?, ?)"  # a second put of a key fails


async def test_a_lone_write_that_fails_leaves_nothing(store: Store) -> None:
    await store.apply([(_PUT, ("k", "1"))])
    with pytest.raises(sqlite3.IntegrityError):
        await store.apply([(_PUT, ("k", "2"))])  # one statement: its own transaction
    with pytest.raises(sqlite3.IntegrityError):  # two: the first is rolled back with it
        await store.apply([(_PUT, ("j", "1")), (_PUT, ("k", "3"))])
    assert await store.get_meta("k") == "1" and await store.get_meta("j") is None
    await store.apply([(_PUT, ("j", "1")), (_PUT, ("i", "1"))])
    assert await store.get_meta("j") == "1" and await store.get_meta("i") == "1"
    assert store.commits == store.writes == 4  # each alone in its group


async def test_writes_that_arrive_together_share_a_commit_and_fail_alone(store: Store) -> None:
    await store.apply([(_PUT, ("k", "1"))])
    commits = store.commits
    outcomes = await asyncio.gather(
        store.apply([(_PUT, ("a", "1"))]),
        store.apply([(_PUT, ("b", "1")), (_PUT, ("k", "2"))]),  # fails: rolled back alone
        store.apply([(_PUT, ("c", "1")), (_PUT, ("d", "1"))]),
        return_exceptions=True)
    assert outcomes[0] == [1] and outcomes[2] == [1, 1]
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert store.commits == commits + 1  # one transaction for the three
    assert [await store.get_meta(k) for k in "abcdk"] == ["1", None, "1", "1", "1"]


async def test_meta_round_trip(store: Store) -> None:
    assert await store.get_meta("missing") is None
    await store.set_meta("node", "a")
    await store.set_meta("node", "b")
    assert await store.get_meta("node") == "b"


# ---- durability ---------------------------------------------------------------------------


async def test_reopen_finds_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = await Store.open(data)
    await s.set_meta("incarnation", "4")
    await s.close()

    s = await Store.open(data)
    try:
        assert await s.get_meta("incarnation") == "4"
        assert await s.get_meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        await s.close()


async def test_a_newer_schema_version_refuses_to_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = await Store.open(data)
    await s.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    await s.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        await Store.open(data)
    # Refusing changed nothing: the newer version is still recorded.
    with sqlite3.connect(data / "agent.db") as db:
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert row == (str(SCHEMA_VERSION + 1),)


async def test_a_version_1_data_dir_is_upgraded_in_place(tmp_path: Path) -> None:
    """An agent.db of the first schema, a workflow of the older engine in it: migrated
    to the current schema, the row left as it was (the node engine's start check reads
    it: node_engine/engine_switch.py)."""
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "agent.db") as db:
        db.executescript(MIGRATIONS[0] + ";INSERT INTO meta VALUES('schema_version', '1');"
                         "INSERT INTO workflows(id, name, coordinator, state, spec, created_ms,"
                         " updated_ms) VALUES('wf-old', 'n', 'eu-west', 'RUNNING', x'00', 1, 2);")
    s = await Store.open(data)
    try:
        assert await s.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert await s.select("SELECT id, state FROM workflows") == [("wf-old", "RUNNING")]
    finally:
        await s.close()
