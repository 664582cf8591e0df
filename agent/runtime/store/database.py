"""The store's SQLite connection: opening and migrating the file, reads, and the group
commit every write goes through.

Peers rely on what this file says (a YES vote, a decision, a step start), so it
runs with `synchronous=FULL`: a write is on disk before the call returns, and
callers only tell anyone about it after that.

Group commit: writes that arrive while a transaction is being committed wait
and then share the next one, so one fsync covers many of them. Each writer's
statements run in a savepoint of their own: a write that fails (a unique
index) is rolled back alone and its caller gets the error; the others commit.
A writer alone in its group needs no savepoint, and a lone statement no
explicit transaction (`_apply_alone`): the usual case on an idle agent.
A group runs as one call on the connection's thread (`_apply_group`), not one
hop per statement: cheaper, and no read queued meanwhile can run inside the
open transaction and see a write that is not yet committed.

The tables' own statements and rows are made elsewhere (store.py, audit_table.py);
this module runs them.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import sqlite3
from collections.abc import Callable, Sequence

import aiosqlite
from fedorch.runtime.store import audit_table
from fedorch.runtime.store.identity import BadDatabase, StoreError
from fedorch.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger("fedorch.store")

Statement = tuple[str, tuple]

# SQLite result codes that say the storage failed, not the statement: the disk is full,
# an I/O error, the file went read-only (a filesystem remounted after errors). A write
# that meets one is kept and tried again; see Database._commit_queued.
STORAGE_FAULTS = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY,
                            sqlite3.SQLITE_CANTOPEN})
WRITE_RETRY_FIRST_S = 0.2
WRITE_RETRY_MAX_S = 2.0


def is_storage_fault(e: BaseException) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    return isinstance(e, sqlite3.Error) and code is not None and code & 0xFF in STORAGE_FAULTS


def unreadable_storage(db_path: pathlib.Path, e: BaseException) -> str:
    """One line for a database the storage would not let us read (not judged damaged:
    no --start-fresh advice, and the flag does not move it aside)."""
    return (f"{db_path}: cannot read it ({e}): free space or mend the disk, then start the"
            " agent again (the file is kept as it is; if it stays unreadable with a sound"
            " disk, restore it from a backup)")


def _run(database: Database, conn: sqlite3.Connection,
         statements: list[Statement]) -> list[int]:
    """One writer's statements, each changed-row count; audit appends go to the chain
    (an append counts one row, or none when its `if_changed` condition fails)."""
    counts: list[int] = []
    chain = database.chain
    executed = 0
    for sql, args in statements:
        if sql in audit_table.APPENDS:
            if sql is audit_table.APPEND_IF_CHANGED and not (counts and counts[-1] > 0):
                counts.append(0)
                continue
            chain.add(*args)
            counts.append(1)
        else:
            executed += 1
            counts.append(conn.execute(sql, args).rowcount)
    database.statements += executed
    return counts


def _apply_group(database: Database,
                 groups: list[list[Statement]]) -> list[list[int] | sqlite3.Error]:
    """On the connection's thread: one transaction, a savepoint per writer; returns
    each writer's changed-row count per statement, or the error that rolled its
    savepoint back."""
    conn = database.connection._conn
    if len(groups) == 1:
        return [_apply_alone(database, conn, groups[0])]
    chain = database.chain
    start = chain.mark()
    outcomes: list[list[int] | sqlite3.Error] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statements in groups:
            mark = chain.mark()
            conn.execute("SAVEPOINT write")
            try:
                outcomes.append(_run(database, conn, statements))
            except sqlite3.Error as e:
                conn.execute("ROLLBACK TO write")
                chain.reset(mark)
                outcomes.append(e)
            conn.execute("RELEASE write")
        database.statements += chain.flush(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        chain.reset(start)
        raise
    return outcomes


def _apply_alone(database: Database, conn: sqlite3.Connection,
                 statements: list[Statement]) -> list[int] | sqlite3.Error:
    """A writer alone in its group: its own transaction, with no savepoint, and a lone
    statement as an autocommit one. Each call into SQLite gives up the GIL and must win
    it back from a busy event loop, so fewer calls finish the write sooner."""
    chain = database.chain
    start = chain.mark()
    if len(statements) == 1:
        try:
            counts = _run(database, conn, statements)
            database.statements += chain.flush(conn)  # a lone append: its one INSERT
            return counts
        except sqlite3.Error as e:  # rolled back with its statement; the commit's error too
            chain.reset(start)
            return e
    conn.execute("BEGIN IMMEDIATE")
    try:
        counts = _run(database, conn, statements)
        database.statements += chain.flush(conn)
        conn.execute("COMMIT")
        return counts
    except BaseException as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        chain.reset(start)
        if isinstance(e, sqlite3.Error):  # this writer's error, the commit's too
            return e
        raise


class Database:
    """One open SQLite file: its reads, and the writes' group commit."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        # Writes waiting for the next group commit: (statements, caller's future).
        self._queue: list[tuple[list[Statement], asyncio.Future]] = []
        self._committer: asyncio.Task | None = None
        self.commits = 0  # transactions committed (writes / commits = group size)
        # Told after each transaction (on the event loop): views of the store that wait
        # for news (the console's feed) look again then, never on a period.
        self.on_commit: list[Callable[[], None]] = []
        self.writes = 0
        # SQL statements the writes ran (not counting the transactions' BEGIN, savepoints
        # and COMMIT; the audit records of one transaction are one): counted on the
        # connection's thread, read on the loop.
        self.statements = 0
        # The audit log's head (read once the schema is current; see audit_table.Chain).
        self.chain = audit_table.Chain(0, b"")
        # While writes fail for the storage (disk full, I/O errors): what SQLite said.
        # The agent takes no new work meanwhile; the writes already asked for are kept
        # and retried until they succeed, so nothing acknowledged is lost.
        self.write_fault: str | None = None
        self._closing = asyncio.Event()

    @classmethod
    async def open(cls, db_path: pathlib.Path) -> Database:
        """Open the file, check every page of it and bring its schema up to date;
        BadDatabase when it is not a readable SQLite database."""
        try:
            connection = await aiosqlite.connect(db_path, isolation_level=None)
        except sqlite3.Error as e:
            raise BadDatabase(db_path, f"cannot be opened ({e})") from None
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=FULL")
            await connection.execute("PRAGMA foreign_keys=ON")
            await connection.execute("PRAGMA busy_timeout=5000")
            # Every page read once: a truncated or corrupt file shows here, not later
            # in the middle of some peer's request.
            problems = [r[0] for r in await connection.execute_fetchall("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise BadDatabase(db_path, f"fails SQLite's integrity check ({problems[0]})")
            database = cls(connection)
            await database._migrate()
            database.chain = await connection._execute(audit_table.Chain.load,
                                                        connection._conn)
        except sqlite3.DatabaseError as e:  # "file is not a database", "malformed", I/O
            await connection.close()
            if is_storage_fault(e):  # a full or failing disk says nothing of the file
                raise StoreError(unreadable_storage(db_path, e)) from None
            raise BadDatabase(db_path, f"is not a readable SQLite database ({e})") from None
        except BaseException:
            await connection.close()
            raise
        return database

    async def _migrate(self) -> None:
        has_meta = await self.one(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='meta'"
        )
        version = 0
        if has_meta:
            row = await self.one("SELECT value FROM meta WHERE key='schema_version'")
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"data dir has schema version {version}, this agent knows up to {SCHEMA_VERSION}"
            )
        for target in range(version, SCHEMA_VERSION):
            await self.connection.executescript(
                "BEGIN;" + MIGRATIONS[target] + ";"
                f"INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '{target + 1}');"
                "COMMIT;"
            )

    async def close(self) -> None:
        self._closing.set()  # writes still failing then are given up (their callers told)
        if self._committer is not None:
            await self._committer  # it ends once the queue is empty
        await self.connection.close()

    # Reads by key return a row or a few: one hop to the connection's thread each
    # (execute_fetchall), not three (execute, fetch, close the cursor).
    async def one(self, sql: str, args: tuple = ()) -> tuple | None:
        rows = await self.connection.execute_fetchall(sql, args)
        return tuple(rows[0]) if rows else None

    async def all(self, sql: str, args: tuple = ()) -> list[tuple]:
        return list(await self.connection.execute_fetchall(sql, args))

    async def write(self, statements: Sequence[Statement]) -> list[int]:
        """Run statements atomically and durably; returns how many rows each changed."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((list(statements), future))
        if self._committer is None or self._committer.done():
            # Owned by the database: it drains the queue, then ends; close() awaits it.
            self._committer = asyncio.create_task(self._commit_queued(), name="group commit")
        return await future

    async def _commit_queued(self) -> None:
        delay = WRITE_RETRY_FIRST_S
        while self._queue:
            batch, self._queue = self._queue, []
            results: list[tuple[asyncio.Future, list[int] | BaseException]] = []
            retry: list[tuple[list[Statement], asyncio.Future]] = []
            fault: BaseException | None = None
            try:
                # aiosqlite runs a callable on its connection thread with _execute
                # (the same path as its own execute; the version range is pinned).
                outcomes = await self.connection._execute(
                    _apply_group, self, [statements for statements, _ in batch])
                for (statements, future), outcome in zip(batch, outcomes, strict=True):
                    if is_storage_fault(outcome) and not self._closing.is_set():
                        retry.append((statements, future))
                        fault = outcome
                    else:
                        results.append((future, outcome))
            except BaseException as e:  # the commit itself failed: nobody's write is durable
                if is_storage_fault(e) and not self._closing.is_set():
                    retry, fault = batch, e
                else:
                    results = [(future, e) for _, future in batch]
                    if not isinstance(e, Exception):
                        raise
            finally:
                self.commits += 1
                self.writes += len(batch)
                for hook in self.on_commit:
                    hook()
                for future, outcome in results:
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
            if fault is None:
                if self.write_fault is not None:
                    log.warning("writes to the database succeed again; taking new work")
                    self.write_fault = None
                delay = WRITE_RETRY_FIRST_S
                continue
            # The storage failed these writes: they wait (first in line, in their order)
            # and are tried again until they succeed or the store closes.
            if self.write_fault is None:
                log.error("cannot write the database (%s): taking no new work, keeping %d"
                          " writes to retry until the storage takes them", fault, len(retry))
            self.write_fault = str(fault)
            self._queue = retry + self._queue
            try:
                await asyncio.wait_for(self._closing.wait(), delay)
            except TimeoutError:
                pass
            delay = min(2 * delay, WRITE_RETRY_MAX_S)
