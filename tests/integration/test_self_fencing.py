"""Self-fencing on real agents: a domain cut off from its workflow stops its step.

p1 runs a long step (tests/integration/steps/nap.py: `sleep SECONDS`, found by its
command line). Every other agent of the workflow (its coordinator and the other
participant) is paused with SIGSTOP, the simplest real partition on 127.0.0.1: a
paused process answers nothing. p1 declares them DEAD, and once it has heard none of
them for its step lease it kills the step itself: the nap's processes are gone and the
step is FAILED at p1 with a "fenced" reason. After SIGCONT everything settles: the
workflow is terminal everywhere and nothing is left running. The agent outside the
workflow stays up throughout: being in touch with it keeps nothing running.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import urllib.request

import pytest

from tests.integration.durable_facts import runs_node_engine
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
from tests.integration.test_takeover import WORK

pytestmark = pytest.mark.integration

LEASE_S = 3
NEGOTIATION = {**TEST_TIMINGS["negotiation"], "step_lease_s": LEASE_S}
DOMAINS = {
    "coord": {"negotiation": NEGOTIATION},
    "p1": {"negotiation": NEGOTIATION, "capabilities": NAPS},
    "p2": {"negotiation": NEGOTIATION, "capabilities": WORK},
    "outside": {"negotiation": NEGOTIATION},
}
PAUSED = ("coord", "p2")


def _fenced_total(fed, name: str, metric: str) -> float:
    """`name`'s steps stopped by self-fencing, from its Prometheus endpoint (the samples
    whose line starts with `metric`)."""
    url = f"http://127.0.0.1:{fed.metrics_ports[name]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(metric))


# Where each engine counts the steps it stopped by self-fencing.
FENCED_METRIC = {False: "fedorch_steps_self_fenced_total",
                 True: 'fedorch_node_steps_self_fenced_total{outcome="stopped"}'}


async def cut_off_then_settled(tmp_path, domains: dict[str, dict],
                               metric: str | None = None) -> None:
    """The scenario of this file's header on `domains` (either engine): p1's nap is
    stopped by p1 itself while coord and p2 are paused, FAILED with the fenced reason,
    counted by `metric` (None: the counter of the engine p1 runs); after they resume
    the workflow ends FAILED everywhere."""
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
        async with started_federation(tmp_path, domains) as fed:
            wid = await fed.submit("coord", spec)
            metric = metric or FENCED_METRIC[runs_node_engine(fed, "p1")]
            await wait_for(lambda: asyncio.to_thread(naps_running, seconds), 30, "the nap to run")
            assert await asyncio.to_thread(_fenced_total, fed, "p1", metric) == 0
            for name in PAUSED:
                fed.signal(name, signal.SIGSTOP)
            try:
                async def nap_stopped():
                    return not await asyncio.to_thread(naps_running, seconds)

                # DEAD verdicts (~6 s with the local profile; SWIM's Lifeguard stretches
                # them when p1 itself runs slow, as on a loaded machine: a run beside
                # other suites took over 40 s), their grace, then the lease.
                await wait_for(nap_stopped, 90, "p1 to fence its step")

                async def nap_ended():  # its end is written after its processes are gone
                    s = await fed.local_status("p1", wid)
                    return s if s is not None and step_states(s)["nap"][0] != "RUNNING" \
                        else None

                status = await wait_for(nap_ended, 10, "p1 to end its fenced step")
                state, domain, _ = step_states(status)["nap"]
                assert (state, domain) == ("FAILED", "p1"), status
                error = next(s.error for s in status.steps if s.id == "nap")
                assert error.startswith("fenced: lost contact with coord, p2"), error
                assert await asyncio.to_thread(_fenced_total, fed, "p1", metric) == 1
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


async def test_a_cut_off_domain_stops_its_step_and_everything_settles_after(tmp_path):
    await cut_off_then_settled(tmp_path, DOMAINS)
