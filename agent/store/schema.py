"""SQLite schema and its migrations.

The schema is versioned in `meta.schema_version`; `MIGRATIONS[i]` moves a
database from version i to i+1, so an agent opening an older data dir upgrades
it in place and one opening a newer data dir refuses to start.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 0 -> 1: the walking skeleton.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    -- Every workflow this agent knows: as its coordinator or as a participant.
    CREATE TABLE workflows (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        coordinator  TEXT NOT NULL,
        state        TEXT NOT NULL,
        reason       TEXT NOT NULL DEFAULT '',
        spec         BLOB NOT NULL,
        placement    TEXT NOT NULL DEFAULT '{}',
        endpoints    TEXT NOT NULL DEFAULT '{}',
        round        INTEGER NOT NULL DEFAULT 0,
        refusals     TEXT NOT NULL DEFAULT '[]',
        request_id   TEXT,
        created_ms   INTEGER NOT NULL,
        updated_ms   INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX workflows_request_id ON workflows(request_id)
        WHERE request_id IS NOT NULL;

    -- This agent's best knowledge of each step (authoritative at the coordinator).
    CREATE TABLE steps (
        workflow_id  TEXT NOT NULL,
        step_id      TEXT NOT NULL,
        domain       TEXT NOT NULL DEFAULT '',
        state        TEXT NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        outputs      TEXT NOT NULL DEFAULT '{}',
        error        TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (workflow_id, step_id)
    );

    -- Coordinator decisions: a write-once cell per (workflow, round).
    CREATE TABLE decisions (
        workflow_id  TEXT NOT NULL,
        round        INTEGER NOT NULL,
        outcome      TEXT NOT NULL,
        envelope     BLOB NOT NULL,
        PRIMARY KEY (workflow_id, round)
    );

    -- Participant reservations: written before a YES vote leaves this agent.
    CREATE TABLE reservations (
        workflow_id       TEXT NOT NULL,
        round             INTEGER NOT NULL,
        coordinator       TEXT NOT NULL,
        state             TEXT NOT NULL,          -- prepared | committed
        steps             TEXT NOT NULL,          -- [[step_id, capability], ...] still holding a slot
        lease_expires_ms  INTEGER NOT NULL,
        coordinator_endpoint TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (workflow_id, round)
    );

    -- One row per step attempt started here: the idempotency key of a run.
    CREATE TABLE step_runs (
        workflow_id  TEXT NOT NULL,
        step_id      TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        state        TEXT NOT NULL,               -- running | succeeded | failed
        started_ms   INTEGER NOT NULL,
        ended_ms     INTEGER,
        PRIMARY KEY (workflow_id, step_id, attempt)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
