"""The garbage collector's share of a bench's CPU: each agent's collector passes per
generation and the CPU inside them (the agent's `fedorch_gc_*` metrics, kept by
runtime/gc_tuning.py's GcClock), and the client's own, read over one closed loop and
given per workflow. A collection runs inside whatever allocated, so a profile cannot
show it apart; these can.
"""

from __future__ import annotations

import contextlib
import gc
import urllib.request
from collections.abc import Iterator

from fedorch.bench.realnet import RealNet
from fedorch.runtime.gc_tuning import GENERATIONS, GcClock
from prometheus_client.parser import text_string_to_metric_families

# A reading: passes so far per generation, and CPU seconds inside them per generation.
Reading = dict[str, list[float]]


def reading_of_metrics(text: str) -> Reading:
    """A reading from an agent's Prometheus text (`fedorch_gc_*`; zeros when absent)."""
    reading: Reading = {"passes": [0.0] * len(GENERATIONS), "cpu_s": [0.0] * len(GENERATIONS)}
    names = {"fedorch_gc_collections_total": "passes", "fedorch_gc_cpu_seconds_total": "cpu_s"}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                reading[names[sample.name]][int(sample.labels["generation"])] = sample.value
    return reading


def gc_readings(net: RealNet) -> dict[str, Reading]:
    """Each agent's reading so far (one scrape of its metrics endpoint each)."""
    readings = {}
    for d in net.procs:
        url = f"http://{net.metrics_address(d)}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            readings[d] = reading_of_metrics(reply.read().decode())
    return readings


def gc_per_workflow(before: dict[str, Reading], after: dict[str, Reading],
                    workflows: int) -> dict[str, dict]:
    """Each process's passes per workflow by generation (`passes`), its CPU ms inside
    them per workflow by generation (`ms_by_generation`) and in all (`ms`), between two
    readings."""
    n = max(1, workflows)
    per = {}
    for name in after:
        passes = [round((a - b) / n, 4)
                  for a, b in zip(after[name]["passes"], before[name]["passes"], strict=True)]
        ms = [(a - b) * 1000 / n
              for a, b in zip(after[name]["cpu_s"], before[name]["cpu_s"], strict=True)]
        per[name] = {"passes": passes, "ms_by_generation": [round(m, 4) for m in ms],
                     "ms": round(sum(ms), 3)}
    return per


class GcTime(GcClock):
    """The client's own passes and CPU inside them, over a `with` block."""

    def reading(self) -> Reading:
        return {"passes": [float(c) for c in self.collections], "cpu_s": list(self.seconds)}

    def __enter__(self) -> GcTime:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.remove()


@contextlib.contextmanager
def client_thresholds(thresholds: tuple[int, int, int]) -> Iterator[None]:
    """The bench's client collects with these thresholds inside the block (the agents'):
    it keeps every workflow's `_Run` and, submitting by calls, a stream per workflow, and
    with Python's default its passes cost it a tenth of its CPU in `bench long`
    (docs/benchmarks.md)."""
    saved = gc.get_threshold()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*saved)
