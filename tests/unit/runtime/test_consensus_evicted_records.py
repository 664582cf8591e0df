"""The acceptor's memory is bounded, and an evicted record answers exactly as before:
its promise, its accepted value and its decision come back from disk before any input
about its transaction is handled (an in-process agent on a temporary data dir; its
consensus shell is driven directly, no network)."""

from __future__ import annotations

import pytest
from fedorch.core.negotiation.messages import (
    ABORT,
    Accept,
    Accepted,
    Ballot,
    Decision,
    PaxosPrepare,
    Promise,
    Reject,
    TxInfo,
)
from fedorch.runtime import consensus
from fedorch.runtime.agent import Agent

from tests.unit.runtime.signed_rounds import signed


@pytest.fixture(autouse=True)
def small_memory(monkeypatch):
    monkeypatch.setattr(consensus, "ACCEPTOR_MEMORY", 2)


def tx(n: int) -> TxInfo:
    # alpha is an acceptor only: beta coordinates, beta and delta take part. delta's
    # PaxosPrepares carry beta's signed round (signed_rounds), beta's own need none.
    return TxInfo(f"beta.{n}", 1, "beta", ("beta", "delta"), ("alpha", "beta", "delta"))


def resident(agent: Agent) -> set[str]:
    return {k[0] for k in (tx(n).key for n in range(1, 6))
            if agent.consensus.acceptor.record(k) is not None}


async def test_evicted_records_keep_their_promises_and_decisions(agent: Agent) -> None:
    c = agent.consensus
    high = Ballot(5, "delta")
    promise = await c.receive("delta", PaxosPrepare(signed(agent.trust, tx(1)), high), rpc=True)
    assert isinstance(promise, Promise) and promise.accepted_ballot is None
    accepted = await c.receive("beta", Accept(tx(2), Ballot(0, "beta"), ABORT), rpc=True)
    assert isinstance(accepted, Accepted)
    await c.learn(tx(2).key, ABORT, tx(2))  # decided here
    for n in (3, 4):
        accepted = await c.receive("beta", Accept(tx(n), Ballot(0, "beta"), ABORT), rpc=True)
        assert isinstance(accepted, Accepted)
    assert resident(agent) == {"beta.3", "beta.4"}  # the least recently written went

    # beta.1 promised ballot 5 before it was evicted: a ballot-0 Accept is refused still.
    late = await c.receive("beta", Accept(tx(1), Ballot(0, "beta"), ABORT), rpc=True)
    assert isinstance(late, Reject) and late.promised == high
    # beta.2 is decided: a late Accept is answered with the decision, not accepted.
    late = await c.receive("beta", Accept(tx(2), Ballot(0, "beta"), ABORT), rpc=True)
    assert isinstance(late, Decision) and late.value == ABORT
    # beta.3 accepted ballot 0: a higher ballot's promise reports it.
    promise = await c.receive("delta", PaxosPrepare(signed(agent.trust, tx(3)), Ballot(7, "delta")), rpc=True)
    assert isinstance(promise, Promise)
    assert promise.accepted_ballot == Ballot(0, "beta") and promise.accepted_value == ABORT
    assert len(resident(agent)) <= 2
    # A decision learned for a transaction this acceptor never voted in counts too.
    await c.learn(tx(5).key, ABORT, tx(5))
    assert "beta.5" in resident(agent) and len(resident(agent)) == 2


async def test_a_restarted_agent_reads_its_records_back(agent: Agent, tmp_path) -> None:
    c = agent.consensus
    await c.receive("delta", PaxosPrepare(signed(agent.trust, tx(1)), Ballot(5, "delta")),
                    rpc=True)
    fresh = Agent(agent.config, agent.store)  # the same data dir, nothing in memory
    await fresh.consensus.recover()
    assert fresh.consensus.acceptor.record(tx(1).key) is None
    late = await fresh.consensus.receive("beta", Accept(tx(1), Ballot(0, "beta"), ABORT),
                                         rpc=True)
    assert isinstance(late, Reject) and late.promised == Ballot(5, "delta")
    assert await fresh.consensus.tx_of(tx(1).key) == tx(1)
