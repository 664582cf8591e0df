"""The daemon's garbage collector (runtime/gc_tuning.py, daemon.py): its passes and the
CPU in them are counted per generation from gc.callbacks and served as metrics, and the
daemon's start-up sets its thresholds, installs the clock and passes the idle pass to the
agent's driver loop."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from fedorch.runtime import daemon, gc_tuning
from fedorch.runtime.gc_tuning import GcClock, GcClockCollector
from fedorch.runtime.metrics import AgentMetrics


@pytest.fixture
def no_automatic_passes():
    """Only the passes a test asks for (gc.collect runs its callbacks all the same)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def test_the_clock_counts_each_pass_in_its_generation(no_automatic_passes) -> None:
    clock = GcClock().install()
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        clock.remove()
    gc.collect(1)  # after remove: not counted
    assert clock.collections == [1, 0, 2]
    assert all(s >= 0 for s in clock.seconds) and clock not in gc.callbacks


def test_a_stop_without_its_start_is_not_counted() -> None:
    clock = GcClock()
    clock("stop", {"generation": 2})  # installed in the middle of a pass
    assert clock.collections == [0, 0, 0] and clock.seconds == [0.0, 0.0, 0.0]


def test_the_metrics_serve_the_clocks_counts() -> None:
    clock = GcClock()
    clock.collections = [5, 2, 1]
    clock.seconds = [0.25, 0.5, 1.5]
    metrics = AgentMetrics()
    metrics.registry.register(GcClockCollector(clock))
    sample = metrics.registry.get_sample_value
    assert [sample("fedorch_gc_collections_total", {"generation": g})
            for g in "012"] == [5, 2, 1]
    assert [sample("fedorch_gc_cpu_seconds_total", {"generation": g})
            for g in "012"] == [0.25, 0.5, 1.5]


def test_the_daemons_start_sets_the_thresholds_installs_the_clock_and_the_idle_pass(
        tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(f"domain: eu-west\nlisten: 127.0.0.1:7101\n"
                      f"data_dir: {tmp_path / 'data'}\nkey_file: {tmp_path / 'k.key'}\n")
    seen: list[tuple[tuple[int, int, int], bool, object]] = []

    async def serve(config, config_path: str = "", *, start_fresh: bool = False,
                    on_idle=None) -> int:
        seen.append((gc.get_threshold(), gc_tuning.CLOCK in gc.callbacks, on_idle))
        return 0

    monkeypatch.setattr(daemon, "serve", serve)
    monkeypatch.setattr(daemon.logs, "setup", lambda *args: None)
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        assert daemon.main(str(config)) == 0
    finally:
        gc.set_threshold(*saved)
        gc_tuning.CLOCK.remove()
    # The driver loop's idle port is the young collection (gc_tuning.IdleCollector).
    assert seen == [(daemon.GC_THRESHOLDS, True, gc_tuning.IDLE)]
    assert daemon.GC_THRESHOLDS[0] > 700


def test_the_daemons_metrics_endpoint_carries_the_clock() -> None:
    class Agent:
        metrics = AgentMetrics()

    server = daemon._start_metrics("127.0.0.1:0", Agent())
    try:
        assert Agent.metrics.registry.get_sample_value(
            "fedorch_gc_collections_total", {"generation": "2"}) is not None
    finally:
        server.shutdown()
        server.server_close()
