"""Finding and stopping what is left of an attempt: by its run marker, never by a group id
alone (ids are reused)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time

from fedorch.runtime.executors.base import STEP_RUN_ENV
from fedorch.runtime.executors.leftovers import find_marked, kill_leftovers, run_marker


def _sleeper(marker: str | None) -> subprocess.Popen:
    env = dict(os.environ)
    if marker is not None:
        env[STEP_RUN_ENV] = marker
    return subprocess.Popen(["sleep", "600"], env=env, start_new_session=True)


def _wait_dead(proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 10
    while proc.poll() is None:
        assert time.monotonic() < deadline, f"{proc.pid} still alive"
        time.sleep(0.02)
    return proc.returncode


def _visible(marker: str) -> None:
    """Wait until the kernel shows the new process's environment: Popen returns once the
    child's exec closed its error pipe, a moment before the new program's environment
    is readable in /proc (it reads empty until then)."""
    deadline = time.monotonic() + 10
    while not find_marked({marker}):
        assert time.monotonic() < deadline, f"no process with {marker} in its environment"
        time.sleep(0.01)


def test_marker_names_the_attempt() -> None:
    assert run_marker("d1", "wf-1", "train", 2) == "d1/wf-1/train/2"


def test_finds_and_kills_marked_processes_only() -> None:
    marker = f"test/{os.getpid()}/{time.monotonic_ns()}/step/1"
    marked, stranger = _sleeper(marker), _sleeper(None)
    try:
        _visible(marker)
        found = find_marked({marker, "other/marker"})
        assert [(x.marker, x.pid, x.pgid) for x in found] == [(marker, marked.pid, marked.pid)]
        # The stranger holds the group id recorded for another attempt: not proof enough.
        killed = kill_leftovers({marker: marked.pid, "gone/attempt": stranger.pid})
        assert [x.pid for x in killed] == [marked.pid]
        assert _wait_dead(marked) < 0
        assert stranger.poll() is None
    finally:
        for proc in (marked, stranger):
            proc.kill()
            proc.wait()


def test_a_marked_process_group_goes_whole() -> None:
    marker = f"test/{os.getpid()}/{time.monotonic_ns()}/step/1"
    env = {**os.environ, STEP_RUN_ENV: marker}
    # A leader and a child in one group; the child drops the marker from its environment
    # (the group's id on record finds it).
    leader = subprocess.Popen(
        ["sh", "-c", "env -u FEDORCH_STEP_RUN sleep 600 & echo $!; wait"], env=env,
        stdout=subprocess.PIPE, start_new_session=True)
    try:
        child = int(leader.stdout.readline())
        kill_leftovers({marker: leader.pid})
        assert _wait_dead(leader) < 0
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{child}/cmdline") and \
                open(f"/proc/{child}/cmdline", "rb").read():
            assert time.monotonic() < deadline, "the unmarked child of the group lives on"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)  # the leader's group, the child with it
        leader.wait()
        leader.stdout.close()


def test_nothing_recorded_finds_nothing() -> None:
    assert find_marked(set()) == []
    assert asyncio.run(asyncio.to_thread(kill_leftovers, {})) == []
