"""Retention on real agents: after 20 workflows end, each agent keeps at most
`max_ended_workflows` of them (Paxos Commit: those it was an acceptor of go once older
than `keep_ended_s`; classic 2PC: the count alone bounds them), the status of a
compacted one is NOT_FOUND naming retention, its audit records stay, and a new workflow
still succeeds."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from fedorch.core.identity.envelope import new_nonce, seal
from fedorch.gen.fedorch.v1 import peer_pb2

from tests.integration.federation import (
    TERMINAL,
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
        # A short sweep, and a short replay window: nothing goes in the first two windows
        # after its end (docs/retention.md).
        "negotiation": {**TEST_TIMINGS["negotiation"], "commit": commit,
                        "certificate_sweep_s": 0.5, "replay_window_s": 3},
        "retention": {"keep_ended_s": keep_ended_s, "max_ended_workflows": MAX_ENDED},
    } for name in DOMAINS}


@pytest.mark.parametrize("commit, keep_ended_s", [("paxos", 1), ("2pc", 3600)])
async def test_each_agent_keeps_at_most_max_ended_workflows(tmp_path, commit, keep_ended_s):
    async with started_federation(tmp_path, _domains(commit, keep_ended_s)) as fed:
        ids = list(await asyncio.gather(*(fed.submit("c", SPEC) for _ in range(20))))
        for wid in ids:
            assert state_name(await fed.wait_state("c", wid)) == "SUCCEEDED"
        terminal = ", ".join(f"'{s}'" for s in TERMINAL)

        def ended(name: str) -> int:
            return fed.rows(name, f"SELECT count(*) FROM workflows WHERE state IN ({terminal})"
                            )[0][0]

        async def bounded() -> bool:
            return all(ended(name) <= MAX_ENDED for name in DOMAINS)

        await wait_for(bounded, 60, f"every agent to keep at most {MAX_ENDED} ended workflows")
        if commit == "2pc":  # no acceptor records: the count alone decides, newest kept
            assert [ended(name) for name in DOMAINS] == [MAX_ENDED] * 3
            newest = fed.rows("c", "SELECT id FROM workflows")
            assert {r[0] for r in newest} <= set(ids)

        async def counted() -> bool:  # the metric is served apart from the deleting write
            return fed.metric("c", "fedorch_compacted_total",
                              kind="workflows") >= 20 - MAX_ENDED

        await wait_for(counted, 10, "the compacted workflows to be counted")

        # One no agent keeps (each keeps the newest it saw end, which differ).
        kept = {r[0] for name in DOMAINS for r in fed.rows(name, "SELECT id FROM workflows")}
        old = next(wid for wid in ids if wid not in kept)
        for name in DOMAINS:  # every record of it gone, in every agent ...
            for table in ("steps", "decisions", "acceptor_records", "learned", "step_runs",
                          "reservations"):
                assert fed.rows(name, f"SELECT count(*) FROM {table} WHERE workflow_id=?",
                                (old,)) == [(0,)], (name, table)
        # ... but the audit log's, which is never compacted.
        assert fed.rows("c", "SELECT count(*) FROM audit WHERE workflow_id=?", (old,))[0][0] > 0
        # A participant silent past retention asking about it gets no presumed ABORT
        # (the round committed), and nothing is written for it.
        query = seal(fed.signer("p1"), recipient="c", now_ms=int(time.time() * 1000),
                     nonce=new_nonce(),
                     decision_query=peer_pb2.DecisionQuery(workflow_id=old, round=1))
        reply = await fed.peer_call("c", "QueryDecision", query)
        answer = peer_pb2.Body.FromString(reply.body).decision_answer
        assert not answer.known and not answer.final_state, answer
        for table in ("decisions", "proposals"):
            assert fed.rows("c", f"SELECT count(*) FROM {table} WHERE workflow_id=?",
                            (old,)) == [(0,)], table
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await fed.status("c", old)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "retention" in info.value.details()

        # The federation still takes work, and nothing of the compacted ones came back.
        new = await fed.submit("c", SPEC)
        assert state_name(await fed.wait_state("c", new)) == "SUCCEEDED"
        assert fed.rows("c", "SELECT count(*) FROM workflows WHERE id=?", (old,)) == [(0,)]
