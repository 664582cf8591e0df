"""The tables of the commit decision: decisions (the coordinator's write-once record),
Paxos Commit's proposal cells, learned decisions, ballots and acceptor records.

Each write is a statement (for a caller's own transaction, Store.apply or
save_workflow's `also`) or a call that writes it alone; reads go through the
Database. The write-once cells (decisions, proposals, learned) are compare-and-sets:
the first value wins, and a caller acts on what the cell holds after its write, not on
what it asked. The Store's methods of the same names call these.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fedorch.runtime.store.database import Database, Statement
from fedorch.runtime.store.rows import AcceptorRow


def once_statement(table: str, column: str, workflow_id: str, round_: int, outcome: str,
                   value: bytes) -> Statement:
    """Fill a write-once cell if it is empty (one row changed), else leave it (none)."""
    return (f"INSERT OR IGNORE INTO {table}(workflow_id, round, outcome, {column})"
            " VALUES(?, ?, ?, ?)", (workflow_id, round_, outcome, value))


async def write_once(db: Database, table: str, workflow_id: str, round_: int, outcome: str,
                     value: bytes, also: Sequence[Statement] = (),
                     column: str = "value") -> tuple[str, bytes]:
    changed = await db.write(
        [once_statement(table, column, workflow_id, round_, outcome, value), *also])
    if changed[0]:  # the cell was empty: it holds what we wrote (no read-back needed)
        return outcome, value
    held = await get_once(db, table, workflow_id, round_, column)
    assert held is not None
    return held


async def get_once(db: Database, table: str, workflow_id: str, round_: int,
                   column: str = "value") -> tuple[str, bytes] | None:
    row = await db.one(
        f"SELECT outcome, {column} FROM {table} WHERE workflow_id=? AND round=?",
        (workflow_id, round_))
    return (row[0], bytes(row[1])) if row else None


# ---- decisions (write-once) -----------------------------------------------------------

def decision_statement(workflow_id: str, round_: int, outcome: str,
                       envelope: bytes) -> Statement:
    """The compare-and-set of record_decision, for a caller's own transaction: it
    changes one row if it won the cell, none if the cell already held a decision."""
    return once_statement("decisions", "envelope", workflow_id, round_, outcome, envelope)


def collect_commit_statement(workflow_id: str, round_: int) -> Statement:
    """Drop a COMMIT decision's envelope (its certificate and spec) once every
    participant acknowledged it. The row stays, with empty bytes, so the write-once
    cell still holds COMMIT: no ABORT can ever be recorded for that round."""
    return ("UPDATE decisions SET envelope = x'' WHERE workflow_id=? AND round=?"
            " AND outcome='COMMIT'", (workflow_id, round_))


# The WHERE of the partial index decisions_kept, word for word, so SQLite uses it.
_KEPT = "d.outcome = 'COMMIT' AND d.envelope != x''"


async def kept_certificates(db: Database, ended: Collection[str],
                            limit: int) -> list[tuple[str, int]]:
    """COMMIT records whose certificate is still kept although their workflow is in
    one of the states `ended`: (workflow_id, round), oldest workflow first, at most
    `limit`."""
    states = tuple(sorted(ended))
    rows = await db.all(
        f"SELECT d.workflow_id, d.round FROM decisions d JOIN workflows w"
        f" ON w.id = d.workflow_id WHERE {_KEPT}"
        f" AND w.state IN ({', '.join('?' * len(states))})"
        f" ORDER BY w.created_ms LIMIT ?", (*states, limit))
    return [(r[0], r[1]) for r in rows]


async def count_kept_certificates(db: Database) -> int:
    """Every COMMIT certificate kept, live workflows' included."""
    row = await db.one(f"SELECT count(*) FROM decisions d WHERE {_KEPT}")
    return int(row[0]) if row else 0


async def get_decision(db: Database, workflow_id: str, round_: int) -> tuple[str, bytes] | None:
    """The decision on record: (outcome, envelope); a collected COMMIT has no bytes."""
    row = await db.one(
        "SELECT outcome, envelope FROM decisions WHERE workflow_id=? AND round=?",
        (workflow_id, round_),
    )
    return (row[0], bytes(row[1])) if row else None


async def get_commit(db: Database, workflow_id: str) -> tuple[int, bytes] | None:
    row = await db.one(
        "SELECT round, envelope FROM decisions WHERE workflow_id=? AND outcome='COMMIT'",
        (workflow_id,),
    )
    return (row[0], bytes(row[1])) if row else None


# ---- acceptor records -------------------------------------------------------------------

def acceptor_statement(r: AcceptorRow, *, if_proposed_commit: bool = False) -> Statement:
    """Replace an acceptor record; with `if_proposed_commit`, only where this agent's
    proposal cell of the transaction holds COMMIT (see proposal_statement)."""
    promised = r.promised or (None, None)
    accepted = r.accepted or (None, None)
    args = (r.workflow_id, r.round, r.tx, promised[0], promised[1], accepted[0],
            accepted[1], r.accepted_value, r.decided, r.round_tx)
    sql = ("INSERT OR REPLACE INTO acceptor_records(workflow_id, round, tx, promised_n,"
           " promised_by, accepted_n, accepted_by, accepted_value, decided, round_tx)")
    if not if_proposed_commit:
        return f"{sql} VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", args
    return (f"{sql} SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS(SELECT 1 FROM proposals"
            " WHERE workflow_id=? AND round=? AND outcome='COMMIT')",
            (*args, r.workflow_id, r.round))


def _acceptor_from(r: tuple) -> AcceptorRow:
    return AcceptorRow(r[0], r[1], bytes(r[2]),
                       (r[3], r[4]) if r[3] is not None else None,
                       (r[5], r[6]) if r[5] is not None else None,
                       bytes(r[7]) if r[7] is not None else None,
                       bytes(r[8]) if r[8] is not None else None, bytes(r[9]))


async def has_acceptor_records(db: Database) -> bool:
    return await db.one("SELECT 1 FROM acceptor_records LIMIT 1") is not None


async def get_acceptor_record(db: Database, workflow_id: str,
                              round_: int) -> AcceptorRow | None:
    """The acceptor's record, its decision taken from the learned log when the record
    has none (an acceptor does not write the decisions it learns twice)."""
    row = await db.one(
        "SELECT a.workflow_id, a.round, a.tx, a.promised_n, a.promised_by, a.accepted_n,"
        " a.accepted_by, a.accepted_value, COALESCE(a.decided, l.value), a.round_tx"
        " FROM acceptor_records a LEFT JOIN learned l"
        " ON l.workflow_id = a.workflow_id AND l.round = a.round"
        " WHERE a.workflow_id=? AND a.round=?", (workflow_id, round_))
    return _acceptor_from(row) if row else None


# ---- proposals, learned decisions, ballots ----------------------------------------------

def proposal_statement(workflow_id: str, round_: int, outcome: str,
                       value: bytes) -> Statement:
    """`propose` as a statement for `apply`: changes one row if the cell was empty."""
    return once_statement("proposals", "value", workflow_id, round_, outcome, value)


def spent_proposal_statements(workflow_id: str, round_: int) -> list[Statement]:
    """Collect a proposal cell (and the ballot) once COMMIT is the round's decision on
    record (in the decision's own transaction: the statements check it)."""
    committed = ("EXISTS(SELECT 1 FROM decisions WHERE workflow_id=? AND round=?"
                 " AND outcome='COMMIT')")
    key = (workflow_id, round_)
    return [
        (f"DELETE FROM proposals WHERE workflow_id=? AND round=? AND {committed}", key * 2),
        (f"DELETE FROM ballots WHERE workflow_id=? AND round=? AND {committed}", key * 2),
    ]


def learn_statement(workflow_id: str, round_: int, outcome: str, value: bytes) -> Statement:
    """learn's compare-and-set, for a caller's own transaction (one row if it won)."""
    return once_statement("learned", "value", workflow_id, round_, outcome, value)


async def list_learned(db: Database) -> list[tuple[str, int, str, bytes]]:
    rows = await db.all("SELECT workflow_id, round, outcome, value FROM learned")
    return [(r[0], r[1], r[2], bytes(r[3])) for r in rows]


def ballot_statement(workflow_id: str, round_: int, n: int, proposer: str) -> Statement:
    """The highest ballot used as proposer; it only grows, whatever order concurrent
    writes land in."""
    return ("INSERT INTO ballots(workflow_id, round, n, proposer) VALUES(?, ?, ?, ?)"
            " ON CONFLICT(workflow_id, round) DO UPDATE SET n = excluded.n,"
            " proposer = excluded.proposer WHERE excluded.n > ballots.n",
            (workflow_id, round_, n, proposer))


async def get_ballot(db: Database, workflow_id: str, round_: int) -> tuple[int, str] | None:
    row = await db.one("SELECT n, proposer FROM ballots WHERE workflow_id=? AND round=?",
                       (workflow_id, round_))
    return (row[0], row[1]) if row else None
