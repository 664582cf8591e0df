"""Is this the node.db this agent wrote? The node store's identity, checked before the
node engine trusts the file.

Theory of operation
-------------------
A Node restored from the wrong file would be worse than no Node: from a missing or
empty node.db it would start with no workflows and forget every vote, decision,
reservation and running step it promised peers (they would wait on it forever, or it
would contradict itself); from another domain's it would speak for work that is not
its own. SQLite alone cannot tell: it creates a missing file, and takes a zero-length
one as a new database. So the node store carries an identity, as agent.db does
(runtime/store/identity.py):

- node.db holds a table `node_identity` (domain, key fingerprint, database: a random
  id made when the file is created), apart from the Node's own `node_<field>` tables;
- agent.db's meta table holds the same record under `node_db.identity`: the marker
  that says this data dir has a node store, and which one.

`open_checked(...)` runs before `SqliteDurable` opens the file, and refuses with a
`NodeDbRefused` (one line naming the file, what is wrong and what to do: restore it,
or start with `--start-fresh`, which moves it aside) when:

- agent.db's marker says a node store existed, but node.db is missing;
- node.db is empty (zero bytes: never a file this code wrote, see creation below);
- node.db is not SQLite, fails SQLite's `quick_check` (corrupt, truncated) or cannot
  be read;
- node.db records another domain, another key (a key this domain rotated away from is
  no mismatch: the record is re-labelled), or another database id than the marker; or
  it has no record while the marker names one (it was replaced), or a record while
  agent.db has no marker (agent.db was replaced or started fresh: the two files are
  not of one life).

Creation is crash-safe: a new node.db is written as `node.db.new` with its identity and
fsynced, then the marker goes into agent.db, then the file is renamed into place and
the directory fsynced. A crash before the marker leaves a stray `.new` (removed on the
next start); one after it leaves a `.new` whose id is the marker's (renamed into place
on the next start). So node.db never exists without its identity, and no marker ever
names a file that was not durable first.

A node.db from before identities (a record-less file with no marker in agent.db) is
adopted: the marker is written first, then the record. A crash between those two
leaves a record-less file and a marker, which the next start refuses as replaced (a
window of one upgrade; `--start-fresh` or restoring the marker's absence resolves it).

A node.db that cannot be read for the storage (disk full, I/O error: SQLite's storage
error codes) is not judged: the start stops with a NodeStoreError saying to free space
or mend the disk, and `start_fresh` does not move it aside.

With `start_fresh`, a refused node.db (with its WAL files) is moved aside as
`node.db.bad-TIME` and a new one created: nothing is deleted.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from fedorch.runtime.node_store import NodeStoreError
from fedorch.runtime.store.database import unreadable_storage
from fedorch.runtime.store.identity import DB_COMPANIONS, START_FRESH_FLAG
from fedorch.runtime.store.store import is_storage_fault

__all__ = ["MARKER_KEY", "NODE_DB", "NodeDbIdentity", "NodeDbRefused", "check_node_db",
           "open_checked"]

NODE_DB = "node.db"
NEW_SUFFIX = ".new"
MARKER_KEY = "node_db.identity"  # agent.db meta key
IDENTITY_TABLE = "node_identity"

log = logging.getLogger("fedorch.node_engine")


class NodeDbRefused(NodeStoreError):
    """node.db is not the node store this agent wrote, or is damaged: one line naming
    the file and what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = " ".join(problem.split())
        super().__init__(
            f"{path}: {self.problem}; restore it (with its -wal file) from a backup, or"
            f" start with no node engine workflows by running the agent with"
            f" {START_FRESH_FLAG} (it moves the file aside, deleting nothing)")


@dataclass(frozen=True)
class NodeDbIdentity:
    domain: str
    key: str  # fingerprint of the domain's public key
    database: str  # random id of this node.db, made when it was created

    @classmethod
    def new(cls, domain: str, key: str) -> NodeDbIdentity:
        return cls(domain, key, uuid.uuid4().hex)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NodeDbIdentity:
        fields = json.loads(text)
        return cls(str(fields["domain"]), str(fields["key"]), str(fields["database"]))


# ---- node.db's own record ----------------------------------------------------------------


def _read_record(con: sqlite3.Connection) -> NodeDbIdentity | None:
    has = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                      (IDENTITY_TABLE,)).fetchone()
    if has is None:
        return None
    fields = dict(con.execute(f"SELECT k, v FROM {IDENTITY_TABLE}").fetchall())
    if not all(fields.get(k) for k in ("domain", "key", "database")):
        return None
    return NodeDbIdentity(fields["domain"], fields["key"], fields["database"])


def _write_record(con: sqlite3.Connection, identity: NodeDbIdentity) -> None:
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {IDENTITY_TABLE}"
                    " (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        con.executemany(f"INSERT OR REPLACE INTO {IDENTITY_TABLE}(k, v) VALUES (?, ?)",
                        sorted(asdict(identity).items()))
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=FULL")
    return con


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _inspect(path: Path) -> NodeDbIdentity | None:
    """The record in an existing, non-empty node.db; NodeDbRefused if it is not a
    readable, intact SQLite file."""
    # Read-only, and the WAL companions this opening made removed again (an empty WAL
    # and its index hold nothing): a refused file is left exactly as it was found.
    companions = [Path(f"{path}{suffix}") for suffix in DB_COMPANIONS]
    absent = [c for c in companions if not c.exists()]
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro",
                                                uri=True)) as con:
            check = con.execute("PRAGMA quick_check").fetchall()
            if [tuple(row) for row in check] != [("ok",)]:
                first = "; ".join(str(row[0]) for row in check[:2])
                raise NodeDbRefused(path, f"fails SQLite's integrity check ({first})")
            return _read_record(con)
    except sqlite3.DatabaseError as e:  # "file is not a database", "malformed", I/O
        if is_storage_fault(e):  # a full or failing disk says nothing of the file
            raise NodeStoreError(unreadable_storage(path, e)) from None
        raise NodeDbRefused(path, f"not a node store this agent can read ({e})") from None
    finally:
        for made in absent:
            with contextlib.suppress(FileNotFoundError):
                if made.name.endswith("-shm") or made.stat().st_size == 0:
                    made.unlink()


def _create(path: Path, identity: NodeDbIdentity) -> Path:
    """node.db.new with its record, durable; returns its path."""
    new = path.with_name(path.name + NEW_SUFFIX)
    for suffix in ("", *DB_COMPANIONS):
        Path(f"{new}{suffix}").unlink(missing_ok=True)
    with contextlib.closing(_connect(new)) as con:
        _write_record(con, identity)  # a rollback journal: all in the one file once closed
    with open(new, "rb") as f:
        os.fsync(f.fileno())
    _fsync_dir(path.parent)
    return new


def _install(new: Path, path: Path) -> None:
    os.replace(new, path)
    _fsync_dir(path.parent)


def _finish_creation(new: Path, path: Path, marker: NodeDbIdentity | None) -> None:
    """node.db.new left by a crash: installed when the marker names it, else dropped
    (never recorded, so nothing was ever written to it)."""
    if marker is not None and _inspect(new) == marker:
        _install(new, path)
        return
    for suffix in ("", *DB_COMPANIONS):
        Path(f"{new}{suffix}").unlink(missing_ok=True)


def move_aside(path: Path, now: datetime.datetime | None = None) -> Path:
    """Move node.db (with its WAL files) aside under a new name; returns it."""
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    for suffix in ("", *DB_COMPANIONS):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{target}{suffix}"))
    return target


# ---- the check -------------------------------------------------------------------------

GetMarker = Callable[[], Awaitable[str | None]]
SetMarker = Callable[[str | None], Awaitable[None]]


async def check_node_db(data_dir: Path, domain: str, key: str, *, get_marker: GetMarker,
                        set_marker: SetMarker, earlier_keys: Collection[str] = ()) -> Path:
    """Make sure data_dir/node.db is the node store this agent wrote (creating it, with
    its identity, when the data dir never had one); NodeDbRefused otherwise (see the
    header). Returns its path. The marker is read and written through the callables
    (agent.db's meta table in the daemon)."""
    path = data_dir / NODE_DB
    new = path.with_name(path.name + NEW_SUFFIX)
    text = await get_marker()
    try:
        marker = NodeDbIdentity.from_json(text) if text else None
    except (ValueError, KeyError, TypeError) as e:
        raise NodeDbRefused(path, f"agent.db's record of it ({MARKER_KEY}) is unreadable"
                                  f" ({e})") from None

    if not path.exists() and new.exists():  # a creation a crash interrupted
        _finish_creation(new, path, marker)

    if not path.exists():
        if marker is not None:
            raise NodeDbRefused(path, f"missing, but agent.db records node store"
                                      f" {marker.database} of domain {marker.domain}")
        identity = NodeDbIdentity.new(domain, key)
        created = _create(path, identity)
        await set_marker(identity.to_json())
        _install(created, path)
        return path
    if path.stat().st_size == 0:
        raise NodeDbRefused(path, "empty (zero bytes): not a node store this agent wrote")

    recorded = _inspect(path)
    if recorded is None:
        if marker is not None:
            raise NodeDbRefused(path, f"has no identity record, but agent.db records node"
                                      f" store {marker.database}: it was replaced")
        identity = NodeDbIdentity.new(domain, key)  # a node.db from before identities
        await set_marker(identity.to_json())
        with contextlib.closing(_connect(path)) as con:
            _write_record(con, identity)
        return path
    if recorded.domain != domain:
        raise NodeDbRefused(path, f"belongs to domain {recorded.domain!r}, not {domain!r}")
    if recorded.key != key and recorded.key not in earlier_keys:
        raise NodeDbRefused(path, f"was written with another key of domain {domain!r}"
                                  f" ({recorded.key}, this agent's is {key})")
    if marker is None:
        raise NodeDbRefused(path, f"is node store {recorded.database}, but agent.db records"
                                  " none (agent.db was replaced or started fresh)")
    if marker.database != recorded.database:
        raise NodeDbRefused(path, f"is node store {recorded.database}, but agent.db records"
                                  f" {marker.database}")
    if recorded.key != key:  # written under a key this domain rotated away from
        rekeyed = NodeDbIdentity(domain, key, recorded.database)
        with contextlib.closing(_connect(path)) as con:
            _write_record(con, rekeyed)
        await set_marker(rekeyed.to_json())
    return path


async def open_checked(data_dir: Path, domain: str, key: str, *, get_marker: GetMarker,
                       set_marker: SetMarker, start_fresh: bool = False,
                       earlier_keys: Collection[str] = ()) -> Path:
    """check_node_db; with `start_fresh`, a refused node.db is moved aside and a new one
    made. Returns node.db's path, ready for SqliteDurable."""
    try:
        return await check_node_db(data_dir, domain, key, get_marker=get_marker,
                                   set_marker=set_marker, earlier_keys=earlier_keys)
    except NodeDbRefused as e:
        if not start_fresh:
            raise
        moved = move_aside(e.path)
        await set_marker(None)
        log.warning(
            "%s: %s; moved it aside to %s and starting with no node engine workflows",
            e.path, e.problem, moved)
        return await check_node_db(data_dir, domain, key, get_marker=get_marker,
                                   set_marker=set_marker, earlier_keys=earlier_keys)
