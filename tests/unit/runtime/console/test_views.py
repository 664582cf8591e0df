"""The console's reads on an agent with `engine: node` (runtime/console/views.py): the
list, a status, a page and a follow come from the node engine's view, with the times
its statuses do not carry read from the id and the audit log."""

from __future__ import annotations

import json
from types import SimpleNamespace

from fedorch.core.node import Submit
from fedorch.gen.fedorch.v1 import status_pb2
from fedorch.runtime.console import views
from fedorch.runtime.node_engine.status import StatusView

from tests.unit.runtime.node_engine.test_audit import (
    EVERYWHERE,
    Federation,
    chain,
    signed,
)

FIRST_MS, SECOND_MS = 1_733_350_000_000, 1_733_350_000_500
FIRST, SECOND = f"d0.{FIRST_MS:012x}aaaa", f"d0.{SECOND_MS:012x}bbbb"
LAST_RECORD_MS = {FIRST: FIRST_MS + 40, SECOND: SECOND_MS + 70}


class AuditStore:
    """agent.db as the console reads it on a node-engine agent: the audit log only
    (no workflow rows, decisions or compensations there)."""

    async def select(self, sql: str, args: tuple = ()) -> list[tuple]:
        if "FROM compensations" in sql:
            return []
        assert "FROM audit" in sql
        ms = LAST_RECORD_MS.get(args[0])
        return [] if ms is None else [(json.dumps({"time_ms": ms}).encode(),)]

    async def audit_records(self, workflow_id: str) -> list:
        return []

    async def get_decision(self, workflow_id: str, round_: int) -> None:
        return None


def node_agent() -> SimpleNamespace:
    """An agent whose Node ran two workflows to their end, its view the console's."""
    fed = Federation({n: {"a": 2} for n in ("d0", "d1", "d2")})
    spec = chain()
    for i, wf in enumerate((FIRST, SECOND)):
        submission = signed(spec)
        submission.request_id = f"r{i}"
        fed.agents["d0"].inbox.append(Submit(wf, spec, submission, dict(EVERYWHERE)))
    fed.settle()
    return SimpleNamespace(domain="d0", node_view=StatusView(fed.agents["d0"].node),
                           store=AuditStore(), stopping=False)


def test_created_ms_is_read_from_the_id():
    assert views.created_ms(FIRST) == FIRST_MS
    assert views.created_ms("d0.w1") == 0 and views.created_ms("no-dot") == 0
    assert views.created_ms("d0.zzzzzzzzzzzz0000") == 0


async def test_the_list_is_the_nodes_newest_first_with_its_times():
    agent = node_agent()
    shown, matched = await views.workflows(agent, views.ListFilter())
    assert matched == 2
    assert [(w.id, w.state, w.created_ms, w.updated_ms) for w in shown] == [
        (SECOND, "SUCCEEDED", SECOND_MS, SECOND_MS + 70),
        (FIRST, "SUCCEEDED", FIRST_MS, FIRST_MS + 40)]
    none, matched = await views.workflows(agent, views.ListFilter(state="FAILED"))
    assert (none, matched) == ([], 0)


async def test_a_status_is_a_copy_with_times_and_the_page_has_the_specs_edges():
    agent = node_agent()
    s = await views.status(agent, FIRST)
    assert (s.created_at_ms, s.updated_at_ms) == (FIRST_MS, FIRST_MS + 40)
    kept = agent.node_view.status(FIRST)
    assert kept.created_at_ms == 0  # the view's own status, shared, is left as it was
    assert s.state == status_pb2.WORKFLOW_STATE_SUCCEEDED
    assert await views.status(agent, "d0.unknown") is None
    page = await views.workflow_view(agent, s)
    assert page.spec_known and page.created_ms == FIRST_MS
    graph = page.graph()
    assert graph["edges"] == [["s0", "s1"], ["s1", "s2"]]
    assert {st["id"]: st["domain"] for st in graph["steps"]} == EVERYWHERE


async def test_a_follow_of_an_ended_workflow_yields_its_end_once():
    agent = node_agent()
    seen = [s async for s in views.follow(agent, FIRST)]
    assert [s.state for s in seen] == [status_pb2.WORKFLOW_STATE_SUCCEEDED]
    assert seen[0].updated_at_ms == FIRST_MS + 40


def test_the_spec_comes_from_the_node():
    agent = node_agent()
    spec = views._node_spec(agent.node_view, FIRST)
    assert [(s.id, list(s.needs)) for s in spec.steps] == [
        ("s0", []), ("s1", ["s0"]), ("s2", ["s1"])]
    assert views._node_spec(agent.node_view, "d0.unknown") is None
