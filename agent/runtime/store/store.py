"""Durable state of one agent: one SQLite file in WAL mode, written with
`synchronous=FULL` through a group commit (database.py says how).

`Store` is the agent's. It opens the data dir's database (refusing one that is not
this agent's: identity.py), and holds the meta (identity, incarnation, the node store's
marker), the key records and the audit log. The workflows are the Node's, in node.db
(runtime/node_store.py). agent.db's schema (schema.py) still has the tables the older
engine (`shells`, removed) kept its workflows in: nothing writes them; the node engine's
start check reads them (node_engine/engine_switch.py).
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from fedorch.core.audit.chain import Checkpoint, Record
from fedorch.gen.fedorch.v1 import keys_pb2
from fedorch.runtime.store import audit_table
from fedorch.runtime.store import identity as ident
from fedorch.runtime.store.database import (
    Database,
    Statement,
    is_storage_fault,
    unreadable_storage,
)
from fedorch.runtime.store.identity import BadDatabase, Identity, StoreError

log = logging.getLogger("fedorch.store")
__all__ = ["BadDatabase", "Statement", "Store", "StoreError", "is_storage_fault"]


class Store:
    def __init__(self, database: Database) -> None:
        self._database = database

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
        """Rows of a read made elsewhere (the console's audit reads)."""
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
