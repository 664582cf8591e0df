"""What an agent keeps on disk about a workflow, read the same way for either engine.

The shells keep their rows in agent.db (`workflows`, `reservations`, ...); the node
engine keeps its Node's tables in node.db (`node_<table>`, rows of MessagePack keys and
values, agent/runtime/node_store.py). A test that checks a durable fact both engines
have (the epoch an agent follows and the one it granted, the slots it still holds, the
electorate of the committed round) asks it here, and the answer has one shape whichever
engine the agent runs. Files are opened read-only: the agent goes on writing (WAL).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from fedorch.runtime.node_codec import node_codec

from tests.integration.federation import Federation

_CODEC = node_codec()


def _data(fed: Federation, name: str) -> Path:
    return fed.workdir / "data" / name


def runs_node_engine(fed: Federation, name: str) -> bool:
    """Agent `name` runs `engine: node`: it keeps a node.db beside its agent.db."""
    return (_data(fed, name) / "node.db").exists()


def node_table(fed: Federation, name: str, table: str) -> dict | set:
    """One table of agent `name`'s node.db, decoded (a dict, or a set for a set table)."""
    path = _data(fed, name) / "node.db"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(f"SELECT k, v FROM node_{table} ORDER BY rowid").fetchall()
    finally:
        db.close()
    if rows and rows[0][1] is None:
        return {_CODEC.decode(k) for k, _ in rows}
    return {_CODEC.decode(k): _CODEC.decode(v) for k, v in rows}


def epoch_row(fed: Federation, name: str, workflow_id: str) -> tuple:
    """(epoch, coordinator) the agent follows or acts in, then (epoch, holder) it granted
    (0, "" when it granted none); () when it keeps no such row for the workflow."""
    if not runs_node_engine(fed, name):
        rows = fed.rows(name, "SELECT epoch, coordinator, granted_epoch, granted_to"
                              " FROM workflows WHERE id=?", (workflow_id,))
        return tuple(rows[0]) if rows else ()
    followed = node_table(fed, name, "epochs").get(workflow_id)
    granted = node_table(fed, name, "granted").get(workflow_id, (0, ""))
    return (*followed, *granted) if followed is not None else ()


def followed_epoch(fed: Federation, name: str, workflow_id: str) -> tuple:
    """(epoch, coordinator) the agent follows or acts in; () when it keeps none. The node
    engine writes no row for epoch 0 (the original, named by the workflow's id) until a
    takeover moved it: its absence there is (0, the original coordinator)."""
    if not runs_node_engine(fed, name):
        return epoch_row(fed, name, workflow_id)[:2]
    followed = node_table(fed, name, "epochs").get(workflow_id)
    return tuple(followed) if followed is not None else (0, workflow_id.split(".")[0])


def held_slots(fed: Federation, name: str, workflow_id: str) -> list:
    """The reservations (shells) or holds (node engine) agent `name` keeps for the
    workflow: [] once every slot it took for it is released."""
    if not runs_node_engine(fed, name):
        return fed.rows(name, "SELECT * FROM reservations WHERE workflow_id=?",
                        (workflow_id,))
    return [hold for key, hold in node_table(fed, name, "holds").items()
            if key[0] == workflow_id]


def electorate(fed: Federation, name: str, workflow_id: str) -> list[str]:
    """The committed round's acceptors as agent `name` kept them ([] if it keeps none)."""
    if not runs_node_engine(fed, name):
        rows = fed.rows(name, "SELECT acceptors FROM workflows WHERE id=?", (workflow_id,))
        return json.loads(rows[0][0]) if rows and rows[0][0] else []
    return list(node_table(fed, name, "electorates").get(workflow_id, ()))
