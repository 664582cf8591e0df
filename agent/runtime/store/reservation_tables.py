"""The tables of a participant's holds and runs: reservations, the PREPARE behind a
Paxos Commit reservation (hold_txs), and step runs (the attempts' idempotency keys).

Statements for a caller's own transaction (save_workflow's `also`): a step's run and
its reservation change in the same transaction as the step's new state. The Store's
methods of the same names call these.
"""

from __future__ import annotations

import json

from fedorch.runtime.store.database import Database, Statement
from fedorch.runtime.store.rows import HoldTxRow, ReservationRow

# ---- reservations and the PREPAREs behind them -------------------------------------------


def reservation_statement(r: ReservationRow) -> Statement:
    return (
        "INSERT OR REPLACE INTO reservations(workflow_id, round, coordinator, state, steps,"
        " lease_expires_ms, coordinator_endpoint) VALUES(?, ?, ?, ?, ?, ?, ?)",
        (r.workflow_id, r.round, r.coordinator, r.state, json.dumps(r.steps),
         r.lease_expires_ms, r.coordinator_endpoint),
    )


def hold_tx_statement(tx: HoldTxRow) -> Statement:
    return (
        "INSERT OR REPLACE INTO hold_txs(workflow_id, round, tx, spec, placement,"
        " coordinator_endpoint, round_tx) VALUES(?, ?, ?, ?, ?, ?, ?)",
        (tx.workflow_id, tx.round, tx.tx, tx.spec, json.dumps(tx.placement),
         tx.coordinator_endpoint, tx.round_tx),
    )


def delete_reservation_statement(workflow_id: str, round_: int) -> Statement:
    return ("DELETE FROM reservations WHERE workflow_id=? AND round=?",
            (workflow_id, round_))


async def get_hold_tx(db: Database, workflow_id: str, round_: int) -> HoldTxRow | None:
    row = await db.one(
        "SELECT workflow_id, round, tx, spec, placement, coordinator_endpoint, round_tx"
        " FROM hold_txs WHERE workflow_id=? AND round=?", (workflow_id, round_))
    if row is None:
        return None
    return HoldTxRow(row[0], row[1], bytes(row[2]), bytes(row[3]), json.loads(row[4]),
                     row[5], bytes(row[6]))


async def list_reservations(db: Database) -> list[ReservationRow]:
    rows = await db.all(
        "SELECT workflow_id, round, coordinator, state, steps, lease_expires_ms,"
        " coordinator_endpoint FROM reservations"
    )
    return [
        ReservationRow(r[0], r[1], r[2], r[3], [tuple(x) for x in json.loads(r[4])], r[5], r[6])
        for r in rows
    ]


# ---- step runs (idempotency keys) ---------------------------------------------------------

def start_run_statement(workflow_id: str, step_id: str, attempt: int,
                        now_ms: int) -> Statement:
    """An attempt's start; fails the whole write (IntegrityError) if it was started
    before: the attempt idempotency key."""
    return ("INSERT INTO step_runs(workflow_id, step_id, attempt, state, started_ms)"
            " VALUES(?, ?, ?, 'running', ?)", (workflow_id, step_id, attempt, now_ms))


def end_run_statement(workflow_id: str, step_id: str, attempt: int, state: str,
                      now_ms: int) -> Statement:
    return ("UPDATE step_runs SET state=?, ended_ms=? WHERE workflow_id=? AND step_id=?"
            " AND attempt=?", (state, now_ms, workflow_id, step_id, attempt))


def run_pgid_statement(workflow_id: str, step_id: str, attempt: int, pgid: int) -> Statement:
    return ("UPDATE step_runs SET pgid=? WHERE workflow_id=? AND step_id=?"
            " AND attempt=?", (pgid, workflow_id, step_id, attempt))


async def unfinished_runs(db: Database) -> list[tuple[str, str, int, int | None]]:
    """Attempts recorded as started without an end: (workflow, step, attempt, pgid)."""
    rows = await db.all("SELECT workflow_id, step_id, attempt, pgid FROM step_runs"
                        " WHERE state = 'running'")
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def runs_of(db: Database, workflow_id: str) -> list[tuple[str, int, str]]:
    return [
        (r[0], r[1], r[2])
        for r in await db.all(
            "SELECT step_id, attempt, state FROM step_runs WHERE workflow_id=?"
            " ORDER BY step_id, attempt",
            (workflow_id,),
        )
    ]
