"""The cyclic garbage collector in a daemon: how often it runs, and what it costs.

Theory of operation. CPython frees almost everything by reference counting; the cyclic
collector exists only for reference cycles, and it runs when the count of container
objects allocated minus those freed passes its first threshold. A busy agent allocates
thousands of short-lived objects per workflow and keeps many thousands alive (every
workflow until retention), so with Python's default (700) young passes run every few
hundred microseconds and each older pass walks more of what is kept. A collection is
not a function of ours: a profile charges it to whatever allocated. `GcClock` counts
the passes per generation and the CPU time inside them (gc.callbacks, on the clock of
the thread that collects), and the agent's metrics expose both, so a bench reads the
collector's share per workflow instead of guessing it.

Collecting when idle. At the daemon's first threshold (50,000) a young pass stops the
event loop 20-50 ms, once per 500-800 workflows at the peak, inside whichever workflow's
path allocated the 50,000th object. `IdleCollector` is the driver loop's idle port
(driver.DriverLoop's `on_idle`, which daemon.main passes to the loop the agent
builds): when a turn leaves the loop with nothing queued and no timer due soon, it
runs a young pass itself if the young
count is past IDLE_FRACTION of the threshold, so that between bursts the count is spent
where no workflow waits, in shorter passes (a young pass walks what is young). A loop
that never goes idle collects at the threshold as before; measured, even at the commit
bench's peak the driver goes idle between turns often enough that every young pass was
an idle one, a quarter of the stop each at the same CPU in all (docs/benchmarks.md).
Its passes are counted apart (`fedorch_gc_idle_collections_total`; they are in the
generation-0 count too).

The thresholds themselves are daemon.GC_THRESHOLDS. `gc.freeze()` once the daemon
serves was measured and is not used: it takes the objects of starting (about 58,000)
out of full passes only, and with those thresholds a full pass does not come in 10,000
workflows (docs/benchmarks.md, "The garbage collector's share").
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

GENERATIONS = (0, 1, 2)


class GcClock:
    """Passes and CPU seconds inside them, per generation, since `install`."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started: dict[int, float] = {}

    def __call__(self, phase: str, info: dict) -> None:
        # A collection runs in whichever thread allocated, holding the GIL: that thread's
        # CPU clock between start and stop is the pass's cost, the machine's other work
        # and this process's C threads (gRPC's) not counted.
        me = threading.get_ident()
        if phase == "start":
            self._started[me] = time.thread_time()
        elif me in self._started:
            generation = info.get("generation", 0)
            self.collections[generation] += 1
            self.seconds[generation] += time.thread_time() - self._started.pop(me)

    def install(self) -> GcClock:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


# An idle loop collects once the young count is past this part of the first threshold:
# low enough that most of the count is spent in idle passes between bursts (each then
# about a quarter of a threshold pass's stop), high enough that a pass walks mostly
# objects already dead rather than promoting a burst's live ones to the older generation.
IDLE_FRACTION = 0.25


class IdleCollector:
    """The young pass of an idle loop (see the header): `__call__()` collects generation
    0 if the collector is on and its young count is past `fraction` of its first
    threshold; `passes` counts the passes it ran. `collector`: the gc module, or a fake
    with its get_count, get_threshold, isenabled and collect."""

    def __init__(self, fraction: float = IDLE_FRACTION, collector: Any = gc) -> None:
        self.fraction = fraction
        self.passes = 0
        self._gc = collector

    def __call__(self) -> bool:
        threshold = self._gc.get_threshold()[0]
        if not self._gc.isenabled() or threshold <= 0 \
                or self._gc.get_count()[0] < self.fraction * threshold:
            return False
        self._gc.collect(0)
        self.passes += 1
        return True


class GcClockCollector(Collector):
    """`fedorch_gc_collections_total{generation}` and
    `fedorch_gc_cpu_seconds_total{generation}` from a GcClock, and
    `fedorch_gc_idle_collections_total` from an IdleCollector if given."""

    def __init__(self, clock: GcClock, idle: IdleCollector | None = None) -> None:
        self._clock = clock
        self._idle = idle

    def collect(self) -> Iterator[CounterMetricFamily]:
        passes = CounterMetricFamily(
            "fedorch_gc_collections", "Passes of the cyclic garbage collector counted by"
            " its callbacks, by generation", labels=["generation"])
        cpu = CounterMetricFamily(
            "fedorch_gc_cpu_seconds", "CPU seconds inside those passes (the collecting"
            " thread's clock), by generation", labels=["generation"])
        for g in GENERATIONS:
            passes.add_metric([str(g)], self._clock.collections[g])
            cpu.add_metric([str(g)], self._clock.seconds[g])
        yield passes
        yield cpu
        if self._idle is not None:
            yield CounterMetricFamily(
                "fedorch_gc_idle_collections", "Young passes the driver loop ran while"
                " idle (also counted in fedorch_gc_collections_total{generation=\"0\"})",
                value=self._idle.passes)


# The daemon's: one agent per process (installed by daemon.main, read by its metrics).
CLOCK = GcClock()
IDLE = IdleCollector()
