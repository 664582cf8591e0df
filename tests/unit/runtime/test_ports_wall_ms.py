"""wall_ms_of (ports.py): the Node's wall_ms, flattened for the system clock, equal to
wall_ms_at over any clock."""

from __future__ import annotations

import time

from fedorch.runtime import ports
from fedorch.runtime.ports import SystemClock, wall_ms_at, wall_ms_of


class _Clock:
    def monotonic(self) -> float:
        return 100.0

    def wall_ms(self) -> int:
        return 1_700_000_000_000


def test_another_clock_goes_through_wall_ms_at() -> None:
    clock = _Clock()
    for now in (100.0, 97.5, 103.0004):
        assert wall_ms_of(clock)(now) == wall_ms_at(clock, now)


def test_the_system_clock_reads_the_time_functions_as_its_methods_do(monkeypatch) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_123_456_789)
    monkeypatch.setattr(time, "monotonic", lambda: 5000.25)
    clock = SystemClock()
    flat = wall_ms_of(clock)
    assert ports.time is time
    for now in (5000.25, 4990.0, 5012.3456):
        assert flat(now) == wall_ms_at(clock, now)
