"""Counts per fan-out from the fan-out benchmark's profiles (fedorch.bench.profiled_agent).

Counted, not sampled: cProfile sees every call of the profiled thread, so the number of
signatures, verifications, tasks, loop callbacks or encodings per fan-out is the same on
a quiet and on a busy machine (its times are not: read them as shares at most).

`python -m fedorch.bench.fanout_counts A.prof:WORKFLOWS[:WIDTH] [B.prof:WORKFLOWS:WIDTH]`
prints one profile's counts per fan-out; given two profiles of the same agent role at two
widths, it lists the functions whose calls per fan-out grow faster than the width (the
O(N^2) suspects: calls per fan-out grow by more than the widths' ratio times `SLACK`).
"""

from __future__ import annotations

import json
import pstats
import sys
from pathlib import Path

# (what, file suffix, function name): one row of the summary each.
WATCHED: tuple[tuple[str, str, str], ...] = (
    ("signatures made", "identity/envelope.py", "sign"),
    ("verifications asked", "identity/trust.py", "verify"),
    ("Ed25519 verifications done", "nacl/bindings/crypto_sign.py", "crypto_sign_open"),
    ("envelopes sealed", "identity/envelope.py", "seal"),
    ("messages opened", "identity/envelope.py", "open_message"),
    ("evidence opened", "identity/envelope.py", "open_evidence"),
    ("tasks created", "asyncio/base_events.py", "create_task"),
    ("loop callbacks run", "asyncio/events.py", "_run"),
    ("JSON encodings", "json/__init__.py", "dumps"),
    ("JSON decodings", "json/__init__.py", "loads"),
    ("peer calls out (Swim)", "runtime/peers.py", "call"),
    # The node engine: one NodeTurn envelope per peer and driver turn, each way.
    ("NodeTurn envelopes sealed", "node_engine/transport.py", "seal"),
    ("NodeTurn envelopes received", "node_engine/boundary.py", "receive"),
    ("driver turns", "runtime/driver.py", "begin"),
)
SLACK = 1.5
MIN_CALLS_PER_FANOUT = 5.0


def _calls(path: Path) -> dict[tuple[str, int, str], tuple[int, float]]:
    """(file, line, function) -> (calls, own seconds), over the whole profile."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    return {key: (nc, tt) for key, (cc, nc, tt, ct, callers) in stats.items()}


def _name(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":
        return func
    parts = Path(file).parts
    return f"{'/'.join(parts[-2:])}:{line}({func})"


def counts_per_fanout(path: str | Path, workflows: int, top: int = 30) -> dict:
    """The watched counts per fan-out, and the functions called most and those with
    the most own time."""
    calls = _calls(Path(path))
    summary = {}
    for what, suffix, func in WATCHED:
        n = sum(c for (file, _, f), (c, _) in calls.items()
                if f == func and file.endswith(suffix))
        summary[what] = round(n / workflows, 1)
    total_s = sum(t for _, t in calls.values()) or 1.0
    by_calls = sorted(calls.items(), key=lambda kv: -kv[1][0])[:top]
    by_time = sorted(calls.items(), key=lambda kv: -kv[1][1])[:top]
    return {
        "summary": summary,
        "most_called": [(_name(k), round(c / workflows, 1)) for k, (c, _) in by_calls],
        "most_own_time": [(_name(k), round(100 * t / total_s, 1)) for k, (_, t) in by_time],
    }


def faster_than_width(narrow: tuple[str | Path, int, int], wide: tuple[str | Path, int, int],
                      top: int = 40) -> list[tuple[str, float, float, float]]:
    """Functions whose calls per fan-out grow by more than SLACK times the widths' ratio
    from the narrow profile to the wide one: (name, narrow, wide, growth)."""
    (p1, w1, n1), (p2, w2, n2) = narrow, wide
    a, b = _calls(Path(p1)), _calls(Path(p2))
    expect = n2 / n1
    out = []
    for key, (calls, _) in b.items():
        per_wide = calls / w2
        if per_wide < MIN_CALLS_PER_FANOUT:
            continue
        per_narrow = a.get(key, (0, 0.0))[0] / w1
        growth = per_wide / per_narrow if per_narrow else float("inf")
        if growth > SLACK * expect:
            out.append((_name(key), round(per_narrow, 1), round(per_wide, 1), round(growth, 2)))
    out.sort(key=lambda row: -(row[2] - row[1]))
    return out[:top]


def main(argv: list[str]) -> int:
    specs = [arg.split(":") for arg in argv]
    if not specs or len(specs) > 2 or any(len(s) < 2 for s in specs):
        print(__doc__, file=sys.stderr)
        return 2
    for spec in specs:
        print(json.dumps({spec[0]: counts_per_fanout(spec[0], int(spec[1]))}, indent=1))
    if len(specs) == 2:
        narrow, wide = ((s[0], int(s[1]), int(s[2])) for s in specs)
        for row in faster_than_width(narrow, wide):
            print(*row, sep="\t")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
