"""The traced agent's readings (agent/bench/traced_agent.py), made in this process."""

from __future__ import annotations

import tracemalloc

import pytest
from fedorch.bench.traced_agent import diff, reading_paths, write_reading


class Held:
    """An object a workflow would leave behind."""

    def __init__(self, n: int) -> None:
        self.n = n


def test_a_diff_names_what_was_allocated_between_two_readings_and_is_still_held(tmp_path):
    out = str(tmp_path / "c1")
    tracemalloc.start(1)
    try:
        write_reading(out, 1)
        held = [Held(i) for i in range(1000)]  # the allocating line
        write_reading(out, 2)
    finally:
        tracemalloc.stop()
    assert all(p.exists() for n in (1, 2) for p in reading_paths(out, n))
    grown = diff(f"{out}.1", f"{out}.2", workflows=100)
    by_type = {t["type"]: t["objects"] for t in grown["by_type"]}
    assert by_type[f"{__name__}.Held"] == 10.0  # 1,000 over 100 workflows
    assert any(line["where"].endswith("test_traced_agent.py:23") and line["blocks"] >= 10
               for line in grown["by_line"])
    assert grown["bytes_per_workflow"] >= 10 * 48
    assert len(held) == 1000
    with pytest.raises(ValueError):
        diff(f"{out}.1", f"{out}.2", workflows=0)
