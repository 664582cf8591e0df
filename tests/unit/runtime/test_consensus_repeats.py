"""An acceptor answers a repeated PaxosPrepare or Accept from memory (the same promise,
the same ballot and value: nothing new to write), but never before the first copy's
record is on disk: counted by the proposer and then forgotten in a crash, it could let
a second value be chosen. In-process agent; its consensus shell is driven directly."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from fedorch.core.negotiation.messages import (
    ABORT,
    Accept,
    Accepted,
    Ballot,
    PaxosPrepare,
    Promise,
    TxInfo,
)
from fedorch.runtime.agent import Agent

from tests.unit.loop_turns import until
from tests.unit.runtime.signed_rounds import signed

TX = TxInfo("beta.1", 1, "beta", ("beta", "delta"), ("alpha", "beta", "delta"))


@pytest.mark.parametrize("first", [
    ("beta", Accept(TX, Ballot(0, "beta"), ABORT), Accepted),
    ("delta", PaxosPrepare(TX, Ballot(3, "delta")), Promise),
])
async def test_a_repeat_is_answered_only_once_the_first_record_is_on_disk(
        agent: Agent, first) -> None:
    sender, msg, answer = first
    if sender != TX.coordinator:  # a recovery proposer carries the coordinator's round
        msg = replace(msg, tx=signed(agent.trust, TX))
    c = agent.consensus
    store = agent.store
    release = asyncio.Event()
    events: list[str] = []
    save = store.save_acceptor

    async def slow_save(row):
        events.append("write started")
        await release.wait()
        await save(row)
        events.append("write done")

    store.save_acceptor = slow_save
    try:
        original = asyncio.create_task(c.receive(sender, msg, rpc=True))
        await until(lambda: events == ["write started"])
        repeat = asyncio.create_task(c.receive(sender, msg, rpc=True))
        # The repeat either waits for the write (as it must) or has answered already.
        await until(lambda: repeat.done() or c._writes.waited_on(TX.key))
        assert not repeat.done(), "a repeat was answered before the record was on disk"
        release.set()
        assert isinstance(await original, answer)
        assert isinstance(await repeat, answer)
        assert events == ["write started", "write done"]
    finally:
        store.save_acceptor = save
        release.set()
