"""Small parts of the benchmarks that can be checked without running them."""

from __future__ import annotations

from agent.bench.commit import forced_write_ms


def test_forced_write_probe_measures_and_leaves_nothing_behind(tmp_path):
    ms = forced_write_ms(tmp_path, writes=3)
    assert ms > 0
    assert list(tmp_path.iterdir()) == []
