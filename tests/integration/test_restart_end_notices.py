"""End notices after a takeover survive the restart of the successor that owes them, on
real agents; an original coordinator's need no record.

The original coordinator is down when its successor ends the workflow; the successor
is then SIGKILLed and started again, and only after that does the original come back:
it learns the end from the notice the restarted successor sends again (on disk since
the write of the end), and the owed row is gone once it answered. The contrast: a
participant frozen (SIGSTOP) while its original coordinator cancels the workflow is
owed nothing on disk; it asks that coordinator, restarted meanwhile, which answers
from its record.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.durable_facts import end_notices_owed, held_slots
from tests.integration.federation import TERMINAL, started_federation, state_name, wait_for
from tests.integration.test_takeover import DOMAINS, WORK, _taken_over

pytestmark = pytest.mark.integration


_owed = end_notices_owed


async def test_a_restarted_successor_tells_the_returning_coordinator_the_end(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await _taken_over(fed, tmp_path / "gate-open")  # coord dead, p1 ended it

        async def owed_to_coord_only():  # p2 had the end in the answer to its result
            return _owed(fed, "p1", wid) == ["coord"]

        await wait_for(owed_to_coord_only, 10, "p1 to owe the end to coord alone")
        fed.kill("p1")  # its delivery to coord, in memory, goes with it
        await fed.close_channels()
        await fed.start("p1")
        assert _owed(fed, "p1", wid) == ["coord"]
        gauge = await asyncio.to_thread(fed.metric, "p1", "fedorch_end_notices_owed")
        assert gauge == 1  # being sent again, by the restarted agent
        await fed.start("coord")

        async def coord_follows():
            s = await fed.local_status("coord", wid)
            return s if s is not None and (s.coordinator, s.epoch) == ("p1", 1) \
                and state_name(s) in TERMINAL else None

        status = await wait_for(coord_follows, 30, "the old coordinator to learn the end")
        assert state_name(status) == "SUCCEEDED", status

        async def answered():
            return _owed(fed, "p1", wid) == []

        await wait_for(answered, 30, "coord's answer to the resent notice")


CANCEL_DOMAINS = {
    "coord": {},
    "p1": {"capabilities": WORK},
    "p2": {"capabilities": WORK},
}


def _two_gated(gate) -> str:
    return f"""
name: cancelled
steps:
  - id: first
    capability: test.gated
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p1]}}
  - id: other
    capability: test.gated
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p2]}}
"""


async def test_a_frozen_participant_learns_the_cancel_from_its_restarted_coordinator(tmp_path):
    """Epoch 0: the original coordinator keeps no notice on disk; the participant that
    missed the end asks it, and the restarted coordinator answers from its record."""
    async with started_federation(tmp_path, CANCEL_DOMAINS) as fed:
        wid = await fed.submit("coord", _two_gated(tmp_path / "never-opened"))

        async def running_at_p2():
            s = await fed.local_status("p2", wid)
            return s is not None and state_name(s) == "RUNNING"

        await wait_for(running_at_p2, 30, "p2 to hold the COMMIT")
        fed.signal("p2", signal.SIGSTOP)
        await fed.client("coord").Cancel(client_pb2.CancelRequest(id=wid, reason="enough"),
                                         timeout=10)
        assert _owed(fed, "coord", wid) == []  # the end is on disk; no notice row
        fed.kill("coord")
        await fed.close_channels()
        await fed.start("coord")
        fed.signal("p2", signal.SIGCONT)

        async def cancelled_and_released():
            s = await fed.local_status("p2", wid)
            return s is not None and state_name(s) == "CANCELLED" \
                and held_slots(fed, "p2", wid) == []

        await wait_for(cancelled_and_released, 30, "p2 to learn the cancel and release")
