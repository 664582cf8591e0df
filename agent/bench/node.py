"""Node benchmark: the one-driver design with real disk and real signatures, no gRPC.

Three agents (c1, c2, c3) in ONE process, each a production `NodeDriver` around a pure
`Node` (agent/core/node), run by its `DriverLoop` on an asyncio loop: with
`layout="threads"` each agent's loop on a thread of its own (as three processes would
run, but sharing one GIL, which sqlite3 releases while an fsync waits), with
`layout="loop"` all three on one loop (one agent's fsync then stalls the others).
Each agent has
- a `SqliteDurable` (runtime/node_store.py) in a temporary directory: WAL,
  `synchronous=FULL`, one transaction per driver turn, committed in the driver's
  commit thread (`ThreadedWrite`) as the daemon does, so its loop runs meanwhile;
- an in-memory wire (node_wire.py): every message a Node sends is encoded to bytes
  (`NodeCodec`), signed with the sender's Ed25519 key (`cryptography`, or libsodium
  as the daemon signs), and on arrival (a loop callback) verified over the bytes as
  received, decoded, and posted to the receiver's DriverLoop as a `Message`. With `envelope="turn"` the messages one
  driver turn sends to one peer travel in one envelope, signed and verified once;
  with `envelope="message"` each message is its own envelope. A Node's messages to
  itself never reach the wire: its driver steps them in its next turn (`loopback`,
  counted as `messages_looped_back`);
- executors that end a builtin no-op step at once (a `StepEnded` posted back).

A closed loop of three-domain workflows (one step per domain, a → b → c, as `bench
commit`'s spec), submitted to c1 by N concurrent submitters, each waiting for its
workflow's end (SUCCEEDED) before the next. Printed: workflows/s, the process's CPU
per workflow over the loop (`time.process_time`: all three agents, the wire and the
submitters), and the parts of it timed apart: SQLite (the store's thread CPU in its
writes, encoding of rows apart), signing, verifying, the wire's encoding and decoding;
the rest is the Node, the driver and asyncio; and the garbage collector's CPU apart
(it falls inside the other parts). `gc_threshold` sets the collector's first threshold
for the run. What it leaves out, and `bench commit`
has: gRPC (calls, streams, the poller thread), the client's SubmitAndWatch stream, the
daemon's audit log, membership gossip and metrics. So it measures what the
Node path costs with disk and crypto, the floor under a daemon built on it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from fedorch.bench.commit import forced_write_ms
from fedorch.bench.gc_share import GcTime
from fedorch.bench.node_wire import DOMAINS, Timers, Wire, WirePort
from fedorch.core.node import Node, StepEnded, Submit
from fedorch.core.node.records import Timing
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.runtime.driver import DriverLoop, NodeDriver, ThreadedWrite
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_store import SqliteDurable
from fedorch.runtime.ports import SystemClock

__all__ = ["ENVELOPES", "LAYOUTS", "run_node_bench"]

CAPABILITY = "bench.noop"
ENVELOPES = ("message", "turn")
LAYOUTS = ("threads", "loop")
WORKFLOWS = 1000
CONCURRENCY = (64,)
WARMUP = 100
WAIT_S = 120.0  # a workflow that has not ended by then is a failure, not a slow one


def _spec() -> spec_pb2.WorkflowSpec:
    steps = []
    for i, sid in enumerate("abc"):
        steps.append(spec_pb2.StepSpec(
            id=sid, capability=CAPABILITY, needs=["ab"[i - 1]] if i else [],
            constraints=spec_pb2.Constraints(domains=[DOMAINS[i]])))
    return spec_pb2.WorkflowSpec(name="bench", steps=steps)


class NoopExecutors:
    """A builtin no-op step: ends as soon as it starts."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def start(self, run: tuple[str, str, int]) -> None:
        wf, step, attempt = run
        self.agent.driver_loop.post(StepEnded(wf, step, attempt, True, {}, ""))

    def stop(self, run: tuple[str, str, int]) -> None:
        return None


class Ends:
    """StatusSink at the coordinator: resolves each submitter's wait at the end."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[object]] = {}

    def status_changed(self, workflow_id: str, state: object) -> None:
        if state in TERMINAL:
            fut = self.waiting.pop(workflow_id, None)
            if fut is not None and not fut.done():
                fut.set_result(state)


class Host:
    """A thread running an event loop: the agents placed on it run their driver loops
    there (`layout="threads"`: one host per agent, as a process each would have, but
    sharing this process's GIL, which sqlite3 releases while it waits for an fsync;
    `layout="loop"`: one host for all three, so one agent's fsync stalls the others)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self.thread.start()

    def call(self, coro, timeout: float = WAIT_S):
        """Run `coro` on this host's loop and wait for its result (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_S)
        if self.thread.is_alive():
            raise RuntimeError(f"{self.thread.name} did not stop")
        self.loop.close()


class Agent:
    """One agent: a Node, its NodeDriver over a SqliteDurable, its DriverLoop, on a
    host's loop. Built and stopped on that loop's thread (a sqlite3 connection is used
    where it was made); the agent owns its driver loop's task."""

    def __init__(self, name: str, index: int, path: Path, wire: Wire, host: Host,
                 ends: Ends | None) -> None:
        self.name = name
        self.index = index
        self.path = path
        self.wire = wire
        self.host = host
        self.ends = ends
        self.timers = Timers()
        self.store: SqliteDurable | None = None
        self.driver: NodeDriver | None = None
        self.driver_loop: DriverLoop | None = None
        self.commits: ThreadedWrite | None = None
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.host.loop

    async def start(self) -> None:
        self.store = SqliteDurable(self.path)
        clock = SystemClock()
        node = Node(self.name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={CAPABILITY: 1_000_000}, timing=Timing(),
                    peers=list(DOMAINS), rng=random.Random(self.index),
                    now=clock.monotonic())
        self.driver = NodeDriver(node, clock, self.store, WirePort(self.wire, self),
                                 NoopExecutors(self), self.ends, loopback=self.name)
        # As the daemon does: each turn's commit in a thread, the agent's loop running.
        self.commits = ThreadedWrite(self.store)
        self.driver_loop = DriverLoop(self.driver, write=self.commits)
        self._task = asyncio.get_running_loop().create_task(
            self.driver_loop.run(), name=f"driver-{self.name}")

    async def stop(self) -> None:
        """Cancel the driver loop's task, wait for it, keep its error, close the store."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception as e:  # DriverStopped or a port's: the bench reports it
                self.error = e
        if self.commits is not None:
            self.commits.close()
        if self.store is not None:
            self.store.close()


class Federation:
    def __init__(self, directory: Path, envelope: str, crypto: str, layout: str) -> None:
        self.wire = Wire(node_codec(), envelope, crypto)
        self.ends = Ends()
        if layout == "threads":
            self.hosts = [Host(f"agent-{name}") for name in DOMAINS]
        else:
            self.hosts = [Host("agents")] * len(DOMAINS)
        self.agents = {name: Agent(name, i, directory / f"{name}.db", self.wire,
                                   self.hosts[i], self.ends if i == 0 else None)
                       for i, name in enumerate(DOMAINS)}
        self.wire.agents = self.agents
        self.coordinator = self.agents[DOMAINS[0]]
        self.spec = _spec()
        self.placement = {s.id: DOMAINS[i] for i, s in enumerate(self.spec.steps)}
        self._next = 0

    def _distinct_hosts(self) -> list[Host]:
        return list({id(h): h for h in self.hosts}.values())

    def start(self) -> None:
        for host in self._distinct_hosts():
            host.start()
        for agent in self.agents.values():
            agent.host.call(agent.start())

    def stop(self) -> None:
        """Stop every agent, then every host; raise if a driver had stopped on its own."""
        try:
            for agent in self.agents.values():
                if agent.host.thread.is_alive():
                    agent.host.call(agent.stop())
        finally:
            for host in self._distinct_hosts():
                if host.thread.is_alive():
                    host.stop()
        errors = [f"{a.name}: {a.error!r}" for a in self.agents.values() if a.error]
        if errors:
            raise RuntimeError("agents stopped: " + "; ".join(errors))

    async def _one(self) -> object:
        """On the coordinator's loop: submit one workflow and wait for its end."""
        self._next += 1
        wf = f"{DOMAINS[0]}.bench-{self._next}"
        fut = asyncio.get_running_loop().create_future()
        self.ends.waiting[wf] = fut
        assert self.coordinator.driver_loop is not None
        self.coordinator.driver_loop.post(Submit(wf, self.spec, placement=self.placement))
        return await asyncio.wait_for(fut, WAIT_S)

    async def _closed_loop(self, total: int, concurrency: int) -> Counter[str]:
        left = total
        ends: Counter[str] = Counter()

        async def submitter() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                ends[WorkflowState(await self._one()).name] += 1

        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(submitter())
        return ends

    def closed_loop(self, total: int, concurrency: int) -> Counter[str]:
        """From the main thread: the submitters run on the coordinator's loop."""
        return self.coordinator.host.call(self._closed_loop(total, concurrency),
                                          WAIT_S + total)

    def readings(self) -> dict:
        seconds: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        for a in self.agents.values():
            seconds.update(a.timers.seconds)
            counts.update(a.timers.counts)
        stats = [a.store.stats for a in self.agents.values() if a.store is not None]
        return {
            "seconds": seconds, "counts": counts,
            "sqlite_cpu": sum(s.cpu_s for s in stats),
            "sqlite_encode_cpu": sum(s.encode_cpu_s for s in stats),
            "sqlite_wall": sum(s.wall_s for s in stats),
            "transactions": sum(s.transactions for s in stats),
            "ops": sum(s.ops for s in stats),
            "rows": sum(s.rows for s in stats),
            "bytes": sum(s.bytes for s in stats),
            "turns": sum(a.driver.turns for a in self.agents.values()
                         if a.driver is not None),
            "looped_back": sum(a.driver.looped_back for a in self.agents.values()
                               if a.driver is not None),
        }


def _peak(before: dict, after: dict, n: int, cpu_s: float, wall_s: float,
          ends: Counter[str], concurrency: int) -> dict:
    def per(x: float) -> float:
        return round(x / n * 1000, 3)  # ms per workflow

    sec = after["seconds"] - before["seconds"]
    cnt = after["counts"] - before["counts"]
    encode_cpu = after["sqlite_encode_cpu"] - before["sqlite_encode_cpu"]
    timed = {
        "sqlite": after["sqlite_cpu"] - before["sqlite_cpu"] - encode_cpu,
        "sqlite_row_encoding": encode_cpu,
        "sign": sec["sign"],
        "verify": sec["verify"],
        "wire_encode": sec["wire encode"],
        "wire_decode": sec["wire decode"],
    }
    parts = {k: per(v) for k, v in timed.items()}
    parts["rest_node_driver_asyncio"] = per(cpu_s - sum(timed.values()))
    return {
        "concurrency": concurrency,
        "workflows": n,
        "ends": dict(ends),
        "workflows_per_s": round(n / wall_s, 1),
        "cpu_ms_per_workflow": per(cpu_s),
        "cpu_ms_parts": parts,
        "cpu_share": {k: round(v / cpu_s, 3) for k, v in timed.items()},
        "sqlite_wall_ms_per_transaction": round(
            (after["sqlite_wall"] - before["sqlite_wall"]) * 1000
            / max(1, after["transactions"] - before["transactions"]), 3),
        "per_workflow": {
            "messages": round(cnt["messages"] / n, 2),
            "messages_by_type": {k.split(" ", 1)[1]: round(v / n, 2)
                                 for k, v in sorted(cnt.items())
                                 if k.startswith("message ")},
            "envelopes_signed": round(cnt["envelopes"] / n, 2),
            "envelopes_verified": round(cnt["envelopes verified"] / n, 2),
            "envelopes_to_itself": round(cnt["envelopes to itself"] / n, 2),
            # A Node's messages to itself: stepped by its driver, never on the wire.
            "messages_looped_back": round((after["looped_back"] - before["looped_back"])
                                          / n, 2),
            "bytes_on_wire": round(cnt["bytes"] / n),
            "transactions": round((after["transactions"] - before["transactions"]) / n, 2),
            "rows_written": round((after["ops"] - before["ops"]) / n, 2),
            # The same writes once per row and transaction (a turn's ops on a row
            # combined: what SQLite writes), and the bytes of the rows written.
            "rows_combined": round((after["rows"] - before["rows"]) / n, 2),
            "bytes_written": round((after["bytes"] - before["bytes"]) / n),
            "driver_turns": round((after["turns"] - before["turns"]) / n, 2),
        },
    }


def _run(directory: Path, workflows: int, concurrency: tuple[int, ...], envelope: str,
         warmup: int, crypto: str, layout: str) -> dict:
    fed = Federation(directory, envelope, crypto, layout)
    try:
        fed.start()
        fed.closed_loop(warmup, min(concurrency))
        loops = []
        for c in concurrency:
            before = fed.readings()
            with GcTime() as gc_time:
                cpu0, wall0 = time.process_time(), time.perf_counter()
                ends = fed.closed_loop(workflows, c)
                cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
            loops.append(_peak(before, fed.readings(), workflows, cpu_s, wall_s, ends, c))
            loops[-1]["gc_ms_per_workflow"] = round(sum(gc_time.seconds) / workflows * 1000, 3)
    finally:
        fed.stop()
    peak = max(loops, key=lambda r: r["workflows_per_s"])
    return {"envelope": envelope, "crypto": crypto, "layout": layout, "loops": loops,
            "peak": peak,
            "refused_envelopes": fed.wire.refused}


def run_node_bench(workflows: int = WORKFLOWS, concurrency: tuple[int, ...] = CONCURRENCY,
                   envelopes: tuple[str, ...] = ENVELOPES, warmup: int = WARMUP,
                   data_dir: str | None = None, crypto: str = "cryptography",
                   layout: str = "threads", gc_threshold: int | None = None) -> dict:
    """Each envelope mode on a fresh federation (its own files); see the header.
    `gc_threshold`: the garbage collector's first threshold for the run (Python's
    default is 700 allocations; the Nodes keep every workflow's state, so each full
    collection walks more of it)."""
    load_before = os.getloadavg()[0]
    result: dict = {"runs": [], "gc_threshold": gc_threshold or gc.get_threshold()[0]}
    saved = gc.get_threshold()
    if gc_threshold is not None:
        gc.set_threshold(gc_threshold, *saved[1:])
    try:
        for envelope in envelopes:
            with tempfile.TemporaryDirectory(prefix="fedorch-bench-node-",
                                             dir=data_dir) as tmp:
                result["runs"].append(_run(Path(tmp), workflows, concurrency, envelope,
                                           warmup, crypto, layout))
    finally:
        gc.set_threshold(*saved)
    result["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory(prefix="fedorch-bench-node-", dir=data_dir) as tmp:
        result["forced_write_ms"] = round(forced_write_ms(Path(tmp)), 3)
    result["targets"] = {"cpu_ms_per_workflow": 2.0, "workflows_per_s": 1000}
    return result
