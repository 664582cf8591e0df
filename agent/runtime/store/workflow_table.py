"""How workflow and step rows are encoded in the `workflows` and `steps` tables: their
columns, the values compared with what was written last (written.py), the statements
that write them and the reads that decode them.

Store.save_workflow decides what to write (only what changed since the last write
known to be on disk); this module only says how.
"""

from __future__ import annotations

import json

from fedorch.runtime.store.database import Statement
from fedorch.runtime.store.rows import StepRow, WorkflowRow

WF_COLS = (
    "id, name, coordinator, state, spec, reason, placement, endpoints, round, refusals, "
    "request_id, created_ms, updated_ms, acceptors, submission, epoch, granted_epoch, "
    "granted_to"
)
WF_COL_NAMES = tuple(WF_COLS.split(", "))
WF_UPSERT = (f"INSERT INTO workflows({WF_COLS}) VALUES({', '.join('?' * 18)})"
             # An upsert on the id, not INSERT OR REPLACE: REPLACE would delete another
             # workflow that holds the same request_id instead of failing on the index.
             " ON CONFLICT(id) DO UPDATE SET "
             + ", ".join(f"{c} = excluded.{c}" for c in WF_COL_NAMES[1:]))

STEP_COLS = "workflow_id, step_id, domain, state, attempts, outputs, error, replaced_from"
STEPS_OF = ("SELECT workflow_id, step_id, domain, state, attempts, outputs, error,"
            " replaced_from FROM steps WHERE workflow_id=?")


def wf_args(w: WorkflowRow) -> tuple:
    return (
        w.id, w.name, w.coordinator, w.state, w.spec, w.reason, json.dumps(w.placement),
        json.dumps(w.endpoints), w.round, json.dumps(w.refusals), w.request_id,
        w.created_ms, w.updated_ms, json.dumps(w.acceptors), w.submission, w.epoch,
        w.granted_epoch, w.granted_to,
    )


def wf_from(row: tuple) -> WorkflowRow:
    return WorkflowRow(
        id=row[0], name=row[1], coordinator=row[2], state=row[3], spec=bytes(row[4]),
        reason=row[5], placement=json.loads(row[6]), endpoints=json.loads(row[7]),
        round=row[8], refusals=json.loads(row[9]), request_id=row[10],
        created_ms=row[11], updated_ms=row[12], acceptors=json.loads(row[13]),
        submission=bytes(row[14]), epoch=row[15], granted_epoch=row[16],
        granted_to=row[17],
    )


def row_write(row: tuple, known: tuple | None) -> Statement:
    """The workflow row in full, or (`known`: what is on disk) only what changed."""
    if known is None:
        return WF_UPSERT, row
    changed = [i for i in range(1, len(row)) if row[i] != known[i]]
    sets = ", ".join(f"{WF_COL_NAMES[i]} = ?" for i in changed)
    return (f"UPDATE workflows SET {sets} WHERE id = ?",
            (*(row[i] for i in changed), row[0]))


def step_args(s: StepRow) -> tuple:
    return (s.workflow_id, s.step_id, s.domain, s.state, s.attempts, json.dumps(s.outputs),
            s.error, json.dumps(s.replaced_from))


def step_values(s: StepRow) -> tuple:
    """A step row's values as compared with what was written last: no JSON, so that
    a save naming every step of a wide workflow encodes only the steps that changed
    (a 40-step fan-out's coordinator saves all its steps at every result: 1,720 step
    rows, 3,440 JSON encodings per workflow before). The outputs are copied: what is
    kept must not change with the progress it came from."""
    return (s.workflow_id, s.step_id, s.domain, s.state, s.attempts, dict(s.outputs),
            s.error, tuple(s.replaced_from))


def step_args_of(v: tuple) -> tuple:
    return (*v[:5], json.dumps(v[5]), v[6], json.dumps(list(v[7])))


def step_write(args: tuple) -> Statement:
    return (f"INSERT OR REPLACE INTO steps({STEP_COLS}) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
            args)


def steps_write(rows: list[tuple]) -> Statement:
    """Step rows in one statement (a workflow's first save has all its steps). A spec
    has at most MAX_STEPS (1,000) steps: 8,000 parameters, within SQLite's 32,766."""
    if len(rows) == 1:
        return step_write(rows[0])
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
    return (f"INSERT OR REPLACE INTO steps({STEP_COLS}) VALUES {values}",
            tuple(v for r in rows for v in r))


def step_result_statement(s: StepRow) -> Statement:
    """Keep a step result unless what is kept is newer: a later attempt, or the same
    attempt already ended (see Store.save_step_result)."""
    return (
        "INSERT INTO steps(workflow_id, step_id, domain, state, attempts, outputs, error)"
        " VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(workflow_id, step_id) DO UPDATE SET"
        " domain = excluded.domain, state = excluded.state, attempts = excluded.attempts,"
        " outputs = excluded.outputs, error = excluded.error"
        " WHERE excluded.attempts > steps.attempts OR (excluded.attempts = steps.attempts"
        " AND steps.state NOT IN ('SUCCEEDED', 'FAILED', 'SKIPPED', 'CANCELLED'))",
        (s.workflow_id, s.step_id, s.domain, s.state, s.attempts, json.dumps(s.outputs),
         s.error),
    )


def step_from(r: tuple) -> StepRow:
    return StepRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6],
                   json.loads(r[7]) if len(r) > 7 else [])
