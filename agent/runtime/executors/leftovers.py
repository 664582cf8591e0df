"""What is left of the step attempts of an agent's previous life, and stopping it.

The step guard (step_guard.py) takes a step's process group down when its agent dies;
this is the second line, for what it could not reach (the agent died while the guard
was starting, or a program left its group). A restarted agent stops every process of
an attempt recorded as started without an end.

A process belongs to an attempt when its environment carries the attempt's run marker
(STEP_RUN_ENV, inherited by everything the step starts). A recorded process group id
alone is not proof: ids are reused, and after a restart another program may hold it.
So a group is killed only when a process in it carries the marker, and each marked
process is killed wherever it is. Linux only (/proc); elsewhere nothing is found.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from fedorch.runtime.executors.base import STEP_RUN_ENV

_PROC = "/proc"


@dataclass(frozen=True)
class Leftover:
    marker: str
    pid: int
    pgid: int


def find_marked(markers: Collection[str], proc: str = _PROC) -> list[Leftover]:
    """Live processes whose environment carries one of `markers`."""
    wanted = {f"{STEP_RUN_ENV}={m}".encode(): m for m in markers}
    if not wanted:
        return []
    found = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return []
    me = os.getpid()
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"{proc}/{entry}/environ", "rb") as f:
                environ = f.read()
            pgid = os.getpgid(int(entry))
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile, or not ours to read
        for item in environ.split(b"\0"):
            marker = wanted.get(item)
            if marker is not None:
                found.append(Leftover(marker, int(entry), pgid))
                break
    return found


def kill_leftovers(recorded_groups: Mapping[str, int | None]) -> list[Leftover]:
    """SIGKILL what is left of each attempt (marker -> its recorded process group, if
    known): its group when a marked process is in it, and every marked process.
    Returns the processes found."""
    found = find_marked(recorded_groups)
    groups = {x.pgid for x in found if recorded_groups.get(x.marker) == x.pgid}
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for x in found:
        try:
            os.kill(x.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return found


def run_marker(domain: str, workflow_id: str, step_id: str, attempt: int) -> str:
    """Names one attempt among all processes of the machine (workflow ids are unique)."""
    return f"{domain}/{workflow_id}/{step_id}/{attempt}"
