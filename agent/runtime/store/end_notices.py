"""The end notices a successor (a coordinator after a takeover) still owes, on disk.

Only after a takeover: an original coordinator's participants ask it when they miss the
end (agent/runtime/coordination_outcomes.py says why). One row per (workflow, domain)
told of the workflow's end and not yet answering: written
in the write that ends the workflow (agent/runtime/coordination_outcomes.py), so an end
on disk always has its notices owed with it, and deleted once that domain answers (or
the delivery gives up, its patience spent). The notice itself is not kept: the ended
workflow's row is the notice (convert.end_notice_of). A restarted agent sends every
owed notice again, the original coordinator's after a takeover too. Retention deletes
the rows with their workflow (compaction.WORKFLOW_TABLES), and any left without one
(compaction.LEFTOVER_TABLES).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fedorch.runtime.store.store import Statement, Store


@dataclass(frozen=True)
class OwedNotice:
    workflow_id: str
    domain: str
    owed_since_ms: int  # wall time of the end: the delivery's patience runs from it


def owed_statements(workflow_id: str, domains: Iterable[str], now_ms: int) -> list[Statement]:
    """The notices owed to `domains` of a workflow ending now (one statement each)."""
    return [("INSERT OR REPLACE INTO end_notices(workflow_id, domain, owed_since_ms)"
             " VALUES (?, ?, ?)", (workflow_id, domain, now_ms)) for domain in domains]


def delivered_statement(workflow_id: str, domain: str) -> Statement:
    """The notice to `domain` is owed no more (answered, or given up)."""
    return ("DELETE FROM end_notices WHERE workflow_id = ? AND domain = ?",
            (workflow_id, domain))


async def owed(store: Store) -> list[OwedNotice]:
    """Every notice owed, in (workflow, domain) order."""
    rows = await store.select("SELECT workflow_id, domain, owed_since_ms FROM end_notices"
                              " ORDER BY workflow_id, domain")
    return [OwedNotice(str(r[0]), str(r[1]), int(r[2])) for r in rows]
