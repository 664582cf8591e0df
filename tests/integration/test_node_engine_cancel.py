"""Cancel and durable request ids on real agents running `engine: node`.

A RUNNING workflow whose step naps on n2 is cancelled with `fedorch cancel --json`
through n3, which takes no part in its decision: the cancel reaches its coordinator
n1, whose CANCELLED end is told to n2 first (coordinator takeover is always composed
in the node engine) and then made; the workflow ends CANCELLED at both, and the nap's
process is gone (by its pid). With the coordinator SIGKILLed while a step naps, the
successor that took the workflow over takes the cancel asked of an agent outside the
workflow (the coordinator the id names cannot answer: the live members name the
successor) and ends it CANCELLED in its epoch, the nap stopped. A cancel of an ended
workflow is refused (exit 1, naming its end) and changes nothing. A submission
retried with the same request id after its coordinator was SIGKILLed (right after it
answered) and restarted is answered the workflow the first attempt made, and no other
is made.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import sys

import grpc
import pytest
from click.testing import CliRunner
from fedorch.cli.main import cli
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import (
    TEST_TIMINGS,
    Federation,
    naps_running,
    node_engine_domains,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_orphan_steps import NAPS

pytestmark = pytest.mark.integration

NAMES = ("n1", "n2", "n3")
ECHO = [{"name": "test.echo", "capacity": 8, "executor": {"type": "builtin", "name": "echo"}}]
DOMAINS = {
    name: {
        "engine": "node",
        # A long suspicion: a killed agent is not declared DEAD while it is away.
        "gossip": {"profile": "local", "tuning": {"suspicion_alpha": 60}},
        "negotiation": {**TEST_TIMINGS["negotiation"]},
        "capabilities": [*ECHO, *NAPS],
    }
    for name in NAMES
}
CLI_DEADLINE_S = 60


def _napping(seconds: str) -> str:
    """echo at n1, then a nap at n2 (its first attempt naps until stopped)."""
    return f"""
name: napping
steps:
  - {{id: quick, capability: test.echo, constraints: {{domains: [n1]}}}}
  - id: nap
    capability: test.nap
    params: {{seconds: "{seconds}"}}
    needs: [quick]
    constraints: {{domains: [n2]}}
"""


def _echo() -> str:
    return """
name: quick
steps:
  - {id: a, capability: test.echo, constraints: {domains: [n2]}}
  - {id: b, capability: test.echo, constraints: {domains: [n3]}}
"""


async def _cli(fed: Federation, peer: str, *args: str) -> tuple[int, str, str]:
    """Run `fedorch ARGS --peer PEER` as an operator would; stopped by its pid if it
    outlives its deadline."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fedorch.cli.main", *args, "--peer", fed.address(peer),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "FEDORCH_IDENTITY"})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_DEADLINE_S)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def fed(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        yield fed


async def test_a_running_workflow_is_cancelled_everywhere_and_its_step_process_is_gone(
        fed, seconds):
    wid = await fed.submit("n1", _napping(seconds))
    pids = await wait_for(lambda: asyncio.to_thread(naps_running, seconds), 30,
                          "the nap to run")
    assert state_name(await fed.status("n1", wid)) == "RUNNING"

    code, out, err = await _cli(fed, "n3", "cancel", wid, "--json", "--reason", "enough")
    assert code == 0, (code, out, err)
    reply = json.loads(out)
    assert reply["state"] == "CANCELLED", reply
    assert reply["reason"] == "cancelled: enough", reply
    assert reply["coordinator"] == "n1", reply
    await wait_for(lambda: _gone(pids, seconds), 20, "the nap step's process to be stopped")
    status = await wait_for(lambda: _cancelled_at(fed, "n2", wid), 20, "n2 to end it")
    assert step_states(status)["nap"][0] == "CANCELLED", status
    assert state_name(await fed.local_status("n1", wid)) == "CANCELLED"


async def test_a_cancel_after_the_coordinator_was_killed_is_taken_by_its_successor(
        tmp_path, seconds):
    """n1 coordinates and runs nothing; `quick` runs at n2, the nap at n3; n4 takes no
    part. n1 is SIGKILLed (never restarted) while the nap runs: n2 takes the workflow
    over in epoch 1. The cancel asked of n4 finds n1 unreachable, asks the members, and
    goes to n2, which tells its CANCELLED end to n3 (stopping the nap) and makes it."""
    domains = node_engine_domains(
        ("n1", "n2", "n3", "n4"),
        lambda name: {"n2": ECHO, "n3": NAPS}.get(name, []))
    async with started_federation(tmp_path, domains) as fed:
        wid = await fed.submit("n1", f"""
name: napping-on
steps:
  - {{id: quick, capability: test.echo, constraints: {{domains: [n2]}}}}
  - id: nap
    capability: test.nap
    params: {{seconds: "{seconds}"}}
    needs: [quick]
    constraints: {{domains: [n3]}}
""")
        pids = await wait_for(lambda: asyncio.to_thread(naps_running, seconds), 30,
                              "the nap to run")
        fed.kill("n1")  # SIGKILL, reaped by its pid; never restarted
        await fed.close_channels()

        async def taken_over():
            s = await fed.local_status("n2", wid)
            return s if s is not None and (s.coordinator, s.epoch) == ("n2", 1) else None

        await wait_for(taken_over, 30, "n2 to take the workflow over")
        code, out, err = await _cli(fed, "n4", "cancel", wid, "--json", "--reason", "enough")
        assert code == 0, (code, out, err)
        reply = json.loads(out)
        assert reply["state"] == "CANCELLED", reply
        assert (reply["coordinator"], reply["epoch"]) == ("n2", 1), reply
        assert reply["reason"] == "cancelled: enough", reply
        await wait_for(lambda: _gone(pids, seconds), 20, "the nap's process to be stopped")
        status = await wait_for(lambda: _cancelled_at(fed, "n3", wid), 20, "n3 to end it")
        assert step_states(status)["nap"][0] == "CANCELLED", status
        assert "n1" not in fed.procs  # still dead


async def _gone(pids: list[int], seconds: str) -> bool:
    """None of `pids` is a live nap any more (a zombie has no command line)."""
    return not set(pids) & set(await asyncio.to_thread(naps_running, seconds))


async def _cancelled_at(fed: Federation, name: str, wid: str):
    s = await fed.local_status(name, wid)
    return s if s is not None and state_name(s) == "CANCELLED" else None


async def test_a_negotiating_workflows_cancel_is_carried_out_and_audited(tmp_path):
    """n2 frozen (SIGSTOP) before it can vote, and a PREPARE timeout long enough that
    the round waits on it: the cancel through n3 reaches the coordinator n1, which ends
    the workflow CANCELLED, and n1's audit chain holds the client's request, before the
    end it led to."""
    domains = {name: {**body, "negotiation": {**body["negotiation"],
                                              "prepare_timeout_s": 60}}
               for name, body in DOMAINS.items()}
    async with started_federation(tmp_path, domains) as fed:
        fed.signal("n2", signal.SIGSTOP)
        wid = await fed.submit("n1", _echo())
        assert state_name(await fed.status("n1", wid)) == "NEGOTIATING"
        code, out, err = await _cli(fed, "n3", "cancel", wid, "--json", "--reason", "enough")
        fed.signal("n2", signal.SIGCONT)
        assert code == 0, (code, out, err)
        assert json.loads(out)["state"] == "CANCELLED", out

        async def recorded() -> list[dict] | None:
            records = await asyncio.to_thread(_audit_records, tmp_path / "data" / "n1", wid)
            return records if any(r["kind"] == "workflow_ended" for r in records) else None

        records = await wait_for(recorded, 30, "n1 to record the end")
        kinds = [r["kind"] for r in records]
        request = [r for r in records if r["kind"] == "client_request"]
        assert len(request) == 1 and request[0]["data"]["request"] == "cancel", records
        assert kinds.index("client_request") < kinds.index("workflow_ended"), kinds
        assert [r["data"]["state"] for r in records if r["kind"] == "workflow_ended"] \
            == ["CANCELLED"], records


def _audit_records(data: pathlib.Path, wid: str) -> list[dict]:
    """`fedorch audit show ID --json` of a data dir (agent.db is read beside the
    running agent)."""
    result = CliRunner().invoke(cli, ["audit", "show", wid, "--data-dir", str(data),
                                      "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_a_cancel_of_an_ended_workflow_is_refused_and_changes_nothing(fed):
    wid = await fed.submit("n1", _echo())
    status = await fed.wait_state("n1", wid, deadline_s=30)
    assert state_name(status) == "SUCCEEDED", status

    code, out, err = await _cli(fed, "n1", "cancel", wid, "--json")
    assert code == 1, (code, out, err)
    assert out == ""
    assert f"{wid} already ended SUCCEEDED: nothing to cancel" in err, err
    assert "FAILED_PRECONDITION" in err, err
    assert await fed.status("n1", wid) == status
    assert state_name(await fed.local_status("n2", wid)) == "SUCCEEDED"

    code, out, err = await _cli(fed, "n1", "cancel", "n1.no-such-workflow", "--json")
    assert code == 2, (code, out, err)  # NOT_FOUND: bad input
    assert "no workflow" in err, err


async def test_a_request_id_retried_after_the_coordinator_restarted_is_the_same_workflow(fed):
    request = client_pb2.SubmitRequest(spec=parse_spec_text(_echo(), "test"),
                                       request_id="retried-across-a-restart")
    first = await fed.client("n1").Submit(request, timeout=10)
    fed.kill("n1")
    await fed.close_channels()
    await fed.start("n1")

    async def retried():
        try:
            return await fed.client("n1").Submit(request, timeout=10)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:  # not rejoined yet: retried
                raise
            return None

    again = await wait_for(retried, 60, "n1 to take submissions again")
    assert again.id == first.id
    # Killed while it negotiated, or after: it ends once (a round the coordinator was
    # preparing when it died is presumed aborted), and no second workflow was made.
    status = await fed.wait_state("n1", first.id, deadline_s=60)
    assert state_name(status) in ("SUCCEEDED", "ABORTED"), status
    listed = await fed.client("n1").ListWorkflows(client_pb2.ListWorkflowsRequest(), timeout=5)
    assert [w.id for w in listed.workflows if w.name == "quick"] == [first.id]
