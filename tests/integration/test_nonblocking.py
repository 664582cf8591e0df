"""Classic two-phase commit on real agents, the contrast to Paxos Commit: participants in
doubt ask the coordinator and wait; its restart presumes abort and releases them.

Four agents: c coordinates, p1 and p2 each run one step, x is a trusted bystander. With
Paxos Commit a dead coordinator blocks nobody: tests/integration/test_domain_loss.py
(test_a_dead_coordinator_does_not_keep_its_participants_waiting_a_lease) and
test_node_engine_in_doubt.py; forged decisions change nothing:
test_node_engine_lying_domain.py.

Timing is made deterministic with signals, never with sleeps: p2 is SIGSTOPped before
the submit, so the coordinator waits for its vote; once p1 has voted YES, c is
SIGSTOPped and p2 resumed, so p2 votes YES into a coordinator that cannot read it.
"""

from __future__ import annotations

import signal

import pytest

from tests.integration.durable_facts import held_slots, learned_outcomes
from tests.integration.federation import (
    TEST_TIMINGS,
    Federation,
    started_federation,
    state_name,
    wait_for,
)

pytestmark = pytest.mark.integration

LEASE_S = TEST_TIMINGS["negotiation"]["lease_s"]
SPEC = """
name: nonblocking
steps:
  - id: a
    capability: nb.work
    constraints: {domains: [p1]}
  - id: b
    capability: nb.work
    constraints: {domains: [p2]}
"""


# A long prepare timeout: the coordinator must still be waiting for p2's vote when it is
# stopped, however slow the machine is.
PREPARE_TIMEOUT_S = 20
TAKEOVER_AFTER_S = 10  # the default
ATTEMPTS = 6  # to set up _everyone_voted_yes_unread's premise


def _domains(**negotiation: float) -> dict[str, dict]:
    timings = {**TEST_TIMINGS["negotiation"], "prepare_timeout_s": PREPARE_TIMEOUT_S,
               "takeover_after_s": TAKEOVER_AFTER_S, "commit": "paxos",
               **negotiation}
    work = [{"name": "nb.work", "capacity": 2, "executor": {"type": "builtin", "name": "echo"}}]
    other = [{"name": "nb.other", "capacity": 1, "executor": {"type": "builtin", "name": "echo"}}]
    return {name: {"capabilities": work if name.startswith("p") else other,
                   "negotiation": timings}
            for name in ("c", "p1", "p2", "x")}


def _federation(tmp_path, **negotiation: float):
    return started_federation(tmp_path, _domains(**negotiation))


async def test_with_2pc_the_same_participants_wait_for_the_coordinator(tmp_path):
    """The contrast (negotiation.commit: 2pc): in doubt they ask the coordinator and wait;
    its restart presumes abort and releases them."""
    async with _federation(tmp_path, commit="2pc") as fed:
        wid = await _everyone_voted_yes_unread(fed)
        fed.kill("c")

        async def both_asked():
            return all(fed.metric(p, "fedorch_in_doubt_queries_total") >= 1
                       for p in ("p1", "p2"))

        await wait_for(both_asked, 4 * LEASE_S, "p1 and p2 to ask the coordinator")
        for p in ("p1", "p2"):  # still in doubt: nobody else may decide in 2PC
            assert await fed.prepared(p, wid)
            assert learned_outcomes(fed, p, wid) == []
        await fed.close_channels()
        await fed.start("c")
        status = await fed.wait_state("c", wid)
        assert state_name(status) == "ABORTED" and "presumed abort" in status.reason

        async def released():
            return not any(held_slots(fed, p, wid) for p in ("p1", "p2"))

        await wait_for(released, 4 * LEASE_S, "p1 and p2 to release")


async def _everyone_voted_yes_unread(fed: Federation) -> str:
    """A workflow whose participants both voted YES, returned with c stopped and p2's
    vote unread (c cannot have decided). Its premise is checked and set up again with
    a new workflow when a PREPARE or a vote stayed with its stopped sender. (Under load
    the first case comes in runs: c's envelope to the stopped p2 is cancelled unanswered
    after NODE_TURN_TIMEOUT_S, 2 s, and its resend with it, whenever p1's vote takes
    longer than that to show; 3 attempts were once not enough at a full `make test`.)"""
    for _ in range(ATTEMPTS):
        fed.signal("p2", signal.SIGSTOP)
        wid = await fed.submit("c", SPEC)
        await wait_for(lambda wid=wid: fed.prepared("p1", wid), 20, "p1 to vote YES")
        fed.signal("c", signal.SIGSTOP)
        fed.signal("p2", signal.SIGCONT)
        try:
            await wait_for(lambda wid=wid: fed.prepared("p2", wid), 20, "p2 to vote YES")
        except AssertionError:
            fed.signal("c", signal.SIGCONT)  # p2 never had the PREPARE: c ends it
            await fed.wait_state("c", wid, deadline_s=2 * PREPARE_TIMEOUT_S + 20)
            continue
        # An answer from p2's loop comes from a later turn than its vote's send.
        await wait_for(lambda wid=wid: fed.answers_after("p2", wid), 20, "p2 to answer")
        return wid
    raise AssertionError(f"p2 never had its PREPARE in {ATTEMPTS} attempts")
