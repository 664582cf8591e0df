"""A successor coordinator places a lost step again only on a fresh majority of its
electorate, on real agents (Paxos Commit).

Four agents: `coord` takes the submission and runs nothing; `p1` runs `first` (a step
waiting at a gate file the test opens); `second` needs `first` and may run on `p2` or
`p3`. The committed round's acceptors are coord, p1 and the domain of `second` (three:
`min_acceptors`). coord is SIGKILLed after the commit: p1 (the lowest live
participant) takes the workflow over in epoch 1, with the grant of the domain of
`second`. That domain is then SIGKILLed too, before `second` could start (its input
waits at the gate). Before a re-placement round p1 asks its electorate again, and only
grants given now count (agent/core/workflow/round_mandate.py):

- coord never restarted: nobody but p1 answers (from p1, dead and cut off look the
  same), so `second` is not placed again: it FAILS naming the lost domain, and the
  workflow ends FAILED; the fourth agent never hears of it. The node engine makes that
  end only once enough of the electorate holds it (core/node/domain_loss.py): with two
  of its three electors dead it waits, RUNNING, until the domain of `second` is back.
- coord restarted before the loss (it learns epoch 1 from p1's claim and follows):
  it grants epoch 1 again, a fresh majority (p1, coord), and p1 runs the round, whose
  PREPARE carries its epoch certificate; the fourth agent, which never saw the
  workflow, checks it and votes. The gate opens and the workflow ends SUCCEEDED with
  `second` on the fourth agent.

Bounds are behaviour bounds (DEAD comes after ~4 s with the `local` gossip profile),
not speed measurements.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.durable_facts import (
    committed_round,
    electorate,
    epoch_row,
    knows_workflow,
)
from tests.integration.federation import (
    COMMIT,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_takeover import TAKEOVER, WORK

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(COMMIT != "paxos",
                                 reason="asserts the electorate as the Paxos Commit round's acceptors")]

DOMAINS = {
    "coord": {**TAKEOVER},  # takes the submission; runs nothing
    "p1": {**TAKEOVER, "capabilities": WORK},
    "p2": {**TAKEOVER, "capabilities": WORK},
    "p3": {**TAKEOVER, "capabilities": WORK},
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


async def _ended_at_p1(fed, wid: str):
    s = await fed.local_status("p1", wid)
    return s if s is not None and state_name(s) in ("SUCCEEDED", "FAILED") else None


async def test_a_successor_whose_electors_died_fails_the_lost_step_naming_its_domain(tmp_path):
    gate = tmp_path / "gate-open"
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("coord", _spec(gate))

        doomed = await wait_for(lambda: _second_committed_on(fed, wid), 30,
                                "both participants to hold the COMMIT")
        fourth = ({"p2", "p3"} - {doomed}).pop()
        acceptors = electorate(fed, "p1", wid)
        assert sorted(acceptors) == sorted(["coord", "p1", doomed]), acceptors

        coord = fed.procs["coord"].popen
        fed.kill("coord")  # SIGKILL; never restarted in this test
        await fed.close_channels()

        await wait_for(lambda: _taken_over_by_p1(fed, wid), 30, "p1 to take the workflow over in epoch 1")
        # The grant of the domain of `second` is in: it follows p1 (durably).
        assert epoch_row(fed, doomed, wid)[2:] == (1, "p1")

        fed.kill(doomed)  # `second` has not started: its input waits at the gate
        await fed.close_channels()

        # The successor holds the verdict's end until enough of the electorate holds it
        # to meet every majority (coord and doomed, two of three, are dead), the step
        # shown PENDING meanwhile: an end that a later successor elected by those two,
        # back, could contradict. It is made once doomed is back and acknowledges it.
        await wait_for(lambda: _end_owed_at_p1(fed), 40,
                       "p1 to fail second and tell the end, with no fresh majority")
        held = await fed.local_status("p1", wid)
        assert state_name(held) == "RUNNING", held
        await asyncio.to_thread(gate.touch)
        await fed.start(doomed)

        status = await wait_for(lambda: _ended_at_p1(fed, wid), 40,
                                "the successor to end the workflow")
        assert coord.poll() is not None and "coord" not in fed.procs  # still dead
        assert state_name(status) == "FAILED", status
        assert (status.coordinator, status.epoch) == ("p1", 1), status
        assert step_states(status)["second"][0] == "FAILED", step_states(status)
        second = next(x for x in status.steps if x.id == "second")
        assert second.error.startswith(
            f"domain {doomed} was lost (DEAD) before the step started; could not place"
            f" the step again: no majority of the takeover electorate"
            f" ({', '.join(sorted(['coord', 'p1', doomed]))}) granted coordinator epoch 1"
            " again (granted: p1;"), second.error
        assert f"domain {doomed} was lost" in status.reason, status.reason
        # Nothing was placed anywhere: the fourth agent never heard of the workflow.
        assert not knows_workflow(fed, fourth, wid)


async def _end_owed_at_p1(fed) -> bool:
    return await asyncio.to_thread(fed.metric, "p1", "fedorch_end_notices_owed") >= 1


async def _coord_follows_p1(fed, wid: str) -> bool:
    return epoch_row(fed, "coord", wid)[2:] == (1, "p1")


async def test_a_successor_places_a_lost_step_again_on_a_fresh_majority(tmp_path):
    gate = tmp_path / "gate-open"
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("coord", _spec(gate))

        doomed = await wait_for(lambda: _second_committed_on(fed, wid), 30,
                                "both participants to hold the COMMIT")
        fourth = ({"p2", "p3"} - {doomed}).pop()
        fed.kill("coord")
        await fed.close_channels()
        await wait_for(lambda: _taken_over_by_p1(fed, wid), 30, "p1 to take the workflow over in epoch 1")
        assert not knows_workflow(fed, fourth, wid)

        await fed.start("coord")  # back: p1's claim, resent until answered, reaches it
        await wait_for(lambda: _coord_follows_p1(fed, wid), 40,
                       "the restarted coord to grant p1 epoch 1 and follow it")

        fed.kill(doomed)  # `second` has not started: its input waits at the gate
        await fed.close_channels()

        await wait_for(lambda: _second_on(fed, wid, fourth), 40,
                       f"p1 to place second again on {fourth}")
        await asyncio.to_thread(gate.touch)

        status = await wait_for(lambda: _succeeded_at_p1(fed, wid), 40,
                                "the successor to end the workflow")
        assert (status.coordinator, status.epoch) == ("p1", 1), status
        assert {k: v[:2] for k, v in step_states(status).items()} == {
            "first": ("SUCCEEDED", "p1"), "second": ("SUCCEEDED", fourth)}
        second = next(s for s in status.steps if s.id == "second")
        assert list(second.replaced_from) == [doomed]

        for name in ("p1", fourth, "coord"):  # status from every surviving agent
            answer = await fed.status(name, wid)
            assert state_name(answer) == "SUCCEEDED", (name, answer)
            assert (answer.coordinator, answer.epoch) == ("p1", 1), (name, answer)
        # The fourth agent took the PREPARE of epoch 1's own round range, from p1.
        round_, coordinator = committed_round(fed, fourth, wid)
        assert coordinator == "p1" and round_ >= 1 << 20, (round_, coordinator)
