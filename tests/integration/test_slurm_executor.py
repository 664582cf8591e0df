"""The slurm executor against a real Slurm cluster of one node: munged, slurmctld and
slurmd (Debian's slurm-wlm and munge) started here on 127.0.0.1 as root, with their own
ports, key, socket and state directory, and stopped by their pids.

Cancel and timeout must reach the engine: Slurm reports the job CANCELLED and the job's
process is gone.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from fedorch.runtime.executors import StepInvocation, build_executor

DAEMONS = ("munged", "slurmctld", "slurmd")
COMMANDS = ("sbatch", "scontrol", "scancel", "sinfo")
STEP = pathlib.Path(__file__).parent / "steps" / "slurm_step.py"
BIG = 2**70
START_DEADLINE_S = 60.0


def _find(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")


missing = [p for p in (*DAEMONS, *COMMANDS) if _find(p) is None]
pytestmark = [
    pytest.mark.skipif(bool(missing), reason=f"Slurm is not installed (no {', '.join(missing)}); "
                       "`make test` installs slurm-wlm and munge as root"),
    pytest.mark.skipif(os.geteuid() != 0, reason="slurmd must run as root"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _slurm_conf(d: pathlib.Path, node: str) -> str:
    return "\n".join([
        "ClusterName=fedorchtest",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"AuthInfo=socket={d / 'munge.sock'}",
        "CredType=cred/munge",
        f"StateSaveLocation={d / 'state'}",
        f"SlurmdSpoolDir={d / 'spool'}",
        f"SlurmctldPidFile={d / 'slurmctld.pid'}",
        f"SlurmdPidFile={d / 'slurmd.pid'}",
        f"SlurmctldLogFile={d / 'slurmctld.log'}",
        f"SlurmdLogFile={d / 'slurmd.log'}",
        # No cgroups (a container may have none to give): processes tracked by parentage.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "ReturnToService=2",
        "MinJobAge=300",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment Slurm's commands need (SLURM_CONF), once the node is idle."""
    d = tmp_path_factory.mktemp("slurm")
    (d / "state").mkdir()
    (d / "spool").mkdir()
    (d / "munge.key").write_bytes(os.urandom(1024))
    os.chmod(d / "munge.key", 0o600)
    node = socket.gethostname().split(".")[0]
    (d / "slurm.conf").write_text(_slurm_conf(d, node))
    env = {**os.environ, "SLURM_CONF": str(d / "slurm.conf")}
    logs = []
    procs = []

    def start(name: str, *args: str) -> None:
        log = open(d / f"{name}.out", "wb")  # noqa: SIM115 (closed at teardown)
        logs.append(log)
        procs.append(subprocess.Popen([_find(name), *args], env=env, cwd=d,
                                      stdout=log, stderr=subprocess.STDOUT))

    try:
        start("munged", "--foreground", "--force", f"--socket={d / 'munge.sock'}",
              f"--key-file={d / 'munge.key'}", f"--pid-file={d / 'munged.pid'}",
              f"--log-file={d / 'munged.log'}", f"--seed-file={d / 'munged.seed'}")
        _wait(lambda: (d / "munge.sock").exists(), "munged's socket", procs)
        start("slurmctld", "-D", "-i", "-f", str(d / "slurm.conf"))
        start("slurmd", "-D", "-N", node, "-f", str(d / "slurm.conf"))
        _wait(lambda: _node_idle(env), "the Slurm node to be idle", procs)
        yield {"SLURM_CONF": str(d / "slurm.conf")}
    finally:
        if procs:
            subprocess.run([_find("scancel"), "--full", "--partition=debug"], env=env,
                           capture_output=True, timeout=30, check=False)
        for proc in reversed(procs):
            _stop(proc)
        for log in logs:
            log.close()


def _node_idle(env: dict) -> bool:
    result = subprocess.run([_find("sinfo"), "--noheader", "--format=%t"], env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    return result.returncode == 0 and result.stdout.strip() == "idle"


def _wait(condition, what: str, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while not condition():
        dead = [p.args[0] for p in procs if p.poll() is not None]
        assert not dead, f"{dead} exited while waiting for {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def slurm_executor(slurm_env: dict, work_dir: pathlib.Path):
    return build_executor(
        "slurm", argv=[sys.executable, str(STEP)], env=slurm_env,
        options={"work_dir": str(work_dir), "poll_interval_s": 0.2, "poll_max_interval_s": 1},
    )


def invocation(params: dict, timeout_s: float | None = 120.0) -> StepInvocation:
    return StepInvocation(
        workflow_id="wf-1", step_id="train", attempt=1, params=params,
        inputs={"extract": {"rows": [1, 2]}}, timeout_s=timeout_s,
        run_marker="eu-west/wf-1/train/1",
    )


def job_states(slurm_env: dict) -> dict[str, str]:
    """Every job Slurm still knows, by id, with its state."""
    result = subprocess.run(
        [_find("scontrol"), "show", "job", "--oneliner"], env={**os.environ, **slurm_env},
        capture_output=True, text=True, timeout=30, check=False,
    )
    states = {}
    for line in result.stdout.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "JobId" in fields:
            states[fields["JobId"]] = fields["JobState"]
    return states


def read_pid(marks: pathlib.Path) -> int | None:
    path = marks / "pid"
    return int(path.read_text()) if path.exists() and path.read_text() else None


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_until(condition, what: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.1)


async def settled_new_jobs(slurm_env: dict, before: set[str]) -> dict[str, str]:
    """The jobs not in `before`, with their states, once none is COMPLETING: Slurm shows a
    cancelled job COMPLETING while its node cleans up, then CANCELLED (seen on a loaded
    machine between the job's process dying and the controller's next state)."""
    def new_jobs() -> dict[str, str]:
        return {job: state for job, state in job_states(slurm_env).items()
                if job not in before}

    await wait_until(lambda: "COMPLETING" not in new_jobs().values(),
                     "the cancelled job to finish completing")
    return new_jobs()


async def test_a_step_runs_as_a_slurm_job_with_exact_values(slurm, tmp_path) -> None:
    outcome = await slurm_executor(slurm, tmp_path / "jobs").run(
        invocation({"mode": "sum", "a": 1, "b": 2, "big": BIG})
    )
    assert outcome.ok, outcome.error
    assert outcome.outputs == {"sum": 3, "big": BIG, "upstream": {"extract": {"rows": [1, 2]}},
                               "in_slurm": True}
    assert list((tmp_path / "jobs").iterdir()) == []  # the attempt's files are cleaned up


async def test_a_failing_job_reports_its_stderr(slurm, tmp_path) -> None:
    outcome = await slurm_executor(slurm, tmp_path / "jobs").run(invocation({"mode": "fail"}))
    assert not outcome.ok
    assert outcome.error == "the model file is missing"


async def test_cancelling_the_attempt_cancels_the_slurm_job(slurm, tmp_path) -> None:
    before = set(job_states(slurm))
    task = asyncio.create_task(slurm_executor(slurm, tmp_path / "jobs").run(
        invocation({"mode": "wait", "marks": str(tmp_path)}, timeout_s=None)
    ))
    await wait_until(lambda: read_pid(tmp_path) is not None, "the job to start")
    pid = read_pid(tmp_path)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    new_jobs = await settled_new_jobs(slurm, before)
    assert list(new_jobs.values()) == ["CANCELLED"]
    await wait_until(lambda: process_gone(pid), "the job's process to be killed")


async def test_a_timed_out_step_is_cancelled_in_slurm(slurm, tmp_path) -> None:
    before = set(job_states(slurm))
    outcome = await slurm_executor(slurm, tmp_path / "jobs").run(
        invocation({"mode": "wait", "marks": str(tmp_path)}, timeout_s=8.0)
    )
    assert not outcome.ok
    assert outcome.error == "timed out after 8.0s"
    new_jobs = await settled_new_jobs(slurm, before)
    assert list(new_jobs.values()) == ["CANCELLED"]
    pid = read_pid(tmp_path)
    assert pid is not None, "the job never started within the timeout"
    await wait_until(lambda: process_gone(pid), "the job's process to be killed")


async def test_a_job_whose_id_never_came_back_is_cancelled_by_its_name(slurm, tmp_path) -> None:
    """sbatch submits the job but hangs before it prints the id (a slow controller, say):
    the attempt is cancelled meanwhile, and the job must not be left running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\n{_find('sbatch')} \"$@\" >/dev/null\nexec sleep 300\n")
    (bin_dir / "sbatch").chmod(0o755)
    for command in ("scontrol", "scancel"):
        (bin_dir / command).symlink_to(_find(command))
    executor = build_executor(
        "slurm", argv=[sys.executable, str(STEP)], env=slurm,
        options={"work_dir": str(tmp_path / "jobs"), "bin_dir": str(bin_dir)},
    )
    before = set(job_states(slurm))
    task = asyncio.create_task(executor.run(
        invocation({"mode": "wait", "marks": str(tmp_path)}, timeout_s=None)
    ))
    await wait_until(lambda: read_pid(tmp_path) is not None, "the job to start")
    pid = read_pid(tmp_path)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: process_gone(pid), "the job's process to be killed")
    new_jobs = await settled_new_jobs(slurm, before)
    assert list(new_jobs.values()) == ["CANCELLED"]
