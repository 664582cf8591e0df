"""Retention on real agents: after 20 workflows end, each agent keeps at most
`max_ended_workflows` of them (Paxos Commit: those it was an acceptor of go once older
than `keep_ended_s`; classic 2PC: the count alone bounds them), the status of a
compacted one is NOT_FOUND naming retention, its audit records stay, and a new workflow
still succeeds."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from fedorch.core.node.retention import FORGOTTEN_ROUND_TABLES, WORKFLOW_TABLES

from tests.integration.federation import (
    TEST_TIMINGS,
    started_federation,
    state_name,
    wait_for,
)

pytestmark = pytest.mark.integration

SPEC = """
name: kept
steps:
  - {id: a, capability: rt.work, constraints: {domains: [p1]}}
  - {id: b, capability: rt.work, constraints: {domains: [p2]}, needs: [a]}
"""
DOMAINS = ("c", "p1", "p2")
MAX_ENDED = 5


def _domains(commit: str, keep_ended_s: float) -> dict[str, dict]:
    work = [{"name": "rt.work", "capacity": 32, "executor": {"type": "builtin", "name": "echo"}}]
    return {name: {
        "capabilities": work if name != "c" else [],
        # A short replay window: nothing goes in the first two windows after its end
        # (docs/retention.md).
        "negotiation": {**TEST_TIMINGS["negotiation"], "commit": commit,
                        "replay_window_s": 3},
        "retention": {"keep_ended_s": keep_ended_s, "max_ended_workflows": MAX_ENDED},
    } for name in DOMAINS}


# What node.db keeps of a workflow (core/node/retention.py): the tables retention forgets
# it from. Not the acceptor's records nor the decisions learned (ROUND_LIFE_TABLES: a
# recovery ballot may need them for their round's life, after the workflow goes).
NODE_TABLES = (*WORKFLOW_TABLES, *FORGOTTEN_ROUND_TABLES)


def _ended(fed, name: str) -> set[str]:
    """The ended workflows agent `name` keeps in node.db (all it keeps: every workflow
    of the test ended)."""
    return {_workflow(k) for t in NODE_TABLES for k in fed.node_table(name, t)}


def _workflow(key) -> str:
    return key if isinstance(key, str) else key[0]  # a workflow id, or (workflow, round)


def _rows_of(fed, name: str, wid: str) -> dict[str, int]:
    """Table -> the rows of `wid` agent `name` still has there (those it may compact)."""
    return {t: sum(_workflow(k) == wid for k in fed.node_table(name, t))
            for t in NODE_TABLES}


@pytest.mark.parametrize("commit, keep_ended_s", [("paxos", 1), ("2pc", 3600)])
async def test_each_agent_keeps_at_most_max_ended_workflows(tmp_path, commit, keep_ended_s):
    async with started_federation(tmp_path, _domains(commit, keep_ended_s)) as fed:
        ids = list(await asyncio.gather(*(fed.submit("c", SPEC) for _ in range(20))))
        for wid in ids:
            assert state_name(await fed.wait_state("c", wid)) == "SUCCEEDED"

        async def bounded() -> bool:
            return all(len(_ended(fed, name)) <= MAX_ENDED for name in DOMAINS)

        await wait_for(bounded, 60, f"every agent to keep at most {MAX_ENDED} ended workflows")
        if commit == "2pc":  # no acceptor records: the count alone decides, newest kept
            assert [len(_ended(fed, name)) for name in DOMAINS] == [MAX_ENDED] * 3
            assert _ended(fed, "c") <= set(ids)

        async def counted() -> bool:  # the metric is served apart from the deleting write
            return fed.metric("c", "fedorch_compacted_total",
                              kind="workflows") >= 20 - MAX_ENDED

        await wait_for(counted, 10, "the compacted workflows to be counted")

        # One no agent keeps (each keeps the newest it saw end, which differ).
        kept = set().union(*(_ended(fed, name) for name in DOMAINS))
        old = next(wid for wid in ids if wid not in kept)
        for name in DOMAINS:  # every record of it gone, in every agent ...
            assert not any(_rows_of(fed, name, old).values()), (name, _rows_of(fed, name, old))
        # ... but the audit log's, which is never compacted.
        assert fed.rows("c", "SELECT count(*) FROM audit WHERE workflow_id=?", (old,))[0][0] > 0
        # A participant silent past retention asking about it is answered UNKNOWN, with
        # nothing written: tests/unit/core/node/test_retention.py
        # ::test_a_query_about_a_forgotten_workflow_is_answered_unknown.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await fed.status("c", old)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "retention" in info.value.details()

        # The federation still takes work, and nothing of the compacted ones came back.
        new = await fed.submit("c", SPEC)
        assert state_name(await fed.wait_state("c", new)) == "SUCCEEDED"
        assert old not in _ended(fed, "c") and not any(_rows_of(fed, "c", old).values())
