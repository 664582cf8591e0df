"""What an agent holds, read from its node.db as its Node reads it back."""

from __future__ import annotations

from fedorch.core.node.records import Disk
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_store import SqliteDurable


def engine_of(fed, domain: str) -> str:
    """The engine `domain` runs: "node", the only one (the older `shells` was removed)."""
    return "node"


def node_disk(fed, domain: str) -> Disk:
    """`domain`'s node.db tables (WAL lets its agent go on writing meanwhile)."""
    store = SqliteDurable(fed.workdir / "data" / domain / "node.db", codec=node_codec())
    try:
        return store.load()
    finally:
        store.close()


def runs(fed, domain: str, workflow_id: str) -> list[tuple[str, int]]:
    """(step, attempt) of each attempt `domain` started for `workflow_id`, in order."""
    return sorted((step, attempt) for wf, step, attempt in node_disk(fed, domain).runs
                  if wf == workflow_id)


def held(fed, domain: str, workflow_id: str | None = None) -> list:
    """The reservations `domain` holds (of `workflow_id`, or all)."""
    return sorted(key for key in node_disk(fed, domain).holds
                  if workflow_id is None or key[0] == workflow_id)
