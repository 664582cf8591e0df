"""Changing an agent's engine: the node engine never starts over the shells' unfinished
work, so none of it is left behind without a word.

Theory of operation
-------------------
The two engines keep their workflows apart: the shells (`engine: shells`) in agent.db's
tables (runtime/store/), the node engine in node.db (node_store.py). The node engine
still opens agent.db (membership, trust, key records, the node store's marker), but it
never reads the shells' workflow tables. An agent switched from the shells to the node
engine (`engine: node`, or a config naming no engine once the node engine is the
default) would leave whatever the shells had not finished in agent.db, unserved: a running
step nobody reports, slots held and votes given that nobody resolves, decisions peers
wait to be told, promises a recovering peer asks an acceptor about.

So before any file is opened for writing (before `Store.open`, which migrates and
writes the identity record), `check_engine_switch(data_dir)` reads agent.db read-only
and counts the shells' unfinished work; if there is any, the start is refused with an
`EngineSwitchRefused`: one line naming the data dir, how many workflows, of which kind,
and what to do (run with `engine: shells` until they end, then switch).
Nothing is changed: the connection is read-only, and the WAL companions the opening
made are removed again (as node_engine/identity.py does for node.db).

What counts as unfinished is what a peer, or this agent itself, may still rely on: the
rule of retention (core/workflow/retention.py, `may_be_asked`), which never compacts
such a workflow, plus every workflow not in a terminal state:

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

The reverse: `engine: shells` over a node.db with the node engine's unfinished work
(an agent moved back) is refused the same way, by the rule of the Node's retention
(core/node/retention.py, `kept_because`) as far as its tables alone say it: a
coordinator row not finished in a terminal state, a workflow committed here without an
end, a hold, a compensation attempt running, a compensation owed or a saga plan open,
an end not acknowledged by every other domain of its placement, a COMMIT record kept.
Two of its reasons are left out, since the Node keeps them for ever and they would
forbid the move for good: a takeover's epochs and grants, and acceptor records (never
forgotten, so not "unfinished"). Their loss is the shells' known limit of a move back
(docs/limits.md, Upgrades). The node.db is read read-only with the node codec; one
that cannot be read or decoded is not judged (the node engine's own start judges it,
node_engine/identity.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fedorch.core.workflow.lifecycle import TERMINAL, TERMINAL_NAMES
from fedorch.runtime.node_codec import CodecError, node_codec
from fedorch.runtime.node_engine.identity import NODE_DB
from fedorch.runtime.store.identity import DB_COMPANIONS, DB_FILE, StoreError

__all__ = ["EngineSwitchRefused", "UnfinishedWork", "check_engine_switch", "node_work",
           "shells_work"]

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
    """One engine's unfinished work in its database: how many distinct workflows, and
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
    """The engine asked for would leave the other engine's unfinished work unserved;
    the message is one line naming the data dir, the work and what to do."""

    def __init__(self, data_dir: Path, work: UnfinishedWork, *, to_node: bool = True) -> None:
        self.data_dir = data_dir
        self.work = work
        noun = "workflow" if work.workflows == 1 else "workflows"
        kinds = ", ".join(work.kinds())
        if to_node:
            said = (f"{DB_FILE} holds {work.workflows} unfinished {noun} of the shells"
                    f" engine ({kinds}), which the node engine would not run:"
                    " set `engine: shells` in this agent's config and run it until they"
                    " have ended (this check then passes), then switch it")
        else:
            said = (f"{NODE_DB} holds {work.workflows} unfinished {noun} of the node engine"
                    f" ({kinds}), which the shells (`engine: shells`) would not run: run"
                    " this agent on the node engine (no `engine:` line) until they have"
                    " ended (this check then passes), then set `engine: shells`")
        super().__init__(f"{data_dir}: {said}")


def _read(con: sqlite3.Connection) -> UnfinishedWork:
    """The shells' unfinished work, by the queries of `_KINDS`."""
    tables = {row[0] for row in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    ids: dict[str, set[str]] = {}
    for kind, needs, sql in _KINDS:
        if not tables.issuperset(needs):
            continue  # an older schema: nothing of this kind can exist
        ids.setdefault(kind, set()).update(row[0] for row in con.execute(sql))
    every = set().union(*ids.values()) if ids else set()
    return UnfinishedWork(len(every), **{kind: len(found) for kind, found in ids.items()})


def _read_node(con: sqlite3.Connection, domain: str) -> UnfinishedWork:
    """The node engine's counterpart of `_read`, over the Node's tables (Disk,
    core/node/records.py), by the rule of its retention (core/node/retention.py,
    `kept_because`) as far as the tables alone say it."""
    tables = {row[0] for row in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    codec = node_codec()

    def table(name: str) -> dict[Any, Any]:
        if f"node_{name}" not in tables:
            return {}
        return {codec.decode(k): None if v is None else codec.decode(v)
                for k, v in con.execute(f"SELECT k, v FROM node_{name}")}

    rows, final, acked = table("rows"), table("final"), table("final_acked")
    ids: dict[str, set[str]] = {
        "not_ended": {wf for wf, row in rows.items()
                      if not (row.finished and row.state in TERMINAL)}
        | {wf for wf in table("committed") if wf not in final},
        "reservations": {wf for wf, _ in table("holds")},
        "running_attempts": {key[0] for key, run in table("comp_runs").items()
                             if run[0] == "running"},
        "owed_compensations": {key[0] for key, comp in table("compensations").items()
                               if comp.state in ("PENDING", "RUNNING")}
        | set(table("plans")),
        "owed_end_notices": {wf for wf, row in rows.items() if row.committed
                             and set(row.info.placement.values()) - {domain}
                             - set(acked.get(wf, ()))},
        "kept_certificates": {wf for (wf, _), value in table("records").items()
                              if value.commit},
    }
    every = set().union(*ids.values())
    return UnfinishedWork(len(every), **{kind: len(found) for kind, found in ids.items()})


def _read_only(db_path: Path, read: Callable[[sqlite3.Connection], UnfinishedWork]
               ) -> UnfinishedWork | None:
    """`read` over `db_path` opened read-only; None when the file is missing, empty or
    cannot be read (the checks of the engine that owns it judge those)."""
    if not db_path.is_file() or db_path.stat().st_size == 0:
        return None
    companions = [Path(f"{db_path}{suffix}") for suffix in DB_COMPANIONS]
    absent = [c for c in companions if not c.exists()]
    try:
        with contextlib.closing(sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro",
                                                uri=True)) as con:
            return read(con)
    except (sqlite3.Error, CodecError):
        return None
    finally:
        # An empty WAL and its index that this opening made hold nothing: the data dir
        # is left as it was found.
        for made in absent:
            with contextlib.suppress(FileNotFoundError):
                if made.name.endswith("-shm") or made.stat().st_size == 0:
                    made.unlink()


def shells_work(db_path: Path) -> UnfinishedWork | None:
    """The shells' unfinished work in agent.db `db_path`, read without changing
    anything; None when the file is missing, empty or cannot be read."""
    return _read_only(db_path, _read)


def node_work(db_path: Path, domain: str) -> UnfinishedWork | None:
    """The node engine's unfinished work in node.db `db_path` of `domain`, read
    without changing anything; None when the file is missing, empty or cannot be read."""
    return _read_only(db_path, lambda con: _read_node(con, domain))


def check_engine_switch(data_dir: Path | str, *, to_node: bool = True,
                        domain: str = "") -> None:
    """EngineSwitchRefused when the engine asked for (the node engine when `to_node`,
    else the shells) would start over the other engine's unfinished work in this data
    dir. Call it before anything opens agent.db or node.db."""
    data_dir = Path(data_dir)
    work = (shells_work(data_dir / DB_FILE) if to_node
            else node_work(data_dir / NODE_DB, domain))
    if work is not None and work.workflows:
        raise EngineSwitchRefused(data_dir, work, to_node=to_node)
