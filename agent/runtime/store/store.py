"""Durable state of one agent: aiosqlite over one SQLite file in WAL mode.

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
"""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace

import aiosqlite
from fedorch.core.audit.chain import Checkpoint, Record
from fedorch.gen.fedorch.v1 import keys_pb2
from fedorch.runtime.store import audit_table
from fedorch.runtime.store import identity as ident
from fedorch.runtime.store.identity import BadDatabase, Identity, StoreError
from fedorch.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION
from fedorch.runtime.store.written import Written

log = logging.getLogger("fedorch.store")
__all__ = ["BadDatabase", "Store", "StoreError"]  # and the row classes


def _run(store: Store, conn: sqlite3.Connection, statements: list[Statement]) -> list[int]:
    """One writer's statements, each changed-row count; audit appends go to the chain
    (an append counts one row, or none when its `if_changed` condition fails)."""
    counts: list[int] = []
    chain = store._chain
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
    store.statements += executed
    return counts


def _apply_group(store: Store, groups: list[list[Statement]]) -> list[list[int] | sqlite3.Error]:
    """On the connection's thread: one transaction, a savepoint per writer; returns
    each writer's changed-row count per statement, or the error that rolled its
    savepoint back."""
    conn = store._db._conn
    if len(groups) == 1:
        return [_apply_alone(store, conn, groups[0])]
    chain = store._chain
    start = chain.mark()
    outcomes: list[list[int] | sqlite3.Error] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statements in groups:
            mark = chain.mark()
            conn.execute("SAVEPOINT write")
            try:
                outcomes.append(_run(store, conn, statements))
            except sqlite3.Error as e:
                conn.execute("ROLLBACK TO write")
                chain.reset(mark)
                outcomes.append(e)
            conn.execute("RELEASE write")
        store.statements += chain.flush(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        chain.reset(start)
        raise
    return outcomes


def _apply_alone(store: Store, conn: sqlite3.Connection,
                 statements: list[Statement]) -> list[int] | sqlite3.Error:
    """A writer alone in its group: its own transaction, with no savepoint, and a lone
    statement as an autocommit one. Each call into SQLite gives up the GIL and must win
    it back from a busy event loop, so fewer calls finish the write sooner."""
    chain = store._chain
    start = chain.mark()
    if len(statements) == 1:
        try:
            counts = _run(store, conn, statements)
            store.statements += chain.flush(conn)  # a lone append: its one INSERT
            return counts
        except sqlite3.Error as e:  # rolled back with its statement; the commit's error too
            chain.reset(start)
            return e
    conn.execute("BEGIN IMMEDIATE")
    try:
        counts = _run(store, conn, statements)
        store.statements += chain.flush(conn)
        conn.execute("COMMIT")
        return counts
    except BaseException as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        chain.reset(start)
        if isinstance(e, sqlite3.Error):  # this writer's error, the commit's too
            return e
        raise


Statement = tuple[str, tuple]

# SQLite result codes that say the storage failed, not the statement: the disk is full,
# an I/O error, the file went read-only (a filesystem remounted after errors). A write
# that meets one is kept and tried again; see Store._commit_queued.
STORAGE_FAULTS = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY,
                            sqlite3.SQLITE_CANTOPEN})
WRITE_RETRY_FIRST_S = 0.2
WRITE_RETRY_MAX_S = 2.0


def is_storage_fault(e: BaseException) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    return isinstance(e, sqlite3.Error) and code is not None and code & 0xFF in STORAGE_FAULTS


def _once_statement(table: str, column: str, workflow_id: str, round_: int, outcome: str,
                    value: bytes) -> Statement:
    """Fill a write-once cell if it is empty (one row changed), else leave it (none)."""
    return (f"INSERT OR IGNORE INTO {table}(workflow_id, round, outcome, {column})"
            " VALUES(?, ?, ?, ?)", (workflow_id, round_, outcome, value))


@dataclass
class WorkflowRow:
    id: str
    name: str
    coordinator: str
    state: str
    spec: bytes
    reason: str = ""
    placement: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    round: int = 0
    refusals: list[dict] = field(default_factory=list)
    request_id: str | None = None
    created_ms: int = 0
    updated_ms: int = 0
    acceptors: list[str] = field(default_factory=list)  # Paxos Commit: of `round`
    # At the coordinator: the submitter's SignedSpec without its spec (that is `spec`).
    submission: bytes = b""
    # Coordinator takeover (agent/core/workflow/takeover.py): the epoch of `coordinator`
    # (0: the one the id names), and the epoch this domain granted and to whom (its
    # promise: never to two claimants of one epoch).
    epoch: int = 0
    granted_epoch: int = 0
    granted_to: str = ""


@dataclass
class StepRow:
    workflow_id: str
    step_id: str
    domain: str
    state: str
    attempts: int = 0
    outputs: dict = field(default_factory=dict)
    error: str = ""
    # The domains the step was placed on before, each lost (agent/runtime/replacement.py).
    replaced_from: list[str] = field(default_factory=list)


@dataclass
class ReservationRow:
    workflow_id: str
    round: int
    coordinator: str
    state: str
    steps: list[tuple[str, str]]
    lease_expires_ms: int
    coordinator_endpoint: str = ""


@dataclass
class HoldTxRow:
    """The PREPARE behind a Paxos Commit reservation (serialized PaxosTx and spec)."""

    workflow_id: str
    round: int
    tx: bytes
    spec: bytes
    placement: dict[str, str]
    coordinator_endpoint: str = ""
    # The coordinator's signed round (an Envelope, as received); b"" from an older
    # coordinator, or one that signed it only when an acceptor held no step.
    round_tx: bytes = b""


@dataclass
class AcceptorRow:
    """One acceptor record; ballots are (n, proposer), values serialized PaxosValues."""

    workflow_id: str
    round: int
    tx: bytes
    promised: tuple[int, str] | None = None
    accepted: tuple[int, str] | None = None
    accepted_value: bytes | None = None
    decided: bytes | None = None
    # The coordinator's signed round the record was made of (an Envelope, as received
    # and verified); b"" for a record of an older agent, or made of an older
    # coordinator's own unsigned message.
    round_tx: bytes = b""


class Store:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # Writes waiting for the next group commit: (statements, caller's future).
        self._queue: list[tuple[list[tuple[str, tuple]], asyncio.Future]] = []
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
        self._chain = audit_table.Chain(0, b"")
        self._written = Written()  # the last rows written of each workflow (written.py)
        # While writes fail for the storage (disk full, I/O errors): what SQLite said.
        # The agent takes no new work meanwhile; the writes already asked for are kept
        # and retried until they succeed, so nothing acknowledged is lost.
        self.write_fault: str | None = None
        self._closing = asyncio.Event()

    @classmethod
    async def open(cls, data_dir: str | pathlib.Path, *, domain: str | None = None,
                   key: str | None = None, start_fresh: bool = False,
                   earlier_keys: Collection[str] = ()) -> Store:
        """Open (or create) the data dir's database, refusing one that is not the one
        this agent wrote or is damaged (BadDatabase; see store/identity.py). With
        `domain` and `key` (its fingerprint) the identity record is checked and kept;
        without, only the file itself. `start_fresh` moves a refused database aside
        and starts with an empty one. `earlier_keys`: fingerprints of keys this domain
        rotated away from; a database written under one is this domain's, and is
        re-labelled with `key`."""
        path = pathlib.Path(data_dir)
        try:
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
            try:
                return await cls._open_checked(path, domain, key, earlier_keys)
            except BadDatabase as e:
                if not start_fresh:
                    raise
                moved = await asyncio.to_thread(ident.move_aside, path)
                log.warning("%s; moved it aside to %s and starting with an empty database",
                            e.problem, moved)
                return await cls._open_checked(path, domain, key, earlier_keys)
        except OSError as e:  # permissions, a read-only or full file system: one line
            raise StoreError(f"{path}: cannot use the data dir: {e.strerror or e}") from None

    @classmethod
    async def _open_checked(cls, path: pathlib.Path, domain: str | None,
                            key: str | None, earlier_keys: Collection[str] = ()) -> Store:
        recorded = await asyncio.to_thread(ident.check_before_open, path)
        db_path = path / ident.DB_FILE
        try:
            db = await aiosqlite.connect(db_path, isolation_level=None)
        except sqlite3.Error as e:
            raise BadDatabase(db_path, f"cannot be opened ({e})") from None
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            # Every page read once: a truncated or corrupt file shows here, not later
            # in the middle of some peer's request.
            problems = [r[0] for r in await db.execute_fetchall("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise BadDatabase(db_path, f"fails SQLite's integrity check ({problems[0]})")
            store = cls(db)
            await store._migrate()
            store._chain = await db._execute(audit_table.Chain.load, db._conn)
            if domain is not None and key is not None:
                await store._check_identity(path, recorded, domain, key, earlier_keys)
        except sqlite3.DatabaseError as e:  # "file is not a database", "malformed", I/O
            await db.close()
            raise BadDatabase(db_path, f"is not a readable SQLite database ({e})") from None
        except BaseException:
            await db.close()
            raise
        return store

    async def _check_identity(self, data_dir: pathlib.Path, recorded: Identity | None,
                              domain: str, key: str, earlier_keys: Collection[str] = ()) -> None:
        fields = {k: await self.get_meta(f"identity.{k}") for k in ("domain", "key", "database")}
        in_db = Identity(**fields) if all(fields.values()) else None  # type: ignore[arg-type]
        if in_db is not None and in_db.domain == domain and in_db.key in earlier_keys:
            # Written under a key this domain rotated away from (stopped, then rotated).
            await self.rekey(data_dir, key)
            in_db = replace(in_db, key=key)
            recorded = recorded if recorded is None else replace(recorded, key=key)
        new = ident.check_identity(data_dir / ident.DB_FILE, recorded, in_db, domain, key)
        if new is None:
            return
        if in_db is None:  # the database's record first: it is the one that decides
            await self._write([("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
                                (f"identity.{k}", v)) for k, v in vars(new).items()])
        await asyncio.to_thread(ident.write_identity, data_dir, new)

    @property
    def writable(self) -> bool:
        return self.write_fault is None

    async def close(self) -> None:
        self._closing.set()  # writes still failing then are given up (their callers told)
        if self._committer is not None:
            await self._committer  # it ends once the queue is empty
        await self._db.close()

    async def _migrate(self) -> None:
        has_meta = await self._one(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='meta'"
        )
        version = 0
        if has_meta:
            row = await self._one("SELECT value FROM meta WHERE key='schema_version'")
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"data dir has schema version {version}, this agent knows up to {SCHEMA_VERSION}"
            )
        for target in range(version, SCHEMA_VERSION):
            await self._db.executescript(
                "BEGIN;" + MIGRATIONS[target] + ";"
                f"INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '{target + 1}');"
                "COMMIT;"
            )

    # Reads by key return a row or a few: one hop to the connection's thread each
    # (execute_fetchall), not three (execute, fetch, close the cursor).
    async def _one(self, sql: str, args: tuple = ()) -> tuple | None:
        rows = await self._db.execute_fetchall(sql, args)
        return tuple(rows[0]) if rows else None

    async def _all(self, sql: str, args: tuple = ()) -> list[tuple]:
        return list(await self._db.execute_fetchall(sql, args))

    async def select(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of a read made by a table's own module (e.g. runtime/compensation.py)."""
        return await self._all(sql, args)

    async def _write(self, statements: list[tuple[str, tuple]]) -> list[int]:
        """Run statements atomically and durably; returns how many rows each changed."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((statements, future))
        if self._committer is None or self._committer.done():
            # Owned by the store: it drains the queue, then ends; close() awaits it.
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
                outcomes = await self._db._execute(
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

    # ---- meta ----------------------------------------------------------------

    # ---- key records (runtime/key_changes.py) ----------------------------------------

    @staticmethod
    def key_record_statement(domain: str, record: keys_pb2.KeyRecord,
                             now_ms: int) -> Statement:
        return ("INSERT OR IGNORE INTO key_records(statement, domain, record, learned_ms)"
                " VALUES(?, ?, ?, ?)",
                (record.statement, domain, record.SerializeToString(), now_ms))

    async def key_records(self) -> list[keys_pb2.KeyRecord]:
        rows = await self._all("SELECT record FROM key_records ORDER BY learned_ms")
        return [keys_pb2.KeyRecord.FromString(r[0]) for r in rows]

    async def rekey(self, data_dir: str | pathlib.Path, key: str) -> None:
        """The domain's key rotated: its database and data dir name the new key."""
        await self.set_meta("identity.key", key)
        recorded = await asyncio.to_thread(ident.read_identity, pathlib.Path(data_dir))
        if recorded is not None and recorded.key != key:
            await asyncio.to_thread(ident.write_identity, pathlib.Path(data_dir),
                                    replace(recorded, key=key))

    async def get_meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key=?", (key,))
        return row[0] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._write([("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))])

    # ---- workflows and steps ---------------------------------------------------

    _WF_COLS = (
        "id, name, coordinator, state, spec, reason, placement, endpoints, round, refusals, "
        "request_id, created_ms, updated_ms, acceptors, submission, epoch, granted_epoch, "
        "granted_to"
    )

    @staticmethod
    def _wf_args(w: WorkflowRow) -> tuple:
        return (
            w.id, w.name, w.coordinator, w.state, w.spec, w.reason, json.dumps(w.placement),
            json.dumps(w.endpoints), w.round, json.dumps(w.refusals), w.request_id,
            w.created_ms, w.updated_ms, json.dumps(w.acceptors), w.submission, w.epoch,
            w.granted_epoch, w.granted_to,
        )

    @staticmethod
    def _wf_from(row: tuple) -> WorkflowRow:
        return WorkflowRow(
            id=row[0], name=row[1], coordinator=row[2], state=row[3], spec=bytes(row[4]),
            reason=row[5], placement=json.loads(row[6]), endpoints=json.loads(row[7]),
            round=row[8], refusals=json.loads(row[9]), request_id=row[10],
            created_ms=row[11], updated_ms=row[12], acceptors=json.loads(row[13]),
            submission=bytes(row[14]), epoch=row[15], granted_epoch=row[16],
            granted_to=row[17],
        )

    _STEP_COLS = "workflow_id, step_id, domain, state, attempts, outputs, error, replaced_from"
    _WF_UPSERT = (f"INSERT INTO workflows({_WF_COLS}) VALUES({', '.join('?' * 18)})"
                  # An upsert on the id, not INSERT OR REPLACE: REPLACE would delete another
                  # workflow that holds the same request_id instead of failing on the index.
                  " ON CONFLICT(id) DO UPDATE SET "
                  + ", ".join(f"{c} = excluded.{c}" for c in _WF_COLS.split(", ")[1:]))
    _WF_COL_NAMES = tuple(_WF_COLS.split(", "))

    @staticmethod
    def _step_args(s: StepRow) -> tuple:
        return (s.workflow_id, s.step_id, s.domain, s.state, s.attempts, json.dumps(s.outputs),
                s.error, json.dumps(s.replaced_from))

    @staticmethod
    def _step_values(s: StepRow) -> tuple:
        """A step row's values as compared with what was written last: no JSON, so that
        a save naming every step of a wide workflow encodes only the steps that changed
        (a 40-step fan-out's coordinator saves all its steps at every result: 1,720 step
        rows, 3,440 JSON encodings per workflow before). The outputs are copied: what is
        kept must not change with the progress it came from."""
        return (s.workflow_id, s.step_id, s.domain, s.state, s.attempts, dict(s.outputs),
                s.error, tuple(s.replaced_from))

    @staticmethod
    def _step_args_of(v: tuple) -> tuple:
        return (*v[:5], json.dumps(v[5]), v[6], json.dumps(list(v[7])))

    @classmethod
    def _step_stmt(cls, s: StepRow) -> tuple[str, tuple]:
        return cls._step_write(cls._step_args(s))

    @classmethod
    def _step_write(cls, args: tuple) -> Statement:
        return (f"INSERT OR REPLACE INTO steps({cls._STEP_COLS}) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                args)

    @classmethod
    def _steps_write(cls, rows: list[tuple]) -> Statement:
        """Step rows in one statement (a workflow's first save has all its steps). A spec
        has at most MAX_STEPS (1,000) steps: 8,000 parameters, within SQLite's 32,766."""
        if len(rows) == 1:
            return cls._step_write(rows[0])
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
        return (f"INSERT OR REPLACE INTO steps({cls._STEP_COLS}) VALUES {values}",
                tuple(v for r in rows for v in r))

    def _row_write(self, row: tuple, known: tuple | None) -> Statement:
        """The workflow row in full, or (`known`: what is on disk) only what changed."""
        if known is None:
            return self._WF_UPSERT, row
        changed = [i for i in range(1, len(row)) if row[i] != known[i]]
        sets = ", ".join(f"{self._WF_COL_NAMES[i]} = ?" for i in changed)
        return (f"UPDATE workflows SET {sets} WHERE id = ?",
                (*(row[i] for i in changed), row[0]))

    async def save_workflow(self, w: WorkflowRow, steps: list[StepRow] = (),
                            reservation: ReservationRow | None = None,
                            also: Sequence[Statement] = ()) -> list[int]:
        """Insert or update a workflow and (some of) its steps in one transaction, with the
        statements in `also` (a step attempt's start or end, a reservation's change, a
        decision); returns how many rows each statement of `also` changed. Only the
        columns and step rows that changed since the last write are written, when that
        write is known to be on disk (store/written.py).

        Raises sqlite3.IntegrityError when another workflow holds w.request_id, or when
        `also` starts an attempt that was started before (nothing is written then).
        """
        row = self._wf_args(w)
        step_values = [self._step_values(s) for s in steps]
        known, token = self._written.begin(w.id)
        if known is not None and row == known.row:
            known = None  # nothing changed (an UPDATE would set nothing): write in full
        stmts = [self._row_write(row, known.row if known is not None else None)]
        # Step rows against what is on disk, also while another write of the workflow is
        # on its way (written.py): only those that changed, and those that write writes.
        on_disk, being_written = self._written.step_base(w.id)
        rows = []
        for v in step_values:
            latest = being_written.get(v[1])
            if latest is not None:  # written again; encoded again only if it changed
                rows.append((v[1], v, latest[1] if latest[0] == v else self._step_args_of(v)))
            elif on_disk is None or on_disk.get(v[1]) != v:
                rows.append((v[1], v, self._step_args_of(v)))
        wrote = [step_id for step_id, _, _ in rows]
        if rows:
            stmts.append(self._steps_write([encoded for _, _, encoded in rows]))
        if reservation is not None:
            stmts.append(self.reservation_statement(reservation))
        written: tuple | None = None
        self._written.writing(w.id, rows)  # ended by `end` below, whatever happens
        try:
            counts = await self._write([*stmts, *also])
            written = row
        finally:
            self._written.end(w.id, token, written, ((v[1], v) for v in step_values), wrote)
        if known is not None and counts[0] == 0:
            # The row was not there to update (nothing should delete it unseen): put it
            # back whole, and its steps.
            log.error("workflow %s: its row was missing on update; writing it again", w.id)
            self._written.forget([w.id])
            await self._write([(self._WF_UPSERT, row), *(
                [self._steps_write([self._step_args_of(v) for v in step_values])]
                if step_values else [])])
        return counts[len(stmts):]

    async def save_steps(self, steps: list[StepRow]) -> None:
        if steps:
            self._written.forget({s.workflow_id for s in steps})
            await self._write([self._step_stmt(s) for s in steps])

    def forget_written(self, workflow_ids: Collection[str]) -> None:
        """These workflows' rows are about to change by a write not made by save_workflow
        (retention deleting them): the next save writes them in full."""
        self._written.forget(workflow_ids)

    async def save_step_result(self, s: StepRow) -> None:
        """Keep a step result that came before its workflow is known here, unless what is
        kept is newer: a later attempt, or the same attempt already ended (results are
        resent and overtake each other, so a RUNNING note can arrive after the end)."""
        self._written.forget([s.workflow_id])
        await self._write([(
            "INSERT INTO steps(workflow_id, step_id, domain, state, attempts, outputs, error)"
            " VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(workflow_id, step_id) DO UPDATE SET"
            " domain = excluded.domain, state = excluded.state, attempts = excluded.attempts,"
            " outputs = excluded.outputs, error = excluded.error"
            " WHERE excluded.attempts > steps.attempts OR (excluded.attempts = steps.attempts"
            " AND steps.state NOT IN ('SUCCEEDED', 'FAILED', 'SKIPPED', 'CANCELLED'))",
            (s.workflow_id, s.step_id, s.domain, s.state, s.attempts, json.dumps(s.outputs),
             s.error),
        )])

    async def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        row = await self._one(f"SELECT {self._WF_COLS} FROM workflows WHERE id=?", (workflow_id,))
        return self._wf_from(row) if row else None

    async def get_workflow_with_steps(
            self, workflow_id: str) -> tuple[WorkflowRow | None, dict[str, StepRow]]:
        """A workflow and its steps in one hop to the connection's thread."""
        def read(db: aiosqlite.Connection) -> tuple[list, list]:
            conn = db._conn
            return (conn.execute(f"SELECT {Store._WF_COLS} FROM workflows WHERE id=?",
                                 (workflow_id,)).fetchall(),
                    conn.execute(Store._STEPS_OF, (workflow_id,)).fetchall())

        rows, steps = await self._db._execute(read, self._db)
        return (self._wf_from(rows[0]) if rows else None,
                {r[1]: self._step_from(r) for r in steps})

    async def find_by_request_id(self, request_id: str) -> WorkflowRow | None:
        row = await self._one(
            f"SELECT {self._WF_COLS} FROM workflows WHERE request_id=?", (request_id,)
        )
        return self._wf_from(row) if row else None

    async def list_workflows(self) -> list[WorkflowRow]:
        rows = await self._all(f"SELECT {self._WF_COLS} FROM workflows ORDER BY created_ms, id")
        return [self._wf_from(r) for r in rows]

    _STEPS_OF = ("SELECT workflow_id, step_id, domain, state, attempts, outputs, error,"
                 " replaced_from FROM steps WHERE workflow_id=?")

    @staticmethod
    def _step_from(r: tuple) -> StepRow:
        return StepRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6],
                       json.loads(r[7]) if len(r) > 7 else [])

    async def get_steps(self, workflow_id: str) -> list[StepRow]:
        return [self._step_from(r) for r in await self._all(self._STEPS_OF, (workflow_id,))]

    # ---- decisions (write-once) ---------------------------------------------

    @staticmethod
    def decision_statement(workflow_id: str, round_: int, outcome: str,
                           envelope: bytes) -> Statement:
        """The compare-and-set of record_decision, for a caller's own transaction: it
        changes one row if it won the cell, none if the cell already held a decision."""
        return _once_statement("decisions", "envelope", workflow_id, round_, outcome, envelope)

    async def apply(self, statements: Sequence[Statement]) -> list[int]:
        """Write statements made by this class's *_statement helpers in one transaction;
        returns how many rows each changed."""
        return await self._write(list(statements))

    async def record_decision(
        self, workflow_id: str, round_: int, outcome: str, envelope: bytes,
        also: Sequence[Statement] = (),
    ) -> tuple[str, bytes]:
        """Compare-and-set: the first decision for (workflow, round) wins; the statements
        in `also` are written in the same transaction, whoever won.

        Returns the decision that holds after the call, which may be an
        earlier one: a caller must act on what this returns, not on what it asked.
        """
        return await self._write_once("decisions", workflow_id, round_, outcome, envelope,
                                      also, column="envelope")

    @staticmethod
    def collect_commit_statement(workflow_id: str, round_: int) -> Statement:
        """Drop a COMMIT decision's envelope (its certificate and spec) once every
        participant acknowledged it. The row stays, with empty bytes, so the write-once
        cell still holds COMMIT: no ABORT can ever be recorded for that round."""
        return ("UPDATE decisions SET envelope = x'' WHERE workflow_id=? AND round=?"
                " AND outcome='COMMIT'", (workflow_id, round_))

    async def collect_commit(self, workflow_id: str, round_: int) -> None:
        await self._write([self.collect_commit_statement(workflow_id, round_)])

    # The WHERE of the partial index decisions_kept, word for word, so SQLite uses it.
    _KEPT = "d.outcome = 'COMMIT' AND d.envelope != x''"

    async def kept_certificates(self, ended: Collection[str],
                                limit: int) -> list[tuple[str, int]]:
        """COMMIT records whose certificate is still kept although their workflow is in
        one of the states `ended`: (workflow_id, round), oldest workflow first, at most
        `limit`."""
        states = tuple(sorted(ended))
        rows = await self._all(
            f"SELECT d.workflow_id, d.round FROM decisions d JOIN workflows w"
            f" ON w.id = d.workflow_id WHERE {self._KEPT}"
            f" AND w.state IN ({', '.join('?' * len(states))})"
            f" ORDER BY w.created_ms LIMIT ?", (*states, limit))
        return [(r[0], r[1]) for r in rows]

    async def count_kept_certificates(self) -> int:
        """Every COMMIT certificate kept, live workflows' included."""
        row = await self._one(f"SELECT count(*) FROM decisions d WHERE {self._KEPT}")
        return int(row[0]) if row else 0

    async def get_decision(self, workflow_id: str, round_: int) -> tuple[str, bytes] | None:
        """The decision on record: (outcome, envelope); a collected COMMIT has no bytes."""
        row = await self._one(
            "SELECT outcome, envelope FROM decisions WHERE workflow_id=? AND round=?",
            (workflow_id, round_),
        )
        return (row[0], bytes(row[1])) if row else None

    async def get_commit(self, workflow_id: str) -> tuple[int, bytes] | None:
        row = await self._one(
            "SELECT round, envelope FROM decisions WHERE workflow_id=? AND outcome='COMMIT'",
            (workflow_id,),
        )
        return (row[0], bytes(row[1])) if row else None

    # ---- reservations ------------------------------------------------------------

    @staticmethod
    def reservation_statement(r: ReservationRow) -> Statement:
        return (
            "INSERT OR REPLACE INTO reservations(workflow_id, round, coordinator, state, steps,"
            " lease_expires_ms, coordinator_endpoint) VALUES(?, ?, ?, ?, ?, ?, ?)",
            (r.workflow_id, r.round, r.coordinator, r.state, json.dumps(r.steps),
             r.lease_expires_ms, r.coordinator_endpoint),
        )

    async def save_reservation(self, r: ReservationRow, tx: HoldTxRow | None = None,
                               also: Sequence[Statement] = ()) -> None:
        """Save a reservation and, in the same transaction, the PREPARE behind it and the
        statements in `also`."""
        stmts = [self.reservation_statement(r), *also]
        if tx is not None:
            stmts.append((
                "INSERT OR REPLACE INTO hold_txs(workflow_id, round, tx, spec, placement,"
                " coordinator_endpoint, round_tx) VALUES(?, ?, ?, ?, ?, ?, ?)",
                (tx.workflow_id, tx.round, tx.tx, tx.spec, json.dumps(tx.placement),
                 tx.coordinator_endpoint, tx.round_tx),
            ))
        await self._write(stmts)

    async def get_hold_tx(self, workflow_id: str, round_: int) -> HoldTxRow | None:
        row = await self._one(
            "SELECT workflow_id, round, tx, spec, placement, coordinator_endpoint, round_tx"
            " FROM hold_txs WHERE workflow_id=? AND round=?", (workflow_id, round_))
        if row is None:
            return None
        return HoldTxRow(row[0], row[1], bytes(row[2]), bytes(row[3]), json.loads(row[4]),
                         row[5], bytes(row[6]))

    async def delete_reservation(self, workflow_id: str, round_: int) -> None:
        await self._write([self.delete_reservation_statement(workflow_id, round_)])

    async def list_reservations(self) -> list[ReservationRow]:
        rows = await self._all(
            "SELECT workflow_id, round, coordinator, state, steps, lease_expires_ms,"
            " coordinator_endpoint FROM reservations"
        )
        return [
            ReservationRow(r[0], r[1], r[2], r[3], [tuple(x) for x in json.loads(r[4])], r[5], r[6])
            for r in rows
        ]

    # ---- Paxos Commit ----------------------------------------------------------------

    async def save_acceptor(self, r: AcceptorRow) -> None:
        """Replace this transaction's acceptor record (durable before the acceptor replies)."""
        await self._write([self.acceptor_statement(r)])

    @staticmethod
    def acceptor_statement(r: AcceptorRow, *, if_proposed_commit: bool = False) -> Statement:
        """Replace an acceptor record; with `if_proposed_commit`, only where this agent's
        proposal cell of the transaction holds COMMIT (see proposal_statement)."""
        promised = r.promised or (None, None)
        accepted = r.accepted or (None, None)
        args = (r.workflow_id, r.round, r.tx, promised[0], promised[1], accepted[0],
                accepted[1], r.accepted_value, r.decided, r.round_tx)
        sql = ("INSERT OR REPLACE INTO acceptor_records(workflow_id, round, tx, promised_n,"
               " promised_by, accepted_n, accepted_by, accepted_value, decided, round_tx)")
        if not if_proposed_commit:
            return f"{sql} VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", args
        return (f"{sql} SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS(SELECT 1 FROM proposals"
                " WHERE workflow_id=? AND round=? AND outcome='COMMIT')",
                (*args, r.workflow_id, r.round))

    @staticmethod
    def _acceptor_from(r: tuple) -> AcceptorRow:
        return AcceptorRow(r[0], r[1], bytes(r[2]),
                           (r[3], r[4]) if r[3] is not None else None,
                           (r[5], r[6]) if r[5] is not None else None,
                           bytes(r[7]) if r[7] is not None else None,
                           bytes(r[8]) if r[8] is not None else None, bytes(r[9]))

    async def has_acceptor_records(self) -> bool:
        return await self._one("SELECT 1 FROM acceptor_records LIMIT 1") is not None

    async def get_acceptor_record(self, workflow_id: str, round_: int) -> AcceptorRow | None:
        """The acceptor's record, its decision taken from the learned log when the record
        has none (an acceptor does not write the decisions it learns twice)."""
        row = await self._one(
            "SELECT a.workflow_id, a.round, a.tx, a.promised_n, a.promised_by, a.accepted_n,"
            " a.accepted_by, a.accepted_value, COALESCE(a.decided, l.value), a.round_tx"
            " FROM acceptor_records a LEFT JOIN learned l"
            " ON l.workflow_id = a.workflow_id AND l.round = a.round"
            " WHERE a.workflow_id=? AND a.round=?", (workflow_id, round_))
        return self._acceptor_from(row) if row else None

    async def _write_once(self, table: str, workflow_id: str, round_: int, outcome: str,
                          value: bytes, also: Sequence[Statement] = (),
                          column: str = "value") -> tuple[str, bytes]:
        changed = await self._write(
            [_once_statement(table, column, workflow_id, round_, outcome, value), *also])
        if changed[0]:  # the cell was empty: it holds what we wrote (no read-back needed)
            return outcome, value
        held = await self._get_once(table, workflow_id, round_, column)
        assert held is not None
        return held

    async def _get_once(self, table: str, workflow_id: str, round_: int,
                        column: str = "value") -> tuple[str, bytes] | None:
        row = await self._one(
            f"SELECT outcome, {column} FROM {table} WHERE workflow_id=? AND round=?",
            (workflow_id, round_))
        return (row[0], bytes(row[1])) if row else None

    async def propose(self, workflow_id: str, round_: int, outcome: str,
                      value: bytes) -> tuple[str, bytes]:
        """Compare-and-set the coordinator's write-once proposal cell for (workflow, round).

        Returns what the cell holds after the call: act on that, not on what was asked.
        """
        return await self._write_once("proposals", workflow_id, round_, outcome, value)

    @staticmethod
    def proposal_statement(workflow_id: str, round_: int, outcome: str,
                           value: bytes) -> Statement:
        """`propose` as a statement for `apply`: changes one row if the cell was empty."""
        return _once_statement("proposals", "value", workflow_id, round_, outcome, value)

    async def get_proposal(self, workflow_id: str, round_: int) -> tuple[str, bytes] | None:
        return await self._get_once("proposals", workflow_id, round_)

    @staticmethod
    def spent_proposal_statements(workflow_id: str, round_: int) -> list[Statement]:
        """Collect a proposal cell (and the ballot) once COMMIT is the round's decision on
        record (in the decision's own transaction: the statements check it)."""
        committed = ("EXISTS(SELECT 1 FROM decisions WHERE workflow_id=? AND round=?"
                     " AND outcome='COMMIT')")
        key = (workflow_id, round_)
        return [
            (f"DELETE FROM proposals WHERE workflow_id=? AND round=? AND {committed}", key * 2),
            (f"DELETE FROM ballots WHERE workflow_id=? AND round=? AND {committed}", key * 2),
        ]

    async def learn(self, workflow_id: str, round_: int, outcome: str,
                    value: bytes, also: Sequence[Statement] = ()) -> tuple[str, bytes]:
        """Record a decision learned to be chosen; write-once: returns the one that holds.
        `also` goes in the same transaction, right after the compare-and-set."""
        return await self._write_once("learned", workflow_id, round_, outcome, value, also)

    @staticmethod
    def learn_statement(workflow_id: str, round_: int, outcome: str, value: bytes) -> Statement:
        """learn's compare-and-set, for a caller's own transaction (one row if it won)."""
        return _once_statement("learned", "value", workflow_id, round_, outcome, value)

    async def get_learned(self, workflow_id: str, round_: int) -> tuple[str, bytes] | None:
        return await self._get_once("learned", workflow_id, round_)

    async def list_learned(self) -> list[tuple[str, int, str, bytes]]:
        rows = await self._all("SELECT workflow_id, round, outcome, value FROM learned")
        return [(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    async def save_ballot(self, workflow_id: str, round_: int, n: int, proposer: str) -> None:
        """The highest ballot used as proposer (durable before its PaxosPrepare); it only
        grows, whatever order concurrent writes land in."""
        await self._write([(
            "INSERT INTO ballots(workflow_id, round, n, proposer) VALUES(?, ?, ?, ?)"
            " ON CONFLICT(workflow_id, round) DO UPDATE SET n = excluded.n,"
            " proposer = excluded.proposer WHERE excluded.n > ballots.n",
            (workflow_id, round_, n, proposer),
        )])

    async def get_ballot(self, workflow_id: str, round_: int) -> tuple[int, str] | None:
        row = await self._one("SELECT n, proposer FROM ballots WHERE workflow_id=? AND round=?",
                              (workflow_id, round_))
        return (row[0], row[1]) if row else None

    # ---- step runs (idempotency keys) ---------------------------------------------

    # Statements for save_workflow(also=...): a step's run and its reservation change in
    # the same transaction as the step's new state (the reservation one serves
    # save_reservation and save_workflow too).

    @staticmethod
    def start_run_statement(workflow_id: str, step_id: str, attempt: int,
                            now_ms: int) -> Statement:
        """An attempt's start; fails the whole write (IntegrityError) if it was started
        before: the attempt idempotency key."""
        return ("INSERT INTO step_runs(workflow_id, step_id, attempt, state, started_ms)"
                " VALUES(?, ?, ?, 'running', ?)", (workflow_id, step_id, attempt, now_ms))

    @staticmethod
    def end_run_statement(workflow_id: str, step_id: str, attempt: int, state: str,
                          now_ms: int) -> Statement:
        return ("UPDATE step_runs SET state=?, ended_ms=? WHERE workflow_id=? AND step_id=?"
                " AND attempt=?", (state, now_ms, workflow_id, step_id, attempt))

    @staticmethod
    def delete_reservation_statement(workflow_id: str, round_: int) -> Statement:
        return ("DELETE FROM reservations WHERE workflow_id=? AND round=?",
                (workflow_id, round_))

    async def set_run_pgid(self, workflow_id: str, step_id: str, attempt: int,
                           pgid: int) -> None:
        """The process group an attempt runs in (written once its processes exist)."""
        await self._write([("UPDATE step_runs SET pgid=? WHERE workflow_id=? AND step_id=?"
                            " AND attempt=?", (pgid, workflow_id, step_id, attempt))])

    async def unfinished_runs(self) -> list[tuple[str, str, int, int | None]]:
        """Attempts recorded as started without an end: (workflow, step, attempt, pgid)."""
        rows = await self._all("SELECT workflow_id, step_id, attempt, pgid FROM step_runs"
                               " WHERE state = 'running'")
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def runs_of(self, workflow_id: str) -> list[tuple[str, int, str]]:
        return [
            (r[0], r[1], r[2])
            for r in await self._all(
                "SELECT step_id, attempt, state FROM step_runs WHERE workflow_id=?"
                " ORDER BY step_id, attempt",
                (workflow_id,),
            )
        ]

    # ---- audit log (statements: audit_table.append_statement) -----------------------

    async def audit_head(self) -> tuple[int, bytes]:
        """(seq, hash) of the log's last record; (0, b"") when it is empty."""
        row = await self._one(audit_table.HEAD)
        return (int(row[0]), bytes(row[1])) if row else (0, b"")

    async def last_audit_checkpoint(self) -> int:
        row = await self._one(audit_table.LAST_CHECKPOINT)
        return int(row[0]) if row and row[0] is not None else 0

    async def save_audit_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._write([audit_table.checkpoint_statement(checkpoint)])

    async def audit_records(self, workflow_id: str) -> list[Record]:
        return [audit_table.record_from(r) for r in await self._all(
            f"{audit_table.RECORDS} WHERE workflow_id=? ORDER BY seq", (workflow_id,))]
