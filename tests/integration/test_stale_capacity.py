"""Gossiped free capacity is a hint: the domain's vote decides (real agents).

`holder` republishes its free capacity at most once an hour here, so the coordinator's
record of it stays "full" long after the slot is free again. Placement must still ask
`holder`; its PREPARE vote, which counts its real free slots, has the last word.
"""

from __future__ import annotations

import asyncio

import pytest
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import started_federation, state_name, wait_for

pytestmark = pytest.mark.integration

DOMAINS = {
    "coord": {},
    "holder": {
        "capabilities": [{"name": "test.sleep", "capacity": 1,
                          "executor": {"type": "builtin", "name": "sleep"}}],
        "gossip": {"profile": "local", "publish_interval_s": 3600},
    },
}


def _sleep(seconds: float) -> str:
    return f"""
name: nap
steps:
  - id: nap
    capability: test.sleep
    params: {{seconds: {seconds}}}
"""


async def _gossiped_free(fed, at: str) -> int | None:
    """`holder`'s free test.sleep slots in `at`'s view (None before it has a record)."""
    for member in await fed.members(at):
        if member.domain == "holder":
            return next((c.available for c in member.capabilities if c.name == "test.sleep"),
                        None)
    return None


async def test_a_domain_gossiped_full_is_still_asked_and_its_vote_decides(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        # Take holder's one slot, and make holder publish that (SIGHUP publishes at once).
        busy = await fed.submit("coord", _sleep(60))
        await fed.wait_state("coord", busy, states={"RUNNING"})
        fed.sighup("holder")

        async def coord_sees_holder_full():
            return await _gossiped_free(fed, "coord") == 0

        await wait_for(coord_sees_holder_full, 20, "coord to see holder's slot taken")

        # Really full: holder is asked, votes NO, and the refusal is its own reason.
        refused = await fed.submit("coord", _sleep(0))
        status = await fed.wait_state("coord", refused)
        assert state_name(status) == "ABORTED", status
        assert [(r.domain, list(r.steps)) for r in status.refusals] == [("holder", ["nap"])]
        assert "test.sleep has 0 of 1 slots free" in status.refusals[0].reason, status

        # Free the slot. holder will not republish that for an hour.
        await fed.client("coord").Cancel(client_pb2.CancelRequest(id=busy), timeout=10)
        await fed.wait_state("coord", busy, states={"CANCELLED"})

        async def holder_slot_free():
            return await asyncio.to_thread(fed.metric, "holder", "fedorch_reserved_slots",
                                           capability="test.sleep") == 0

        await wait_for(holder_slot_free, 20, "holder to release the cancelled step's slot")
        assert await _gossiped_free(fed, "coord") == 0  # the record is stale

        # Only a record says "full": holder is asked, votes YES, and the step runs.
        taken = await fed.submit("coord", _sleep(0))
        status = await fed.wait_state("coord", taken)
        assert state_name(status) == "SUCCEEDED", status
        assert status.rounds == 1 and not status.refusals, status
