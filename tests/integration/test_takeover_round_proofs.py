"""Coordinator takeover when the extra acceptor missed the committed round, on real
agents (Paxos Commit).

As in test_takeover_acceptors.py, `coord` runs nothing and every step is on `p1`; the
electorate is {coord, p1, the extra acceptor}. Here the extra acceptor holds nothing of
the round: it is SIGKILLed after the commit and its acceptor record and learned
decision of the workflow are erased from its database, which is what a lost Accept
leaves behind (the coordinator and p1 made the majority without it). Then `coord` is
SIGKILLed for good and the extra acceptor restarted. p1's claim carries the round as
coord signed it and a COMMIT of it; the extra acceptor checks both, grants epoch 1
naming that round and electorate, and p1 keeps the grant as evidence of its epoch.
Without the proof the extra acceptor grants nothing and the workflow waits for coord.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.durable_facts import (
    acceptor_records,
    electorate,
    epoch_voters,
    forget_the_round,
    granted_epoch,
    keeps_stated_round,
)
from tests.integration.federation import (
    COMMIT,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_takeover_acceptors import DOMAINS, _spec

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(COMMIT != "paxos", reason="extra acceptors are Paxos Commit's")]


async def test_an_extra_acceptor_that_missed_the_round_grants_on_the_claimants_proof(tmp_path):
    gate = tmp_path / "gate-open"
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("coord", _spec(gate))

        async def committed_at_p1():
            s = await fed.local_status("p1", wid)
            return s is not None and state_name(s) == "RUNNING"

        await wait_for(committed_at_p1, 30, "p1 to hold the COMMIT")
        acceptors = electorate(fed, "coord", wid)
        (extra,) = set(acceptors) - {"coord", "p1"}
        # p1 kept coord's signed round with its YES: one acceptor holds no step.
        assert keeps_stated_round(fed, "p1", wid)

        fed.kill(extra)
        await asyncio.to_thread(forget_the_round, fed, extra, wid)
        fed.kill("coord")  # SIGKILL, reaped; never restarted in this test
        await fed.close_channels()
        await fed.start(extra)
        assert acceptor_records(fed, extra, wid) == 0
        await asyncio.to_thread(gate.touch)

        async def succeeded_at_p1():
            s = await fed.local_status("p1", wid)
            return s if s is not None and state_name(s) == "SUCCEEDED" else None

        status = await wait_for(succeeded_at_p1, 60, "p1 to take over and end the workflow")
        assert "coord" not in fed.procs  # still dead
        assert (status.coordinator, status.epoch) == ("p1", 1), status
        assert {k: v[:2] for k, v in step_states(status).items()} == {
            "first": ("SUCCEEDED", "p1"), "second": ("SUCCEEDED", "p1")}
        # The extra acceptor granted on the proof alone (it still has no record) ...
        assert acceptor_records(fed, extra, wid) == 0
        assert granted_epoch(fed, extra, wid) == (1, "p1")
        # ... naming p1's committed round and electorate: p1 kept it as evidence.
        voters = epoch_voters(fed, "p1", wid, 1)
        assert extra in voters, voters
