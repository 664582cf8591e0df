"""The bench's garbage-collector share (agent/bench/gc_share.py): an agent's passes and
CPU read back from the metrics it serves, and given per workflow between two readings;
the client's own from its callbacks."""

from __future__ import annotations

import gc

from fedorch.bench.gc_share import GcTime, gc_per_workflow, reading_of_metrics
from fedorch.runtime.gc_tuning import GcClock, GcClockCollector
from fedorch.runtime.metrics import AgentMetrics
from prometheus_client import generate_latest


def _served(collections: list[int], seconds: list[float]) -> str:
    clock = GcClock()
    clock.collections, clock.seconds = collections, seconds
    metrics = AgentMetrics()
    metrics.registry.register(GcClockCollector(clock))
    return generate_latest(metrics.registry).decode()


def test_a_reading_is_what_the_agent_serves() -> None:
    reading = reading_of_metrics(_served([7, 3, 1], [0.5, 0.25, 2.0]))
    assert reading == {"passes": [7, 3, 1], "cpu_s": [0.5, 0.25, 2.0]}
    assert reading_of_metrics("") == {"passes": [0, 0, 0], "cpu_s": [0, 0, 0]}


def test_per_workflow_is_the_difference_over_the_workflows() -> None:
    before = {"c1": reading_of_metrics(_served([7, 3, 1], [0.5, 0.25, 2.0]))}
    after = {"c1": reading_of_metrics(_served([17, 5, 1], [1.5, 0.75, 2.0]))}
    per = gc_per_workflow(before, after, 100)["c1"]
    assert per["passes"] == [0.1, 0.02, 0.0]
    assert per["ms_by_generation"] == [10.0, 5.0, 0.0] and per["ms"] == 15.0


def test_the_clients_reading_counts_its_passes_inside_the_block() -> None:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with GcTime() as client:
            before = client.reading()
            gc.collect(1)
            after = client.reading()
        gc.collect(1)
    finally:
        if was_enabled:
            gc.enable()
    assert gc_per_workflow({"client": before}, {"client": after}, 1)["client"]["passes"] \
        == [0.0, 1.0, 0.0]
    assert client.reading()["passes"] == [0.0, 1.0, 0.0]  # none counted after the block


def test_the_client_collects_with_the_agents_thresholds_inside_the_block_only() -> None:
    from fedorch.bench.gc_share import client_thresholds
    from fedorch.runtime.daemon import GC_THRESHOLDS

    saved = gc.get_threshold()
    with client_thresholds(GC_THRESHOLDS):
        inside = gc.get_threshold()
    assert inside == GC_THRESHOLDS != saved and gc.get_threshold() == saved
