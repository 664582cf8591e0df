"""Durable state of one agent: one SQLite file in WAL mode, written with
`synchronous=FULL` through a group commit (database.py says how).

`Store` is what the shells hold. It opens the data dir's database (refusing one that
is not this agent's: identity.py), and holds the workflow and step rows, written as
what changed since the last write known to be on disk (written.py), the meta and key
records, and the audit log's reads. The tables of the commit decision
(paxos_tables.py) and of holds and step runs (reservation_tables.py) are their own
modules; the methods here of the same names call them. Rows are dataclasses
(rows.py), re-exported here with the errors, as callers import them from this module.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

import aiosqlite
from fedorch.core.audit.chain import Checkpoint, Record
from fedorch.gen.fedorch.v1 import keys_pb2
from fedorch.runtime.store import audit_table, paxos_tables, reservation_tables
from fedorch.runtime.store import identity as ident
from fedorch.runtime.store import workflow_table as wt
from fedorch.runtime.store.database import (
    Database,
    Statement,
    is_storage_fault,
    unreadable_storage,
)
from fedorch.runtime.store.identity import BadDatabase, Identity, StoreError
from fedorch.runtime.store.rows import (
    AcceptorRow,
    HoldTxRow,
    ReservationRow,
    StepRow,
    WorkflowRow,
)
from fedorch.runtime.store.written import Written

log = logging.getLogger("fedorch.store")
__all__ = ["AcceptorRow", "BadDatabase", "HoldTxRow", "ReservationRow", "Statement",
           "StepRow", "Store", "StoreError", "WorkflowRow", "is_storage_fault"]


class Store:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._db: aiosqlite.Connection = database.connection
        self._written = Written()  # the last rows written of each workflow (written.py)

    # ---- the group commit's counters and state (database.py) ---------------------------

    @property
    def commits(self) -> int:
        """Transactions committed (writes / commits = group size)."""
        return self._database.commits

    @property
    def writes(self) -> int:
        return self._database.writes

    @property
    def statements(self) -> int:
        """SQL statements the writes ran (see Database.statements)."""
        return self._database.statements

    @property
    def on_commit(self) -> list[Callable[[], None]]:
        """Told after each transaction (on the event loop)."""
        return self._database.on_commit

    @property
    def write_fault(self) -> str | None:
        """While writes fail for the storage (disk full, I/O errors): what SQLite said."""
        return self._database.write_fault

    @write_fault.setter
    def write_fault(self, fault: str | None) -> None:
        self._database.write_fault = fault

    @property
    def writable(self) -> bool:
        return self.write_fault is None

    # ---- opening and closing -------------------------------------------------------------

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
        database = await Database.open(db_path)
        store = cls(database)
        if domain is not None and key is not None:
            try:
                await store._check_identity(path, recorded, domain, key, earlier_keys)
            except sqlite3.DatabaseError as e:  # "malformed", I/O
                await database.connection.close()
                if is_storage_fault(e):
                    raise StoreError(unreadable_storage(db_path, e)) from None
                raise BadDatabase(db_path, f"is not a readable SQLite database ({e})") from None
            except BaseException:
                await database.connection.close()
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

    async def close(self) -> None:
        await self._database.close()

    # ---- reads and writes (database.py) ------------------------------------------------

    async def _one(self, sql: str, args: tuple = ()) -> tuple | None:
        return await self._database.one(sql, args)

    async def _all(self, sql: str, args: tuple = ()) -> list[tuple]:
        return await self._database.all(sql, args)

    async def select(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of a read made by a table's own module (e.g. runtime/compensation.py)."""
        return await self._database.all(sql, args)

    async def _write(self, statements: list[Statement]) -> list[int]:
        """Run statements atomically and durably; returns how many rows each changed."""
        return await self._database.write(statements)

    async def apply(self, statements: Sequence[Statement]) -> list[int]:
        """Write statements made by this class's *_statement helpers (and the table
        modules') in one transaction; returns how many rows each changed."""
        return await self._database.write(list(statements))

    # ---- meta and key records (runtime/key_changes.py) -------------------------------

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

    # Encoded through the class, so a save's encodings can be counted.
    _step_args_of = staticmethod(wt.step_args_of)

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
        row = wt.wf_args(w)
        step_values = [wt.step_values(s) for s in steps]
        known, token = self._written.begin(w.id)
        if known is not None and row == known.row:
            known = None  # nothing changed (an UPDATE would set nothing): write in full
        stmts = [wt.row_write(row, known.row if known is not None else None)]
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
            stmts.append(wt.steps_write([encoded for _, _, encoded in rows]))
        if reservation is not None:
            stmts.append(reservation_tables.reservation_statement(reservation))
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
            await self._write([(wt.WF_UPSERT, row), *(
                [wt.steps_write([self._step_args_of(v) for v in step_values])]
                if step_values else [])])
        return counts[len(stmts):]

    async def save_steps(self, steps: list[StepRow]) -> None:
        if steps:
            self._written.forget({s.workflow_id for s in steps})
            await self._write([wt.step_write(wt.step_args(s)) for s in steps])

    def forget_written(self, workflow_ids: Collection[str]) -> None:
        """These workflows' rows are about to change by a write not made by save_workflow
        (retention deleting them): the next save writes them in full."""
        self._written.forget(workflow_ids)

    async def save_step_result(self, s: StepRow) -> None:
        """Keep a step result that came before its workflow is known here, unless what is
        kept is newer: a later attempt, or the same attempt already ended (results are
        resent and overtake each other, so a RUNNING note can arrive after the end)."""
        self._written.forget([s.workflow_id])
        await self._write([wt.step_result_statement(s)])

    async def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        row = await self._one(f"SELECT {wt.WF_COLS} FROM workflows WHERE id=?", (workflow_id,))
        return wt.wf_from(row) if row else None

    async def get_workflow_with_steps(
            self, workflow_id: str) -> tuple[WorkflowRow | None, dict[str, StepRow]]:
        """A workflow and its steps in one hop to the connection's thread."""
        def read(db: aiosqlite.Connection) -> tuple[list, list]:
            conn = db._conn
            return (conn.execute(f"SELECT {wt.WF_COLS} FROM workflows WHERE id=?",
                                 (workflow_id,)).fetchall(),
                    conn.execute(wt.STEPS_OF, (workflow_id,)).fetchall())

        rows, steps = await self._db._execute(read, self._db)
        return (wt.wf_from(rows[0]) if rows else None,
                {r[1]: wt.step_from(r) for r in steps})

    async def find_by_request_id(self, request_id: str) -> WorkflowRow | None:
        row = await self._one(
            f"SELECT {wt.WF_COLS} FROM workflows WHERE request_id=?", (request_id,)
        )
        return wt.wf_from(row) if row else None

    async def list_workflows(self) -> list[WorkflowRow]:
        rows = await self._all(f"SELECT {wt.WF_COLS} FROM workflows ORDER BY created_ms, id")
        return [wt.wf_from(r) for r in rows]

    async def get_steps(self, workflow_id: str) -> list[StepRow]:
        return [wt.step_from(r) for r in await self._all(wt.STEPS_OF, (workflow_id,))]

    # ---- decisions, proposals, learned, ballots, acceptor records (paxos_tables.py) -----

    decision_statement = staticmethod(paxos_tables.decision_statement)
    collect_commit_statement = staticmethod(paxos_tables.collect_commit_statement)
    acceptor_statement = staticmethod(paxos_tables.acceptor_statement)
    proposal_statement = staticmethod(paxos_tables.proposal_statement)
    spent_proposal_statements = staticmethod(paxos_tables.spent_proposal_statements)
    learn_statement = staticmethod(paxos_tables.learn_statement)

    async def record_decision(
        self, workflow_id: str, round_: int, outcome: str, envelope: bytes,
        also: Sequence[Statement] = (),
    ) -> tuple[str, bytes]:
        """Compare-and-set: the first decision for (workflow, round) wins; the statements
        in `also` are written in the same transaction, whoever won.

        Returns the decision that holds after the call, which may be an
        earlier one: a caller must act on what this returns, not on what it asked.
        """
        return await paxos_tables.write_once(self._database, "decisions", workflow_id, round_,
                                             outcome, envelope, also, column="envelope")

    async def collect_commit(self, workflow_id: str, round_: int) -> None:
        await self._write([paxos_tables.collect_commit_statement(workflow_id, round_)])

    async def kept_certificates(self, ended: Collection[str],
                                limit: int) -> list[tuple[str, int]]:
        return await paxos_tables.kept_certificates(self._database, ended, limit)

    async def count_kept_certificates(self) -> int:
        return await paxos_tables.count_kept_certificates(self._database)

    async def get_decision(self, workflow_id: str, round_: int) -> tuple[str, bytes] | None:
        return await paxos_tables.get_decision(self._database, workflow_id, round_)

    async def get_commit(self, workflow_id: str) -> tuple[int, bytes] | None:
        return await paxos_tables.get_commit(self._database, workflow_id)

    async def save_acceptor(self, r: AcceptorRow) -> None:
        """Replace this transaction's acceptor record (durable before the acceptor replies)."""
        await self._write([paxos_tables.acceptor_statement(r)])

    async def has_acceptor_records(self) -> bool:
        return await paxos_tables.has_acceptor_records(self._database)

    async def get_acceptor_record(self, workflow_id: str, round_: int) -> AcceptorRow | None:
        return await paxos_tables.get_acceptor_record(self._database, workflow_id, round_)

    async def propose(self, workflow_id: str, round_: int, outcome: str,
                      value: bytes) -> tuple[str, bytes]:
        """Compare-and-set the coordinator's write-once proposal cell for (workflow, round).

        Returns what the cell holds after the call: act on that, not on what was asked.
        """
        return await paxos_tables.write_once(self._database, "proposals", workflow_id,
                                             round_, outcome, value)

    async def get_proposal(self, workflow_id: str, round_: int) -> tuple[str, bytes] | None:
        return await paxos_tables.get_once(self._database, "proposals", workflow_id, round_)

    async def learn(self, workflow_id: str, round_: int, outcome: str,
                    value: bytes, also: Sequence[Statement] = ()) -> tuple[str, bytes]:
        """Record a decision learned to be chosen; write-once: returns the one that holds.
        `also` goes in the same transaction, right after the compare-and-set."""
        return await paxos_tables.write_once(self._database, "learned", workflow_id, round_,
                                             outcome, value, also)

    async def get_learned(self, workflow_id: str, round_: int) -> tuple[str, bytes] | None:
        return await paxos_tables.get_once(self._database, "learned", workflow_id, round_)

    async def list_learned(self) -> list[tuple[str, int, str, bytes]]:
        return await paxos_tables.list_learned(self._database)

    async def save_ballot(self, workflow_id: str, round_: int, n: int, proposer: str) -> None:
        """The highest ballot used as proposer (durable before its PaxosPrepare)."""
        await self._write([paxos_tables.ballot_statement(workflow_id, round_, n, proposer)])

    async def get_ballot(self, workflow_id: str, round_: int) -> tuple[int, str] | None:
        return await paxos_tables.get_ballot(self._database, workflow_id, round_)

    # ---- reservations, hold_txs, step runs (reservation_tables.py) ----------------------

    reservation_statement = staticmethod(reservation_tables.reservation_statement)
    delete_reservation_statement = staticmethod(reservation_tables.delete_reservation_statement)
    start_run_statement = staticmethod(reservation_tables.start_run_statement)
    end_run_statement = staticmethod(reservation_tables.end_run_statement)

    async def save_reservation(self, r: ReservationRow, tx: HoldTxRow | None = None,
                               also: Sequence[Statement] = ()) -> None:
        """Save a reservation and, in the same transaction, the PREPARE behind it and the
        statements in `also`."""
        stmts = [reservation_tables.reservation_statement(r), *also]
        if tx is not None:
            stmts.append(reservation_tables.hold_tx_statement(tx))
        await self._write(stmts)

    async def get_hold_tx(self, workflow_id: str, round_: int) -> HoldTxRow | None:
        return await reservation_tables.get_hold_tx(self._database, workflow_id, round_)

    async def delete_reservation(self, workflow_id: str, round_: int) -> None:
        await self._write([reservation_tables.delete_reservation_statement(workflow_id, round_)])

    async def list_reservations(self) -> list[ReservationRow]:
        return await reservation_tables.list_reservations(self._database)

    async def set_run_pgid(self, workflow_id: str, step_id: str, attempt: int,
                           pgid: int) -> None:
        """The process group an attempt runs in (written once its processes exist)."""
        await self._write([reservation_tables.run_pgid_statement(workflow_id, step_id,
                                                                 attempt, pgid)])

    async def unfinished_runs(self) -> list[tuple[str, str, int, int | None]]:
        return await reservation_tables.unfinished_runs(self._database)

    async def runs_of(self, workflow_id: str) -> list[tuple[str, int, str]]:
        return await reservation_tables.runs_of(self._database, workflow_id)
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
        """The workflow's acts in log order (the node engine's ACTS records read as
        the acts they hold: audit_table.acts)."""
        return [act for r in await self._all(
            f"{audit_table.RECORDS} WHERE workflow_id=? ORDER BY seq", (workflow_id,))
            for act in audit_table.acts(audit_table.record_from(r))]
