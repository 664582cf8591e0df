"""Real agents whose wall clock steps (as NTP makes it) while a workflow runs: back 2 s
(one agent alone), back 1 h and forward 1 h (the whole federation). libfaketime shifts
CLOCK_REALTIME from a file read on every call, and leaves CLOCK_MONOTONIC alone, as an
NTP step does. Every agent keeps serving, gossip goes on, and the workflows succeed.

`make test` installs the Debian package faketime where it is missing (as root); without
it these tests are skipped, saying so.

libfaketime must change nothing but the wall clock: with its "monotonic fix" on (its
default here), a timed wait on the monotonic clock returned at once, CPython's GIL
hand-offs between threads took up to seconds, and the first workflow of a freshly
started federation missed its 2 s prepare deadline in 3 runs of 8 (scenario/clock.py).
"""

from __future__ import annotations

import errno
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fedorch.cli.demo import agent_command, start_agents, wait_healthy
from fedorch.scenario.clock import faked_env, faketime_library, set_offset

from tests.integration.federation import Federation, state_name, step_states, wait_for

LIB = faketime_library()

pytestmark = pytest.mark.skipif(
    not LIB,
    reason="libfaketime is not installed (Debian package faketime; `make test` installs it "
           "when run as root)")

NAMES = ("a", "b", "c")
SLEEP = {"name": "t.sleep", "capacity": 4, "executor": {"type": "builtin", "name": "sleep"}}
DOMAINS = {name: {"capabilities": [SLEEP]} for name in NAMES}
STEP_S = 1.5


def test_faketime_steps_the_wall_clock_of_a_child_python_and_not_its_monotonic_one(
        tmp_path) -> None:
    offset_file = tmp_path / "offset"
    set_offset(offset_file, -3600)
    probe = ("import time, pathlib, sys; t, m = time.time(), time.monotonic(); "
             "pathlib.Path(sys.argv[1]).write_text('+7200'); "
             "print(t, m, time.time(), time.monotonic())")
    out = subprocess.run(["env", *faked_env(offset_file), sys.executable, "-c", probe,
                          str(offset_file)], capture_output=True, text=True, timeout=30,
                         check=True)
    wall, mono, wall_after, mono_after = map(float, out.stdout.split())
    assert abs(wall - time.time() + 3600) < 30  # an hour behind ours
    assert abs(mono - time.monotonic()) < 30  # the monotonic clock is not faked
    assert 10800 - 30 < wall_after - wall < 10800 + 30  # the file is read on every call
    assert 0 <= mono_after - mono < 30


# A child Python's timed wait on a CLOCK_MONOTONIC condition variable, as CPython waits
# for its GIL (through libc, so libfaketime's pthread_cond_timedwait when preloaded):
# prints the wait's return code and how far ahead of its deadline it returned.
_TIMED_WAIT_PROBE = """
import ctypes
libc = ctypes.CDLL(None)
class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
def monotonic():
    now = Timespec()
    libc.clock_gettime(1, ctypes.byref(now))  # CLOCK_MONOTONIC
    return now.sec + now.nsec / 1e9
attr, cond, mutex = (ctypes.create_string_buffer(64) for _ in range(3))
assert libc.pthread_condattr_init(attr) == 0
assert libc.pthread_condattr_setclock(attr, 1) == 0
assert libc.pthread_cond_init(cond, attr) == 0 and libc.pthread_mutex_init(mutex, None) == 0
assert libc.pthread_mutex_lock(mutex) == 0
deadline = monotonic() + 0.2
at = Timespec(int(deadline), int((deadline - int(deadline)) * 1e9))
rc = libc.pthread_cond_timedwait(cond, mutex, ctypes.byref(at))
print(rc, deadline - monotonic())
"""


def test_faketime_leaves_a_child_pythons_timed_waits_on_the_monotonic_clock_whole(
        tmp_path) -> None:
    offset_file = tmp_path / "offset"
    set_offset(offset_file, -3600)
    out = subprocess.run(["env", *faked_env(offset_file), sys.executable, "-c",
                          _TIMED_WAIT_PROBE], capture_output=True, text=True, timeout=30,
                         check=True)
    rc, early_s = out.stdout.split()
    assert int(rc) == errno.ETIMEDOUT
    # Not before its deadline (a lower bound only: how late it may be is no concern here).
    assert float(early_s) <= 0, f"timed out {float(early_s):.3f} s before its deadline"


def _spec() -> str:
    chain = [("s1", "a"), ("s2", "b"), ("s3", "c"), ("s4", "a"), ("s5", "b")]
    lines = ["name: clock-steps", "steps:"]
    for i, (sid, domain) in enumerate(chain):
        lines += [f"  - id: {sid}", "    capability: t.sleep",
                  f"    params: {{seconds: {STEP_S}}}", f"    constraints: {{domains: [{domain}]}}"]
        if i:
            lines.append(f"    needs: [{chain[i - 1][0]}]")
    return "\n".join(lines) + "\n"


async def test_agents_keep_serving_and_workflows_succeed_across_wall_clock_steps(
        tmp_path) -> None:
    fed = Federation(tmp_path, DOMAINS)
    fed.write_configs()
    offsets = {name: tmp_path / f"{name}.offset" for name in NAMES}
    for path in offsets.values():
        set_offset(path, 0)
    try:
        procs = start_agents(
            {n: fed.configs[n] for n in NAMES}, {n: fed.address(n) for n in NAMES}, tmp_path,
            command=lambda config: ["env", *faked_env(offsets[Path(config).stem]),
                                    *agent_command(config)])
        fed.procs.update({p.domain: p for p in procs})
        await wait_healthy(procs, deadline_s=60)
        await fed.wait_converged()

        workflow_id = await fed.submit("a", _spec())
        # Each phase once the workflow has reached the step named: (a, b, c) offsets.
        phases = [("s1", (-2, 0, 0)),  # a alone, back 2 s (within the replay window)
                  ("s2", (-3600, -3600, -3600)),  # all back 1 h
                  ("s3", (0, 0, 0)),  # all forward 1 h
                  ("s4", (3600, 3600, 3600))]  # and forward 1 h again
        for step_id, phase in phases:
            async def reached(step_id=step_id):
                status = await fed.status("a", workflow_id)
                return step_states(status)[step_id][0] in ("RUNNING", "SUCCEEDED")

            await wait_for(reached, 60, f"{workflow_id} to reach {step_id}")
            for name, seconds in zip(NAMES, phase, strict=True):
                set_offset(offsets[name], seconds)
        status = await fed.wait_state("a", workflow_id, deadline_s=90)
        assert state_name(status) == "SUCCEEDED", status

        # Still a federation: everyone ALIVE to everyone, and a new workflow succeeds.
        # On a loaded machine a member may be suspected again just after the views
        # converged, and a vote may miss the 2 s prepare deadline: the federation is
        # still whole if one of three fresh submissions, each after convergence, succeeds.
        for _ in range(3):
            await fed.wait_converged()
            again = await fed.submit("c", _spec())
            status = await fed.wait_state("c", again, deadline_s=90)
            if state_name(status) == "SUCCEEDED":
                break
        assert state_name(status) == "SUCCEEDED", status
        for name, proc in fed.procs.items():
            assert proc.popen.poll() is None, f"agent {name} exited"
            log = proc.log_path.read_text()
            assert "Traceback" not in log and "went backwards" not in log, log[-3000:]
    finally:
        await fed.close_channels()
        fed.stop()
