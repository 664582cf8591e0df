"""Storage faults on real agents: a damaged or foreign agent.db stops the start with one
line (and --start-fresh moves it aside); a full disk stops new work, reads go on, and
the agent resumes by itself losing nothing it acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
import yaml
from fedorch.cli.demo import pick_free_ports, start_agents, stop_agents, wait_healthy
from fedorch.core.identity.keys import init_keys
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import (
    Federation,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration


# ---- start-up: only the database this agent wrote ------------------------------------------


def _solo(tmp_path: Path, **extra: object) -> Path:
    """One agent's config (`extra`: more top-level fields, e.g. the engine)."""
    init_keys("solo", tmp_path / "keys")
    [port] = pick_free_ports(1)
    body = {"domain": "solo", "listen": f"127.0.0.1:{port}", "data_dir": str(tmp_path / "data"),
            "key_file": str(tmp_path / "keys" / "solo.key"), **extra,
            "capabilities": [{"name": "x", "capacity": 1,
                              "executor": {"type": "builtin", "name": "echo"}}]}
    path = tmp_path / "solo.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _written(tmp_path: Path, **extra: object) -> Path:
    """One agent's config (as `_solo`) whose data dir the agent has written: started
    until it served, then stopped. Made once per module and copied (`_copy_written`)
    into each test, which then starts from the files that agent left."""
    config = _solo(tmp_path, **extra)
    _run_until_healthy_then_stop(tmp_path, config)
    return config


def _copy_written(written: Path, tmp_path: Path) -> Path:
    """The agent of `written`, its keys and data dir copied under tmp_path (none of its
    processes runs), on a port of its own: its config."""
    for part in ("keys", "data"):
        shutil.copytree(written.parent / part, tmp_path / part)
    body = yaml.safe_load(written.read_text())
    [port] = pick_free_ports(1)
    body.update(listen=f"127.0.0.1:{port}", data_dir=str(tmp_path / "data"),
                key_file=str(tmp_path / "keys" / "solo.key"))
    path = tmp_path / "solo.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fedorch.cli.main", "agent", "run", "--config", str(config),
            *extra]


def _run_until_healthy_then_stop(tmp_path: Path, config: Path, *extra: str) -> None:
    """Start the agent, wait until it serves, stop it by its pid."""
    address = yaml.safe_load(config.read_text())["listen"]
    procs = start_agents({"solo": config}, {"solo": address}, tmp_path,
                         command=lambda c: _command(c, *extra))
    try:
        asyncio.run(wait_healthy(procs, deadline_s=60))
    finally:
        stop_agents(procs)


def _damage(data: Path, how: str, name: str = "agent.db") -> None:
    db = data / name
    for companion in (f"{name}-wal", f"{name}-shm"):
        (data / companion).unlink(missing_ok=True)
    if how == "missing":
        db.unlink()
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "garbage":
        db.write_bytes(os.urandom(64 * 1024))
    elif how == "truncated":
        with contextlib.closing(sqlite3.connect(db)) as conn:  # closed: all in agent.db
            with conn:  # enough pages that half of them is a loss
                conn.execute("CREATE TABLE filler(x BLOB)")
                conn.executemany("INSERT INTO filler VALUES(?)", [(os.urandom(1024),)] * 200)
        os.truncate(db, db.stat().st_size // 2)
    elif how == "foreign" and name == "agent.db":  # another domain's database
        other = data.parent / "other"
        shutil.copytree(data, other)
        with contextlib.closing(sqlite3.connect(other / "agent.db")) as conn:
            with conn:
                conn.execute("UPDATE meta SET value='someone-else'"
                             " WHERE key='identity.domain'")
        shutil.copy(other / "agent.db", db)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    return _written(tmp_path_factory.mktemp("written"))


# Each kind in tests/unit/runtime/store/test_identity.py; here, a few through the real command.
@pytest.mark.parametrize("how, says", [
    ("missing", "missing, but identity.json says this data dir had a database"),
    ("empty", "empty (zero bytes)"),
    ("truncated", "agent.db: "),
    ("foreign", "belongs to domain 'someone-else', not 'solo'"),
])
def test_a_bad_database_stops_the_start_with_one_line(tmp_path, written, how, says):
    config = _copy_written(written, tmp_path)
    aside = _refused_then_started_fresh(tmp_path, config, "agent.db", how, says)
    assert aside, sorted(p.name for p in (tmp_path / "data").iterdir())


def _refused_then_started_fresh(tmp_path: Path, config: Path, name: str, how: str,
                                says: str) -> list[str]:
    """The agent of `config` wrote its database `name` (`_copy_written`), which is then
    damaged (`how`): the start is refused with one line naming the file, `says` and what
    to do, touching nothing; with --start-fresh it starts, and again without. Returns
    the files moved aside."""
    data = tmp_path / "data"
    assert (data / name).stat().st_size > 0  # the agent wrote it
    _damage(data, how, name)
    before = sorted(p.name for p in data.iterdir())

    result = subprocess.run(_command(config), capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedorch: error: "), result.stderr
    assert str(data / name) in lines[0] and says in lines[0], lines[0]
    assert "--start-fresh" in lines[0] and "restore" in lines[0]
    assert sorted(p.name for p in data.iterdir()) == before  # refusing touched nothing

    # With the explicit flag: the refused file is moved aside, never deleted.
    _run_until_healthy_then_stop(tmp_path, config, "--start-fresh")
    aside = [p.name for p in data.iterdir() if p.name.startswith(f"{name}.bad-")]
    _run_until_healthy_then_stop(tmp_path, config)  # the fresh database is its own now
    return aside


# ---- a full disk --------------------------------------------------------------------------

DISK_DOMAINS = {
    "home": {"capabilities": [
        {"name": "test.home", "capacity": 4, "executor": {"type": "builtin", "name": "echo"}},
    ]},
    "disk": {"capabilities": [
        {"name": "test.echo", "capacity": 4, "executor": {"type": "builtin", "name": "echo"}},
        {"name": "test.sleep", "capacity": 4, "executor": {"type": "builtin", "name": "sleep"}},
    ]},
}
TMPFS_SIZE = "16m"
WRITE_FAULT = re.compile(r"cannot write its (database|node store)")


@contextlib.contextmanager
def _tmpfs(path: Path):
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path) -> Path:
    """Take every free byte of the file system at `path`."""
    filler = path / f"filler-{uuid.uuid4().hex}"
    chunk = b"\0" * (1 << 16)
    # Unbuffered: a buffered file would keep a partly written chunk and raise ENOSPC
    # again when it is closed, after the loop (how often depends on the room left).
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


@pytest.fixture
async def disk_fed(tmp_path):
    with _tmpfs(tmp_path / "data" / "disk"):
        async with started_federation(tmp_path, DISK_DOMAINS) as fed:
            yield fed


def _spec(name: str, capability: str, params: str = "{}") -> str:
    return f"""
name: {name}
steps:
  - id: s
    capability: {capability}
    params: {params}
    constraints: {{domains: [disk]}}
"""


async def _try_submit(fed: Federation, domain: str, spec: str) -> str | grpc.aio.AioRpcError:
    try:
        return await asyncio.wait_for(fed.submit(domain, spec), 10)
    except grpc.aio.AioRpcError as e:
        return e
    except TimeoutError:
        return "timed out"


async def test_a_full_disk_stops_new_work_keeps_reads_and_resumes(disk_fed):
    fed = disk_fed
    data = fed.workdir / "data" / "disk"
    # Acknowledged work in flight when the disk fills: a step running at disk.
    before = await fed.submit("home", _spec("before", "test.sleep", "{seconds: 3}"))

    async def running():
        try:
            status = await fed.client("disk").GetWorkflow(
                client_pb2.GetWorkflowRequest(id=before, local_only=True), timeout=5)
        except grpc.aio.AioRpcError:  # not committed there yet
            return False
        return step_states(status)["s"][0] == "RUNNING"

    await wait_for(running, 30, "the step to run at disk")
    # The WALs' room goes first (SQLite would reuse it), then every free byte: each
    # database of the agent's engine (agent.db; node.db too on `engine: node`).
    for db in sorted(data.glob("*.db")):
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = _fill(data)

    refusal = None

    async def refused():
        nonlocal refusal
        answer = await _try_submit(fed, "disk", _spec("during", "test.echo"))
        if isinstance(answer, grpc.aio.AioRpcError) \
                and answer.code() == grpc.StatusCode.UNAVAILABLE:
            refusal = answer.details()
            # Either store may be the first to fail, and each is named: its node store
            # (node.db), or its database (agent.db: the audit records of the turn that
            # showed the step RUNNING may reach it only after the disk filled, with no
            # write of node.db failed yet). Either refuses new work, submissions and
            # PREPAREs alike (write_behind.py, StorageGate).
            return WRITE_FAULT.search(refusal) is not None
        return False

    await wait_for(refused, 60, "disk to refuse submissions", interval=0.5)
    assert "retry" in refusal

    # Reads are served meanwhile.
    status = await fed.client("disk").GetWorkflow(
        client_pb2.GetWorkflowRequest(id=before, local_only=True), timeout=5)
    assert state_name(status) == "RUNNING"
    listed = await fed.client("disk").ListWorkflows(client_pb2.ListWorkflowsRequest(), timeout=5)
    assert before in {w.id for w in listed.workflows}
    members = await fed.client("disk").ListMembers(client_pb2.ListMembersRequest(), timeout=5)
    assert {m.domain for m in members.members} == {"home", "disk"}

    # New work placed there is refused with the reason (a NO vote), whichever store
    # failed first: not stepped into the Node, whose write would hold its vote (the
    # coordinator would hear nothing and abort with "no vote within 2s").
    elsewhere = await fed.submit("home", _spec("elsewhere", "test.echo"))
    status = await fed.wait_state("home", elsewhere, deadline_s=60)
    assert state_name(status) == "ABORTED", status
    assert WRITE_FAULT.search(str(status)) and "disk cannot write its" in str(status), status
    # The acknowledged workflow waits, it is not lost or failed.
    assert state_name(await fed.status("home", before)) == "RUNNING"

    filler.unlink()  # room again: the agent resumes by itself

    status = await fed.wait_state("home", before, deadline_s=60)
    assert state_name(status) == "SUCCEEDED", status

    async def accepted():
        answer = await _try_submit(fed, "disk", _spec("after", "test.echo"))
        return answer if isinstance(answer, str) and answer != "timed out" else None

    after = await wait_for(accepted, 30, "disk to take submissions again", interval=0.5)
    status = await fed.wait_state("disk", after, deadline_s=60)
    assert state_name(status) == "SUCCEEDED", status
