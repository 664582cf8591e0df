"""Batching on real agents: a burst of workflows shares Batch calls and group
commits, and every workflow still commits and runs exactly as it would one by one."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.federation import Federation, running_federation, state_name
from tests.integration.node_tables import runs_node_engine

pytestmark = pytest.mark.integration

NOOP = {"name": "batch.noop", "capacity": 1000, "executor": {"type": "builtin", "name": "echo"}}
DOMAINS = {"b1": {"capabilities": [NOOP]}, "b2": {"capabilities": [NOOP]},
           "b3": {"capabilities": [NOOP]}}
BURST = 60
SPEC = """
name: burst
steps:
  - {id: a, capability: batch.noop, constraints: {domains: [b1]}}
  - {id: b, capability: batch.noop, constraints: {domains: [b2]}, needs: [a]}
  - {id: c, capability: batch.noop, constraints: {domains: [b3]}, needs: [b]}
"""


@pytest.fixture(scope="module")
def batching_federation(tmp_path_factory):
    with running_federation(tmp_path_factory.mktemp("batching"), DOMAINS) as fed:
        yield fed


@pytest.fixture
async def bfed(batching_federation):
    yield batching_federation
    await batching_federation.close_channels()


def _batches(fed: Federation, name: str, direction: str) -> tuple[float, float]:
    """(Batch calls, items in them) an agent sent or received."""
    return (fed.metric(name, "fedorch_peer_batch_items_count", direction=direction),
            fed.metric(name, "fedorch_peer_batch_items_sum", direction=direction))


def _node_batches(fed: Federation, name: str) -> tuple[float, float]:
    """The node engine's (envelopes, messages in them) an agent sent: each NodeTurns
    envelope carries every message of a turn (or of the turns while one is out) to one
    peer."""
    return (fed.metric(name, "fedorch_node_envelopes_total"),
            fed.metric(name, "fedorch_node_messages_total", outcome="sent"))


async def test_a_burst_of_workflows_shares_batch_calls_and_all_succeed(bfed):
    node_engine = runs_node_engine(bfed, "b1")
    before = {n: _batches(bfed, n, "in") for n in DOMAINS}
    sent_before = _node_batches(bfed, "b1") if node_engine else (0.0, 0.0)
    ids = await asyncio.gather(*(bfed.submit("b1", SPEC) for _ in range(BURST)))
    finals = await asyncio.gather(*(bfed.wait_state("b1", wid) for wid in ids))
    assert [state_name(s) for s in finals] == ["SUCCEEDED"] * BURST
    for status in finals:  # each step ran once, where it was placed
        assert {(s.id, s.domain, s.attempts) for s in status.steps} == \
            {("a", "b1", 1), ("b", "b2", 1), ("c", "b3", 1)}
    if node_engine:
        # The coordinator's messages to its peers shared envelopes, and the writes of
        # a turn (and of the turns while a commit was out) one node.db transaction.
        envelopes, messages = (a - b for a, b in zip(_node_batches(bfed, "b1"),
                                                      sent_before, strict=True))
        assert messages > envelopes >= 1, (envelopes, messages)
        groups = bfed.metric("b1", "fedorch_node_store_groups_total")
        transactions = bfed.metric("b1", "fedorch_node_store_transactions_total")
        assert groups > transactions >= 1, (groups, transactions)
        return
    # The coordinator's requests to b2 and b3 (prepares, accepts, commits, end
    # notices) travelled in batches: fewer Batch calls than the items they carried.
    for peer in ("b2", "b3"):
        calls = _batches(bfed, peer, "in")[0] - before[peer][0]
        items = _batches(bfed, peer, "in")[1] - before[peer][1]
        assert calls >= 1 and items > calls, (peer, calls, items)
    sent_calls, sent_items = _batches(bfed, "b1", "out")
    assert sent_items > sent_calls >= 1
    # And on disk: writes that arrived together shared a transaction (one fsync).
    writes = bfed.metric("b1", "fedorch_store_writes_total")
    commits = bfed.metric("b1", "fedorch_store_commits_total")
    assert writes > commits >= 1, (writes, commits)
