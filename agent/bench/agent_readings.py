"""What the benches read of the agents they start: CPU, threads, memory, counters.

Readings taken before and after a loop, and the per-workflow shares made of them
(`cpu_ms_per_workflow`): each process's CPU from /proc/PID/stat, its threads' CPU by
part (THREAD_PARTS) from /proc/PID/task, its resident memory, and each agent's store
statements and node-engine counters from its metrics endpoint. It is its own module
because the commit bench (commit.py), the fan-out bench and the long bench all read
them, apart from the loops that drive the agents.
"""

from __future__ import annotations

import os
import time

from fedorch.bench.realnet import RealNet

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime


# A thread's part of its agent's CPU: the event loop (the process's main thread: the
# driver, the Node, the services, gRPC's Python side), gRPC's own C threads, and the
# other Python threads (node.db's commit thread, agent.db's, executors' waits).
THREAD_PARTS = ("loop", "grpc", "threads")
_GRPC_THREADS = ("event_engine", "grpc", "default-executo", "resolver", "timer")


def thread_cpu_s(pid: int) -> dict[str, float]:
    """User + system CPU seconds so far of a process's threads, by THREAD_PARTS (threads
    that ended meanwhile are no longer counted: read it over a span they all live)."""
    parts = dict.fromkeys(THREAD_PARTS, 0.0)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended while it was read
        part = "loop" if tid == str(pid) else \
            "grpc" if name.startswith(_GRPC_THREADS) else "threads"
        parts[part] += (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    return parts


def process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def cpu_now(net: RealNet) -> dict[str, float]:
    """CPU seconds so far of each agent and of this process (the client)."""
    cpu = {d: process_cpu_s(proc.pid) for d, proc in net.procs.items()}
    cpu["client"] = time.process_time()
    return cpu


def store_statements(net: RealNet) -> dict[str, float]:
    """SQL statements each agent's store has run so far (its metrics endpoint)."""
    return {d: net.metric(d, "fedorch_store_statements_total") for d in net.procs}


# The node engine's counters (runtime/node_engine/metrics.py), read per agent.
NODE_COUNTERS = {"driver_turns": ("fedorch_node_driver_turns_total", {}),
                 "driver_inputs": ("fedorch_node_driver_inputs_total", {}),  # Node steps
                 "transactions": ("fedorch_node_store_transactions_total", {}),
                 "envelopes_out": ("fedorch_node_envelopes_total", {}),
                 # Node messages a peer took from this agent, and posted here from peers
                 "messages_out": ("fedorch_node_messages_total", {"outcome": "sent"}),
                 "messages_in": ("fedorch_node_messages_total", {"outcome": "posted"}),
                 # node.db's rows (each once per transaction) and their bytes
                 "store_rows": ("fedorch_node_store_combined_rows_total", {}),
                 "store_bytes": ("fedorch_node_store_bytes_total", {}),
                 # node.db's commit thread, in CPU ms (see `_peak`)
                 "store_encode_cpu_ms": ("fedorch_node_store_cpu_seconds_total",
                                         {"part": "encode"}),
                 "store_sqlite_cpu_ms": ("fedorch_node_store_cpu_seconds_total",
                                         {"part": "sqlite"})}


def node_counters(net: RealNet) -> dict[str, dict[str, float]]:
    """Each agent's node-engine counters so far."""
    return {d: {name: net.metric(d, metric, **labels)
                for name, (metric, labels) in NODE_COUNTERS.items()}
            for d in net.procs}


def cpu_ms_per_workflow(before: dict[str, float], after: dict[str, float],
                        workflows: int) -> dict[str, float]:
    """Each process's CPU per workflow between two readings, and their total."""
    per = {name: round((after[name] - before[name]) * 1000 / max(1, workflows), 3)
           for name in after}
    per["total"] = round(sum(per.values()), 3)
    return per
