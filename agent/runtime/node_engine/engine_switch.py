"""Upgrading from a release that ran the older engine (`engine: shells`, since removed):
the node engine never starts over that engine's unfinished work, so none of it is left
behind without a word.

Theory of operation
-------------------
The older engine kept its workflows in agent.db's tables (the schema of
runtime/store/schema.py); the node engine keeps them in node.db (node_store.py). It still
opens agent.db (identity, incarnation, key records, the node store's marker, the audit
log), but it never reads those workflow tables. An agent upgraded from a release whose
engine was the shells would leave whatever they had not finished in agent.db, unserved:
a running step nobody reports, slots held and votes given that nobody resolves,
decisions peers wait to be told, promises a recovering peer asks an acceptor about.

So before any file is opened for writing (before `Store.open`, which migrates and
writes the identity record), `check_engine_switch(data_dir)` reads agent.db read-only
with plain sqlite and counts that unfinished work; if there is any, the start is refused
with an `EngineSwitchRefused`: one line naming the data dir, how many workflows, of which
kind, and what to do (drain them with the previous release, then upgrade). Nothing is
changed: the connection is read-only, and the WAL companions the opening made are
removed again (as node_engine/identity.py does for node.db).

What counts as unfinished is what a peer, or this agent itself, may still rely on: the
older engine's rule of retention, which never compacted such a workflow, plus every
workflow not in a terminal state:

- a workflow not ended here (NEGOTIATING, RUNNING, or any state not terminal);
- a reservation (its row is deleted when released: any row holds slots, or is a YES
  vote in doubt);
- a step or compensation attempt recorded as started without a result;
- a compensation still owed (PENDING or RUNNING);
- an end notice owed to a participant that has not answered;
- a COMMIT certificate still kept (a participant has not acknowledged the decision);
- an acceptor record whose round's outcome is not known here (a recovery ballot may
  still need its promise).

A workflow counts once however many of these it has. An agent.db with none (empty of
workflows, or every one ended and settled) lets the node engine start. A missing or
empty agent.db has nothing to lose; one that cannot be read is left to `Store.open`,
which refuses a damaged file with its own line; a table an older schema lacks holds
nothing of its kind.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path

from fedorch.core.workflow.lifecycle import TERMINAL_NAMES
from fedorch.runtime.store.identity import DB_COMPANIONS, DB_FILE, StoreError

__all__ = ["EngineSwitchRefused", "UnfinishedWork", "check_engine_switch", "shells_work"]

_ENDED = ", ".join(f"'{name}'" for name in sorted(TERMINAL_NAMES))

# Each kind of unfinished work: (field, the tables it reads, the workflow ids it has).
_KINDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("not_ended", ("workflows",),
     f"SELECT id FROM workflows WHERE state NOT IN ({_ENDED})"),
    ("reservations", ("reservations",), "SELECT workflow_id FROM reservations"),
    ("running_attempts", ("step_runs",),
     "SELECT workflow_id FROM step_runs WHERE state = 'running'"),
    ("running_attempts", ("compensation_runs",),
     "SELECT workflow_id FROM compensation_runs WHERE state = 'running'"),
    ("owed_compensations", ("compensations",),
     "SELECT workflow_id FROM compensations WHERE state IN ('PENDING', 'RUNNING')"),
    ("owed_end_notices", ("end_notices",), "SELECT workflow_id FROM end_notices"),
    ("kept_certificates", ("decisions",),
     "SELECT workflow_id FROM decisions WHERE outcome = 'COMMIT' AND envelope != x''"),
    ("undecided_acceptor", ("acceptor_records", "learned", "decisions"),
     "SELECT a.workflow_id FROM acceptor_records a WHERE a.decided IS NULL"
     " AND NOT EXISTS(SELECT 1 FROM learned l WHERE l.workflow_id = a.workflow_id"
     "                AND l.round = a.round)"
     " AND NOT EXISTS(SELECT 1 FROM decisions d WHERE d.workflow_id = a.workflow_id"
     "                AND d.round = a.round)"),
)

# How each kind is named in the refusal.
_SAID = {
    "not_ended": "not ended",
    "reservations": "holding a reservation",
    "running_attempts": "with an attempt started and no result",
    "owed_compensations": "owing a compensation",
    "owed_end_notices": "owing an end notice",
    "kept_certificates": "with a decision not every participant acknowledged",
    "undecided_acceptor": "with an acceptor record whose outcome is not known here",
}


@dataclass(frozen=True)
class UnfinishedWork:
    """The older engine's unfinished work in agent.db: how many distinct workflows, and
    how many have each kind (one workflow may have several)."""

    workflows: int = 0
    not_ended: int = 0
    reservations: int = 0
    running_attempts: int = 0
    owed_compensations: int = 0
    owed_end_notices: int = 0
    kept_certificates: int = 0
    undecided_acceptor: int = 0

    def kinds(self) -> list[str]:
        """'N <kind>' for each kind present, in the order of the fields."""
        return [f"{getattr(self, f.name)} {_SAID[f.name]}" for f in fields(self)
                if f.name != "workflows" and getattr(self, f.name)]


class EngineSwitchRefused(StoreError):
    """The node engine would leave the older engine's unfinished work unserved;
    the message is one line naming the data dir, the work and what to do."""

    def __init__(self, data_dir: Path, work: UnfinishedWork) -> None:
        self.data_dir = data_dir
        self.work = work
        noun = "workflow" if work.workflows == 1 else "workflows"
        kinds = ", ".join(work.kinds())
        super().__init__(
            f"{data_dir}: {DB_FILE} holds {work.workflows} unfinished {noun} of the older"
            f" engine `shells` ({kinds}), which this release no longer runs: start this"
            " agent with the previous release (`engine: shells`) until they have ended"
            " (this check then passes), then upgrade")


def _read(con: sqlite3.Connection) -> UnfinishedWork:
    """The older engine's unfinished work, by the queries of `_KINDS`."""
    tables = {row[0] for row in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    ids: dict[str, set[str]] = {}
    for kind, needs, sql in _KINDS:
        if not tables.issuperset(needs):
            continue  # an older schema: nothing of this kind can exist
        ids.setdefault(kind, set()).update(row[0] for row in con.execute(sql))
    every = set().union(*ids.values()) if ids else set()
    return UnfinishedWork(len(every), **{kind: len(found) for kind, found in ids.items()})


def shells_work(db_path: Path) -> UnfinishedWork | None:
    """The older engine's unfinished work in agent.db `db_path`, read without changing
    anything; None when the file is missing, empty or cannot be read (Store.open judges
    those)."""
    if not db_path.is_file() or db_path.stat().st_size == 0:
        return None
    companions = [Path(f"{db_path}{suffix}") for suffix in DB_COMPANIONS]
    absent = [c for c in companions if not c.exists()]
    try:
        with contextlib.closing(sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro",
                                                uri=True)) as con:
            return _read(con)
    except sqlite3.Error:
        return None
    finally:
        # An empty WAL and its index that this opening made hold nothing: the data dir
        # is left as it was found.
        for made in absent:
            with contextlib.suppress(FileNotFoundError):
                if made.name.endswith("-shm") or made.stat().st_size == 0:
                    made.unlink()


def check_engine_switch(data_dir: Path | str) -> None:
    """EngineSwitchRefused when agent.db in this data dir holds the older engine's
    unfinished work. Call it before anything opens agent.db or node.db."""
    data_dir = Path(data_dir)
    work = shells_work(data_dir / DB_FILE)
    if work is not None and work.workflows:
        raise EngineSwitchRefused(data_dir, work)
