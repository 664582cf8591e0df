"""The Node's tables in SQLite: `SqliteDurable`, a `Durable` port (runtime/ports.py).

Theory of operation
-------------------
A Node (agent/core/node) keeps its durable state as a `Disk`: one dict or set per
table (records.py). Here each of those is one SQLite table, `node_<field>`, of rows
(k BLOB UNIQUE, v BLOB): the key and the value encoded by `NodeCodec`
(node_codec.py), whose key encodings are canonical, so a row is found again by its
key's bytes. A set table's rows have no value. The results table is the one whose
rows are not its dict's items: the Node says each step's result as its own row,
keyed (workflow, step) (core/node/ready.py, RecordedResults), and `load` groups them
back into workflow -> {step: result}, workflows in the order of their first row. Rows are read back in rowid order and
a PUT of a present key updates its row in place (an upsert, not a replace), so a table
comes back in the order its dict had: the order a Node restored from the file walks
its tables in is the order it would walk them in memory.

`write(writes)` makes one Ready's write groups durable as ONE transaction:
`BEGIN IMMEDIATE`, the groups' ops, `COMMIT`. The ops are first combined into each
row's outcome, since only the outcome of a whole turn is ever seen (a turn is all or
nothing, below): a row written several times in a turn (a workflow's row at each of
its changes, a results map at each result) is encoded and written once, with its last
value, in the place of its first write; a row deleted (DELETE, DISCARD) and written
again in the turn is deleted and inserted anew, at the end, as a dict's key deleted
and set again moves to the end; a row whose last op deletes it is deleted. Then each
table gets at most two statements per turn, `executemany` over its rows: one DELETE
of its deleted rows, then one upsert (PUT: insert, or update in place) or insert-or-
ignore (ADD) of its written rows, in order, so new rows get rowids in the order the
dict had them. The file after the turn is the one the ops one by one would give.
Keys' encodings are remembered (a bounded dict): a Node writes the same keys again and
again. The database is in WAL mode with
`synchronous=FULL`, so COMMIT returns only once the WAL is fsynced: the messages
that wait for the write (`send_after_write`) leave after it. Whatever fails before
COMMIT (an exception from SQLite, a full disk, the `before_group` hook) rolls the
whole transaction back and propagates: the file is as it was before the turn, and
the driver stops (its Node no longer matches the disk). A process that dies in the
middle leaves the same file: SQLite's recovery drops an uncommitted transaction. A
turn is all or nothing, which is stronger than the port asks (a group is all or
nothing, and no group is durable without the earlier ones).

`load()` reads every table back into a `Disk` for `Node.restore` (or the Node's
`disk=`): what a restarted agent starts from. A file of another version is refused
with a NodeStoreError naming both (version 1 held the codec's JSON rows, version 2
its MessagePack ones with a workflow's results in one row, version 3 one row per
step's result; no agent ran on version 1, so there is no migration from it, and a
version 2 file's results are rewritten one row per step, in their order, in the
transaction that marks it version 3, when it is first opened). A table added to the
`Disk` since a file was made is created, empty, when it is opened.

Which thread: `write` runs wherever it is called. The simulator and tests call it in
the driver's turn; the daemon hands it to one worker thread (the driver's
`ThreadedWrite`, runtime/driver.py), so that the event loop keeps receiving while the
fsync waits: sqlite3 releases the GIL inside SQLite, and the driver does not step its
Node, send what waits for the write, or start steps until `write` returned. Whatever
is posted meanwhile forms the next turn: one fsync serves it all (group commit). The
connection is opened with `check_same_thread=False` for that; the driver never has
two writes out, and `load()` runs before the first one.

`before_group(point)` is called before each group inside the transaction: a test's
crash point (it may drop the connection and raise, as a killed process would).
`stats` counts transactions, groups, ops, the rows they came to and the bytes of
those written, and the thread CPU and wall seconds spent in `write` (fsync included
in the wall time; the encoding's CPU apart). Every
row is encoded before `BEGIN`, so a value the codec refuses fails the turn with the
file untouched, and the write lock is held for SQLite's own work only.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedorch.core.node.ready import ADD, DELETE, DISCARD, PUT, Write
from fedorch.core.node.records import TABLES, Disk
from fedorch.runtime.node_codec import NodeCodec, node_codec

__all__ = ["NodeStoreError", "SqliteDurable", "WriteStats"]

# PRAGMA user_version of a node store file; 1: rows in JSON; 2: a workflow's results
# in one row (read and rewritten as version 3 when opened: `_results_by_step`).
SCHEMA_VERSION = 3
RESULTS_BY_WORKFLOW = 2
SET_TABLES = frozenset(name for name in TABLES if isinstance(getattr(Disk(), name), set))


class NodeStoreError(RuntimeError):
    """The file is not a node store this code can read."""


@dataclass
class WriteStats:
    transactions: int = 0
    groups: int = 0
    ops: int = 0         # the Node's ops in the write groups
    rows: int = 0        # rows deleted or written: the ops combined, one per row and turn
    statements: int = 0  # executemany calls: at most two per table and turn
    bytes: int = 0       # the encoded keys and values of the rows written (not deleted)
    cpu_s: float = 0.0   # this thread's CPU inside write(): encoding, SQLite, commit
    encode_cpu_s: float = 0.0  # of which encoding the keys and values
    wall_s: float = 0.0  # the same with the fsync's wait


# One statement per table and turn for its deleted rows, one for its written ones: a
# dict table's rows are upserted (key, value), a set table's inserted or ignored (key,).
_DELETE = {t: f"DELETE FROM node_{t} WHERE k = ?" for t in TABLES}
_KEEP = {t: f"INSERT OR IGNORE INTO node_{t}(k, v) VALUES (?, NULL)" if t in SET_TABLES
         else f"INSERT INTO node_{t}(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET"
              " v = excluded.v" for t in TABLES}
_KEY_TYPES = frozenset({str, int, bytes})  # keys whose encodings are remembered
MAX_KEYS_REMEMBERED = 100_000


class SqliteDurable:
    """A `Durable` over one SQLite file (see the header)."""

    def __init__(self, path: str | Path, *, codec: NodeCodec | None = None,
                 before_group: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.codec = codec if codec is not None else node_codec()
        self.before_group = before_group
        self.stats = WriteStats()
        self._keys: dict[object, bytes] = {}  # key -> its encoding (`_key_bytes`)
        self._con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._open()
        except BaseException:
            self._con.close()
            raise

    def _open(self) -> None:
        con = self._con
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, RESULTS_BY_WORKFLOW, SCHEMA_VERSION):
            raise NodeStoreError(f"{self.path}: node store version {version}; this code "
                                 f"reads version {SCHEMA_VERSION}")
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        # Every table, also in a file of this version written before a table was added
        # to the Disk (a new table starts empty: no migration of rows).
        missing = [t for t in TABLES if con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (f"node_{t}",)).fetchone() is None]
        if version != SCHEMA_VERSION or missing:
            con.execute("BEGIN IMMEDIATE")
            try:
                for table in missing:
                    con.execute(f"CREATE TABLE IF NOT EXISTS node_{table}"
                                " (k BLOB NOT NULL UNIQUE, v BLOB)")
                if version == RESULTS_BY_WORKFLOW and "results" not in missing:
                    self._results_by_step()
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                con.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _results_by_step(self) -> None:
        """A version 2 file's results, one row per workflow (its whole map), rewritten
        as one row per (workflow, step) in the same order, in the open transaction."""
        con, decode, encode = self._con, self.codec.decode, self.codec.encode
        rows = con.execute("SELECT k, v FROM node_results ORDER BY rowid").fetchall()
        con.execute("DELETE FROM node_results")
        con.executemany("INSERT INTO node_results(k, v) VALUES (?, ?)", [
            (encode((wf, step)), encode(result))
            for wf, results in ((decode(k), decode(v)) for k, v in rows)
            for step, result in results.items()])

    # ---- the Durable port -------------------------------------------------------------

    def write(self, writes: Sequence[Write]) -> None:
        """One Ready's write groups as one transaction (see the header)."""
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        # Every row encoded before the transaction opens: it stays short.
        removed, kept, ops = self._rows(writes)
        cpu1 = time.thread_time()
        con = self._con
        hook = self.before_group
        statements = 0
        con.execute("BEGIN IMMEDIATE")
        try:
            if hook is not None:
                for group in writes:
                    hook(group.point)
            for table, keys in removed.items():
                con.executemany(_DELETE[table], keys)
            for table, rows in kept.items():
                con.executemany(_KEEP[table], rows)
            statements = len(removed) + len(kept)
            con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        stats = self.stats
        stats.transactions += 1
        stats.groups += len(writes)
        stats.ops += ops
        stats.rows += sum(map(len, removed.values())) + sum(map(len, kept.values()))
        stats.bytes += sum(sum(map(len, row)) for rows in kept.values() for row in rows)
        stats.statements += statements
        stats.encode_cpu_s += cpu1 - cpu0
        stats.cpu_s += time.thread_time() - cpu0
        stats.wall_s += time.perf_counter() - wall0

    def _rows(self, writes: Sequence[Write]) -> tuple[dict[str, list], dict[str, list], int]:
        """The turn's ops combined into each row's outcome (see the header), encoded:
        ({table: [(key,)] to delete}, {table: [(key, value)] or [(key,)] to upsert or
        add, in order}, how many ops there were)."""
        key_bytes = self._key_bytes
        outcome: dict[tuple[str, bytes], list] = {}  # (table, key) -> [kind, value, deleted]
        ops = 0
        for group in writes:
            for op in group.ops:
                ops += 1
                slot = (op.table, key_bytes(op.key))
                kind = op.kind
                last = outcome.get(slot)
                if kind == PUT or kind == ADD:
                    if last is None:
                        outcome[slot] = [kind, op.value, False]
                    elif last[0] == DELETE or last[0] == DISCARD:
                        # Deleted, then written again in this turn: the row goes, and
                        # comes back last (a dict's key deleted and set again moves to
                        # its end), so it is deleted and inserted anew.
                        del outcome[slot]
                        outcome[slot] = [kind, op.value, True]
                    else:
                        last[1] = op.value  # written again: its place stays, the last value
                else:
                    if last is None:
                        outcome[slot] = [kind, None, False]
                    else:
                        last[0], last[1] = kind, None
        encode = self.codec.encode
        removed: dict[str, list] = {}
        kept: dict[str, list] = {}
        for (table, key), (kind, value, deleted) in outcome.items():
            if kind == PUT:
                if deleted:
                    removed.setdefault(table, []).append((key,))
                kept.setdefault(table, []).append((key, encode(value)))
            elif kind == ADD:
                if deleted:
                    removed.setdefault(table, []).append((key,))
                kept.setdefault(table, []).append((key,))
            else:
                removed.setdefault(table, []).append((key,))
        return removed, kept, ops

    def _key_bytes(self, key: object) -> bytes:
        """A key's encoding, remembered: a Node writes the same keys again and again (a
        workflow's rows at each of its changes). Only a str, an int, bytes, or a tuple
        of those is remembered: two such keys are equal only when their encodings are
        (not so with bools and floats: 1 == True == 1.0 as dict keys, not as bytes)."""
        cls = key.__class__
        if cls in _KEY_TYPES or cls is tuple and _KEY_TYPES.issuperset(map(type, key)):
            keys = self._keys
            data = keys.get(key)
            if data is None:
                if len(keys) >= MAX_KEYS_REMEMBERED:
                    keys.clear()  # a bound on memory: the keys in use come back at once
                data = keys[key] = self.codec.encode(key)
            return data
        return self.codec.encode(key)

    def _rollback(self) -> None:
        try:
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")
        except sqlite3.ProgrammingError:
            pass  # the connection was closed (a test's crash): SQLite dropped the transaction

    # ---- reading back ----------------------------------------------------------------

    def load(self) -> Disk:
        """The tables as a Disk: what `Node.restore` rebuilds a Node from."""
        decode = self.codec.decode
        tables: dict[str, object] = {}
        for table in TABLES:
            rows = self._con.execute(f"SELECT k, v FROM node_{table} ORDER BY rowid")
            if table in SET_TABLES:
                tables[table] = {decode(k) for k, _ in rows}
            elif table == "results":  # (workflow, step) rows: workflow -> {step: result}
                results: dict[str, dict] = {}
                for k, v in rows:
                    wf, step = decode(k)
                    results.setdefault(wf, {})[step] = decode(v)
                tables[table] = results
            else:
                tables[table] = {decode(k): decode(v) for k, v in rows}
        return Disk(**tables)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> SqliteDurable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
