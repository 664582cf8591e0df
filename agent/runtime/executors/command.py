"""Runs a step as a local program: JSON in on stdin, a JSON object out on stdout.

The program runs in its own session (a new process group), so a timeout or a cancel can
kill everything it started with one signal. The group's leader is a small guard
(step_guard.py) that kills the group when the agent dies, even by SIGKILL; the attempt's
run marker is in the group's environment (STEP_RUN_ENV) and its group id is told to
`on_started`, so a restarted agent can find and stop what is left of it. Once the program exits, whatever it left
behind in that group is killed too: a step owns its processes, and a background child
holding stdout open must not keep the step (or the agent) waiting.

This uses ``loop.subprocess_exec`` with its own protocol rather than
``asyncio.create_subprocess_exec``: on Python 3.11, ``Process.wait()`` only returns once
every pipe is closed, so a grandchild holding stdout would hide the exit; the protocol
sees the exit directly and keeps only a bounded tail of each output stream.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys
from collections.abc import Mapping, Sequence

from fedorch.core.workflow import values
from fedorch.runtime.executors.base import (
    STEP_RUN_ENV,
    StepInvocation,
    StepOutcome,
    clip_error,
    timed_out_error,
)

STDOUT_LIMIT_BYTES = 1024 * 1024
"""Stdout kept per attempt (its tail); the outputs line must fit in it."""
STDERR_LIMIT_BYTES = 64 * 1024
"""Stderr kept per attempt (its tail); only the last MAX_ERROR_CHARS reach the error."""
PIPE_DRAIN_GRACE_S = 1.0
"""How long to wait for output still in the pipes once the program has exited."""
KILL_REAP_GRACE_S = 5.0
"""How long to wait for the kernel to report a SIGKILLed program gone."""

STEP_GUARD = str(pathlib.Path(__file__).with_name("step_guard.py"))
# -I: none of the environment's Python settings; -S: no site (a faster start).
GUARD_ARGV = (sys.executable, "-I", "-S", STEP_GUARD)

_STDOUT_FD = 1
_STDERR_FD = 2


class TailBuffer:
    """Keeps the last ``limit`` bytes appended to it, and whether anything was dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.truncated = False
        self._data = bytearray()

    def append(self, chunk: bytes) -> None:
        self._data += chunk
        excess = len(self._data) - self.limit
        if excess > 0:
            del self._data[:excess]
            self.truncated = True

    def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")

    def __len__(self) -> int:
        return len(self._data)


class _StepProcessProtocol(asyncio.SubprocessProtocol):
    """Collects the tails of stdout/stderr and notices exit and end of output."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stdout_limit: int, stderr_limit: int):
        self.stdout = TailBuffer(stdout_limit)
        self.stderr = TailBuffer(stderr_limit)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()
        self._open_output_fds = {_STDOUT_FD, _STDERR_FD}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == _STDOUT_FD:
            self.stdout.append(data)
        elif fd == _STDERR_FD:
            self.stderr.append(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        # fd 0 (stdin) breaking just means the program did not read it all: not our call.
        self._open_output_fds.discard(fd)
        if not self._open_output_fds and not self.output_closed.done():
            self.output_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class CommandExecutor:
    """Runs ``argv`` once per attempt; see the module docstring for the contract."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdout_limit_bytes: int = STDOUT_LIMIT_BYTES,
        stderr_limit_bytes: int = STDERR_LIMIT_BYTES,
    ) -> None:
        self.argv = tuple(argv)
        self.env = dict(env or {})
        self.cwd = cwd
        self.stdout_limit_bytes = stdout_limit_bytes
        self.stderr_limit_bytes = stderr_limit_bytes

    async def run(self, inv: StepInvocation) -> StepOutcome:
        try:
            stdin_bytes = _stdin_document(inv)
        except (TypeError, ValueError) as exc:
            return StepOutcome.failure(f"params or inputs are not JSON-serialisable: {exc}")

        loop = asyncio.get_running_loop()
        env = {**os.environ, **self.env}
        if inv.run_marker:
            env[STEP_RUN_ENV] = inv.run_marker
        try:
            # Forked from the event loop's thread (the guard's parent-death signal follows
            # that thread, which lives as long as the agent).
            transport, protocol = await loop.subprocess_exec(
                lambda: _StepProcessProtocol(
                    loop, self.stdout_limit_bytes, self.stderr_limit_bytes
                ),
                *GUARD_ARGV, str(os.getpid()), *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:  # missing cwd, no permission, NUL byte
            return StepOutcome.failure(f"cannot start {self.argv[0]!r}: {exc}")

        try:
            if inv.on_started is not None:
                inv.on_started(transport.get_pid())  # the group's id: its leader's pid
            return await self._supervise(inv, transport, protocol, stdin_bytes)
        finally:
            # Runs on every path, cancellation included: nothing of the step survives it.
            try:
                await _kill_and_reap(transport, protocol)
            finally:
                transport.close()

    async def _supervise(
        self,
        inv: StepInvocation,
        transport: asyncio.SubprocessTransport,
        protocol: _StepProcessProtocol,
        stdin_bytes: bytes,
    ) -> StepOutcome:
        stdin_pipe = transport.get_pipe_transport(0)
        if stdin_pipe is not None:
            stdin_pipe.write(stdin_bytes)
            stdin_pipe.close()  # flushes what is buffered, then closes: the program sees EOF

        try:
            async with asyncio.timeout(inv.timeout_s):
                # Shielded: a timeout or cancel must not cancel the future the exit sets.
                await asyncio.shield(protocol.exited)
        except TimeoutError:
            return StepOutcome.failure(timed_out_error(inv.timeout_s or 0.0))

        # The program is gone; its leftovers go too, which also closes the pipes they held.
        _kill_process_group(transport.get_pid())
        await asyncio.wait({protocol.output_closed}, timeout=PIPE_DRAIN_GRACE_S)
        returncode = transport.get_returncode()
        return _outcome_from(returncode, protocol.stdout, protocol.stderr)


def _stdin_document(inv: StepInvocation) -> bytes:
    document = {
        "params": inv.params,
        "inputs": inv.inputs,
        "workflow": inv.workflow_id,
        "step": inv.step_id,
        "attempt": inv.attempt,
    }
    if inv.compensating is not None:  # a compensation: the step's outputs, no inputs
        del document["inputs"]
        document.update(outputs=inv.compensating, compensation=True)
    # Exact JSON (core/workflow/values.py): integers reach the program as integers. ASCII
    # only, so that a program reads it right whatever its locale's encoding.
    return values.dumps(document, ascii_only=True).encode() + b"\n"


def _outcome_from(returncode: int | None, stdout: TailBuffer, stderr: TailBuffer) -> StepOutcome:
    stderr_tail = clip_error(stderr.text())
    if returncode is None:
        return StepOutcome.failure(stderr_tail or "program ended without an exit status")
    if returncode < 0:
        return StepOutcome.failure(stderr_tail or f"killed by signal {_signal_name(-returncode)}")
    if returncode > 0:
        return StepOutcome.failure(stderr_tail or f"exit code {returncode}")

    last_line = _last_non_empty_line(stdout.text())
    if last_line is None:
        return StepOutcome.failure(
            "stdout is empty; a step must print a JSON object as its last stdout line"
        )
    try:
        # values.loads refuses NaN and Infinity, which no other agent could read back.
        outputs = values.loads(last_line)
    except values.JsonValueError:
        outputs = None
    if isinstance(outputs, dict):
        return StepOutcome.success(outputs)
    hint = (
        f" (only the last {stdout.limit} bytes of stdout are kept; the outputs must fit)"
        if stdout.truncated and len(last_line) >= stdout.limit // 2
        else ""
    )
    return StepOutcome.failure(
        f"last stdout line is not a JSON object{hint}: {_preview(last_line)}"
    )


def _last_non_empty_line(text: str) -> str | None:
    # Lines end at "\n" alone: str.splitlines would also split at U+2028, U+0085 and
    # the like, which JSON text may hold unescaped inside its strings.
    for line in reversed(text.split("\n")):
        if line.strip():
            return line.strip()
    return None


def _preview(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _kill_process_group(pgid: int | None) -> None:
    """SIGKILL the step's whole process group; nothing left in it is fine."""
    if pgid is None:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _kill_and_reap(
    transport: asyncio.SubprocessTransport, protocol: _StepProcessProtocol
) -> None:
    """Make sure the program and its group are dead and the program is reaped.

    The exit future is set only after the child watcher has reaped the program, so
    awaiting it means no zombie. ``asyncio.wait`` neither raises on its timeout nor
    cancels the future, so this also works while a cancellation is unwinding.
    """
    _kill_process_group(transport.get_pid())
    if not protocol.exited.done():
        await asyncio.wait({protocol.exited}, timeout=KILL_REAP_GRACE_S)
