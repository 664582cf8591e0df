"""A data dir as an older agent left it: its database at a given schema version, for
the tests of the migration that follows."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fedorch.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION
from fedorch.runtime.store.store import Store


def data_dir_at(tmp: Path, version: int, rows_sql: str = "") -> Path:
    """`tmp/data`, its agent.db built by the migrations up to `version` alone and
    stamped with that version, then `rows_sql` run in it (the rows an older agent
    wrote). Returns the data dir."""
    data = tmp / "data"
    data.mkdir()
    with sqlite3.connect(data / "agent.db") as db:
        db.executescript(";".join(MIGRATIONS[:version]) + ";INSERT INTO meta VALUES("
                         f"'schema_version', '{version}');" + rows_sql)
    return data


def tables_in(data: Path) -> set[str]:
    """The names of the tables in the data dir's database."""
    db = sqlite3.connect(data / "agent.db")
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


@asynccontextmanager
async def migrated(data: Path) -> AsyncIterator[Store]:
    """The store opened on an older data dir: migrated to the current schema (checked),
    closed after."""
    store = await Store.open(data)
    try:
        assert await store.get_meta("schema_version") == str(SCHEMA_VERSION)
        yield store
    finally:
        await store.close()
