"""Saturate the host while a scenario runs: CPU-bound processes, started and stopped by pid.

A scenario's ``load.busy_processes`` (or ``fedorch scenario run --busy N``) asks for N
processes that spin on the CPU for as long as the scenario runs. They compete with the
agents for the cores as the other work of a shared machine does, so a scenario can show
how the federation behaves when every agent is slow at once (the join storm "also when
the machine is saturated"). They run at the default priority: a niced loop would yield
to the agents and saturate nothing.

Each is its own process group; :meth:`BusyLoad.stop` kills each by its pid and reaps it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import TracebackType

MAX_BUSY_PROCESSES = 64
# The loop's own process: no I/O, nothing to clean up; SIGKILL is enough to end it.
_SPIN = "while True:\n    pass\n"
STOP_WAIT_S = 5.0


class BusyLoad:
    """N spinning processes; a context manager that stops them on every exit path."""

    def __init__(self, count: int) -> None:
        if not 0 <= count <= MAX_BUSY_PROCESSES:
            raise ValueError(f"busy processes: {count}, must be 0 to {MAX_BUSY_PROCESSES}")
        self.count = count
        self._procs: list[subprocess.Popen[bytes]] = []
        self.pids: list[int] = []  # every one started, also after stop (for the report)

    def start(self) -> None:
        try:
            for _ in range(self.count - len(self._procs)):
                proc = subprocess.Popen(
                    [sys.executable, "-c", _SPIN], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True)  # Ctrl-C on the terminal is the runner's
                self._procs.append(proc)
                self.pids.append(proc.pid)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self._procs:
            proc.wait(STOP_WAIT_S)
        self._procs.clear()

    def __enter__(self) -> BusyLoad:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
