"""Coordinator takeover of a workflow on two domains, on real agents (Paxos Commit).

The coordinator `coord` runs nothing; every step is on `p1`. The electorate is the
committed round's acceptors: coord, p1 and one extra ALIVE member (x1 or x2,
`min_acceptors` 3). With coord SIGKILLed after the commit and never restarted, p1
alone is 1 of the 2 domains with a part in the workflow, yet it is taken over: p1
claims epoch 1 and the extra acceptor, which holds no step and has no workflow row,
grants it from its acceptor record (its grant kept in `takeover_grants`). Classic 2PC
has no extra acceptors, so this is a Paxos Commit test only.
"""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from tests.integration.durable_facts import electorate, granted_epoch, knows_workflow
from tests.integration.federation import (
    COMMIT,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_takeover import WORK

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(COMMIT != "paxos", reason="extra acceptors are Paxos Commit's")]

DOMAINS = {
    "coord": {},       # takes the submission; runs nothing
    "p1": {"capabilities": WORK},
    "x1": {},          # no part in the workflow: one of them is its extra acceptor
    "x2": {},
}


def _spec(gate: pathlib.Path) -> str:
    return f"""
name: two-domains
steps:
  - id: first
    capability: test.gated
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p1]}}
  - id: second
    capability: test.gated
    needs: [first]
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p1]}}
"""


async def test_a_two_domain_workflow_is_taken_over_with_the_extra_acceptors_grant(tmp_path):
    gate = tmp_path / "gate-open"
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("coord", _spec(gate))

        async def committed_at_p1():
            s = await fed.local_status("p1", wid)
            return s is not None and state_name(s) == "RUNNING"

        await wait_for(committed_at_p1, 30, "p1 to hold the COMMIT")
        acceptors = electorate(fed, "coord", wid)
        extra = set(acceptors) - {"coord", "p1"}
        assert len(acceptors) == 3 and len(extra) == 1 and extra <= {"x1", "x2"}, acceptors
        (extra_acceptor,) = extra
        coord = fed.procs["coord"].popen
        fed.kill("coord")  # SIGKILL, reaped; never restarted in this test
        await fed.close_channels()
        await asyncio.to_thread(gate.touch)

        async def succeeded_at_p1():
            s = await fed.local_status("p1", wid)
            return s if s is not None and state_name(s) == "SUCCEEDED" else None

        status = await wait_for(succeeded_at_p1, 40, "p1 to take over and end the workflow")
        assert coord.poll() is not None and "coord" not in fed.procs  # still dead
        assert (status.coordinator, status.epoch) == ("p1", 1), status
        assert {k: v[:2] for k, v in step_states(status).items()} == {
            "first": ("SUCCEEDED", "p1"), "second": ("SUCCEEDED", "p1")}
        # p1 copied the round's acceptors into its row: that is the electorate it counted.
        assert electorate(fed, "p1", wid) == acceptors
        # The extra acceptor holds no workflow row; its grant is durable on its own.
        assert not knows_workflow(fed, extra_acceptor, wid)
        assert granted_epoch(fed, extra_acceptor, wid) == (1, "p1")
        for name in ("p1", "x1", "x2"):  # status from every surviving agent
            answer = await fed.status(name, wid)
            assert state_name(answer) == "SUCCEEDED", (name, answer)
            assert (answer.coordinator, answer.epoch) == ("p1", 1), (name, answer)
