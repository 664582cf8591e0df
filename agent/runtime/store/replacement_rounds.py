"""The re-placement rounds a coordinator began (agent/runtime/replacement.py), on disk.

One row per re-placement core: the range of round numbers it may use (first..last:
`negotiation.max_rounds` of them), the step it places, and whether it is still open.
Written before the core's first PREPARE leaves and closed once the core finished (its
decisions are on record then). A row still open after a restart is a core the restart
cut short: its rounds with no decision are aborted, and no later round reuses their
numbers (a YES held for one of them is keyed by its number). Retention deletes the
rows with their workflow (compaction.WORKFLOW_TABLES).
"""

from __future__ import annotations

from fedorch.runtime.store.store import Statement, Store


def begun_statement(workflow_id: str, first: int, last: int, step_id: str) -> Statement:
    return ("INSERT OR REPLACE INTO replacement_rounds(workflow_id, first_round, last_round,"
            " step_id, open) VALUES (?, ?, ?, ?, 1)", (workflow_id, first, last, step_id))


def ended_statement(workflow_id: str, first: int) -> Statement:
    return ("UPDATE replacement_rounds SET open = 0 WHERE workflow_id = ? AND first_round = ?",
            (workflow_id, first))


async def last_recorded(store: Store, workflow_id: str) -> int:
    """The highest round number a recorded re-placement core of the workflow may have
    used (0: none recorded)."""
    rows = await store.select(
        "SELECT max(last_round) FROM replacement_rounds WHERE workflow_id = ?", (workflow_id,))
    return int(rows[0][0] or 0)


async def cut_short(store: Store, workflow_id: str) -> list[tuple[int, int, str]]:
    """(first, last, step) of the recorded cores of the workflow still open."""
    rows = await store.select(
        "SELECT first_round, last_round, step_id FROM replacement_rounds"
        " WHERE workflow_id = ? AND open = 1 ORDER BY first_round", (workflow_id,))
    return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]
