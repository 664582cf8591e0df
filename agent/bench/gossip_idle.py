"""Idle cost of an agent: CPU per second in a converged, idle N-domain federation.

N real agent processes on 127.0.0.1 (benchmark configs: RealNet). Measured per process
from /proc/<pid>/stat (user + system time of the agent process, its threads included):
the CPU each agent spent from its start until it first served (imports, key loading,
store opening: what 50 agents starting at once pay together), then the CPU per second
of wall time over a window once every agent sees every other ALIVE and nothing else
happens. The host's load average is reported beside the numbers: on a shared machine
they mean little without it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fedorch.bench.realnet import RealNet, poll_until
from prometheus_client.parser import text_string_to_metric_families

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MEMBER_ALIVE = 1  # client_pb2.MEMBER_STATE_ALIVE


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def load_average() -> float:
    return os.getloadavg()[0]


async def run_gossip_idle_bench(domains: int = 10, window_s: float = 10.0,
                                settle_s: float = 3.0, workdir: Path | None = None,
                                extra: dict | None = None, profile: Path | None = None) -> dict:
    """``profile``: also record one agent (the second) with py-spy over the window, as
    collapsed stacks in that file (py-spy must be installed; it is no dependency)."""
    with tempfile.TemporaryDirectory(prefix="fedorch-bench-") as tmp:
        net = RealNet(Path(workdir or tmp), [f"d{i:02d}" for i in range(domains)],
                      extra=dict(extra or {}))
        net.write_configs()
        try:
            load_before = load_average()
            started = time.monotonic()
            await net.start(deadline_s=60 + 3 * domains)
            served_s = time.monotonic() - started
            # CPU spent until serving (wait_healthy returns once the last one serves:
            # the earlier ones have idled a little meanwhile, so this is an upper bound).
            start_cpu = [cpu_seconds(p.pid) for p in net.procs.values()]

            async def converged() -> bool:
                views = await net.views()
                return all(sum(m.state == MEMBER_ALIVE for m in ms) == domains
                           for ms in views.values())

            converge_s = await poll_until(converged, 60 + 2 * domains, interval_s=0.5)
            if converge_s is None:
                raise RuntimeError(f"{domains} agents did not converge")
            await asyncio.sleep(settle_s)  # let the joins' gossip die down (a window)
            pids = {n: p.pid for n, p in net.procs.items()}
            watched = net.names[1]
            counters_before = _counters(net, watched)
            before = {n: cpu_seconds(pid) for n, pid in pids.items()}
            t0 = time.monotonic()
            spy = await _start_profiler(pids[net.names[1]], window_s, profile) if profile else None
            await asyncio.sleep(window_s)  # the measurement window, not synchronisation
            if spy is not None:
                await spy.wait()
            elapsed = time.monotonic() - t0
            after = {n: cpu_seconds(pid) for n, pid in pids.items()}
            counters_after = _counters(net, watched)
            load_during = load_average()
            still = await converged()
        finally:
            await net.close()
            net.stop()
    per_agent = sorted((after[n] - before[n]) / elapsed for n in pids)
    return {
        "domains": domains,
        "window_s": round(elapsed, 1),
        "cpu_per_s_mean": round(statistics.fmean(per_agent), 4),
        "cpu_per_s_max": round(per_agent[-1], 4),
        "cpu_per_s_total": round(sum(per_agent), 3),
        "start_cpu_s_mean": round(statistics.fmean(start_cpu), 3),
        "start_cpu_s_max": round(max(start_cpu), 3),
        "served_s": round(served_s, 1),
        "converged_after_served_s": round(converge_s, 1),
        "still_converged": still,
        # One agent's own counters over the window, per second: what it did while idle.
        "one_agent_per_s": {k: round((counters_after[k] - counters_before.get(k, 0)) / elapsed, 2)
                            for k in sorted(counters_after)},
        "load_before": round(load_before, 1),
        "load_during": round(load_during, 1),
    }


def _counters(net: RealNet, name: str) -> dict[str, float]:
    """One agent's loop wakeups (by loop), SWIM datagrams, probes and push-pulls so far."""
    url = f"http://{net.metrics_address(name)}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fedorch_loop_wakeups_total":
                counts[f"wakeups {sample.labels['loop']}"] = sample.value
            elif sample.name in ("fedorch_swim_messages_sent_total",
                                 "fedorch_swim_probes_sent_total",
                                 "fedorch_swim_push_pulls_total"):
                counts[sample.name.removeprefix("fedorch_").removesuffix("_total")] = \
                    sample.value
    return counts


async def _start_profiler(pid: int, seconds: float, out: Path) -> asyncio.subprocess.Process:
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if exe is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    return await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
        "--format", "raw", "--output", str(out), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
