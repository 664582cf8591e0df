"""Long bench: whether a workflow's cost stays flat as work grows, and whether the agents'
memory and data stay bounded.

`total` three-domain workflows go through the same three agents in consecutive closed
loops of `every` workflows (the last one takes what is left). After each loop it reads,
for each agent: its RSS and the CPU it spent per workflow of that loop (/proc), the size
of its `node.db` (the Node's tables: every workflow it holds) with the WAL and that of its
`agent.db` (identity, meta, key changes and the audit log), the bytes in use in both split
into the audit log (never compacted) and the rest, and how many workflows its `node.db`
holds. A bench reports; it asserts nothing.

RSS is also read by mapping kind (`rss_by_mapping`, from /proc/<pid>/smaps), so a reading
says where resident memory lives: glibc's main heap, its per-thread malloc arenas, the
other anonymous mappings (CPython's own 1 MiB object arenas, large allocations, thread
stacks), or files (the interpreter, shared libraries, SQLite's WAL index); and each
agent's thread count, since every thread may take a malloc arena that outlives it.
With `trace_memory` the agents run under fedorch.bench.traced_agent, and each reading
after the first says what each agent allocated since the one before and still holds,
per workflow, by allocating line and by type (docs/benchmarks.md, "Memory per ended
workflow").
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fedorch.bench.agent_readings import process_rss_mb
from fedorch.bench.commit import DOMAINS, _federation, _peak
from fedorch.bench.realnet import RealNet
from fedorch.bench.traced_agent import diff, reading_paths
from fedorch.runtime.node_engine.identity import NODE_DB  # the Node's tables

EVERY = 10_000  # workflows between two readings (the target compares the first
# and the last 10,000)
BENCH_REPLAY_WINDOW_S = 5.0  # with keep_ended: retention waits two of these after an end


# glibc's arenas for threads other than the main one are heaps it maps at addresses aligned
# to their maximum size (HEAP_MAX_SIZE: 64 MiB on 64-bit); nothing else maps there on
# purpose, so an anonymous mapping starting at such an address is taken for one.
MALLOC_ARENA_ALIGN = 64 * 2**20
_SMAPS_HEADER = re.compile(r"^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$")


def _mapping_kind(start: int, name: str) -> str:
    if name == "[heap]":
        return "heap"
    if name.startswith("["):  # [stack], [vdso], [vvar], ...
        return "other"
    if name:
        return "file"
    return "malloc_arenas" if start % MALLOC_ARENA_ALIGN == 0 else "anonymous"


def rss_by_mapping_text(smaps: str) -> dict[str, float]:
    """Resident MB by mapping kind, from the text of a /proc/<pid>/smaps."""
    kb = {"heap": 0, "malloc_arenas": 0, "anonymous": 0, "file": 0, "other": 0}
    kind = None
    for line in smaps.splitlines():
        header = _SMAPS_HEADER.match(line)
        if header:
            kind = _mapping_kind(int(header.group(1), 16), header.group(2).strip())
        elif kind and line.startswith("Rss:"):
            kb[kind] += int(line.split()[1])
    return {k: round(v / 1024, 1) for k, v in kb.items()}


def rss_by_mapping(pid: int) -> dict[str, float]:
    """One process's resident MB by mapping kind (see the module doc)."""
    with open(f"/proc/{pid}/smaps") as f:
        return rss_by_mapping_text(f.read())


def process_threads(pid: int) -> int:
    """How many threads a process has now (each may have taken a malloc arena of its own)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise ValueError(f"no Threads line in /proc/{pid}/status")


AGENT_DB = "agent.db"  # identity, meta, key changes, the audit log (runtime/store)
AUDIT_TABLES = ("audit", "audit_workflow", "audit_checkpoints")


def _file_mb(tmp: Path, domain: str, name: str) -> float:
    base = tmp / "data" / domain / name
    total = sum(Path(f"{base}{s}").stat().st_size
                for s in ("", "-wal") if Path(f"{base}{s}").exists())
    return round(total / 2**20, 1)


def data_mb(tmp: Path, domain: str) -> float:
    """The size of one agent's `node.db` (its workflows) with its WAL."""
    return _file_mb(tmp, domain, NODE_DB)


def agent_db_mb(tmp: Path, domain: str) -> float:
    """The size of one agent's `agent.db` (the audit log and its records) with its WAL."""
    return _file_mb(tmp, domain, AGENT_DB)


def retention_config(keep_ended: int, keep_ended_s: float) -> dict:
    """Agent config for a long run that keeps few ended workflows. The sweep runs every
    second, and the replay window is short (nothing is compacted in the first two windows
    after its end, docs/retention.md), so the bound shows within a short run."""
    return {"retention": {"keep_ended_s": keep_ended_s, "max_ended_workflows": keep_ended},
            "negotiation": {"replay_window_s": BENCH_REPLAY_WINDOW_S}}


def _read_only(tmp: Path, domain: str, name: str) -> sqlite3.Connection:
    # Read-only; WAL lets the agent write on meanwhile.
    return sqlite3.connect(f"file:{tmp / 'data' / domain / name}?mode=ro", uri=True,
                           timeout=5)


def ended_kept(tmp: Path, domain: str) -> int:
    """How many workflows one agent's `node.db` holds (`node_endings`, retention's stamp
    of each: every workflow it coordinated or took part in, ended once a loop is over,
    until retention forgets it; an end alone would leave out a round aborted before any
    COMMIT, whose end is its coordinator's row); 0 before the Node made the file."""
    if not (tmp / "data" / domain / NODE_DB).exists():
        return 0
    db = _read_only(tmp, domain, NODE_DB)
    try:
        return int(db.execute("SELECT count(*) FROM node_endings").fetchone()[0])
    finally:
        db.close()


def _in_use(db: sqlite3.Connection) -> int:
    page = db.execute("PRAGMA page_size").fetchone()[0]
    return (db.execute("PRAGMA page_count").fetchone()[0]
            - db.execute("PRAGMA freelist_count").fetchone()[0]) * page


def live_mb(tmp: Path, domain: str) -> dict[str, float | None]:
    """The bytes in use in one agent's two databases (free pages, which SQLite reuses,
    not counted), split into the audit log (`agent.db`, never compacted) and the rest
    (`node.db` whole, which retention bounds, and `agent.db`'s other tables). None
    where this SQLite has no dbstat table to tell."""
    node = 0
    if (tmp / "data" / domain / NODE_DB).exists():
        db = _read_only(tmp, domain, NODE_DB)
        try:
            node = _in_use(db)
        finally:
            db.close()
    db = _read_only(tmp, domain, AGENT_DB)
    try:
        used = _in_use(db)
        try:
            audit = db.execute("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN"
                               f" ({', '.join('?' * len(AUDIT_TABLES))})",
                               AUDIT_TABLES).fetchone()[0]
        except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
            return {"audit": None, "rest": None}
        return {"audit": round(audit / 2**20, 1),
                "rest": round((node + used - audit) / 2**20, 1)}
    finally:
        db.close()


async def _settled(net: RealNet, keep_ended: int, deadline_s: float) -> None:
    """Until every agent holds at most `keep_ended` workflows, or the deadline passes
    (the reading then shows what was kept: a bench reports, it does not assert)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if all(ended_kept(net.workdir, d) <= keep_ended for d in DOMAINS):
            return
        await asyncio.sleep(0.5)


def when() -> dict[str, str | float]:
    """A reading's UTC time and the 1-minute load average (the machine may be shared)."""
    return {"utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "load_1m": os.getloadavg()[0]}


def segments(total: int, every: int) -> list[int]:
    """The sizes of the consecutive loops: `every` each, the last one what is left."""
    if total < 1 or every < 1:
        raise ValueError("the long bench needs at least one workflow, and every >= 1")
    return [every] * (total // every) + ([total % every] if total % every else [])


def growth(rows: list[dict]) -> dict[str, float | None]:
    """Each process's CPU per workflow of the last loop over that of the first (and of
    their total): the issue's target is at most 1.10."""
    if len(rows) < 2:
        return {}
    first, last = rows[0]["cpu_ms_by_process"], rows[-1]["cpu_ms_by_process"]
    return {name: round(last[name] / first[name], 3) if first[name] else None
            for name in first}


async def _traced_readings(net: RealNet, traced: Path, n: int,
                           deadline_s: float = 600.0) -> dict[str, str]:
    """Ask every traced agent for its reading `n` (SIGUSR1, fedorch.bench.traced_agent)
    and wait until each has written it: where each is, by domain."""
    for d in DOMAINS:
        os.kill(net.procs[d].pid, signal.SIGUSR1)
    deadline = time.monotonic() + deadline_s
    waiting = set(DOMAINS)
    while waiting and time.monotonic() < deadline:
        waiting = {d for d in waiting
                   if not all(p.exists() for p in reading_paths(traced / d, n))}
        if waiting:
            await asyncio.sleep(0.5)
    if waiting:
        raise TimeoutError(f"no memory reading {n} from {sorted(waiting)}")
    return {d: str(traced / f"{d}.{n}") for d in DOMAINS}


async def run_long_bench(total: int = 30_000, concurrency: int = 256, every: int = EVERY,
                         workdir: Path | None = None, keep_ended: int | None = None,
                         keep_ended_s: float = 10.0,
                         on_reading: Callable[[dict], None] | None = None,
                         trace_memory: Path | None = None) -> dict:
    """`total` workflows on the same agents, read every `every` (see the module doc).
    With `keep_ended`, the agents keep at most that many ended workflows (and none
    older than `keep_ended_s`), and each reading waits for retention to catch up.
    `on_reading` gets each reading as it is made (a long run shows progress).
    `trace_memory`: a directory; the agents run traced (fedorch.bench.traced_agent),
    each reading also writes their allocations there (`traced`: where), and the result
    says what each agent allocated and still holds per workflow between each two
    readings (`memory_per_workflow`, from the second on)."""
    sizes = segments(total, every)
    if concurrency < 1:
        raise ValueError("the long bench needs a submitter")
    if keep_ended is not None and (keep_ended < 1 or keep_ended_s <= 0):
        raise ValueError("keep_ended and keep_ended_s must be positive")
    extra = retention_config(keep_ended, keep_ended_s) if keep_ended is not None else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="fedorch-bench-", dir=workdir) as tmp:
        async with _federation(Path(tmp), "paxos", extra, traced=trace_memory) as net:
            done = 0
            for n in sizes:
                loop = await _peak(net, n, concurrency)
                done += n
                if keep_ended is not None:  # let a sweep pass after the loop ends
                    await _settled(net, keep_ended, 2 * BENCH_REPLAY_WINDOW_S + keep_ended_s + 5.0)
                rows.append({"after_workflows": done, **loop, **when(),
                             "ended_kept": {d: ended_kept(Path(tmp), d) for d in DOMAINS},
                             "live_mb": {d: live_mb(Path(tmp), d) for d in DOMAINS},
                             "rss_mb": {d: process_rss_mb(p.pid) for d, p in net.procs.items()},
                             "rss_by_mapping_mb": {d: rss_by_mapping(p.pid)
                                                   for d, p in net.procs.items()},
                             "threads": {d: process_threads(p.pid) for d, p in net.procs.items()},
                             "data_mb": {d: data_mb(Path(tmp), d) for d in DOMAINS},
                             "agent_db_mb": {d: agent_db_mb(Path(tmp), d) for d in DOMAINS}})
                if trace_memory is not None:
                    rows[-1]["traced"] = await _traced_readings(net, trace_memory, len(rows))
                    if len(rows) > 1:
                        rows[-1]["memory_per_workflow"] = {
                            d: diff(rows[-2]["traced"][d], rows[-1]["traced"][d], n)
                            for d in DOMAINS}
                if on_reading is not None:
                    on_reading(rows[-1])
    cpu_growth = growth(rows)
    return {"workflows": total, "concurrency": concurrency, "every": every, "parts": rows,
            "keep_ended": keep_ended, "keep_ended_s": keep_ended_s if keep_ended else None,
            "cpu_growth": cpu_growth.get("total"), "cpu_growth_by_process": cpu_growth}
