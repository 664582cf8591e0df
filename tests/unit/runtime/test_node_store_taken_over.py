"""A workflow taken over, forgotten by retention, stays forgotten across a restart: its
rows, the takeover tables among them, are deleted from `node.db` (SqliteDurable,
agent/runtime/node_store.py), and a Node restored from that file holds nothing of it
(tests/unit/core/node/test_retention_takeover.py tells the story: d0 dies, d1 acts in
epoch 1 and ends the workflow; here d0 comes back at once)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fedorch.core.node import MemberState, Tick
from fedorch.core.node.ready import Ready
from fedorch.core.node.records import TABLES
from fedorch.runtime.node_store import SqliteDurable

from tests.unit.core.node.test_retention_takeover import (
    LATE,
    WF,
    Federation,
    d0_back,
    taken_over_and_ended,
)

TAKEOVER_TABLES = ("epochs", "granted", "certificates")


class Stored(Federation):
    """Every write group d1 and d2 apply goes to their `node.db` too, as the daemon's."""

    def __init__(self, where: Path) -> None:
        self.stores = {n: SqliteDurable(where / f"{n}.db") for n in ("d1", "d2")}
        super().__init__()

    def flush(self, name: str) -> Ready:
        ready = super().flush(name)
        if name in self.stores and ready.writes:
            self.stores[name].write(ready.writes)
        return ready


def rows(path: Path, table: str) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT count(*) FROM node_{table}").fetchone()[0]
    finally:
        con.close()


def test_forgotten_takeover_rows_are_deleted_from_node_db_and_stay_forgotten(tmp_path):
    fed = taken_over_and_ended({"s1": "d1", "s2": "d2"}, Stored(tmp_path))
    d0_back(fed)
    try:
        for name in ("d1", "d2"):
            assert all(rows(tmp_path / f"{name}.db", t) == 1 for t in TAKEOVER_TABLES
                       if name == "d1" or t != "certificates"), name
        fed.run_until(fed.now + 2 * LATE + 3.0)
        for name in ("d1", "d2"):
            path = tmp_path / f"{name}.db"
            assert [t for t in TAKEOVER_TABLES + ("final", "endings", "committed")
                    if rows(path, t)] == [], name
            fed.stores[name].close()
            with SqliteDurable(path) as reopened:  # what a restarted agent reads
                disk = reopened.load()
            assert not any(
                (key[0] if isinstance(key, tuple) else key) == WF
                for t in TABLES
                if t not in ("acceptor", "learned", "ended_records", "ended_proofs")
                for key in getattr(disk, t)), name
            fed.disks[name] = disk
            node = fed.restore(name)
            fed.step(name, *[MemberState(m, "ALIVE") for m in fed.names if m != name])
            assert node.retain.tracked() == 0
            assert WF not in node.takeover.cores and WF not in node.progress
            fed.step(name, Tick())
            assert not fed.readies[name][-1].writes  # nothing comes back
    finally:
        for store in fed.stores.values():
            store.close()
