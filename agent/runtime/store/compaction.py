"""The SQL of retention: the facts of candidate ended workflows, and their deletion.

What may go is decided by fedorch.core.workflow.retention from the facts read here;
this module only reads and deletes. Reservations are never deleted here: a workflow
with one is never compacted (this agent is then in doubt or holds its slots). The audit log is never touched: it is
append-only and hash-chained (docs/audit.md), so it is not compacted.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fedorch.core.workflow.retention import EndedWorkflow, Leftover, created_ms_of
from fedorch.runtime.store.store import Statement, Store

# Every table keyed by workflow_id whose rows go with their workflow. The audit
# table is deliberately absent.
WORKFLOW_TABLES = ("steps", "decisions", "step_runs", "acceptor_records",
                   "proposals", "ballots", "learned", "hold_txs", "compensations",
                   "compensation_runs", "takeover_grants", "prepare_submissions",
                   "epoch_grants", "replacement_rounds", "end_notices")

# One row per candidate: the facts EndedWorkflow holds, read in one query. An acceptor
# knows its round's outcome when its record holds it, it learned it, or it is the
# coordinator that recorded it (a coordinator records only the chosen decision).
_FACTS = """
SELECT w.id, w.updated_ms,
  EXISTS(SELECT 1 FROM reservations r WHERE r.workflow_id = w.id),
  EXISTS(SELECT 1 FROM step_runs s WHERE s.workflow_id = w.id AND s.state = 'running')
   OR EXISTS(SELECT 1 FROM compensation_runs c WHERE c.workflow_id = w.id
             AND c.state = 'running'),
  EXISTS(SELECT 1 FROM compensations c WHERE c.workflow_id = w.id
         AND c.state IN ('PENDING', 'RUNNING')),
  EXISTS(SELECT 1 FROM decisions d WHERE d.workflow_id = w.id
         AND d.outcome = 'COMMIT' AND d.envelope != x''),
  EXISTS(SELECT 1 FROM acceptor_records a WHERE a.workflow_id = w.id),
  EXISTS(SELECT 1 FROM acceptor_records a WHERE a.workflow_id = w.id AND a.decided IS NULL
         AND NOT EXISTS(SELECT 1 FROM learned l WHERE l.workflow_id = a.workflow_id
                        AND l.round = a.round)
         AND NOT EXISTS(SELECT 1 FROM decisions d WHERE d.workflow_id = a.workflow_id
                        AND d.round = a.round))
FROM workflows w WHERE w.id IN ({ids})
"""


HORIZON_KEY = "retention.horizon_ms"  # in meta: see horizon_ms


async def horizon_ms(store: Store) -> int:
    """The newest creation time (from the id) of a workflow this domain named that
    retention removed; -1 when none was."""
    value = await store.get_meta(HORIZON_KEY)
    return int(value) if value is not None else -1


def horizon_statement(workflow_ids: Sequence[str], domain: str) -> Statement | None:
    """Raise the horizon to the newest of these ids this domain named (never lower it)."""
    stamps = [created_ms_of(i) for i in workflow_ids if i.rpartition(".")[0] == domain]
    newest = max((t for t in stamps if t is not None), default=None)
    if newest is None:
        return None
    return ("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET"
            " value = CAST(max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))"
            " AS TEXT)", (HORIZON_KEY, str(newest)))


async def count_ended(store: Store, ended: Collection[str]) -> int:
    """How many workflows are in one of the states `ended` here."""
    states = tuple(sorted(ended))
    rows = await store.select(
        f"SELECT count(*) FROM workflows WHERE state IN ({', '.join('?' * len(states))})",
        states)
    return int(rows[0][0])


Cursor = tuple[int, str]  # (updated_ms, id) of the last candidate a page looked at


async def ended_candidates(store: Store, ended: Collection[str], *, cutoff_ms: int,
                           keep_newest: int, limit: int,
                           after: Cursor | None = None) -> tuple[list[EndedWorkflow], Cursor | None]:
    """The facts of at most `limit` ended workflows that may be due, oldest first: those
    that ended before `cutoff_ms`, and those beyond the newest `keep_newest`; only past
    `after` when given. Those holding a reservation or a kept certificate are passed over
    here already. Returns them and the cursor of the next page (None: there is none), so
    that a pass pages past candidates kept for another reason (e.g. an acceptor's, within
    keep_ended_s) to newer ones that are due."""
    states = tuple(sorted(ended))
    in_states = f"state IN ({', '.join('?' * len(states))})"
    unkept = ("NOT EXISTS(SELECT 1 FROM reservations r WHERE r.workflow_id = w.id)"
              " AND NOT EXISTS(SELECT 1 FROM decisions d WHERE d.workflow_id = w.id"
              " AND d.outcome = 'COMMIT' AND d.envelope != x'')")
    past, past_args = ("", ()) if after is None else \
        (" AND (updated_ms > ? OR (updated_ms = ? AND id > ?))", (after[0], after[0], after[1]))
    # Due: ended before the cutoff, or no newer than the newest ended workflow beyond the
    # newest keep_newest (it and every older one are beyond). Both bounds cut one order,
    # (updated_ms, id), so the due ones are one prefix of it.
    first_beyond = await store.select(
        f"SELECT updated_ms, id FROM workflows WHERE {in_states}"
        " ORDER BY updated_ms DESC, id DESC LIMIT 1 OFFSET ?", (*states, keep_newest))
    bound_ms, bound_id = cutoff_ms, ""  # strictly before the cutoff
    if first_beyond and (first_beyond[0][0], first_beyond[0][1]) >= (cutoff_ms, ""):
        bound_ms, bound_id = first_beyond[0][0], first_beyond[0][1]
    page = await store.select(
        f"SELECT id, updated_ms FROM workflows w WHERE {in_states} AND {unkept}{past}"
        " AND (updated_ms < ? OR (updated_ms = ? AND id <= ?))"
        " ORDER BY updated_ms, id LIMIT ?",
        (*states, *past_args, bound_ms, bound_ms, bound_id, limit))
    if not page:
        return [], None
    cursor = (page[-1][1], page[-1][0]) if len(page) == limit else None
    ids = [r[0] for r in page]
    rows = await store.select(_FACTS.format(ids=", ".join("?" * len(ids))), tuple(ids))
    # Beyond the newest keep_newest: ended no later than the first beyond them.
    beyond = set()
    if first_beyond:
        ms, last_id = first_beyond[0]
        beyond = {r[0] for r in page if (r[1], r[0]) <= (ms, last_id)}
    facts = {r[0]: r for r in rows}
    return [EndedWorkflow(
        workflow_id=r[0], ended_at=r[1] / 1000.0,
        # Beyond the newest keep_newest, or (not known to be) within them.
        rank=keep_newest if r[0] in beyond else 0,
        holds_reservation=bool(r[2]), unfinished_runs=bool(r[3]),
        open_compensations=bool(r[4]), kept_certificate=bool(r[5]),
        acceptor_record=bool(r[6]), acceptor_undecided=bool(r[7]))
        for r in (facts[i] for i in ids if i in facts)], cursor


def delete_statements(workflow_id: str, ended: Collection[str]) -> list[Statement]:
    """Delete one ended workflow and every record of it, the audit log's excepted. The
    workflow's own row is deleted only while it is still ended, and each table's rows
    only while that row is gone (a statement of the same transaction), so a workflow
    that somehow started again between the read and the write is left whole."""
    states = tuple(sorted(ended))
    gone = "NOT EXISTS(SELECT 1 FROM workflows WHERE id = ?)"
    # Checked again inside the transaction: what the facts said may have changed since.
    unasked = ("NOT EXISTS(SELECT 1 FROM reservations WHERE workflow_id = ?1)"
               " AND NOT EXISTS(SELECT 1 FROM step_runs WHERE workflow_id = ?1"
               " AND state = 'running')"
               " AND NOT EXISTS(SELECT 1 FROM decisions WHERE workflow_id = ?1"
               " AND outcome = 'COMMIT' AND envelope != x'')")
    return [
        (f"DELETE FROM workflows WHERE id = ?1 AND {unasked}"
         f" AND state IN ({', '.join('?' * len(states))})", (workflow_id, *states)),
        *((f"DELETE FROM {table} WHERE workflow_id = ? AND {gone}", (workflow_id, workflow_id))
          for table in WORKFLOW_TABLES),
    ]


async def compact(store: Store, workflow_ids: Sequence[str], ended: Collection[str],
                  domain: str = "") -> dict[str, int]:
    """Delete these workflows in one transaction, and raise the horizon of the ids
    `domain` named (see horizon_ms) in it; returns rows removed per table."""
    statements: list[Statement] = []
    for workflow_id in workflow_ids:
        statements.extend(delete_statements(workflow_id, ended))
    if not statements:
        return {}
    horizon = horizon_statement(workflow_ids, domain)
    store.forget_written(workflow_ids)
    changed = await store.apply(statements + ([horizon] if horizon else []))
    changed = changed[:len(statements)]
    tables = ("workflows", *WORKFLOW_TABLES)
    removed = dict.fromkeys(tables, 0)
    for index, count in enumerate(changed):
        removed[tables[index % len(tables)]] += count
    return {table: n for table, n in removed.items() if n}


# Tables an agent may hold rows of without a workflow row (see Leftover).
# A takeover grant goes in the same transaction as the acceptor records: without them
# the acceptor grants nothing more (agent/runtime/takeover.py), so none is granted twice.
LEFTOVER_TABLES = ("acceptor_records", "learned", "hold_txs", "takeover_grants",
                   "prepare_submissions", "epoch_grants", "replacement_rounds",
                   "end_notices")
_NO_ROW = ("NOT EXISTS(SELECT 1 FROM workflows w WHERE w.id = o.workflow_id)"
           " AND NOT EXISTS(SELECT 1 FROM reservations r WHERE r.workflow_id = o.workflow_id)")


async def leftovers(store: Store, limit: int, after: str = "") -> tuple[list[Leftover], str]:
    """At most `limit` workflows with leftover records (no workflow row, no reservation),
    in id order past `after`, with whether an acceptor record of theirs has no outcome
    learned here; and the id to go on from next time ("" once the last page is read)."""
    union = " UNION ".join(f"SELECT workflow_id FROM {t}" for t in LEFTOVER_TABLES)
    rows = await store.select(
        f"SELECT o.workflow_id, EXISTS(SELECT 1 FROM acceptor_records a"
        f" WHERE a.workflow_id = o.workflow_id AND a.decided IS NULL"
        f" AND NOT EXISTS(SELECT 1 FROM learned l WHERE l.workflow_id = a.workflow_id"
        f" AND l.round = a.round))"
        f" FROM ({union}) o WHERE o.workflow_id > ? AND {_NO_ROW}"
        f" ORDER BY o.workflow_id LIMIT ?", (after, limit))
    return ([Leftover(r[0], acceptor_undecided=bool(r[1])) for r in rows],
            rows[-1][0] if len(rows) == limit else "")


async def compact_leftovers(store: Store, workflow_ids: Sequence[str]) -> dict[str, int]:
    """Delete the leftover records of these workflows in one transaction, each only
    while the workflow still has no row and no reservation here."""
    statements: list[Statement] = [
        (f"DELETE FROM {table} AS o WHERE o.workflow_id = ? AND {_NO_ROW}", (workflow_id,))
        for workflow_id in workflow_ids for table in LEFTOVER_TABLES]
    if not statements:
        return {}
    changed = await store.apply(statements)
    removed = dict.fromkeys(LEFTOVER_TABLES, 0)
    for index, count in enumerate(changed):
        removed[LEFTOVER_TABLES[index % len(LEFTOVER_TABLES)]] += count
    return {table: n for table, n in removed.items() if n}
