"""The slow_disk shim: built with the system C compiler, preloaded into a process, it
delays that process's fsync/fdatasync by what its delay file says and counts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fedorch.scenario.slow_disk import (
    build_shim,
    compiler,
    read_stats,
    set_delay,
    shim_env,
)

pytestmark = pytest.mark.skipif(not compiler(), reason="no C compiler")

SYNCS = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
for _ in range(int(sys.argv[2])):
    os.write(fd, b"x")
    os.fsync(fd)
    os.fdatasync(fd)
os.close(fd)
"""


def run_syncs(shim: Path, tmp_path: Path, delay: Path, stats: Path, times: int) -> None:
    env = {**os.environ, **shim_env(shim, delay, stats)}
    subprocess.run([sys.executable, "-c", SYNCS, str(tmp_path / "data"), str(times)],
                   env=env, check=True, timeout=60)


def test_syncs_are_delayed_and_counted_while_the_delay_file_says_so(tmp_path: Path) -> None:
    shim = build_shim(tmp_path / "disk")
    assert build_shim(tmp_path / "disk") == shim  # built once
    delay, stats = tmp_path / "delay", tmp_path / "stats"
    set_delay(delay, 0.002)
    run_syncs(shim, tmp_path, delay, stats, 3)
    assert read_stats(stats) == (6, 0.012)  # 3 fsync + 3 fdatasync, 2 ms each
    set_delay(delay, 0)  # no longer slowed: nothing more is counted
    run_syncs(shim, tmp_path, delay, tmp_path / "stats-after", 3)
    assert read_stats(tmp_path / "stats-after") == (0, 0.0)
    assert (tmp_path / "data").read_bytes() == b"x" * 6  # the real syncs still happen


def test_the_stats_file_is_replaced_whole_never_rewritten_in_place(tmp_path: Path) -> None:
    """A runner reads the stats while the agent syncs: rewritten in place (truncated,
    then written), the file is empty for a moment and read as no delayed sync at all.
    Replaced by a rename, a reader holding the old file still sees the old line."""
    shim = build_shim(tmp_path / "disk")
    delay, stats = tmp_path / "delay", tmp_path / "stats"
    set_delay(delay, 0.001)
    run_syncs(shim, tmp_path, delay, stats, 1)
    with stats.open() as before:
        run_syncs(shim, tmp_path, delay, stats, 2)
        assert before.read().split()[0] == "2"  # the old file, untouched
    assert read_stats(stats)[0] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "delay", "disk", "stats"]


def test_a_negative_delay_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        set_delay(tmp_path / "delay", -1)
    assert not (tmp_path / "delay").exists()
