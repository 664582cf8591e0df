"""Fan-out benchmark: what a wide workflow costs each agent, without fifty processes.

`fedorch bench fanout --domains 20 --workflows 10 --rate 1`: N agents on 127.0.0.1
(`fo-01` .. `fo-NN`, one builtin echo capability each, no processes run by steps), and
fan-out workflows like the join-storm-50 scenario's: one step pinned to each domain and
a fan-in (`gather`, needing every step) on the coordinator `fo-01`, submitted to it at
`rate` per second (an open loop) once every agent sees every other ALIVE. One fan-out
first, alone, as a warm-up (connections, caches), not counted.

Printed, over the window from the first submission to the last workflow's end:
- CPU seconds per fan-out at the coordinator and at the participants (mean and most),
  from /proc/PID/stat, with the idle federation's own cost (gossip, timers: measured
  over a quiet window before) taken off, so that what is left is the fan-outs';
- SQL statements per fan-out at the coordinator and one participant (metrics);
- submission to admission (first seen RUNNING: placed, every vote in, committed) and
  to the end, mean and most, and the end states (reasons of any that did not succeed);
- the host's load average before and after.

With `--profile DIR` the coordinator and the last participant run under
fedorch.bench.profiled_agent, profiled over the same window; fedorch.bench.fanout_counts
turns the profiles into counts per fan-out (messages by kind, signatures, verifications,
tasks, loop callbacks, encodings) and, given two widths, the functions whose calls per
fan-out grow faster than the width.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import grpc
from fedorch.bench.agent_readings import process_cpu_s
from fedorch.bench.realnet import RealNet
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2
from fedorch.runtime.supervisor import agent_command

CAPABILITY = "task"
RUNNING = status_pb2.WORKFLOW_STATE_RUNNING
ALIVE = client_pb2.MEMBER_STATE_ALIVE
IDLE_WINDOW_S = 3.0
CONVERGE_DEADLINE_S = 120.0
WORKFLOW_TIMEOUT_S = 120.0
PROFILE_WRITE_DEADLINE_S = 30.0


def domain_names(n: int) -> list[str]:
    return [f"fo-{i:02d}" for i in range(1, n + 1)]


def fan_out_spec(names: list[str]):
    """One step on each domain, and a fan-in on the first (the coordinator)."""
    steps = [f"  - {{id: t{i:02d}, capability: {CAPABILITY}, constraints: {{domains: [{d}]}}}}"
             for i, d in enumerate(names, 1)]
    needs = ", ".join(f"t{i:02d}" for i in range(1, len(names) + 1))
    steps.append(f"  - {{id: gather, capability: {CAPABILITY}, "
                 f"constraints: {{domains: [{names[0]}]}}, needs: [{needs}]}}")
    return parse_spec_text(f"name: fan-out-{len(names)}\nsteps:\n" + "\n".join(steps),
                           "fan-out")


class FanOutRun:
    """One fan-out's timestamps and end, followed through its SubmitAndWatch stream."""

    def __init__(self) -> None:
        self.submitted = 0.0
        self.admitted: float | None = None
        self.ended: float | None = None
        self.state = ""
        self.reason = ""


async def follow(net: RealNet, coordinator: str, spec, run: FanOutRun) -> None:
    run.submitted = time.monotonic()
    watch = net.client(coordinator).SubmitAndWatch(client_pb2.SubmitAndWatchRequest(
        submit=client_pb2.SubmitRequest(spec=spec), state_changes_only=True),
        timeout=WORKFLOW_TIMEOUT_S)
    try:
        async for status in watch:
            if run.admitted is None and status.state in (RUNNING, *TERMINAL):
                run.admitted = time.monotonic()
            if status.state in TERMINAL:
                run.ended = time.monotonic()
                run.state = status_pb2.WorkflowState.Name(status.state).removeprefix(
                    "WORKFLOW_STATE_")
                run.reason = status.reason
                return
    except grpc.aio.AioRpcError as e:  # shown in the result: one failed call ends no run
        run.state = f"call failed: {e.code().name}"
    finally:
        watch.cancel()


async def converged(net: RealNet, names: list[str]) -> bool:
    """Every agent sees every domain ALIVE with its capability."""
    views = await net.views()
    want = set(names)
    return len(views) == len(names) and all(
        {m.domain for m in members if m.state == ALIVE and m.capabilities} >= want
        for members in views.values())


async def wait_for(predicate, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not await predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} within {deadline_s:g} s")
        await asyncio.sleep(0.5)


def cpu_of(net: RealNet) -> dict[str, float]:
    return {d: process_cpu_s(p.pid) for d, p in net.procs.items()}


def statements_of(net: RealNet, names: list[str]) -> dict[str, float]:
    return {d: net.metric(d, "fedorch_store_statements_total") for d in names}


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": float("nan"), "max": float("nan")}
    return {"mean": round(statistics.fmean(values), 3), "max": round(max(values), 3)}


async def run_fanout_bench(domains: int, workflows: int, rate: float, *,
                           workdir: Path | None = None, profile_dir: Path | None = None,
                           gossip_profile: str = "lan") -> dict:
    """N agents, one warm-up fan-out, then `workflows` fan-outs at `rate` per second."""
    if domains < 2 or workflows < 1 or rate <= 0:
        raise ValueError("at least two domains, one workflow and a positive rate")
    names = domain_names(domains)
    coordinator, participant = names[0], names[-1]
    profiled = {coordinator, participant} if profile_dir is not None else set()
    spec = fan_out_spec(names)
    with tempfile.TemporaryDirectory(prefix="fedorch-fanout-", dir=workdir) as tmp:
        net = RealNet(Path(tmp), names, bodies={d: {"capabilities": [
            {"name": CAPABILITY, "capacity": 4096,
             "executor": {"type": "builtin", "name": "echo"}}]} for d in names},
            extra={"gossip": {"profile": gossip_profile}})
        net.write_configs()
        by_config = {str(net.configs[d]): d for d in names}

        def command(config: Path) -> list[str]:
            domain = by_config[str(config)]
            if domain not in profiled:
                return agent_command(config)
            assert profile_dir is not None
            out = profile_dir / f"{domain}.prof"
            return [*agent_command(config)[:2], "fedorch.bench.profiled_agent", str(out),
                    "agent", "run", "--config", str(config)]

        try:
            await net.start(command=command, deadline_s=120)
            started = time.monotonic()
            await wait_for(lambda: converged(net, names), CONVERGE_DEADLINE_S,
                           "every agent did not see every other ALIVE")
            converged_s = time.monotonic() - started
            warm = FanOutRun()
            await follow(net, coordinator, spec, warm)
            idle_before = cpu_of(net)
            await asyncio.sleep(IDLE_WINDOW_S)  # a measured window of idleness, not a wait
            idle = {d: (c - idle_before[d]) / IDLE_WINDOW_S for d, c in cpu_of(net).items()}
            load_before = os.getloadavg()[0]
            statements_before = await asyncio.to_thread(statements_of, net,
                                                        [coordinator, participant])
            for d in profiled:
                os.kill(net.procs[d].pid, signal.SIGUSR1)
            cpu_before = cpu_of(net)
            start = time.monotonic()
            runs = [FanOutRun() for _ in range(workflows)]
            async with asyncio.TaskGroup() as group:
                for i, run in enumerate(runs):
                    await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                    group.create_task(follow(net, coordinator, spec, run))
            window = time.monotonic() - start
            cpu_after = cpu_of(net)
            for d in profiled:
                os.kill(net.procs[d].pid, signal.SIGUSR2)
            statements = await asyncio.to_thread(statements_of, net, [coordinator, participant])
            load_after = os.getloadavg()[0]
            for d in profiled:
                assert profile_dir is not None
                out = profile_dir / f"{d}.prof"
                await wait_for(lambda out=out: _exists(out), PROFILE_WRITE_DEADLINE_S,
                               f"{d} did not write its profile")
        finally:
            await net.close()
            net.stop()
    per_fanout = {d: round((cpu_after[d] - cpu_before[d] - idle[d] * window) / workflows, 4)
                  for d in names}
    others = [per_fanout[d] for d in names[1:]]
    admitted = [r.admitted - r.submitted for r in runs if r.admitted is not None]
    ended = [r.ended - r.submitted for r in runs if r.ended is not None]
    states: dict[str, int] = {}
    for r in runs:
        states[r.state or "no end seen"] = states.get(r.state or "no end seen", 0) + 1
    return {
        "domains": domains, "workflows": workflows, "rate_per_s": rate,
        "gossip_profile": gossip_profile,
        "converged_s": round(converged_s, 2),
        "window_s": round(window, 2),
        "cpu_s_per_fanout": {
            "coordinator": per_fanout[coordinator],
            "participant_mean": round(statistics.fmean(others), 4),
            "participant_max": round(max(others), 4),
            "all_agents": round(sum(per_fanout.values()), 4),
            "by_domain": per_fanout},
        "idle_cpu_s_per_s": {"coordinator": round(idle[coordinator], 4),
                             "participant_mean": round(statistics.fmean(
                                 [idle[d] for d in names[1:]]), 4)},
        "statements_per_fanout": {
            d: round((statements[d] - statements_before[d]) / workflows, 1)
            for d in (coordinator, participant)},
        "admission_s": _summary(admitted),
        "end_s": _summary(ended),
        "states": states,
        "reasons": sorted({r.reason for r in runs if r.state != "SUCCEEDED" and r.reason}),
        "load_before": round(load_before, 2), "load_after": round(load_after, 2),
        "profiled": {d: str(profile_dir / f"{d}.prof") for d in sorted(profiled)}
        if profile_dir is not None else {},
    }


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)
