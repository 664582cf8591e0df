"""Is this the database this agent wrote? The data dir's identity record, and the checks
an agent passes before it trusts its agent.db.

An agent that started on the wrong database would be worse than one that does not
start: with an empty one it forgets every vote, decision and running step it promised
peers (they would wait forever, or it would contradict itself); with another domain's
it would speak for work that is not its own. So the data dir keeps an identity record
(identity.json: the domain, a fingerprint of its public key, and the id of the
database created for them), the database keeps the same record in its meta table, and
an agent refuses to start when:

- identity.json says a database was created but agent.db is missing or empty (a
  zero-length file is never one this agent wrote: it writes its schema at once);
- agent.db is not an SQLite database, fails SQLite's integrity check (corrupt,
  truncated), or cannot be read;
- agent.db records another domain, another key, or another database id than the data
  dir's record (a file copied from elsewhere, or restored into the wrong place).

Each refusal is a BadDatabase: one line naming the file, what is wrong, and what to
do (restore it, or start fresh with the explicit flag, which moves the file aside:
nothing is deleted). A data dir from before identity records is adopted: its record
is written on first open.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import uuid
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DB_FILE = "agent.db"
IDENTITY_FILE = "identity.json"
# SQLite's companions of a database in WAL mode: they move with it.
DB_COMPANIONS = ("-wal", "-shm")
START_FRESH_FLAG = "--start-fresh"


class StoreError(RuntimeError):
    """The data dir cannot be used (newer schema, corrupt file)."""


class BadDatabase(StoreError):
    """agent.db is not the database this agent wrote, or is damaged; the message is one
    line naming the file and what to do."""

    def __init__(self, db_path: pathlib.Path, problem: str) -> None:
        self.db_path = db_path
        self.problem = " ".join(problem.split())
        super().__init__(
            f"{db_path}: {self.problem}; restore it from a backup, or start with an empty"
            f" database by running the agent with {START_FRESH_FLAG} (it moves the file"
            " aside, deleting nothing)")


@dataclass(frozen=True)
class Identity:
    domain: str
    key: str  # fingerprint of the domain's public key (key_fingerprint)
    database: str  # random id of the database created for them

    @classmethod
    def new(cls, domain: str, key: str) -> Identity:
        return cls(domain, key, uuid.uuid4().hex)


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def read_identity(data_dir: pathlib.Path) -> Identity | None:
    """The data dir's identity record, if it has one."""
    path = data_dir / IDENTITY_FILE
    try:
        fields = json.loads(path.read_text())
        return Identity(str(fields["domain"]), str(fields["key"]), str(fields["database"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadDatabase(path, f"unreadable identity record ({e})") from None


def write_identity(data_dir: pathlib.Path, identity: Identity) -> None:
    """Write the record durably and atomically (a crash leaves the old one or the new)."""
    path = data_dir / IDENTITY_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(asdict(identity), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_before_open(data_dir: pathlib.Path) -> Identity | None:
    """The checks that need no SQLite: returns the data dir's identity record."""
    identity = read_identity(data_dir)
    db = data_dir / DB_FILE
    try:
        size = db.stat().st_size
    except FileNotFoundError:
        if identity is not None:
            raise BadDatabase(db, f"missing, but {IDENTITY_FILE} says this data dir had a"
                                  f" database (domain {identity.domain})") from None
        return None
    if size == 0:
        raise BadDatabase(db, "empty (zero bytes): not a database this agent wrote")
    return identity


def check_identity(db: pathlib.Path, recorded: Identity | None, in_db: Identity | None,
                   domain: str, key: str) -> Identity | None:
    """Compare the database's record with the data dir's and this agent's. Returns the
    identity to write (into the database and the data dir) when one is missing, or None
    when both agree already."""
    if in_db is None:
        if recorded is not None:
            raise BadDatabase(db, f"has no identity record, but {IDENTITY_FILE} says this"
                                  f" data dir's database is {recorded.database}: it was"
                                  " replaced")
        return Identity.new(domain, key)  # a new database, or one from before records
    if in_db.domain != domain:
        raise BadDatabase(db, f"belongs to domain {in_db.domain!r}, not {domain!r}")
    if in_db.key != key:
        raise BadDatabase(db, f"was written with another key of domain {domain!r}"
                              f" ({in_db.key}, this agent's is {key})")
    if recorded is not None and recorded.database != in_db.database:
        raise BadDatabase(db, f"is database {in_db.database}, but {IDENTITY_FILE} says this"
                              f" data dir's is {recorded.database}")
    return in_db if recorded is None else None


def move_aside(data_dir: pathlib.Path, now: datetime.datetime | None = None) -> pathlib.Path:
    """Move agent.db (with its WAL files) and identity.json aside, under one new name;
    returns the database's new path."""
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    target = data_dir / f"{DB_FILE}.bad-{stamp}"
    for suffix in ("", *DB_COMPANIONS):
        source = data_dir / f"{DB_FILE}{suffix}"
        if source.exists():
            os.replace(source, data_dir / f"{target.name}{suffix}")
    identity = data_dir / IDENTITY_FILE
    if identity.exists():
        os.replace(identity, data_dir / f"{target.name}.{IDENTITY_FILE}")
    return target
