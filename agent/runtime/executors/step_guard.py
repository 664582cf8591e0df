"""The leader of a step's process group: runs the step program, dies with the agent.

Run as a script (``python -I -S step_guard.py AGENT_PID PROGRAM ARGS...``), never
imported by the agent: it uses the standard library only, so it starts fast and finds
nothing of the agent's environment.

Why a process of its own: when an agent is SIGKILLed nothing in it runs, so only the
kernel or another process can stop what its steps started. The kernel's parent-death
signal (PR_SET_PDEATHSIG) reaches one process, the agent's direct child, and not its
descendants; so that child is this guard, whose SIGTERM handler kills its whole process
group (the step program and everything it started). The signal is sent when the
*thread* that forked the guard ends: the agent forks steps from its event-loop thread,
which lives as long as the agent.

The guard exits as its program did (same exit code, or the same signal), so the
executor reads the program's end from it unchanged.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
CANNOT_START_EXIT = 127  # as shells report a program they cannot run


def _kill_group(_signum: int, _frame: object) -> None:
    # The agent is gone: the step's whole group goes, this guard included.
    os.killpg(0, signal.SIGKILL)


def _die_with_parent(agent_pid: int) -> None:
    signal.signal(signal.SIGTERM, _kill_group)
    if not sys.platform.startswith("linux"):
        return  # no parent-death signal: a restarted agent stops the leftovers instead
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        sys.stderr.write(f"step guard: prctl failed: {os.strerror(ctypes.get_errno())}\n")
        sys.exit(CANNOT_START_EXIT)
    if os.getppid() != agent_pid:
        # The agent died before the signal was armed: run nothing.
        sys.exit(CANNOT_START_EXIT)


def _exit_as(status: int) -> None:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # these have no handler to reset
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    sys.exit(os.waitstatus_to_exitcode(status))


def main(argv: list[str]) -> None:
    agent_pid, program = int(argv[0]), argv[1:]
    _die_with_parent(agent_pid)
    child = os.fork()
    if child == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            os.execvp(program[0], program)
        except OSError as e:
            sys.stderr.write(f"cannot start {program[0]!r}: {e.strerror or e}\n")
            sys.stderr.flush()
        os._exit(CANNOT_START_EXIT)
    _, status = os.waitpid(child, 0)
    _exit_as(status)


if __name__ == "__main__":
    main(sys.argv[1:])
