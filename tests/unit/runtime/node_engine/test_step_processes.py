"""The node engine's step processes: which attempts a restart looks for, the process
groups kept on the side, and stopping what an earlier life left (real processes, each
stopped by the test by its pid)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fedorch.core.node.records import Disk
from fedorch.core.workflow.progress import StepState
from fedorch.runtime.executors.base import STEP_RUN_ENV
from fedorch.runtime.executors.leftovers import run_marker
from fedorch.runtime.node_engine.step_processes import (
    StepGroups,
    started_without_result,
    stop_leftovers,
)

# A domain name of this process's own: stop_leftovers looks through every process on the
# host for its domain's run markers, and other tests run steps of "d1" at the same time.
DOMAIN = f"leftovers{os.getpid()}"


def test_the_latest_attempt_of_each_step_without_its_result_counts():
    disk = Disk(runs={("w1", "a", 1), ("w1", "a", 2),   # 1 ended before 2 started
                      ("w1", "b", 1),                    # its result is on record
                      ("w2", "c", 1),                    # a result of an earlier attempt
                      ("w3", "d", 1)},                   # an ended workflow's attempt
                results={"w1": {"b": (1, StepState.SUCCEEDED, {"x": 1}, "")},
                         "w2": {"c": (0, StepState.FAILED, {}, "earlier")}},
                final={"w3": None})
    assert started_without_result(disk) == [("w1", "a", 2), ("w2", "c", 1), ("w3", "d", 1)]
    assert started_without_result(Disk()) == []


def test_groups_are_kept_one_file_each_until_forgotten(tmp_path):
    groups = StepGroups(tmp_path / "step_groups")
    assert groups.recorded() == {}  # no directory yet
    groups.record("d1/w1/a/1", 4242)
    groups.record("d1/w1/b/1", 4343)
    groups.forget("d1/w1/a/1")
    assert groups.recorded() == {"d1/w1/b/1": 4343}
    # What the next life reads: another StepGroups on the same directory.
    again = StepGroups(tmp_path / "step_groups")
    assert again.recorded() == {"d1/w1/b/1": 4343}
    (tmp_path / "step_groups" / "torn.json").write_text('{"marker": "d1/w9/a/1", "pg')
    (tmp_path / "step_groups" / "odd.json").write_text(json.dumps({"marker": "x", "pgid": 1}))
    assert again.recorded() == {"d1/w1/b/1": 4343}  # a torn or foreign file: skipped
    again.clear()
    assert again.recorded() == {} and list((tmp_path / "step_groups").iterdir()) == []


def test_a_group_that_cannot_be_recorded_is_logged_not_raised(tmp_path, caplog):
    (tmp_path / "step_groups").write_text("a file where the directory should be")
    groups = StepGroups(tmp_path / "step_groups")
    groups.record("d1/w1/a/1", 4242)
    assert "cannot record the process group" in caplog.text
    groups.forget("d1/w1/a/1")  # nothing written: nothing to remove, no error


def _alive(pid: int) -> bool:
    """A live process (a zombie, killed and not yet reaped by its parent, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids: list[int], deadline_s: float = 10.0) -> list[int]:
    """Wait until none of `pids` is alive, or the deadline passes: those still alive."""
    deadline = time.monotonic() + deadline_s
    while True:
        alive = [p for p in pids if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)


# A step attempt's processes: the leader (marked, as the command executor marks them)
# starts a child that drops the marker, in the same process group, prints its pid, and
# becomes a long sleep.
_STEP = ("import os, subprocess, sys\n"
         f"env = dict(os.environ); env.pop({STEP_RUN_ENV!r})\n"
         "child = subprocess.Popen(['sleep', '300'], env=env)\n"
         "print(child.pid, flush=True)\n"
         "os.execvp('sleep', ['sleep', '301'])\n")


def _start_step(marker: str) -> tuple[subprocess.Popen, int]:
    leader = subprocess.Popen([sys.executable, "-c", _STEP], stdout=subprocess.PIPE,
                              env={**os.environ, STEP_RUN_ENV: marker},
                              start_new_session=True)
    child = int(leader.stdout.readline())
    # Looked for once it is the sleep (while it execs, its environment may read empty).
    deadline = time.monotonic() + 10
    while _cmdline(leader.pid)[:2] != [b"sleep", b"301"]:
        assert time.monotonic() < deadline, "the step's leader never became its sleep"
        time.sleep(0.01)
    return leader, child


def _cmdline(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except FileNotFoundError:
        return []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_restart_stops_what_its_unfinished_attempts_left_and_nothing_else(tmp_path):
    unfinished = run_marker(DOMAIN, "w1", "a", 1)
    finished = run_marker(DOMAIN, "w2", "b", 1)
    disk = Disk(runs={("w1", "a", 1), ("w2", "b", 1)},
                results={"w2": {"b": (1, StepState.SUCCEEDED, {}, "")}})
    procs: list[subprocess.Popen] = []
    pids: list[int] = []
    try:
        leader, child = _start_step(unfinished)
        procs.append(leader)
        pids += [leader.pid, child]
        other, other_child = _start_step(finished)  # ended: whatever carries it is not ours
        procs.append(other)
        pids += [other.pid, other_child]
        groups = StepGroups(tmp_path / "step_groups")
        groups.record(unfinished, leader.pid)  # its group: the leader's pid

        killed = stop_leftovers(DOMAIN, disk, StepGroups(tmp_path / "step_groups"))

        assert {x.pid for x in killed} == {leader.pid}
        leader.wait(timeout=10)
        # The unmarked child went with the recorded group; the other attempt's did not.
        assert _wait_gone([leader.pid, child]) == []
        assert _alive(other.pid) and _alive(other_child)
        assert groups.recorded() == {}  # the earlier life's files are gone
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in procs:
            proc.wait(timeout=10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_without_its_group_on_record_the_marked_processes_still_go(tmp_path):
    marker = run_marker(DOMAIN, "w1", "a", 2)
    disk = Disk(runs={("w1", "a", 1), ("w1", "a", 2)})
    leader, child = _start_step(marker)
    try:
        killed = stop_leftovers(DOMAIN, disk, StepGroups(tmp_path / "step_groups"))
        assert {x.pid for x in killed} == {leader.pid}
        leader.wait(timeout=10)
        assert leader.returncode == -signal.SIGKILL
    finally:
        for pid in (leader.pid, child):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leader.wait(timeout=10)


def test_nothing_on_record_looks_for_nothing(tmp_path):
    looked: list[dict] = []
    killed = stop_leftovers(DOMAIN, Disk(), StepGroups(tmp_path / "g"),
                            kill=lambda wanted: looked.append(dict(wanted)) or [])
    assert killed == [] and looked == []
    groups = StepGroups(tmp_path / "g")
    groups.record(run_marker(DOMAIN, "w7", "a", 1), 777)  # a file past its run's record (compacted) counts
    stop_leftovers(DOMAIN, Disk(runs={("w1", "a", 1)}), StepGroups(tmp_path / "g"),
                   kill=lambda wanted: looked.append(dict(wanted)) or [])
    assert looked == [{run_marker(DOMAIN, "w1", "a", 1): None, run_marker(DOMAIN, "w7", "a", 1): 777}]
