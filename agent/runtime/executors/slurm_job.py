"""Runs a step as a batch job on the Slurm cluster a domain already runs.

The job runs ``executor.argv`` with the command executor's contract: the invocation
document (JSON) on its stdin, a JSON object as the last line of its stdout. The files
live in ``options.work_dir``, which must be visible to the agent and to the compute
nodes (the usual shared file system); each attempt gets a directory of its own there,
removed once the job has ended.

It drives Slurm through its own commands (``sbatch``, ``scontrol``, ``scancel``; on the
PATH, or in ``options.bin_dir``), the interface every Slurm site has. ``executor.env`` is
added to their environment (``SLURM_CONF``, say) and sbatch exports it to the job. On a
timeout or a cancel the job is ``scancel``ed and the executor waits until Slurm reports
it ended (each job has a unique name, ``fedorch-<random>``, and its ``--comment`` is the
run marker); the job also gets ``--time`` from the step's timeout, so Slurm stops it even
if the agent is gone.
"""

from __future__ import annotations

import asyncio
import math
import os
import pathlib
import re
import shlex
import shutil
import uuid

from fedorch.core.workflow import values
from fedorch.runtime.executors.base import (
    Executor,
    ExecutorConfigError,
    StepInvocation,
    StepOutcome,
    clip_error,
    invocation_document,
    timed_out_error,
)
from fedorch.runtime.executors.options import Options, refuse_unused
from fedorch.runtime.executors.plugins import ExecutorSettings

OPTIONS = (
    "work_dir", "partition", "sbatch_args", "bin_dir", "poll_interval_s",
    "poll_max_interval_s", "command_timeout_s",
)
# Job states after which nothing more happens (squeue(1), "JOB STATE CODES").
ENDED_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
    "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT",
})
OUTPUT_TAIL_BYTES = 1024 * 1024
CANCEL_WAIT_S = 30.0
_FIELD_RE = re.compile(r"(\w+)=(\S*)")


def build(settings: ExecutorSettings) -> Executor:
    """The ``slurm`` entry point: checks argv, env and ``executor.options``."""
    refuse_unused("slurm", settings, allowed=("argv", "env", "cwd"))
    opts = Options("slurm", settings.options, OPTIONS)
    argv = list(settings.argv)
    if not argv or not all(isinstance(arg, str) and arg for arg in argv):
        raise ExecutorConfigError(
            "executor.argv is required for type slurm: the program the job runs, "
            "e.g. argv: [python3, /shared/steps/train.py]",
            field="argv",
        )
    work_dir = opts.string("work_dir", example="/shared/fedorch-jobs")
    if not os.path.isabs(work_dir):
        opts.fail("work_dir", f"must be an absolute path (the nodes see it too), got {work_dir!r}")
    executor = SlurmExecutor(
        argv,
        work_dir=work_dir,
        env=dict(settings.env),
        cwd=settings.cwd,
        partition=opts.string("partition", default=""),
        sbatch_args=opts.string_list("sbatch_args"),
        bin_dir=opts.string("bin_dir", default=""),
        poll_interval_s=opts.number("poll_interval_s", default=1.0),
        poll_max_interval_s=opts.number("poll_max_interval_s", default=10.0),
        command_timeout_s=opts.number("command_timeout_s", default=30.0),
    )
    if executor.poll_max_interval_s < executor.poll_interval_s:
        opts.fail("poll_max_interval_s", "must be at least poll_interval_s")
    return executor


class _SlurmError(Exception):
    """A Slurm command failed; the message says which and why."""


class SlurmExecutor:
    def __init__(
        self,
        argv: list[str],
        *,
        work_dir: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        partition: str = "",
        sbatch_args: list[str] | None = None,
        bin_dir: str = "",
        poll_interval_s: float = 1.0,
        poll_max_interval_s: float = 10.0,
        command_timeout_s: float = 30.0,
    ) -> None:
        self.argv = list(argv)
        self.work_dir = pathlib.Path(work_dir)
        self.env = dict(env or {})
        self.cwd = cwd
        self.partition = partition
        self.sbatch_args = list(sbatch_args or [])
        self.bin_dir = bin_dir
        self.poll_interval_s = poll_interval_s
        self.poll_max_interval_s = poll_max_interval_s
        self.command_timeout_s = command_timeout_s

    async def run(self, inv: StepInvocation) -> StepOutcome:
        try:
            document = values.dumps(invocation_document(inv), ascii_only=True) + "\n"
        except values.JsonValueError as exc:
            return StepOutcome.failure(f"params or inputs are not JSON data: {exc}")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", inv.run_marker or inv.step_id)
        attempt_dir = self.work_dir / f"{name}-{uuid.uuid4().hex[:12]}"
        # Unique, so that a job whose id never came back (sbatch cut short by a cancel)
        # can still be found and cancelled by its name.
        job_name = f"fedorch-{uuid.uuid4().hex}"
        job_id = ""
        try:
            try:
                # In a thread: the work dir is often on a network file system.
                await asyncio.to_thread(_prepare, attempt_dir, document)
            except OSError as exc:
                return StepOutcome.failure(f"cannot write the job's files in {attempt_dir}: {exc}")
            try:
                async with asyncio.timeout(inv.timeout_s):
                    job_id = await self._submit(inv, attempt_dir, job_name)
                    state, exit_code = await self._wait(job_id)
                    job_name = job_id = ""  # ended: nothing to cancel
            except TimeoutError:
                await self._cancel(job_id, job_name)
                return StepOutcome.failure(timed_out_error(inv.timeout_s or 0.0))
            except asyncio.CancelledError:
                await asyncio.shield(self._cancel(job_id, job_name))
                raise
            except _SlurmError as exc:
                await self._cancel(job_id, job_name)
                return StepOutcome.failure(str(exc))
            return await asyncio.to_thread(_outcome, state, exit_code, attempt_dir)
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, attempt_dir, True))

    async def _submit(self, inv: StepInvocation, attempt_dir: pathlib.Path, job_name: str) -> str:
        args = [
            "--parsable",
            f"--job-name={job_name}",
            f"--input={attempt_dir / 'input.json'}",
            f"--output={attempt_dir / 'stdout'}",
            f"--error={attempt_dir / 'stderr'}",
            f"--chdir={self.cwd or attempt_dir}",
        ]
        if inv.timeout_s is not None:
            # Slurm's limit is in whole minutes: a backstop for when the agent is gone.
            args.append(f"--time={max(1, math.ceil(inv.timeout_s / 60))}")
        if self.partition:
            args.append(f"--partition={self.partition}")
        if inv.run_marker:
            args.append(f"--comment={inv.run_marker}")
        args += [*self.sbatch_args, "--wrap", shlex.join(self.argv)]
        out = await self._slurm("sbatch", *args)
        job_id = out.strip().split(";")[0]  # --parsable: "ID" or "ID;CLUSTER"
        if not job_id.isdigit():
            raise _SlurmError(f"sbatch answered {out.strip()!r}, not a job id")
        return job_id

    async def _wait(self, job_id: str) -> tuple[str, str]:
        interval = self.poll_interval_s
        while True:
            state, exit_code = await self._state(job_id)
            if state in ENDED_STATES:
                return state, exit_code
            await asyncio.sleep(interval)
            interval = min(interval * 2, self.poll_max_interval_s)

    async def _state(self, job_id: str) -> tuple[str, str]:
        out = await self._slurm("scontrol", "show", "job", "--oneliner", job_id)
        fields = dict(_FIELD_RE.findall(out))
        return fields.get("JobState", "UNKNOWN"), fields.get("ExitCode", "")

    async def _cancel(self, job_id: str, job_name: str) -> None:
        """scancel the job and wait (bounded) until Slurm says it ended. Without an id
        (sbatch did not answer), cancel by the attempt's unique job name."""
        try:
            async with asyncio.timeout(CANCEL_WAIT_S):
                if job_id:
                    await self._slurm("scancel", job_id)
                    await self._wait(job_id)
                elif job_name:
                    await self._slurm("scancel", f"--name={job_name}")
        except (TimeoutError, _SlurmError):
            pass  # the step has failed already; --time stops the job in the end

    async def _slurm(self, command: str, *args: str) -> str:
        program = os.path.join(self.bin_dir, command) if self.bin_dir else command
        try:
            proc = await asyncio.create_subprocess_exec(
                program, *args, env={**os.environ, **self.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise _SlurmError(f"cannot run {program}: {exc}") from None
        try:
            async with asyncio.timeout(self.command_timeout_s):
                out, err = await proc.communicate()
        except (TimeoutError, asyncio.CancelledError):
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            detail = err.decode(errors="replace").strip() or f"exit code {proc.returncode}"
            raise _SlurmError(clip_error(f"{command} failed: {detail}"))
        return out.decode(errors="replace")


def _prepare(attempt_dir: pathlib.Path, document: str) -> None:
    attempt_dir.mkdir(parents=True)
    (attempt_dir / "input.json").write_text(document)


def _outcome(state: str, exit_code: str, attempt_dir: pathlib.Path) -> StepOutcome:
    stdout = _tail(attempt_dir / "stdout")
    stderr = clip_error(_tail(attempt_dir / "stderr"))
    if state != "COMPLETED" or exit_code not in ("0:0", ""):
        return StepOutcome.failure(stderr or f"Slurm job ended {state} (exit {exit_code})")
    lines = [line.strip() for line in stdout.split("\n") if line.strip()]
    if not lines:
        return StepOutcome.failure("stdout is empty; a step must print a JSON object last")
    try:
        return StepOutcome.success(values.loads_object(lines[-1]))
    except values.JsonValueError:
        return StepOutcome.failure(f"last stdout line is not a JSON object: {lines[-1][:200]!r}")


def _tail(path: pathlib.Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - OUTPUT_TAIL_BYTES))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
