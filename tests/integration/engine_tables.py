"""What an agent of either engine holds, read from that engine's own store: the shells'
agent.db tables, or the node engine's node.db (as its Node reads it back)."""

from __future__ import annotations

import yaml
from fedorch.core.node.records import Disk
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_store import SqliteDurable


def engine_of(fed, domain: str) -> str:
    """The engine `domain`'s config runs ("node" when it names none)."""
    return yaml.safe_load(fed.configs[domain].read_text()).get("engine", "node")


def node_disk(fed, domain: str) -> Disk:
    """`domain`'s node.db tables (WAL lets its agent go on writing meanwhile)."""
    store = SqliteDurable(fed.workdir / "data" / domain / "node.db", codec=node_codec())
    try:
        return store.load()
    finally:
        store.close()


def runs(fed, domain: str, workflow_id: str) -> list[tuple[str, int]]:
    """(step, attempt) of each attempt `domain` started for `workflow_id`, in order."""
    if engine_of(fed, domain) == "node":
        return sorted((step, attempt) for wf, step, attempt in node_disk(fed, domain).runs
                      if wf == workflow_id)
    return fed.rows(domain, "SELECT step_id, attempt FROM step_runs WHERE workflow_id=?"
                    " ORDER BY step_id, attempt", (workflow_id,))


def held(fed, domain: str, workflow_id: str | None = None) -> list:
    """The reservations `domain` holds (of `workflow_id`, or all)."""
    if engine_of(fed, domain) == "node":
        return sorted(key for key in node_disk(fed, domain).holds
                      if workflow_id is None or key[0] == workflow_id)
    if workflow_id is None:
        return fed.rows(domain, "SELECT * FROM reservations")
    return fed.rows(domain, "SELECT * FROM reservations WHERE workflow_id=?", (workflow_id,))
