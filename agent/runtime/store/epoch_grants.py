"""The grants a successor keeps as evidence of its coordinator epoch, on disk.

One row per (workflow, voter): the latest epoch that voter granted this agent, and its
signed TakeoverAnswer envelope (body and signature exactly as received: a third party
verifies the signature over those bytes). Written through the store's write path
(synchronous=FULL) before the grant counts (agent/runtime/epoch_certs.py); read back
when the workflow's takeover core is built again after a restart. Retention deletes
the rows with their workflow (compaction.WORKFLOW_TABLES).
"""

from __future__ import annotations

from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.store.store import Statement, Store


def grant_statement(workflow_id: str, voter: str, epoch: int,
                    envelope: peer_pb2.Envelope) -> Statement:
    """Keep `voter`'s grant of `epoch`, unless a grant of a later epoch is kept already
    (a late answer to an older claim never replaces a newer grant)."""
    kept = peer_pb2.Envelope(body=envelope.body, signature=envelope.signature)
    return ("INSERT INTO epoch_grants(workflow_id, voter, epoch, envelope) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(workflow_id, voter) DO UPDATE SET epoch = excluded.epoch,"
            " envelope = excluded.envelope WHERE excluded.epoch >= epoch_grants.epoch",
            (workflow_id, voter, epoch, kept.SerializeToString()))


async def grants_of(store: Store, workflow_id: str, epoch: int
                    ) -> dict[str, peer_pb2.Envelope]:
    """The grants of `epoch` kept for a workflow: voter -> the envelope as received."""
    rows = await store.select(
        "SELECT voter, envelope FROM epoch_grants WHERE workflow_id = ? AND epoch = ?",
        (workflow_id, epoch))
    return {str(voter): peer_pb2.Envelope.FromString(raw) for voter, raw in rows}
