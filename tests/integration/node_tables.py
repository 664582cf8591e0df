"""What an agent keeps in node.db, read by a test (read-only: WAL lets the agent go on
writing).

Each table is the Node's own (core/node/records.py `Disk`), decoded with the codec the
agent writes it with (runtime/node_store.py). `None` for an agent that has no node.db
(not started yet).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_store import SET_TABLES

_CODEC = node_codec()


def node_db(fed: Any, name: str) -> Path:
    return fed.workdir / "data" / name / "node.db"


def runs_node_engine(fed: Any, name: str) -> bool:
    """The agent keeps a node.db: every agent once started (the node engine is the only
    one)."""
    return node_db(fed, name).exists()


def node_table(fed: Any, name: str, table: str) -> dict | set | None:
    """One of the Node's tables at agent `name` as node.db holds it now (None: no
    node.db yet)."""
    path = node_db(fed, name)
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(f"SELECT k, v FROM node_{table} ORDER BY rowid").fetchall()
    finally:
        db.close()
    decode = _CODEC.decode
    if table in SET_TABLES:
        return {decode(k) for k, _ in rows}
    return {decode(k): decode(v) for k, v in rows}


def learned(fed: Any, name: str, wid: str) -> list[tuple[int, str]]:
    """(round, COMMIT|ABORT) of each decision of `wid` learned at `name`."""
    table = node_table(fed, name, "learned") or {}
    return sorted((r, "COMMIT" if v.commit else "ABORT") for (w, r), v in table.items()
                  if w == wid)


def step_runs(fed: Any, name: str, wid: str) -> list[tuple[str, int]]:
    """(step, attempt) of each attempt of `wid` started at `name`."""
    table = node_table(fed, name, "runs") or set()
    return sorted((s, a) for w, s, a in table if w == wid)


def prepared(fed: Any, name: str, wid: str) -> bool:
    """`name` voted YES on `wid` and holds it PREPARED (on disk before the vote leaves)."""
    table = node_table(fed, name, "holds") or {}
    return [str(h.state.value).lower() for (w, _), h in table.items() if w == wid] == [
        "prepared"]
