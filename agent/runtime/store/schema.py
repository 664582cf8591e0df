"""SQLite schema and its migrations.

The schema is versioned in `meta.schema_version`; `MIGRATIONS[i]` moves a
database from version i to i+1, so an agent opening an older data dir upgrades
it in place and one opening a newer data dir refuses to start.
"""

from __future__ import annotations

from fedorch.runtime.store import audit_table

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
    # 1 -> 2: Paxos Commit (negotiation.commit: paxos). Values (PaxosValue) and
    # transactions (PaxosTx) are stored as the serialized protobuf messages.
    """
    -- The round's acceptors, written with its round and placement (before any PREPARE,
    -- or with a submission's first PREPAREs under Paxos Commit: prepares_ahead.py).
    ALTER TABLE workflows ADD COLUMN acceptors TEXT NOT NULL DEFAULT '[]';

    -- This agent as an acceptor: one record per transaction, replaced on every change,
    -- durable before any reply leaves.
    CREATE TABLE acceptor_records (
        workflow_id     TEXT NOT NULL,
        round           INTEGER NOT NULL,
        tx              BLOB NOT NULL,
        promised_n      INTEGER,
        promised_by     TEXT,
        accepted_n      INTEGER,
        accepted_by     TEXT,
        accepted_value  BLOB,
        decided         BLOB,
        PRIMARY KEY (workflow_id, round)
    );

    -- The coordinator's proposal cell per round: write-once (compare-and-set).
    CREATE TABLE proposals (
        workflow_id  TEXT NOT NULL,
        round        INTEGER NOT NULL,
        outcome      TEXT NOT NULL,
        value        BLOB NOT NULL,
        PRIMARY KEY (workflow_id, round)
    );

    -- The highest ballot this agent used as a proposer per transaction (only grows).
    CREATE TABLE ballots (
        workflow_id  TEXT NOT NULL,
        round        INTEGER NOT NULL,
        n            INTEGER NOT NULL,
        proposer     TEXT NOT NULL,
        PRIMARY KEY (workflow_id, round)
    );

    -- Decisions this agent learned to be chosen (write-once).
    CREATE TABLE learned (
        workflow_id  TEXT NOT NULL,
        round        INTEGER NOT NULL,
        outcome      TEXT NOT NULL,
        value        BLOB NOT NULL,
        PRIMARY KEY (workflow_id, round)
    );

    -- The PREPARE behind a participant's reservation: who decides (PaxosTx) and what
    -- to run once committed. Written with the reservation's first record.
    CREATE TABLE hold_txs (
        workflow_id           TEXT NOT NULL,
        round                 INTEGER NOT NULL,
        tx                    BLOB NOT NULL,
        spec                  BLOB NOT NULL,
        placement             TEXT NOT NULL,
        coordinator_endpoint  TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (workflow_id, round)
    );
    """,
    # 2 -> 3: the COMMIT certificates still kept, found without reading every decision
    # (the sweep that offers them again to silent participants looks for these).
    """
    CREATE INDEX decisions_kept ON decisions(workflow_id, round)
        WHERE outcome = 'COMMIT' AND envelope != x'';
    """,
    # 3 -> 4: the process group of a running attempt, so a restarted agent can stop
    # what is left of it (NULL: not known yet, or run in process).
    """
    ALTER TABLE step_runs ADD COLUMN pgid INTEGER;
    CREATE INDEX step_runs_unfinished ON step_runs(workflow_id) WHERE state = 'running';
    """,
    # 4 -> 5: the audit log (agent/runtime/store/audit_table.py).
    audit_table.MIGRATION,
    # 5 -> 6: sagas (docs/sagas.md).
    """
    -- Coordinator: the compensations a FAILED or CANCELLED workflow owes, written in the
    -- write that ends it, each change before it is acted on; a restart resumes them.
    CREATE TABLE compensations (
        workflow_id   TEXT NOT NULL,
        step_id       TEXT NOT NULL,
        domain        TEXT NOT NULL,              -- where the step ran: it compensates there
        state         TEXT NOT NULL,              -- PENDING | RUNNING | COMPENSATED | COMPENSATION_FAILED
        attempts      INTEGER NOT NULL DEFAULT 0,
        max_attempts  INTEGER NOT NULL,
        error         TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (workflow_id, step_id)
    );
    CREATE INDEX compensations_open ON compensations(workflow_id)
        WHERE state IN ('PENDING', 'RUNNING');

    -- Participant: one row per compensation attempt run here, written before it runs:
    -- the attempt's idempotency key (as step_runs for steps).
    CREATE TABLE compensation_runs (
        workflow_id  TEXT NOT NULL,
        step_id      TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        state        TEXT NOT NULL,               -- running | succeeded | failed
        error        TEXT NOT NULL DEFAULT '',
        started_ms   INTEGER NOT NULL,
        ended_ms     INTEGER,
        PRIMARY KEY (workflow_id, step_id, attempt)
    );
    """,
    # 6 -> 7: the submitter's signed spec (agent/core/identity/submission.py).
    """
    -- Coordinator: the SignedSpec of the submission without its spec bytes (those are
    -- `spec`, kept exactly as the submitter signed them): each PREPARE carries it.
    ALTER TABLE workflows ADD COLUMN submission BLOB NOT NULL DEFAULT x'';
    """,
    # 7 -> 8: coordinator takeover (agent/core/workflow/takeover.py).
    """
    -- The epoch of the coordinator this domain follows or is (0: the one the id names),
    -- and the epoch it granted to a claimant and to whom: granted once per epoch.
    ALTER TABLE workflows ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE workflows ADD COLUMN granted_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE workflows ADD COLUMN granted_to TEXT NOT NULL DEFAULT '';
    """,
    # 8 -> 9: key rotation and revocation records that changed a trusted domain's keys
    # (agent/runtime/key_changes.py): a revoked key stays revoked across restarts.
    """
    CREATE TABLE key_records (
        statement   BLOB PRIMARY KEY,             -- the signed KeyStatement's bytes
        domain      TEXT NOT NULL,
        record      BLOB NOT NULL,                -- the KeyRecord as received
        learned_ms  INTEGER NOT NULL
    );
    """,
    # 9 -> 10: retention (agent/runtime/store/compaction.py) finds the oldest ended
    # workflows, and the newest beyond its count, without sorting every row each pass.
    """
    CREATE INDEX workflows_by_age ON workflows(updated_ms, id);
    """,
    # 10 -> 11: a step placed again after its domain was lost (agent/runtime/replacement.py)
    # keeps the domains it was placed on before, for status.
    """
    ALTER TABLE steps ADD COLUMN replaced_from TEXT NOT NULL DEFAULT '[]';
    """,
    # 11 -> 12: the signed submissions a participant admitted, under which workflow id
    # (agent/runtime/admitted_submissions.py): a replay under another id is refused.
    """
    CREATE TABLE admitted_submissions (
        key          BLOB PRIMARY KEY,            -- submission_key: principal, key, request
        workflow_id  TEXT NOT NULL,
        issued_at_ms INTEGER NOT NULL             -- rows past the window are deleted
    );
    CREATE INDEX admitted_submissions_by_age ON admitted_submissions(issued_at_ms);
    """,
    # 12 -> 13: coordinator takeover under Paxos Commit (agent/runtime/takeover.py): an
    # acceptor that holds no step of a workflow (so no workflow row) keeps the highest
    # coordinator epoch it granted, and to whom, durable before its answer leaves.
    """
    CREATE TABLE takeover_grants (
        workflow_id  TEXT PRIMARY KEY,
        epoch        INTEGER NOT NULL,
        holder       TEXT NOT NULL
    );
    """,
    # 13 -> 14: a participant keeps the submitter's signed spec of each PREPARE it voted
    # YES on (written with the YES): should it take the workflow over, its re-placement
    # rounds relay it as the original coordinator did (agent/runtime/replacement.py).
    """
    CREATE TABLE prepare_submissions (
        workflow_id  TEXT NOT NULL,
        round        INTEGER NOT NULL,
        submission   BLOB NOT NULL,
        PRIMARY KEY (workflow_id, round)
    );
    """,
    # 14 -> 15: a successor keeps the grants of its takeover claims (its epoch
    # certificate, agent/runtime/epoch_certs.py), durable before a grant counts: after a
    # restart it proves its epoch with them even when the members that granted are gone.
    # And a coordinator records the re-placement rounds it begins.
    """
    CREATE TABLE epoch_grants (
        workflow_id  TEXT NOT NULL,
        voter        TEXT NOT NULL,
        epoch        INTEGER NOT NULL,
        envelope     BLOB NOT NULL,               -- the signed TakeoverAnswer as received
        PRIMARY KEY (workflow_id, voter)
    );

    -- A coordinator's re-placement rounds (agent/runtime/replacement.py), recorded
    -- before the first PREPARE leaves: a restart numbers its next rounds above them, and
    -- aborts the rounds a restart cut short (open = 1) that have no decision.
    CREATE TABLE replacement_rounds (
        workflow_id  TEXT NOT NULL,
        first_round  INTEGER NOT NULL,
        last_round   INTEGER NOT NULL,
        step_id      TEXT NOT NULL,
        open         INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (workflow_id, first_round)
    );
    """,
    # 15 -> 16: the end notices a coordinator owes (agent/runtime/store/end_notices.py),
    # written with the end and deleted once answered: a restart sends them again.
    """
    CREATE TABLE end_notices (
        workflow_id    TEXT NOT NULL,
        domain         TEXT NOT NULL,             -- told of the end, not answering yet
        owed_since_ms  INTEGER NOT NULL,          -- the end's wall time: patience runs from it
        PRIMARY KEY (workflow_id, domain)
    );
    """,
    # 16 -> 17: a participant keeps, with its YES, the coordinator's signed round when an
    # acceptor of it holds no step (PrepareRequest.round_tx, as received; empty
    # otherwise): its proof of the committed round to such an acceptor that missed it,
    # in a takeover claim (agent/runtime/round_proofs.py).
    """
    ALTER TABLE hold_txs ADD COLUMN round_tx BLOB NOT NULL DEFAULT x'';
    """,
    # 17 -> 18: an acceptor keeps, with each record, the coordinator's signed round it
    # verified before making it (PaxosPrepare/PaxosAccept.round_tx, as received): its
    # evidence that the round is the coordinator's, not a proposer's statement. Records
    # of an older agent keep x'' (docs/failures.md, What a planted acceptor record can
    # still do).
    """
    ALTER TABLE acceptor_records ADD COLUMN round_tx BLOB NOT NULL DEFAULT x'';
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
