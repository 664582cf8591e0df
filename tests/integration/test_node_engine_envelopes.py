"""Real agents on the node engine: a burst of workflows shares envelopes and node.db
transactions, and every workflow still commits and runs exactly as it would one by one.

One envelope per peer and driver turn is checked message by message in
tests/unit/runtime/node_engine/test_transport.py
(test_one_envelope_per_turn_and_peer_and_unreachable_peers_counted); here the counters
an operator reads (`fedorch_node_envelopes_total`, `fedorch_node_messages_total`) show
the sharing under load.
"""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.federation import Federation, running_federation, state_name

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
def burst_federation(tmp_path_factory):
    with running_federation(tmp_path_factory.mktemp("envelopes"), DOMAINS) as fed:
        yield fed


@pytest.fixture
async def bfed(burst_federation):
    yield burst_federation
    await burst_federation.close_channels()


def _sent(fed: Federation, name: str) -> tuple[float, float]:
    """(envelopes, messages in them) an agent sent: each NodeTurns envelope carries
    every message of a turn (or of the turns while one is out) to one peer."""
    return (fed.metric(name, "fedorch_node_envelopes_total"),
            fed.metric(name, "fedorch_node_messages_total", outcome="sent"))


async def test_a_burst_of_workflows_shares_envelopes_and_all_succeed(bfed):
    sent_before = _sent(bfed, "b1")
    ids = await asyncio.gather(*(bfed.submit("b1", SPEC) for _ in range(BURST)))
    finals = await asyncio.gather(*(bfed.wait_state("b1", wid) for wid in ids))
    assert [state_name(s) for s in finals] == ["SUCCEEDED"] * BURST
    for status in finals:  # each step ran once, where it was placed
        assert {(s.id, s.domain, s.attempts) for s in status.steps} == \
            {("a", "b1", 1), ("b", "b2", 1), ("c", "b3", 1)}
    # The coordinator's messages to its peers shared envelopes, and the writes of a
    # turn (and of the turns while a commit was out) one node.db transaction.
    envelopes, messages = (a - b for a, b in zip(_sent(bfed, "b1"), sent_before,
                                                  strict=True))
    assert messages > envelopes >= 1, (envelopes, messages)
    groups = bfed.metric("b1", "fedorch_node_store_groups_total")
    transactions = bfed.metric("b1", "fedorch_node_store_transactions_total")
    assert groups > transactions >= 1, (groups, transactions)
    # The results held until their COMMIT (b2 and b3 take results right behind their
    # COMMIT: core/node/early_results.py) are on every agent's endpoint.
    assert {"fedorch_node_early_results", "fedorch_node_early_results_held",
            "fedorch_node_early_results_judged",
            "fedorch_node_early_results_dropped"} <= _families(bfed, "b2")


def _families(fed: Federation, name: str) -> set[str]:
    """The metric families `name`'s Prometheus endpoint serves."""
    url = f"http://127.0.0.1:{fed.metrics_ports[name]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        return {f.name for f in text_string_to_metric_families(reply.read().decode())}
