"""The host load a scenario can ask for: spinning processes, started and stopped by pid."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fedorch.scenario.busy import MAX_BUSY_PROCESSES, BusyLoad

CPU_DEADLINE_S = 30.0


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks the process has used (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_busy_processes_spin_until_stopped_then_are_gone() -> None:
    with BusyLoad(2) as load:
        assert len(load.pids) == 2 and len(set(load.pids)) == 2
        for pid in load.pids:
            os.kill(pid, 0)  # alive
            assert os.getpgid(pid) == pid  # its own process group: Ctrl-C is the runner's
        # They use the CPU (not merely exist): each gains ticks before a deadline.
        deadline = time.monotonic() + CPU_DEADLINE_S
        while not all(cpu_ticks(pid) > 0 for pid in load.pids):
            assert time.monotonic() < deadline, "a busy process never ran"
            time.sleep(0.05)  # polling a condition, under a deadline
        started = list(load.pids)
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped and reaped
    assert load.pids == started  # still named for the report


def test_stopped_on_an_exception_too() -> None:
    with pytest.raises(RuntimeError), BusyLoad(1) as load:
        raise RuntimeError("the run failed")
    with pytest.raises(ProcessLookupError):
        os.kill(load.pids[0], 0)


def test_none_starts_nothing_and_a_bad_count_is_refused() -> None:
    with BusyLoad(0) as load:
        assert load.pids == []
    with pytest.raises(ValueError, match="must be 0 to 64"):
        BusyLoad(MAX_BUSY_PROCESSES + 1)
    with pytest.raises(ValueError):
        BusyLoad(-1)
