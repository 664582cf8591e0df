"""The audit log's two tables (`audit`, `audit_checkpoints`): the statements that
append to them, and the reads.

An append is a statement for a caller's own transaction (Store.apply, save_workflow's
`also`), so a record is on disk exactly when the change it records is. Its seq, `prev`
and hash come from the head of the log that the store, its only writer, keeps in memory
(`Chain`): a write rolled back in its savepoint takes its record with it and leaves no
gap, and records of concurrent writes chain in the order they commit. The records of
one transaction are inserted as one statement just before it commits.

The sync reads (`LogReader`) serve the CLI, which opens a data dir read-only and
offline, even while its agent runs (WAL).

A record of kind ACTS (the node engine's: runtime/node_engine/audit.py) tells of
several acts of one workflow, each with its own time; readers of a workflow's acts
(`acts`: `fedorch audit show` and `proof`, the console) read it as those acts, each
with the record's seq and hash, its body what that act's own record would hold.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from fedorch.core.audit.acts import ACTS as _ACTS
from fedorch.core.audit.chain import (
    GENESIS,
    Checkpoint,
    Problem,
    Record,
    Verified,
    Verifier,
    record_body,
    record_hash,
    verify,
)

MIGRATION = """
    -- The audit log: append-only, hash-chained (agent/core/audit/chain.py).
    CREATE TABLE audit (
        seq          INTEGER PRIMARY KEY,
        workflow_id  TEXT NOT NULL,
        kind         TEXT NOT NULL,
        prev         BLOB NOT NULL,
        body         BLOB NOT NULL,
        hash         BLOB NOT NULL
    );
    CREATE INDEX audit_workflow ON audit(workflow_id, seq);

    -- Signed checkpoints of the log's head.
    CREATE TABLE audit_checkpoints (
        seq        INTEGER PRIMARY KEY,
        domain     TEXT NOT NULL,
        hash       BLOB NOT NULL,
        time_ms    INTEGER NOT NULL,
        signature  BLOB NOT NULL
    );
"""

Statement = tuple[str, tuple]

# The node engine's record of acts of one workflow: data {"acts": [{"kind", "time_ms",
# "data"}, ...]}, in the order they happened (its body written by core/audit/acts.py).
ACTS = _ACTS


# The statements an append is made of: markers the store recognises (Database.write runs
# them through its Chain), never sent to SQLite as such.
APPEND = "-- fedorch: append an audit record"
APPEND_IF_CHANGED = "-- fedorch: append an audit record if the statement before changed a row"
APPENDS = frozenset({APPEND, APPEND_IF_CHANGED})
INSERT = "INSERT INTO audit(seq, workflow_id, kind, prev, body, hash) VALUES(?, ?, ?, ?, ?, ?)"


def append_statement(kind: str, workflow_id: str, time_ms: int,
                     data: Mapping[str, object], *, if_changed: bool = False) -> Statement:
    """Append one record after the log's head, inside the caller's transaction.
    `if_changed`: only if the statement just before it changed a row (a write-once
    cell this record tells of was won, not found full)."""
    return append_encoded(kind, workflow_id, record_body(kind, workflow_id, time_ms, data),
                          if_changed=if_changed)


def append_encoded(kind: str, workflow_id: str, body: bytes, *,
                   if_changed: bool = False) -> Statement:
    """`append_statement` of a body already encoded (`chain.record_body`'s bytes)."""
    return (APPEND_IF_CHANGED if if_changed else APPEND, (workflow_id, kind, body))


class Chain:
    """The log's head as the store's one writer keeps it, and the records of the
    transaction being built. The store is the only writer of the audit table, and its
    transactions run one at a time on the connection's thread, so the head in memory is
    the head on disk whenever no transaction is open: an append takes its seq and `prev`
    from here, is hashed here, and all the records of one transaction go in as one
    statement before it commits (no subqueries for the head, no SQL hash callback).
    `mark` and `reset` follow the transaction's savepoints: a writer rolled back takes
    its records back out, leaving no gap."""

    def __init__(self, seq: int, head: bytes) -> None:
        self.seq = seq
        self.head = head
        self.rows: list[tuple[int, str, str, bytes, bytes, bytes]] = []

    @classmethod
    def load(cls, conn: sqlite3.Connection) -> Chain:
        row = conn.execute(HEAD).fetchone()
        return cls(int(row[0]), bytes(row[1])) if row else cls(0, GENESIS)

    def add(self, workflow_id: str, kind: str, body: bytes) -> None:
        seq = self.seq + 1
        digest = record_hash(seq, self.head, body)
        self.rows.append((seq, workflow_id, kind, self.head, body, digest))
        self.seq, self.head = seq, digest

    def mark(self) -> tuple[int, bytes, int]:
        return self.seq, self.head, len(self.rows)

    def reset(self, mark: tuple[int, bytes, int]) -> None:
        self.seq, self.head, kept = mark
        del self.rows[kept:]

    def flush(self, conn: sqlite3.Connection) -> int:
        """Insert the transaction's records (one statement); returns how many statements
        that took (0 or 1)."""
        if not self.rows:
            return 0
        try:
            conn.executemany(INSERT, self.rows)
        finally:
            self.rows.clear()
        return 1


HEAD = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
LAST_CHECKPOINT = "SELECT max(seq) FROM audit_checkpoints"
RECORDS = "SELECT seq, workflow_id, kind, prev, body, hash FROM audit"
CHECKPOINTS = "SELECT domain, seq, hash, time_ms, signature FROM audit_checkpoints"


def checkpoint_statement(cp: Checkpoint) -> Statement:
    return ("INSERT OR IGNORE INTO audit_checkpoints(seq, domain, hash, time_ms, signature)"
            " VALUES(?, ?, ?, ?, ?)", (cp.seq, cp.domain, cp.hash, cp.time_ms, cp.signature))


def record_from(row: tuple) -> Record:
    return Record(int(row[0]), row[1], row[2], bytes(row[3]), bytes(row[4]), bytes(row[5]))


def checkpoint_from(row: tuple) -> Checkpoint:
    return Checkpoint(row[0], int(row[1]), bytes(row[2]), int(row[3]), bytes(row[4]))


@dataclass(frozen=True)
class Act(Record):
    """One act of an ACTS record: the record's seq, prev, body and hash (what the chain
    covers), read as the act's own record would be (`decoded`, `kind`)."""

    act: dict = field(default_factory=dict)

    def decoded(self) -> dict:
        return self.act


def acts(record: Record) -> list[Record]:
    """A record as the acts it tells of: itself, or each act of an ACTS record (an
    ACTS body that is not one is left whole: `verify` names what is wrong with it)."""
    if record.kind != ACTS:
        return [record]
    try:
        body = json.loads(record.body)
        return [Act(record.seq, record.workflow, str(a["kind"]), record.prev, record.body,
                    record.hash, act={"kind": a["kind"], "workflow": body["workflow"],
                                      "time_ms": a["time_ms"], "data": a["data"]})
                for a in body["data"]["acts"]]
    except (ValueError, KeyError, TypeError):
        return [record]


class NoLog(Exception):
    """The data dir has no agent database or no audit log."""


class LogReader:
    """A data dir's audit log, opened read-only (the CLI's offline reads)."""

    def __init__(self, data_dir: str | pathlib.Path) -> None:
        path = pathlib.Path(data_dir) / "agent.db"
        if not path.is_file():
            raise NoLog(f"{path}: no agent database there")
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            self._conn.execute("SELECT 1 FROM audit LIMIT 1")
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise NoLog(f"{path}: no audit log ({e})") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def records(self, workflow_id: str | None = None) -> Iterator[Record]:
        if workflow_id is None:
            cursor = self._conn.execute(f"{RECORDS} ORDER BY seq")
        else:
            cursor = self._conn.execute(f"{RECORDS} WHERE workflow_id=? ORDER BY seq",
                                        (workflow_id,))
        for row in cursor:
            yield record_from(row)

    def acts(self, workflow_id: str) -> Iterator[Record]:
        """The workflow's acts in log order (ACTS records read as the acts they hold)."""
        for record in self.records(workflow_id):
            yield from acts(record)

    def checkpoints(self) -> list[Checkpoint]:
        return [checkpoint_from(r) for r in self._conn.execute(f"{CHECKPOINTS} ORDER BY seq")]


def verify_data_dir(data_dir: str | pathlib.Path, trusted: Verifier | None = None
                    ) -> Verified | Problem:
    """`fedorch audit verify`'s check of one data dir, read-only: the hash chain and the
    signed checkpoints (with `trusted` when given, else the keys the log's own start
    records name). Raises NoLog when there is no log to check."""
    with LogReader(data_dir) as reader:
        return verify(reader.records(), reader.checkpoints(), trusted=trusted)
