"""`python -m fedorch.bench.traced_agent OUT agent run --config FILE`: an agent whose
Python allocations are traced (tracemalloc), so that a benchmark can say what holds its
memory and where it was allocated.

Tracing starts before the agent is built (one frame a trace: each block is charged to
the line that allocated it). On SIGUSR1 the agent collects its garbage and writes, each
through a temporary file and a rename (a reader never sees half of one), `OUT.N.snap`
(the tracemalloc snapshot) and `OUT.N.types.json` (its live objects counted by type), N
counting from 1: the signal handler runs on the event loop's thread, between two of
its callbacks, so the agent stands still while it is read. `diff(a, b, n)` reads two
such readings apart: what was allocated and is still held between them, per
workflow, by line and by type. Tracing costs CPU and memory of its own (an agent some
4-6 times slower, its RSS nearly twice as large): a traced run is read for what is
held, never for speed or RSS.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path


def type_counts() -> dict[str, int]:
    """The objects the garbage collector tracks, counted by their type's full name."""
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return dict(counts)


def write_reading(out: str, n: int) -> None:
    """Reading `n`: the snapshot and the type counts, each written whole (see above)."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    snapshot.dump(f"{out}.{n}.snap.part")
    os.replace(f"{out}.{n}.snap.part", f"{out}.{n}.snap")
    Path(f"{out}.{n}.types.json.part").write_text(json.dumps(type_counts()))
    os.replace(f"{out}.{n}.types.json.part", f"{out}.{n}.types.json")


def reading_paths(out: str | Path, n: int) -> tuple[Path, Path]:
    """The two files of reading `n` (see the header)."""
    return Path(f"{out}.{n}.snap"), Path(f"{out}.{n}.types.json")


def _where(trace: tracemalloc.Traceback) -> str:
    frame = trace[0]
    name = frame.filename
    return f"{name.split('/agent/', 1)[-1] if '/agent/' in name else name}:{frame.lineno}"


def diff(before: str | Path, after: str | Path, workflows: int, top: int = 30) -> dict:
    """What was allocated between two readings (`OUT.N`, without the suffixes) and is
    still held at the second, per workflow of those between them: bytes and blocks by
    allocating line, and objects by type, the `top` of each."""
    if workflows < 1:
        raise ValueError("a diff is per workflow: at least one between the readings")
    snaps = [tracemalloc.Snapshot.load(f"{p}.snap") for p in (before, after)]
    stats = snaps[1].compare_to(snaps[0], "lineno")
    lines = [{"where": _where(s.traceback), "bytes": round(s.size_diff / workflows),
              "blocks": round(s.count_diff / workflows, 2)} for s in stats[:top]]
    counts = [json.loads(Path(f"{p}.types.json").read_text()) for p in (before, after)]
    grown = {k: (v - counts[0].get(k, 0)) / workflows for k, v in counts[1].items()}
    types = [{"type": k, "objects": round(v, 2)}
             for k, v in sorted(grown.items(), key=lambda kv: -kv[1])[:top]]
    return {"bytes_per_workflow": round(sum(s.size_diff for s in stats) / workflows),
            "by_line": lines, "by_type": types}


def main(argv: list[str]) -> int:
    out, args = argv[0], argv[1:]
    tracemalloc.start(1)
    taken = 0

    def read(signum, frame) -> None:
        nonlocal taken
        taken += 1
        write_reading(out, taken)

    signal.signal(signal.SIGUSR1, read)
    from fedorch.cli.main import cli

    return cli.main(args=args, prog_name="fedorch", standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
