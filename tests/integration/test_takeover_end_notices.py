"""A claimant that learns the old coordinator's end tells it on, on real agents.

Five agents: `coord` coordinates and runs nothing; p1, p2, p3 and p4 each run one
long step (builtin sleep). Under Paxos Commit the electorate is the committed round's
acceptors, here all five (the coordinator and four participants, `max_acceptors` 5):
a claim wins with 3 grants.

The schedule, made deterministic with signals and restarts, never with sleeps:

1. Once every participant holds the COMMIT, p3 and p4 are frozen (SIGSTOP) and p1
   and p2 killed (SIGKILL). They stay frozen until p1 has ended the workflow: a
   claim cannot win while three of the five members cannot answer.
2. The workflow is cancelled at coord: that end is the old coordinator's decision,
   made while no participant can hear it (its end notices are owed, resent until
   answered). Cancelling, not a step's end, is what lets the end be decided while
   p1 and p2 cannot receive it: a step's result would have to come from one of them.
3. coord is frozen, then p1 and p2 restarted. Killed rather than frozen, they hold
   no notice coord sent while they were away (a frozen agent would read on its return
   a request coord had queued on its socket, and might end before it claims). They see
   coord unreachable: p1, the lowest-named live participant, claims epoch 1 after
   `takeover_after_s`; p2 grants it and follows p1 from then on. p1 holds 2 grants of
   3 needed (coord, p3 and p4 are frozen): its claim has not won, and it still follows
   coord (its row's epoch stays 0).
4. coord is resumed. Its owed end notices go out again: p2 refuses the epoch-0 notice
   (it granted epoch 1). p1 learns the same end whichever of three messages comes
   first: coord's end notice, coord's answer to p1's claim (resent meanwhile), or
   coord's acknowledgement of p1's step result (p1's attempt, interrupted by the kill,
   ends on its return and goes to coord, which answers with the workflow's end). Still
   claiming, p1 ends the workflow as the holder of epoch 1 and tells that end to every
   participant. (The third way once ended the workflow at p1 alone, in epoch 0, and
   left p2 RUNNING: Participation.ended now asks Takeovers.end_known too.)
5. coord is then killed for good, p3 and p4 resumed. Every participant ends the
   workflow CANCELLED with coord's reason, its slots released, and answers `status`
   with coordinator p1 in epoch 1: p2, which refused coord's word, and p3 and p4,
   which hear p1's notice (whatever coord sent them before dying is of epoch 0, and
   p1's later epoch is followed whichever comes first).

Only p1 claims: `takeover_after_s` is 1 s at p1 and 30 s at the other participants.
A participant next in line claims in its predecessor's place once that one has let
`takeover_after_s` pass without a claim reaching it; p1's claim is resent with a
backoff of up to 5 s while p2 is down, so with p2's patience as short as p1's, p2
would claim epoch 1 too, and the rivals settle on p1 in epoch 2 (correct, but not
the schedule this test sets up). p3 and p4, resumed once p1 has ended the workflow,
would likewise claim a later epoch and tell the same end in it.

Under classic 2PC (FEDORCH_TEST_COMMIT=2pc) the electorate is the participants and the
original coordinator: the same five, and the same schedule.
"""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import (
    COMMIT,
    TEST_TIMINGS,
    Federation,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

PARTICIPANTS = ("p1", "p2", "p3", "p4")
FROZEN_THROUGHOUT = ("p3", "p4")  # the members whose grants the claim would need
WORK = [{"name": "claim.sleep", "capacity": 1, "executor": {"type": "builtin", "name": "sleep"}}]
# p1 claims one second after it last saw coord; the others wait far longer for p1's
# claim before they would claim in its place (see the module's docstring).
PATIENCE_S = {"coord": 1, "p1": 1, "p2": 30, "p3": 30, "p4": 30}
# The shells: their coordinator makes a cancel's end at once, unheard. The node engine's
# tells it first and makes it only once heard, so a successor finds it (no such schedule):
# tests/unit/core/node/test_cancel.py::test_a_cancel_told_first_is_found_by_a_successor_elected_before_it_was_made.
DOMAINS = {name: {"engine": "shells",
                  "negotiation": {**TEST_TIMINGS["negotiation"], "takeover_after_s": patience},
                  **({"capabilities": WORK} if name in PARTICIPANTS else {})}
           for name, patience in PATIENCE_S.items()}
REASON = "the end coord decided"
SPEC = "name: claimant-takes-an-end\nsteps:\n" + "".join(
    f"  - id: on-{p}\n    capability: claim.sleep\n    params: {{seconds: 3600}}\n"
    f"    constraints: {{domains: [{p}]}}\n" for p in PARTICIPANTS)


def _row(fed: Federation, name: str, wid: str) -> tuple:
    """(state, epoch, coordinator, granted_epoch, granted_to) of the workflow at `name`."""
    rows = fed.rows(name, "SELECT state, epoch, coordinator, granted_epoch, granted_to"
                          " FROM workflows WHERE id=?", (wid,))
    return rows[0] if rows else ()


async def _log_says(fed: Federation, name: str, text: str) -> bool:
    path = fed.workdir / f"{name}.log"
    return text in await asyncio.to_thread(path.read_text, errors="replace")


async def test_a_claimant_that_learns_the_old_coordinators_end_tells_it_on(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("coord", SPEC)

        async def running_everywhere():
            for name in PARTICIPANTS:
                s = await fed.local_status(name, wid)
                if s is None or step_states(s)[f"on-{name}"][0] != "RUNNING":
                    return False
            return True

        await wait_for(running_everywhere, 30, "every participant to run its step")
        if COMMIT == "paxos":  # 2PC: no acceptors; the same five are its electorate
            acceptors = json.loads(fed.rows(
                "coord", "SELECT acceptors FROM workflows WHERE id=?", (wid,))[0][0])
            assert sorted(acceptors) == ["coord", *PARTICIPANTS], acceptors

        # 1-2: p3, p4 frozen, p1, p2 dead; coord decides the end alone.
        for name in FROZEN_THROUGHOUT:
            fed.signal(name, signal.SIGSTOP)
        fed.kill("p1")
        fed.kill("p2")
        await fed.close_channels()
        reply = await fed.client("coord").Cancel(
            client_pb2.CancelRequest(id=wid, reason=REASON), timeout=10)
        assert state_name(reply.status) == "CANCELLED", reply.status
        decided = reply.status.reason
        assert REASON in decided, decided

        # 3: coord frozen; p1, p2 back, p1 claims epoch 1 and p2 grants it.
        fed.signal("coord", signal.SIGSTOP)
        await fed.start("p1")
        await fed.start("p2")

        async def claimed_and_granted():
            return _row(fed, "p2", wid)[1:] == (1, "p1", 1, "p1") \
                and _row(fed, "p1", wid) == ("RUNNING", 0, "coord", 1, "p1")

        await wait_for(claimed_and_granted, 60, "p1 to claim epoch 1 and p2 to grant it")

        # 4: coord back: its end reaches the claimant, which tells it on in epoch 1.
        fed.signal("coord", signal.SIGCONT)

        async def p1_ended():
            s = await fed.local_status("p1", wid)
            return s if s is not None and state_name(s) == "CANCELLED" else None

        ended_at_p1 = await wait_for(p1_ended, 60, "p1 to take coord's end")
        assert (ended_at_p1.coordinator, ended_at_p1.epoch) == ("p1", 1), ended_at_p1
        assert ended_at_p1.reason == decided, ended_at_p1
        assert await _log_says(fed, "p1", "ended before our claim of epoch 1 won (")
        assert await _log_says(fed, "p1", "says CANCELLED)")
        # p1 never acted: it took coord's end, and made none of its own.
        assert not await _log_says(fed, "p1", "took over as coordinator")

        async def p2_refused_coords_end():  # coord resends it until answered
            return await _log_says(fed, "p2", "refused cancel from coord (stale_epoch)")

        await wait_for(p2_refused_coords_end, 60, "p2 to refuse coord's epoch-0 end")

        # 5: coord gone for good; the rest hear the end from p1.
        fed.kill("coord")
        await fed.close_channels()
        for name in FROZEN_THROUGHOUT:
            fed.signal(name, signal.SIGCONT)

        async def ended_everywhere_in_epoch_1():
            for name in PARTICIPANTS:
                s = await fed.local_status(name, wid)
                if s is None or (state_name(s), s.coordinator, s.epoch) != (
                        "CANCELLED", "p1", 1):
                    return False
            return True

        await wait_for(ended_everywhere_in_epoch_1, 60,
                       "every participant to end the workflow in epoch 1")
        for name in PARTICIPANTS:
            status = await fed.local_status(name, wid)
            assert status is not None and status.reason == decided, (name, status)
            assert step_states(status)[f"on-{name}"][0] not in ("RUNNING", "PENDING"), status
            assert _row(fed, name, wid)[:3] == ("CANCELLED", 1, "p1"), name

        async def released():
            return all(fed.rows(n, "SELECT * FROM reservations WHERE workflow_id=?",
                                (wid,)) == [] for n in PARTICIPANTS)

        await wait_for(released, 30, "every participant to release its slots")
