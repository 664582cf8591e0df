"""Wall-clock steps for agent processes, as NTP makes them: libfaketime.

libfaketime (Debian package faketime), preloaded into an agent, shifts CLOCK_REALTIME by
the offset written in a file it reads on every clock call, and leaves CLOCK_MONOTONIC
alone, as an NTP step does. A runner that must step a domain's clock starts that agent
under it (offset +0) and rewrites the file to step it.

An NTP step changes the wall clock and nothing else, so libfaketime must change nothing
else either. Its "monotonic fix" (on by default with the glibc it detects: here glibc
2.36, libfaketime 0.9.10) rewrites the deadline of each `pthread_cond_timedwait` on a
CLOCK_MONOTONIC condition variable, and with the monotonic clock left alone such a wait
then times out at once, whatever its deadline. CPython hands its GIL from thread to
thread with such waits: under the fix, a bare round trip from the event loop to a worker
thread and back took 1.4 s at p99 on a busy machine (0.5 ms without libfaketime), and
the node engine makes one per commit (its commit thread) and per gRPC event (grpc.aio's
poller thread), so a freshly started federation missed the 2 s prepare deadline of its
first workflow in 3 runs of 8 (tests/integration/test_clock_steps.py).
`FAKETIME_FORCE_MONOTONIC_FIX=0` turns the fix off: it is for a faked monotonic clock,
which is never faked here.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

__all__ = ["FaketimeMissing", "faked_env", "faketime_library", "set_offset"]


class FaketimeMissing(Exception):
    """libfaketime is not installed, so no clock can be stepped."""


def faketime_library() -> str:
    """The path of libfaketime, or "" when it is not installed ($FEDORCH_FAKETIME_LIB
    names another one)."""
    chosen = os.environ.get("FEDORCH_FAKETIME_LIB")
    if chosen:
        return chosen if Path(chosen).exists() else ""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return found[0] if found else ""


def faked_env(offset_file: Path, library: str | None = None) -> list[str]:
    """`NAME=value` settings that start a process with its wall clock read from
    `offset_file` (and its monotonic clock, and the timed waits on it, untouched: see
    the header)."""
    library = library if library is not None else faketime_library()
    if not library:
        raise FaketimeMissing("libfaketime is not installed (Debian package faketime)")
    return [f"LD_PRELOAD={library}", f"FAKETIME_TIMESTAMP_FILE={offset_file}",
            "FAKETIME_NO_CACHE=1", "FAKETIME_DONT_FAKE_MONOTONIC=1",
            "FAKETIME_FORCE_MONOTONIC_FIX=0"]


def set_offset(offset_file: Path, seconds: float) -> None:
    """Step the wall clock of whoever reads `offset_file` to `seconds` from true time
    (written whole, then renamed: the file is read on every clock call)."""
    tmp = offset_file.with_suffix(".tmp")
    tmp.write_text(f"{round(seconds):+d}\n")
    os.replace(tmp, offset_file)
