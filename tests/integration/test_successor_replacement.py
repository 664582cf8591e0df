"""A successor coordinator places a lost step again, on real agents (Paxos Commit).

Four agents: `coord` takes the submission and runs nothing; `p1` runs `first` (a step
waiting at a gate file the test opens); `second` needs `first` and may run on `p2` or
`p3`. The committed round's acceptors are coord, p1 and the domain of `second` (three:
`min_acceptors`). coord is SIGKILLed after the commit and never restarted: p1 (the
lowest live participant) takes the workflow over in epoch 1, with the grant of the
domain of `second`. That domain is then SIGKILLed too, before `second` could start
(its input waits at the gate). p1, acting in epoch 1, runs a re-placement round whose
PREPARE carries its epoch certificate (the signed grants of p1 and the now dead
domain: 2 of 3); the fourth agent, which never saw the workflow, checks it and votes.
The gate opens and the workflow ends SUCCEEDED with `second` on the fourth agent.
Bounds are behaviour bounds (DEAD comes after ~4 s with the `local` gossip profile),
not speed measurements.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration.federation import (
    COMMIT,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_takeover import WORK

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(COMMIT != "paxos",
                                 reason="asserts the electorate as the Paxos Commit round's acceptors")]

DOMAINS = {
    "coord": {},  # takes the submission; runs nothing
    "p1": {"capabilities": WORK},
    "p2": {"capabilities": WORK},
    "p3": {"capabilities": WORK},
}


def _spec(gate) -> str:
    return f"""
name: successor-replaces
steps:
  - id: first
    capability: test.gated
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p1]}}
  - id: second
    capability: test.gated
    needs: [first]
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p2, p3]}}
"""


async def _second_committed_on(fed, wid: str) -> str | None:
    """The domain of `second`, once p1 and that domain both hold the workflow RUNNING."""
    s = await fed.local_status("p1", wid)
    if s is None or state_name(s) != "RUNNING":
        return None
    domain = step_states(s)["second"][1]
    t = await fed.local_status(domain, wid) if domain else None
    return domain if t is not None and state_name(t) == "RUNNING" else None


async def _taken_over_by_p1(fed, wid: str):
    s = await fed.local_status("p1", wid)
    return s if s is not None and (s.coordinator, s.epoch) == ("p1", 1) else None


async def _second_on(fed, wid: str, domain: str) -> bool:
    s = await fed.local_status("p1", wid)
    return s is not None and step_states(s)["second"][1] == domain


async def _succeeded_at_p1(fed, wid: str):
    s = await fed.local_status("p1", wid)
    return s if s is not None and state_name(s) == "SUCCEEDED" else None


async def test_a_successor_places_a_lost_step_again_with_its_epoch_certificate(tmp_path):
    gate = tmp_path / "gate-open"
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("coord", _spec(gate))

        doomed = await wait_for(lambda: _second_committed_on(fed, wid), 30,
                                "both participants to hold the COMMIT")
        fourth = ({"p2", "p3"} - {doomed}).pop()
        acceptors = json.loads(fed.rows("p1", "SELECT acceptors FROM workflows WHERE id=?",
                                        (wid,))[0][0])
        assert sorted(acceptors) == sorted(["coord", "p1", doomed]), acceptors

        coord = fed.procs["coord"].popen
        fed.kill("coord")  # SIGKILL; never restarted in this test
        await fed.close_channels()

        await wait_for(lambda: _taken_over_by_p1(fed, wid), 30, "p1 to take the workflow over in epoch 1")
        # The grant of the domain of `second` is in: it follows p1 (durably).
        assert fed.rows(doomed, "SELECT granted_epoch, granted_to FROM workflows WHERE id=?",
                        (wid,)) == [(1, "p1")]
        assert fed.rows(fourth, "SELECT id FROM workflows WHERE id=?", (wid,)) == []

        fed.kill(doomed)  # `second` has not started: its input waits at the gate
        await fed.close_channels()

        await wait_for(lambda: _second_on(fed, wid, fourth), 40,
                       f"p1 to place second again on {fourth}")
        await asyncio.to_thread(gate.touch)

        status = await wait_for(lambda: _succeeded_at_p1(fed, wid), 40,
                                "the successor to end the workflow")
        assert coord.poll() is not None and "coord" not in fed.procs  # still dead
        assert (status.coordinator, status.epoch) == ("p1", 1), status
        assert {k: v[:2] for k, v in step_states(status).items()} == {
            "first": ("SUCCEEDED", "p1"), "second": ("SUCCEEDED", fourth)}
        second = next(s for s in status.steps if s.id == "second")
        assert list(second.replaced_from) == [doomed]

        for name in ("p1", fourth):  # status from every surviving agent
            answer = await fed.status(name, wid)
            assert state_name(answer) == "SUCCEEDED", (name, answer)
            assert (answer.coordinator, answer.epoch) == ("p1", 1), (name, answer)
            moved_step = next(s for s in answer.steps if s.id == "second")
            assert list(moved_step.replaced_from) == [doomed], (name, answer)
        # The fourth agent took the PREPARE of epoch 1's own round range, from p1.
        rounds = fed.rows(fourth, "SELECT round, coordinator FROM workflows WHERE id=?",
                          (wid,))
        assert len(rounds) == 1 and rounds[0][1] == "p1" and rounds[0][0] >= 1 << 20, rounds



def _restartable_spec(gate) -> str:
    # `first` may run again (idempotent, one retry): the restart of p1 interrupts it.
    return _spec(gate).replace("name: successor-replaces", "name: successor-restarts").replace(
        "constraints: {domains: [p1]}",
        "constraints: {domains: [p1]}\n    idempotent: true\n    retries: 1")


async def test_a_restarted_successor_places_a_lost_step_with_the_grants_it_kept(tmp_path):
    """As above, but the successor restarts after the electors that granted it are gone:
    coord is SIGKILLed, p1 takes over in epoch 1 with the grant of the domain of
    `second`; then p1 and that domain are SIGKILLed (`second` has not started: its input
    waits at the gate), and only p1 is started again. No member of the electorate but
    p1 itself is alive to grant anything: p1 proves its epoch with the grant it kept on
    disk, and places `second` again on the fourth agent."""
    gate = tmp_path / "gate-open"
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("coord", _restartable_spec(gate))

        doomed = await wait_for(lambda: _second_committed_on(fed, wid), 30,
                                "both participants to hold the COMMIT")
        fourth = ({"p2", "p3"} - {doomed}).pop()
        fed.kill("coord")  # SIGKILL; never restarted in this test
        await fed.close_channels()

        await wait_for(lambda: _taken_over_by_p1(fed, wid), 30, "p1 to take the workflow over in epoch 1")
        # The grant of the domain of `second`, as p1 received it, is on p1's disk.
        assert fed.rows("p1", "SELECT voter, epoch FROM epoch_grants WHERE workflow_id=?",
                        (wid,)) == [(doomed, 1)]
        fed.kill("p1")
        fed.kill(doomed)  # the only other elector that granted p1 its epoch
        await fed.close_channels()
        await fed.start("p1")

        await wait_for(lambda: _second_on(fed, wid, fourth), 60,
                       f"the restarted p1 to place second again on {fourth}")
        await asyncio.to_thread(gate.touch)

        status = await wait_for(lambda: _succeeded_at_p1(fed, wid), 40,
                                "the successor to end the workflow")
        assert {"coord", doomed} & set(fed.procs) == set()  # both still dead
        assert (status.coordinator, status.epoch) == ("p1", 1), status
        assert {k: v[:2] for k, v in step_states(status).items()} == {
            "first": ("SUCCEEDED", "p1"), "second": ("SUCCEEDED", fourth)}
        # The fourth agent took p1's PREPARE of epoch 1's own round range.
        rounds = fed.rows(fourth, "SELECT round, coordinator FROM workflows WHERE id=?",
                          (wid,))
        assert len(rounds) == 1 and rounds[0][1] == "p1" and rounds[0][0] >= 1 << 20, rounds
