"""Commit benchmark: admission and end-to-end throughput of three-domain workflows.

On agents it starts on 127.0.0.1, it prints in one run:
- a baseline: raw gRPC unary echo calls/s between two processes on this machine;
- committed three-domain workflows/s (submit until the decision: RUNNING) and
  end-to-end workflows/s (until SUCCEEDED), builtin no-op steps, at the peak: the best
  of closed loops with more and more submitters (each loop's rates are printed too;
  with `submit` "stream" the peak's loops ask for the end alone, so their committed
  rate is the end-to-end one);
- p50/p99 submit-to-committed latency unloaded, and at half the peak rate;
- the CPU time the three agents and the client spent per workflow at the peak
  (`cpu_ms_per_workflow`, from /proc: agent_readings.py): steadier than rates on a shared machine; the same
  over the half-load window, with each agent's driver turns, transactions and
  envelopes per workflow there (`half_load`);
- the cost of one forced write (SQLite WAL, synchronous=FULL) where the agents
  keep their data: a YES vote, an acceptor's record and a decision each wait
  for one, so it bounds the unloaded latency from below (about three of them
  lie on the submit-to-committed path).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from fedorch.bench.agent_readings import (
    NODE_COUNTERS,
    cpu_ms_per_workflow,
    cpu_now,
    node_counters,
    store_statements,
    thread_cpu_s,
)
from fedorch.bench.gc_share import GcTime, client_thresholds, gc_per_workflow, gc_readings
from fedorch.bench.realnet import RealNet
from fedorch.cli.demo import pick_free_ports
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2
from fedorch.runtime.supervisor import agent_command

DOMAINS = ["c1", "c2", "c3"]
SPEC = parse_spec_text("""
name: bench
steps:
  - {id: a, capability: bench.noop, constraints: {domains: [c1]}}
  - {id: b, capability: bench.noop, constraints: {domains: [c2]}, needs: [a]}
  - {id: c, capability: bench.noop, constraints: {domains: [c3]}, needs: [b]}
""", "bench")
RUNNING = status_pb2.WORKFLOW_STATE_RUNNING

_ECHO_SERVER = r"""
import asyncio, sys, grpc
async def main():
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    async def echo(request, context):
        return request
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(sys.argv[1])
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""


async def echo_calls_per_s(seconds: float = 3.0, concurrency: int = 32) -> float:
    """Raw unary calls/s to a second process: the machine's own gRPC ceiling."""
    port = pick_free_ports(1)[0]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ECHO_SERVER, f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 30)  # "ready"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/bench.Echo/Echo", request_serializer=None,
                                       response_deserializer=None)
            payload = b"x" * 64
            await call(payload, timeout=5, wait_for_ready=True)
            done = 0
            deadline = time.monotonic() + seconds

            async def worker():
                nonlocal done
                while time.monotonic() < deadline:
                    await call(payload, timeout=5)
                    done += 1

            start = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return done / (time.monotonic() - start)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def forced_write_ms(directory: Path, writes: int = 30) -> float:
    """Median time of one committed SQLite transaction with the agents' settings."""
    path = directory / "forced-write-probe.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS t(x)")
        times = []
        for i in range(writes):
            start = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES(?)", (i,))
            db.execute("COMMIT")
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


class _Run:
    """One workflow's timestamps, followed through its SubmitAndWatch stream."""

    def __init__(self) -> None:
        self.id = ""
        self.submitted = 0.0
        self.committed: float | None = None
        self.finished: float | None = None
        self.error = ""  # the status code of a call that failed (the run goes on)
        self.updates = 0  # SubmitStream updates the client read about it (stream mode)


# Every submission of the bench is this request (no request id: each is a new workflow),
# built once rather than copying the spec per call. The bench times the commit (RUNNING)
# and the end: it asks for those statuses only (`states`; a terminal one always comes),
# so the agent sends two per workflow, not three.
REQUEST = client_pb2.SubmitAndWatchRequest(submit=client_pb2.SubmitRequest(spec=SPEC),
                                           state_changes_only=True, states=[RUNNING])


async def _one(net: RealNet, run: _Run) -> None:
    client = net.client(DOMAINS[0])
    run.submitted = time.monotonic()
    watch = client.SubmitAndWatch(REQUEST, timeout=120)
    try:
        async for status in watch:
            run.id = status.id
            if run.committed is None and status.state in (RUNNING, *TERMINAL):
                run.committed = time.monotonic()
            if status.state in TERMINAL:
                run.finished = time.monotonic()
                return
    except grpc.aio.AioRpcError as e:  # counted and shown: one call must not end a long run
        run.error = e.code().name
    finally:
        watch.cancel()  # the stream ends with the workflow; do not leave it to the GC


# The stream mode's submissions (SubmitStream, node engine): one call carries a closed
# loop's every workflow, `concurrency` of them in flight. Each request is this one's
# bytes, serialized once, with its token (field 2) appended: a message's fields may
# come in any order, so the agent parses the same request a copy would give. A loop
# that times the commit asks for RUNNING; the peak's loops ask for the end alone
# (their rate is end to end, and the CPU per workflow is what matters there), so the
# coordinator builds and sends one status per workflow, not two. Neither asks for the
# accepted update (`skip_accepted`: each status names the workflow): one message
# fewer per workflow for the coordinator to write and the client to read.
_STREAM_REQUEST = client_pb2.SubmitStreamRequest(
    submit=client_pb2.SubmitRequest(spec=SPEC), state_changes_only=True,
    states=[RUNNING], skip_accepted=True).SerializeToString()
_STREAM_END_REQUEST = client_pb2.SubmitStreamRequest(
    submit=client_pb2.SubmitRequest(spec=SPEC), skip_accepted=True).SerializeToString()
STREAM_DEADLINE_S = 600.0


def _stream_request(token: str, template: bytes = _STREAM_REQUEST) -> bytes:
    data = token.encode()
    assert len(data) < 128  # one byte of length
    return template + bytes((0x12, len(data))) + data


async def _stream_loop(net: RealNet, total: int, concurrency: int,
                       time_commit: bool = True, rate: float | None = None) -> list[_Run]:
    """A closed loop over one SubmitStream: a new submission as each workflow ends.
    `time_commit`: each workflow's RUNNING status is asked for and timed; else the end
    alone, and a run's commit is timed at its end. `rate`: an open loop instead, a
    submission every 1/rate seconds whatever is in flight (`concurrency` unused)."""
    template = _STREAM_REQUEST if time_commit else _STREAM_END_REQUEST
    runs = [_Run() for _ in range(total)]
    net.client(DOMAINS[0])  # the channel, opened if need be
    call_of = net._channels[DOMAINS[0]].stream_stream(
        "/fedorch.v1.Client/SubmitStream", request_serializer=None,
        response_deserializer=client_pb2.SubmitStreamUpdate.FromString)
    free = asyncio.Semaphore(concurrency)

    async def requests():
        start = time.monotonic()
        for i, run in enumerate(runs):
            if rate is None:
                await free.acquire()
            else:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            run.submitted = time.monotonic()
            yield _stream_request(str(i), template)

    call = call_of(requests(), timeout=STREAM_DEADLINE_S)
    try:
        async for update in call:
            run = runs[int(update.token)]
            run.updates += 1
            if update.code:
                run.error = grpc.StatusCode.UNKNOWN.name if update.code not in _CODE_NAMES \
                    else _CODE_NAMES[update.code]
                free.release()
                continue
            run.id = update.id
            if update.HasField("status"):
                state = update.status.state
                if run.committed is None and state in (RUNNING, *TERMINAL):
                    run.committed = time.monotonic()
                if state in TERMINAL:
                    run.finished = time.monotonic()
                    free.release()
    except grpc.aio.AioRpcError as e:  # the rest of the loop's runs failed with it
        for run in runs:
            if run.finished is None and not run.error:
                run.error = e.code().name
    finally:
        call.cancel()
    return runs


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


async def _closed_loop(net: RealNet, total: int, concurrency: int,
                       submit: str = "call", time_commit: bool = True) -> list[_Run]:
    """`total` workflows, `concurrency` in flight: each in its own SubmitAndWatch call
    (`submit` "call") or all in one SubmitStream ("stream"; `time_commit`: see
    `_stream_loop`)."""
    if submit == "stream":
        return await _stream_loop(net, total, concurrency, time_commit)
    runs = [_Run() for _ in range(total)]
    queue = list(runs)

    async def worker():
        while queue:
            await _one(net, queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return runs


async def _open_loop(net: RealNet, rate: float, seconds: float,
                     submit: str = "call") -> list[_Run]:
    """Submissions at `rate` per second for `seconds`, whatever is in flight, made the
    way the peak's were (`submit`): the half-load rate is half of that path's peak, so
    its latency is that path's at half its capacity."""
    if submit == "stream":
        return await _stream_loop(net, max(1, round(rate * seconds)), 1, rate=rate)
    runs: list[_Run] = []
    async with asyncio.TaskGroup() as tg:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            run = _Run()
            runs.append(run)
            tg.create_task(_one(net, run))
            n += 1
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
    return runs


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# Submitters of the closed loops that find the peak. The cost of a workflow falls as
# more are in flight (one driver turn's messages for a peer share one envelope, its
# signature and the turn's fsync),
# so the peak is found by climbing: on 2 cores, 64 submitters reached about four fifths
# of the peak, which came at 256 or 512.
CONCURRENCY = (64, 256, 512)
WORKFLOWS_PER_LOOP = 3000
# The unloaded sample, one workflow at a time. Its p99 is the slowest of 30: a larger
# sample (`unloaded`) gives a p99 that one slow workflow does not make alone.
UNLOADED_WORKFLOWS = 30


def updates_per_workflow(runs: list[_Run]) -> float:
    """SubmitStream updates the client read per workflow (0 when submitted by calls)."""
    return round(sum(r.updates for r in runs) / max(1, len(runs)), 3)


async def _peak(net: RealNet, total: int, concurrency: int, submit: str = "call") -> dict:
    """One closed loop of `total` workflows with `concurrency` submitters: its rates and
    the CPU the agents and the client spent per workflow, and the driver turns,
    transactions and envelopes per workflow."""
    node_before = await asyncio.to_thread(node_counters, net)
    statements_before = await asyncio.to_thread(store_statements, net)
    gc_before = await asyncio.to_thread(gc_readings, net)
    threads_before = {d: thread_cpu_s(proc.pid) for d, proc in net.procs.items()}
    cpu_before = cpu_now(net)
    start = time.monotonic()
    with GcTime() as client_gc:
        gc_before["client"] = client_gc.reading()
        loaded = await _closed_loop(net, total, concurrency, submit, time_commit=False)
        client_gc_after = client_gc.reading()
    cpu = cpu_ms_per_workflow(cpu_before, cpu_now(net), total)
    threads = {d: cpu_ms_per_workflow(threads_before[d], thread_cpu_s(proc.pid), total)
               for d, proc in net.procs.items()}
    statements = await asyncio.to_thread(store_statements, net)
    committed_at = [r.committed for r in loaded if r.committed is not None]
    finished_at = [r.finished for r in loaded if r.finished is not None]
    failed: dict[str, int] = {}
    for r in loaded:
        if r.error:
            failed[r.error] = failed.get(r.error, 0) + 1
    after = await asyncio.to_thread(node_counters, net)
    gc_after = await asyncio.to_thread(gc_readings, net)
    gc_after["client"] = client_gc_after
    collector = gc_per_workflow(gc_before, gc_after, total)
    scale = {k: 1000 if k.endswith("_cpu_ms") else 1 for k in NODE_COUNTERS}
    node = {"node_per_workflow": {
        d: {k: round((after[d][k] - node_before[d][k]) * scale[k] / total, 3)
            for k in NODE_COUNTERS}
        for d in after}}
    return {**node, "concurrency": concurrency,
            "commits_per_s": round(len(committed_at) / (max(committed_at, default=start)
                                                        - start or 1), 1),
            "workflows_per_s": round(len(finished_at) / (max(finished_at, default=start)
                                                         - start or 1), 1),
            "failed_calls": failed,
            "stream_updates_per_workflow": updates_per_workflow(loaded),
            "cpu_ms_per_workflow": cpu["total"],
            "cpu_ms_by_process": cpu,
            # Each agent's CPU per workflow by thread (THREAD_PARTS).
            "cpu_ms_by_thread": threads,
            # Each process's CPU ms per workflow inside the garbage collector (a part of
            # its cpu_ms_by_process), and its passes per workflow by generation.
            "gc_ms_per_workflow": {name: c["ms"] for name, c in collector.items()},
            "gc_per_workflow": collector,
            # Each agent's SQL statements per workflow over the loop (c1 coordinates).
            "statements_per_workflow": {
                d: round((statements[d] - statements_before[d]) / total, 1)
                for d in statements}}


async def _measured(net: RealNet, loop) -> tuple[list[_Run], dict]:
    """Await an open loop's runs, with the CPU each process spent and each agent's
    node-engine counters per workflow submitted over it."""
    node_before = await asyncio.to_thread(node_counters, net)
    cpu_before = cpu_now(net)
    runs = await loop
    cpu = cpu_ms_per_workflow(cpu_before, cpu_now(net), len(runs))
    after = await asyncio.to_thread(node_counters, net)
    scale = {k: 1000 if k.endswith("_cpu_ms") else 1 for k in NODE_COUNTERS}
    return runs, {"workflows": len(runs), "cpu_ms_per_workflow": cpu["total"],
                  "stream_updates_per_workflow": updates_per_workflow(runs),
                  "cpu_ms_by_process": cpu,
                  "node_per_workflow": {
                      d: {k: round((after[d][k] - node_before[d][k]) * scale[k]
                                   / max(1, len(runs)), 3) for k in NODE_COUNTERS}
                      for d in after}}


@contextlib.asynccontextmanager
async def _federation(tmp: Path, commit: str, extra: dict | None = None,
                      profiled: Path | None = None, traced: Path | None = None):
    """The bench's three agents, started, converged, and stopped by pid at the end.
    `profiled`:
    the coordinator (c1) runs under fedorch.bench.profiled_agent, its profile to that
    file, and the participant c2 likewise to that file with ".c2" appended (both switched
    on and off by SIGUSR1 / SIGUSR2). `traced`: every agent runs under
    fedorch.bench.traced_agent, its readings to `traced/<domain>.N` (on SIGUSR1)."""
    extra = extra or {}
    net = RealNet(tmp, DOMAINS, bodies={d: {"capabilities": [
        {"name": "bench.noop", "capacity": 100_000,
         "executor": {"type": "builtin", "name": "echo"}}]} for d in DOMAINS},
        extra={"gossip": {"profile": "local"}, **extra,
               "negotiation": {"commit": commit, **extra.get("negotiation", {})}})
    net.write_configs()
    coordinator_config = str(net.configs[DOMAINS[0]])

    def command(config: Path) -> list[str]:
        if traced is not None:
            domain = next(d for d in DOMAINS if str(net.configs[d]) == str(config))
            return [*agent_command(config)[:2], "fedorch.bench.traced_agent",
                    str(traced / domain), "agent", "run", "--config", str(config)]
        out = profiled_paths(profiled).get(str(config)) if profiled is not None else None
        if out is None:
            return agent_command(config)
        return [*agent_command(config)[:2], "fedorch.bench.profiled_agent", str(out),
                "agent", "run", "--config", str(config)]

    def profiled_paths(path: Path) -> dict[str, Path]:
        return {coordinator_config: path,
                str(net.configs[DOMAINS[1]]): participant_profile(path)}

    from fedorch.runtime.daemon import GC_THRESHOLDS

    try:
        await net.start(command=command)
        from fedorch.cli.demo import wait_members_alive
        for d in DOMAINS:
            await wait_members_alive(net.procs[d], DOMAINS, 5.0, 30)
        with client_thresholds(GC_THRESHOLDS):
            yield net
    finally:
        await net.close()
        net.stop()


def participant_profile(path: Path) -> Path:
    """Where the bench writes the participant c2's profile when c1's goes to `path`."""
    return path.with_name(path.name + "." + DOMAINS[1])


async def _written(path: Path, deadline_s: float = 30.0) -> None:
    """Wait (with a deadline) for the profiled agent to write its profile."""
    deadline = time.monotonic() + deadline_s
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the coordinator did not write its profile {path}")
        await asyncio.sleep(0.05)  # polling a file another process writes


async def run_commit_bench(total: int = WORKFLOWS_PER_LOOP,
                           concurrency: Sequence[int] = CONCURRENCY,
                           workdir: Path | None = None, commit: str = "paxos",
                           profile: Path | None = None, submit: str = "call",
                           unloaded: int = UNLOADED_WORKFLOWS) -> dict:
    """`total` workflows in each closed loop, one loop per number of submitters in
    `concurrency`; the loop with the most end-to-end workflows/s is the peak. `workdir`:
    an existing directory where the agents keep their data (a temporary directory by
    default). `profile`: a file where the coordinator's event-loop profile over the
    closed loops is written (cProfile, fedorch.bench.profiled_agent), the participant
    c2's next to it (`participant_profile`). `submit`: "call",
    one SubmitAndWatch call per workflow, or "stream", each closed loop's workflows in
    one SubmitStream call (the half-load open loop submits the same way). `unloaded`: workflows
    in the unloaded sample."""
    if not concurrency or min(concurrency) < 1 or total < 1 or unloaded < 1:
        raise ValueError("the bench needs at least one workflow and one submitter")
    echo = await echo_calls_per_s()
    with tempfile.TemporaryDirectory(prefix="fedorch-bench-", dir=workdir) as tmp:
        fsync_ms = await asyncio.to_thread(forced_write_ms, Path(tmp))
        async with _federation(Path(tmp), commit, profiled=profile) as net:
            alone = await _closed_loop(net, unloaded, 1, submit)
            if profile is not None:
                for d in DOMAINS[:2]:
                    os.kill(net.procs[d].pid, signal.SIGUSR1)
            loops = [await _peak(net, total, n, submit) for n in concurrency]
            if profile is not None:
                for d in DOMAINS[:2]:
                    os.kill(net.procs[d].pid, signal.SIGUSR2)
                await _written(profile)
                await _written(participant_profile(profile))
            peak = max(loops, key=lambda loop: loop["workflows_per_s"])
            half_rate = max(1.0, peak["commits_per_s"] / 2)
            half, half_window = await _measured(net, _open_loop(net, half_rate, 5.0, submit))
    lat = [(r.committed - r.submitted) * 1000 for r in alone if r.committed]
    half_lat = [(r.committed - r.submitted) * 1000 for r in half if r.committed]
    return {
        "echo_calls_per_s": round(echo, 1),
        "commits_per_s": peak["commits_per_s"],
        "workflows_per_s": peak["workflows_per_s"],
        "p50_ms_unloaded": round(statistics.median(lat), 2),
        "p99_ms_unloaded": round(_pct(lat, 0.99), 2),
        "unloaded_workflows": unloaded,
        "p50_ms_half_load": round(_pct(half_lat, 0.5), 2),
        "p99_ms_half_load": round(_pct(half_lat, 0.99), 2),
        "cpu_ms_per_workflow": peak["cpu_ms_per_workflow"],
        "cpu_ms_by_process": peak["cpu_ms_by_process"],
        # The half-load window's CPU and driver turns per workflow, as the peak's: at
        # half the rate a turn serves fewer workflows, so each costs more.
        "half_load": half_window,
        "cpu_ms_by_thread": peak["cpu_ms_by_thread"],
        "gc_ms_per_workflow": peak["gc_ms_per_workflow"],
        "gc_per_workflow": peak["gc_per_workflow"],
        "statements_per_workflow": peak["statements_per_workflow"],
        "workflows": total,
        "concurrency": peak["concurrency"],
        "closed_loops": loops,
        "commit": commit,
        "submit": submit,
        "forced_write_ms": round(fsync_ms, 2),
    }
