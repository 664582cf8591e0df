"""What an agent keeps on disk about a workflow, read from its node.db.

The node engine keeps its Node's tables in node.db (`node_<table>`, rows of MessagePack
keys and values, agent/runtime/node_store.py). A test that checks a durable fact (the
epoch an agent follows and the one it granted, the slots it still holds, the electorate
of the committed round) asks it here, in one shape. Files are opened read-only: the
agent goes on writing (WAL).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fedorch.core.identity.authority import coordinator_of
from fedorch.runtime.node_codec import node_codec

from tests.integration.federation import Federation

_CODEC = node_codec()


def _data(fed: Federation, name: str) -> Path:
    return fed.workdir / "data" / name


def runs_node_engine(fed: Federation, name: str) -> bool:
    """Agent `name` runs the node engine: it keeps a node.db beside its agent.db (every
    agent does once started; the older engine, `shells`, was removed)."""
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
    followed = node_table(fed, name, "epochs").get(workflow_id)
    granted = node_table(fed, name, "granted").get(workflow_id, (0, ""))
    return (*followed, *granted) if followed is not None else ()


def followed_epoch(fed: Federation, name: str, workflow_id: str) -> tuple:
    """(epoch, coordinator) the agent follows or acts in; () when it keeps none. The node
    engine writes no row for epoch 0 (the original, named by the workflow's id) until a
    takeover moved it: its absence there is (0, the original coordinator)."""
    followed = node_table(fed, name, "epochs").get(workflow_id)
    return tuple(followed) if followed is not None else (0, coordinator_of(workflow_id))


def held_slots(fed: Federation, name: str, workflow_id: str) -> list:
    """The holds agent `name` keeps for the workflow: [] once every slot it took for it
    is released."""
    return [hold for key, hold in node_table(fed, name, "holds").items()
            if key[0] == workflow_id]


def electorate(fed: Federation, name: str, workflow_id: str) -> list[str]:
    """The committed round's acceptors as agent `name` kept them ([] if it keeps none)."""
    row = node_table(fed, name, "rows").get(workflow_id)  # its coordinator's row
    if row is not None and row.acceptors:
        return list(row.acceptors)
    return list(node_table(fed, name, "electorates").get(workflow_id, ()))


def granted_epoch(fed: Federation, name: str, workflow_id: str) -> tuple:
    """(epoch, holder) agent `name` granted for the workflow, kept on its own even where
    it holds no row of the workflow (an extra acceptor); () when it granted none."""
    return tuple(node_table(fed, name, "granted").get(workflow_id, ()))


def knows_workflow(fed: Federation, name: str, workflow_id: str) -> bool:
    """Agent `name` keeps the workflow itself (a row as its coordinator, or a committed
    part of it), beyond an acceptor's record or a grant."""
    return workflow_id in node_table(fed, name, "rows") \
        or workflow_id in node_table(fed, name, "committed")


def started_attempts(fed: Federation, name: str, workflow_id: str) -> list[tuple[str, int]]:
    """(step, attempt) of every attempt agent `name` recorded as started for the workflow
    (written before its process starts: an attempt is never started twice), in order."""
    return sorted((step, attempt) for wf, step, attempt in node_table(fed, name, "runs")
                  if wf == workflow_id)


def prepared_here(fed: Federation, name: str, workflow_id: str) -> bool:
    """Agent `name` voted YES: its PREPARED reservation (hold) is on disk (written before
    the vote leaves), and it holds nothing else for the workflow."""
    return [h.state.value for h in held_slots(fed, name, workflow_id)] == ["prepared"]


def learned_outcomes(fed: Federation, name: str, workflow_id: str) -> list[tuple[int, str]]:
    """(round, "COMMIT" | "ABORT") of each decision of the workflow agent `name` learned."""
    return sorted((rnd, "COMMIT" if value.commit else "ABORT")
                  for (wf, rnd), value in node_table(fed, name, "learned").items()
                  if wf == workflow_id)


def end_notices_owed(fed: Federation, name: str, workflow_id: str) -> list[str]:
    """The domains agent `name`, as the successor that ended the workflow, still owes its
    end (kept on disk until each answers, and sent again after a restart), sorted. An
    original coordinator keeps none on disk: [] there."""
    epoch, coordinator = node_table(fed, name, "epochs").get(workflow_id, (0, ""))
    if workflow_id not in node_table(fed, name, "final") or epoch < 1 or coordinator != name:
        return []
    # As the Node's restart sends them again (core/node/takeover.py): every domain of the
    # workflow, those of steps placed again too, and the original coordinator, less
    # those that acknowledged the end.
    committed = node_table(fed, name, "committed")[workflow_id]
    info = node_table(fed, name, "info")[(workflow_id, committed)]
    moved = node_table(fed, name, "placements").get(workflow_id, {})
    domains = {*info.placement.values(), info.coordinator,
               *(d for _, domain, lost in moved.values() for d in (domain, lost) if d)}
    acked = node_table(fed, name, "final_acked").get(workflow_id, set())
    return sorted(domains - {name} - acked)


def epoch_voters(fed: Federation, name: str, workflow_id: str, epoch: int) -> set[str]:
    """The members whose grants agent `name` keeps as the proof of its `epoch`."""
    won, certificate = node_table(fed, name, "certificates").get(workflow_id, (0, ()))
    return {grant.granter for grant in certificate} if won == epoch else set()


def keeps_stated_round(fed: Federation, name: str, workflow_id: str) -> bool:
    """Agent `name` kept, with its YES, the round as its coordinator signed it (a
    claimant's proof of the round for an acceptor that holds no step)."""
    return any(wf == workflow_id and info.stated is not None
               for (wf, _), info in node_table(fed, name, "info").items())


def acceptor_records(fed: Federation, name: str, workflow_id: str) -> int:
    """How many acceptor records of the workflow agent `name` keeps."""
    return sum(1 for wf, _ in node_table(fed, name, "acceptor") if wf == workflow_id)


def forget_the_round(fed: Federation, name: str, workflow_id: str) -> None:
    """Erase, in the files of agent `name` (stopped), its acceptor records and learned
    decisions of the workflow: what a lost Accept leaves at an acceptor holding no step."""
    conn = sqlite3.connect(_data(fed, name) / "node.db", timeout=5)
    try:
        with conn:
            for table in ("acceptor", "learned"):
                keys = [k for (k,) in conn.execute(f"SELECT k FROM node_{table}")
                        if _CODEC.decode(k)[0] == workflow_id]
                conn.executemany(f"DELETE FROM node_{table} WHERE k = ?",
                                 [(k,) for k in keys])
    finally:
        conn.close()


def attempt_closed(fed: Federation, name: str, workflow_id: str, step: str,
                   attempt: int) -> bool:
    """Agent `name` recorded the end of its `attempt` of `step` (ended failed: an
    interrupted attempt is closed so when its agent restarts, never run on), or, in the
    node engine, no longer runs it: its start is on record and its workflow has ended
    there (the Node stops a workflow's steps at its end and starts none after)."""
    return (workflow_id, step, attempt) in node_table(fed, name, "runs") \
        and workflow_id in node_table(fed, name, "final")


def committed_round(fed: Federation, name: str, workflow_id: str) -> tuple:
    """(round, coordinator) of the round agent `name` committed the workflow in, as it
    kept it; () when it keeps none. The node engine keeps the round (`committed`) and
    follows the coordinator it took a successor's round from (`epochs`, as it commits:
    agent/core/node/placed_here.py), so the coordinator is the one it follows."""
    round_ = node_table(fed, name, "committed").get(workflow_id)
    if round_ is None:
        return ()
    return (round_, followed_epoch(fed, name, workflow_id)[1])
