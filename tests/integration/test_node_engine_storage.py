"""Storage faults on real agents in `engine: node`: a missing or damaged node.db stops
the start with one line (and --start-fresh moves it aside); with its disk full an agent
takes no new work (UNAVAILABLE, NO votes, both with the reason), keeps serving reads
and resumes by itself once there is room, losing nothing it acknowledged; started on a
full disk it stops with one line and judges no file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess

import grpc
import pytest
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import (
    TEST_TIMINGS,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_storage_faults import (
    _command,
    _copy_written,
    _fill,
    _refused_then_started_fresh,
    _tmpfs,
    _written,
)

pytestmark = pytest.mark.integration

NODE = {"engine": "node", "negotiation": {**TEST_TIMINGS["negotiation"]}}


# ---- start-up: only the node.db this agent wrote -----------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return _written(tmp_path_factory.mktemp("written"), **NODE)


@pytest.mark.parametrize("how, says", [
    ("missing", "missing, but agent.db records node store"),
    ("empty", "empty (zero bytes)"),
    ("garbage", "not a node store this agent can read"),
])
def test_a_bad_node_db_stops_the_start_with_one_line(tmp_path, written, how, says):
    config = _copy_written(written, tmp_path)
    aside = _refused_then_started_fresh(tmp_path, config, "node.db", how, says)
    assert bool(aside) == (how != "missing"), aside


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
    # The restarted agent sees the others ALIVE when start returns; home may still hold
    # it gone from its time away, or ALIVE before its record with its capabilities
    # came: a step constrained to it would find no placement (a loaded run saw both).
    await fed.wait_converged()

    async def home_sees_disk_offer_echo() -> bool:
        return any(m.domain == "disk" and m.state == client_pb2.MEMBER_STATE_ALIVE
                   and any(c.name == "test.echo" and c.available == c.capacity
                           for c in m.capabilities)
                   for m in await fed.members("home"))

    await wait_for(home_sees_disk_offer_echo, 30, "home to see disk offer test.echo again")
    wid = await fed.submit("home", SPEC)
    status = await fed.wait_state("home", wid, deadline_s=60)
    assert state_name(status) == "SUCCEEDED", status.reason
