"""Watch and cancel reach a workflow's current coordinator, from any agent.

The coordinator is SIGKILLed once every participant holds the COMMIT and is never
restarted; p1 (the lowest live participant) takes over in epoch 1. `fedorch watch`
and `fedorch cancel`, run as an operator would against the agent outside the
workflow, must reach p1: the watch started before the kill switches to the
successor and ends SUCCEEDED naming it; the cancel ends the workflow CANCELLED at
the successor, whose end notice stops the step process still running at p2.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys

import pytest

from tests.integration.federation import (
    Federation,
    naps_running,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_orphan_steps import NAPS
from tests.integration.test_takeover import TAKEOVER, WORK

pytestmark = pytest.mark.integration

DOMAINS = {  # takeover after 3 s of coord not seen ALIVE (test_takeover.py)
    "coord": {**TAKEOVER},  # takes the submission; runs nothing
    "p1": {**TAKEOVER, "capabilities": WORK},
    "p2": {**TAKEOVER, "capabilities": [*WORK, *NAPS]},
    "outside": {**TAKEOVER},  # no part in the workflow
}
CLI_DEADLINE_S = 90


async def _cli(fed: Federation, *args: str) -> tuple[int, str, str]:
    """Run `fedorch ARGS --peer outside` as an operator would; stopped by its pid if it
    outlives its deadline."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fedorch.cli.main", *args, "--peer", fed.address("outside"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "FEDORCH_IDENTITY"})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_DEADLINE_S)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    return proc.returncode, out.decode(), err.decode()


async def _kill_coordinator_once_committed(fed: Federation, wid: str,
                                           participants=("p1", "p2")) -> None:
    async def committed_everywhere():
        for name in participants:
            s = await fed.local_status(name, wid)
            if s is None or state_name(s) != "RUNNING":
                return False
        return True

    await wait_for(committed_everywhere, 30, "the participants to hold the COMMIT")
    fed.kill("coord")  # SIGKILL, reaped; never restarted
    await fed.close_channels()


async def test_watch_from_outside_follows_the_successor_to_the_end(tmp_path):
    gate = tmp_path / "gate-open"
    spec = f"""
name: watched
steps:
  - id: first
    capability: test.gated
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p1]}}
  - id: second
    capability: test.gated
    needs: [first]
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p2]}}
"""
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("coord", spec)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fedorch.cli.main", "watch", wid, "--json",
            "--peer", fed.address("outside"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k != "FEDORCH_IDENTITY"})
        try:
            # Its first status printed, the watch's stream is being opened: through
            # outside, to coord (still the coordinator).
            first = await asyncio.wait_for(proc.stdout.readline(), CLI_DEADLINE_S)
            await _kill_coordinator_once_committed(fed, wid)
            await asyncio.to_thread(gate.touch)
            out, err = await asyncio.wait_for(proc.communicate(), CLI_DEADLINE_S)
        finally:
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
        lines = [json.loads(line) for line in [first, *out.splitlines()] if line.strip()]
        assert proc.returncode == 0, (proc.returncode, out, err)
        # The watch may start before the admission ends (the submit answers at once).
        assert lines[0]["state"] in ("PENDING", "NEGOTIATING", "RUNNING"), lines[0]
        assert lines[0]["epoch"] == 0, lines[0]
        final = lines[-1]
        assert final["state"] == "SUCCEEDED", final
        assert (final["coordinator"], final["epoch"]) == ("p1", 1), final


async def test_cancel_from_outside_is_done_by_the_successor(tmp_path):
    gate = tmp_path / "gate-open"
    gate.touch()  # the short step ends at once; the nap runs until stopped
    seconds = f"{random.randint(100000, 999999)}.{random.randint(100000, 999999)}"
    spec = f"""
name: cancelled
steps:
  - id: quick
    capability: test.gated
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p1]}}
  - id: nap
    capability: test.nap
    params: {{seconds: "{seconds}"}}
    constraints: {{domains: [p2]}}
"""
    try:
        async with started_federation(tmp_path, DOMAINS) as fed:
            wid = await fed.submit("coord", spec)
            await wait_for(lambda: asyncio.to_thread(naps_running, seconds), 30, "the nap to run")
            await _kill_coordinator_once_committed(fed, wid)

            async def taken_over():
                s = await fed.status("outside", wid)
                return s if (s.coordinator, s.epoch) == ("p1", 1) else None

            await wait_for(taken_over, 30, "p1 to take the workflow over")
            code, out, err = await _cli(fed, "cancel", wid, "--json", "--reason", "enough")
            assert code == 0, (code, out, err)
            reply = json.loads(out)
            assert reply["state"] == "CANCELLED", reply
            assert (reply["coordinator"], reply["epoch"]) == ("p1", 1), reply

            async def nap_stopped():
                return not await asyncio.to_thread(naps_running, seconds)

            await wait_for(nap_stopped, 20, "the nap step's processes to be stopped")

            async def p2_cancelled():
                s = await fed.local_status("p2", wid)
                return s if s is not None and state_name(s) == "CANCELLED" else None

            status = await wait_for(p2_cancelled, 20, "p2 to learn the cancel")
            assert step_states(status)["nap"][0] == "CANCELLED", status
            # Asked through p2, the status is the successor's, with the cancel's reason.
            answer = await fed.status("p2", wid)
            assert (answer.coordinator, answer.epoch) == ("p1", 1), answer
            assert "enough" in answer.reason, answer
    finally:
        for pid in naps_running(seconds):  # leftovers of a failed run
            os.kill(pid, signal.SIGKILL)
