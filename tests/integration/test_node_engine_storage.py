"""Storage faults on real agents in `engine: node`: a missing or damaged node.db stops
the start with one line (and --start-fresh moves it aside); with its disk full an agent
takes no new work (UNAVAILABLE, NO votes, both with the reason), keeps serving reads
and resumes by itself once there is room, losing nothing it acknowledged; started on a
full disk it stops with one line and judges no file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml
from fedorch.cli.demo import pick_free_ports, start_agents, stop_agents, wait_healthy
from fedorch.core.identity.keys import init_keys
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import (
    TEST_TIMINGS,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_storage_faults import _fill, _tmpfs

pytestmark = pytest.mark.integration

NODE = {"engine": "node", "negotiation": {**TEST_TIMINGS["negotiation"], "commit": "paxos"}}


# ---- start-up: only the node.db this agent wrote -----------------------------------------


def _solo(tmp_path: Path) -> Path:
    init_keys("solo", tmp_path / "keys")
    [port] = pick_free_ports(1)
    body = {"domain": "solo", "listen": f"127.0.0.1:{port}", "data_dir": str(tmp_path / "data"),
            "key_file": str(tmp_path / "keys" / "solo.key"), **NODE,
            "capabilities": [{"name": "x", "capacity": 1,
                              "executor": {"type": "builtin", "name": "echo"}}]}
    path = tmp_path / "solo.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fedorch.cli.main", "agent", "run", "--config", str(config),
            *extra]


def _run_until_healthy_then_stop(tmp_path: Path, config: Path, *extra: str) -> None:
    address = yaml.safe_load(config.read_text())["listen"]
    procs = start_agents({"solo": config}, {"solo": address}, tmp_path,
                         command=lambda c: _command(c, *extra))
    try:
        asyncio.run(wait_healthy(procs, deadline_s=60))
    finally:
        stop_agents(procs)


def _damage(data: Path, how: str) -> None:
    db = data / "node.db"
    for companion in ("node.db-wal", "node.db-shm"):
        (data / companion).unlink(missing_ok=True)
    if how == "missing":
        db.unlink()
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "garbage":
        db.write_bytes(os.urandom(64 * 1024))


@pytest.mark.parametrize("how, says", [
    ("missing", "missing, but agent.db records node store"),
    ("empty", "empty (zero bytes)"),
    ("garbage", "not a node store this agent can read"),
])
def test_a_bad_node_db_stops_the_start_with_one_line(tmp_path, how, says):
    config = _solo(tmp_path)
    data = tmp_path / "data"
    _run_until_healthy_then_stop(tmp_path, config)  # it wrote its node.db
    assert (data / "node.db").stat().st_size > 0
    _damage(data, how)
    before = sorted(p.name for p in data.iterdir())

    result = subprocess.run(_command(config), capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedorch: error: "), result.stderr
    assert str(data / "node.db") in lines[0] and says in lines[0], lines[0]
    assert "--start-fresh" in lines[0] and "restore" in lines[0]
    assert sorted(p.name for p in data.iterdir()) == before  # refusing touched nothing

    # With the explicit flag the refused file is moved aside, never deleted.
    _run_until_healthy_then_stop(tmp_path, config, "--start-fresh")
    aside = [p.name for p in data.iterdir() if p.name.startswith("node.db.bad-")]
    assert bool(aside) == (how != "missing"), sorted(p.name for p in data.iterdir())
    _run_until_healthy_then_stop(tmp_path, config)  # the new node.db is its own now


# ---- a full disk ----------------------------------------------------------------------------

DISK_DOMAINS = {
    "home": {**NODE, "capabilities": [
        {"name": "test.sleep", "capacity": 4, "executor": {"type": "builtin", "name": "sleep"}},
    ]},
    "disk": {**NODE, "capabilities": [
        {"name": "test.echo", "capacity": 4, "executor": {"type": "builtin", "name": "echo"}},
    ]},
}

# Step a sleeps at home, then b runs at disk: committed at both before the disk fills,
# and disk must write a's result to go on.
SPEC = """
name: across
steps:
  - {id: a, capability: test.sleep, params: {seconds: 3}, constraints: {domains: [home]}}
  - {id: b, capability: test.echo, needs: [a], constraints: {domains: [disk]}}
"""


@pytest.fixture
async def disk_fed(tmp_path):
    with _tmpfs(tmp_path / "data" / "disk"):
        async with started_federation(tmp_path, DISK_DOMAINS) as fed:
            yield fed


async def _try_submit(fed, domain: str, spec: str) -> str | grpc.aio.AioRpcError:
    try:
        return await asyncio.wait_for(fed.submit(domain, spec), 15)
    except grpc.aio.AioRpcError as e:
        return e
    except TimeoutError:
        return "timed out"


ECHO_AT_DISK = """
name: {name}
steps:
  - {{id: s, capability: test.echo, constraints: {{domains: [disk]}}}}
"""


async def test_a_full_disk_stops_new_work_keeps_reads_and_resumes(disk_fed):
    fed = disk_fed
    data = fed.workdir / "data" / "disk"
    pid = fed.procs["disk"].pid
    wid = await fed.submit("home", SPEC)

    async def committed_at_disk():
        status = await fed.local_status("disk", wid)
        return status is not None and state_name(status) == "RUNNING"

    await wait_for(committed_at_disk, 30, "the workflow to be committed at disk")
    # The WAL's room goes first (SQLite would reuse it), then every free byte.
    for db in ("node.db", "agent.db"):
        with contextlib.closing(sqlite3.connect(data / db, timeout=10)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = _fill(data)

    # a ends at home; disk cannot write its result: it refuses new work, with the reason.
    refusal = None

    async def refused():
        nonlocal refusal
        answer = await _try_submit(fed, "disk", ECHO_AT_DISK.format(name="during"))
        if isinstance(answer, grpc.aio.AioRpcError) \
                and answer.code() == grpc.StatusCode.UNAVAILABLE:
            refusal = answer.details()
            return "cannot write its node store" in refusal
        return False

    await wait_for(refused, 60, "disk to refuse submissions", interval=0.5)
    assert "full" in refusal and "retry" in refusal, refusal

    # Reads are served meanwhile, by the same process.
    status = await fed.local_status("disk", wid)
    assert status is not None and state_name(status) == "RUNNING", status
    listed = await fed.client("disk").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                    timeout=5)
    assert wid in {w.id for w in listed.workflows}
    # New work placed there gets a NO vote naming the reason.
    elsewhere = await fed.submit("home", ECHO_AT_DISK.format(name="elsewhere"))
    status = await fed.wait_state("home", elsewhere, deadline_s=60)
    assert state_name(status) == "ABORTED", status
    assert "disk cannot write its node store" in status.reason, status
    # The acknowledged workflow waits: not lost, not failed.
    assert state_name(await fed.status("home", wid)) == "RUNNING"
    assert fed.procs["disk"].popen.poll() is None

    filler.unlink()  # room again: the agent resumes by itself, losing nothing

    status = await fed.wait_state("home", wid, deadline_s=60)
    assert state_name(status) == "SUCCEEDED", status
    assert step_states(status) == {"a": ("SUCCEEDED", "home", 1),
                                   "b": ("SUCCEEDED", "disk", 1)}

    async def accepted():
        answer = await _try_submit(fed, "disk", ECHO_AT_DISK.format(name="after"))
        return answer if isinstance(answer, str) and answer != "timed out" else None

    after = await wait_for(accepted, 30, "disk to take submissions again", interval=0.5)
    status = await fed.wait_state("disk", after, deadline_s=60)
    assert state_name(status) == "SUCCEEDED", status
    assert fed.procs["disk"].pid == pid and fed.procs["disk"].popen.poll() is None


async def test_a_restart_on_a_full_disk_stops_with_one_line_and_judges_nothing(disk_fed):
    """Started (as a supervisor would) while its disk is full: one line saying to free
    space; node.db is neither refused nor moved aside; with room it starts again."""
    fed = disk_fed
    data = fed.workdir / "data" / "disk"
    fed.stop("disk")
    filler = _fill(data)
    again = await asyncio.to_thread(
        subprocess.run, _command(fed.configs["disk"]), capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL)
    assert again.returncode in (1, 2), again.stderr
    said = again.stderr.strip().splitlines()[-1]
    assert "free space" in said and ("node.db" in said or "agent.db" in said
                                     or str(data) in said), again.stderr
    assert "Traceback" not in again.stderr and "--start-fresh" not in said, again.stderr
    assert not [p for p in data.iterdir() if ".bad-" in p.name]
    filler.unlink()
    await fed.close_channels()
    await fed.start("disk")
    wid = await fed.submit("home", SPEC)
    status = await fed.wait_state("home", wid, deadline_s=60)
    assert state_name(status) == "SUCCEEDED", status
