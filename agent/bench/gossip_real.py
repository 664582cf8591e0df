"""Gossip benchmark, real part: N agent processes on 127.0.0.1.

Measures, on one federation: seconds until every agent holds a capability one
agent newly published (config edit + SIGHUP); seconds until every other agent
marks a SIGKILLed agent DEAD; gossip bytes per second per agent at rest (from
each agent's own metrics); and DEAD verdicts about agents that were alive
(false DEAD), checked on every poll for the whole run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import yaml
from fedorch.bench.realnet import RealNet, poll_until

FRESH = "bench.fresh"


def _swim_bytes_sent(net: RealNet, name: str) -> float:
    """Membership bytes an agent put on the wire: its requests and its replies."""
    return net.metric(name, "fedorch_peer_bytes_total", rpc="Swim", direction="out")


async def run_real_gossip_bench(agents: int = 30, rest_s: float = 10.0,
                                workdir: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="fedorch-bench-") as tmp:
        net = RealNet(Path(workdir or tmp), [f"d{i:02d}" for i in range(agents)])
        net.write_configs()
        false_dead: set[tuple[str, str]] = set()
        killed: set[str] = set()

        async def all_see(check) -> bool:
            views = await net.views()
            for observer, members in views.items():
                for m in members:
                    if m.state == 3 and m.domain not in killed:  # MEMBER_STATE_DEAD
                        false_dead.add((observer, m.domain))
            return all(members and check(members) for members in views.values())

        try:
            await net.start()
            converged = await poll_until(
                lambda: all_see(lambda ms: sum(m.state == 1 for m in ms) == agents), 120)
            if converged is None:
                raise RuntimeError("the federation did not converge within 120 s")
            # At rest: gossip bytes sent per agent per second, from each agent's counter.
            before = {n: _swim_bytes_sent(net, n) for n in net.names}
            t0 = time.monotonic()
            await asyncio.sleep(rest_s)  # a measurement window, not synchronisation
            elapsed = time.monotonic() - t0
            after = {n: _swim_bytes_sent(net, n) for n in net.names}
            bytes_per_s = sum(after[n] - before[n] for n in net.names) / elapsed / agents
            # Dissemination of a newly published capability.
            publisher = net.names[0]
            config = yaml.safe_load(net.configs[publisher].read_text())
            config["capabilities"].append(
                {"name": FRESH, "capacity": 1, "executor": {"type": "builtin", "name": "echo"}})
            net.configs[publisher].write_text(yaml.safe_dump(config, sort_keys=False))
            net.sighup(publisher)
            dissemination = await poll_until(lambda: all_see(
                lambda ms: any(m.domain == publisher and any(c.name == FRESH
                                                             for c in m.capabilities)
                               for m in ms)), 60, interval_s=0.05)
            # Detection of a SIGKILLed agent.
            victim = net.names[-1]
            net.kill(victim)
            killed.add(victim)
            detection = await poll_until(lambda: all_see(
                lambda ms: any(m.domain == victim and m.state == 3 for m in ms)), 120,
                interval_s=0.05)
        finally:
            await net.close()
            net.stop()
    return {
        "agents": agents,
        "dissemination_s": round(dissemination, 3) if dissemination is not None else None,
        "detection_s": round(detection, 3) if detection is not None else None,
        "bytes_per_s_per_agent": round(bytes_per_s, 1),
        "false_dead": len(false_dead),
    }
