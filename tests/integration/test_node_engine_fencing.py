"""Self-fencing on real `engine: node` agents: a participant cut off stops its own step.

Three node-engine agents: coord coordinates a workflow whose first step, a long nap
(tests/integration/steps/nap.py: `sleep SECONDS`, found by its command line), runs at
p1, and whose second runs at p2 after it. Once the nap runs, coord and p2 are paused
with SIGSTOP, the simplest real partition on 127.0.0.1: a paused process answers
nothing, so p1 hears nobody of the workflow. p1's membership declares both DEAD (its
view reaches the Node as `MemberViews`), and once the Node has heard none of them for
the step lease it stops the step itself: the nap's process is gone (checked by pid)
and the step is FAILED at p1 with the rule's "fenced" reason. p1 cannot take the
workflow over meanwhile: it is one of three electors (once they are back, it may, and
the workflow's end then comes from it). After SIGCONT the workflow ends FAILED
everywhere, nothing left running.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import urllib.request

import pytest

from tests.integration.federation import (
    TERMINAL,
    TEST_TIMINGS,
    naps_running,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_orphan_steps import NAPS
from tests.integration.test_self_fencing import LEASE_S
from tests.integration.test_takeover import WORK

pytestmark = pytest.mark.integration

NODE = {"engine": "node", "gossip": {"profile": "local"},
        "negotiation": {**TEST_TIMINGS["negotiation"], "commit": "paxos",
                        "step_lease_s": LEASE_S}}
DOMAINS = {
    "coord": NODE,
    "p1": {**NODE, "capabilities": NAPS},
    "p2": {**NODE, "capabilities": WORK},
}
PAUSED = ("coord", "p2")


def _fenced_total(fed, name: str) -> float:
    """`name`'s attempts stopped by self-fencing, from its Prometheus endpoint."""
    url = f"http://127.0.0.1:{fed.metrics_ports[name]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('fedorch_node_steps_self_fenced_total{outcome="stopped"}'))


def _alive(pid: int) -> bool:
    """Is `pid` a live process (not gone, not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_a_cut_off_node_engine_participant_stops_its_step(tmp_path):
    gate = tmp_path / "gate-open"
    gate.touch()
    seconds = f"{random.randint(100000, 999999)}.{random.randint(100000, 999999)}"
    spec = f"""
name: fenced
steps:
  - id: nap
    capability: test.nap
    params: {{seconds: "{seconds}"}}
    constraints: {{domains: [p1]}}
  - id: after
    capability: test.gated
    needs: [nap]
    params: {{gate: "{gate}"}}
    constraints: {{domains: [p2]}}
"""
    try:
        async with started_federation(tmp_path, DOMAINS) as fed:
            wid = await fed.submit("coord", spec)
            pids = await wait_for(lambda: asyncio.to_thread(naps_running, seconds), 30,
                                  "the nap to run")
            assert await asyncio.to_thread(_fenced_total, fed, "p1") == 0
            for name in PAUSED:
                fed.signal(name, signal.SIGSTOP)
            try:
                async def nap_gone():
                    return not any(await asyncio.to_thread(lambda: [_alive(p) for p in pids]))

                # DEAD verdicts (a few seconds with the local profile; SWIM's Lifeguard
                # stretches them when p1 itself runs slow, as on a loaded machine: a run
                # beside other suites took over 40 s), their grace, then the lease.
                await wait_for(nap_gone, 90, "p1 to fence its step")

                async def nap_ended():
                    s = await fed.local_status("p1", wid)
                    return s if s is not None and step_states(s)["nap"][0] != "RUNNING" \
                        else None

                status = await wait_for(nap_ended, 10, "p1 to end its fenced step")
                state, domain, _ = step_states(status)["nap"]
                assert (state, domain) == ("FAILED", "p1"), status
                error = next(s.error for s in status.steps if s.id == "nap")
                assert error.startswith("fenced: lost contact with coord, p2"), error
                assert await asyncio.to_thread(_fenced_total, fed, "p1") == 1
            finally:
                for name in PAUSED:
                    fed.signal(name, signal.SIGCONT)

            async def settled():
                for name in ("coord", "p1", "p2"):
                    s = await fed.local_status(name, wid)
                    if s is None or state_name(s) not in TERMINAL:
                        return None
                return s

            status = await wait_for(settled, 60, "the workflow to end everywhere")
            assert state_name(status) == "FAILED", status
            at_p1 = await fed.local_status("p1", wid)
            assert step_states(at_p1)["nap"][0] == "FAILED", at_p1
            assert not await asyncio.to_thread(naps_running, seconds)
    finally:
        for pid in naps_running(seconds):  # leftovers of a failed run
            os.kill(pid, signal.SIGKILL)
