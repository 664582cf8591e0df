"""The Python client (fedorch.Client, fedorch.AsyncClient) and exact JSON values, on three
real agents: the documented example runs and prints what it should; integers a step
outputs reach the downstream step in another domain, the client and `fedorch status
--json` as integers (2**60 too); watch, cancel, members and the typed errors."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from fedorch import AsyncClient, Client
from fedorch.client import InvalidSpec, NotFound, Unreachable, WaitTimedOut

from tests.integration.conftest import DOMAINS
from tests.integration.federation import running_federation

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "python_client.py"
TYPES_STEP = [sys.executable, str(Path(__file__).parent / "steps" / "json_types.py")]
BIG = 2**60
RUN_LIMIT_S = 180


def _domains() -> dict[str, dict]:
    """The suite's three domains, plus a step that reports the JSON types it receives."""
    domains = copy.deepcopy(DOMAINS)
    for name in ("eu-west", "partner"):
        domains[name]["capabilities"].append(
            {"name": "test.types", "capacity": 2,
             "executor": {"type": "command", "argv": TYPES_STEP}})
    return domains


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    with running_federation(tmp_path_factory.mktemp("client-federation"), _domains()) as fed:
        yield fed


async def _run(*argv: str) -> tuple[int, str, str]:
    """Run a program to its end (killed by its pid past RUN_LIMIT_S); code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_LIMIT_S)
    except TimeoutError:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    return proc.returncode, out.decode(), err.decode()


async def test_the_documented_example_runs_against_three_agents(fed):
    code, out, err = await _run(sys.executable, str(EXAMPLE), "--peer", fed.address("eu-west"))
    assert code == 0, out + err
    lines = out.splitlines()
    members = sorted(line.split()[1:3] for line in lines if line.startswith("member "))
    assert members == [["eu-west", "ALIVE"], ["partner", "ALIVE"], ["us-east", "ALIVE"]]
    first = next(line for line in lines if line.startswith("workflow "))
    assert first.endswith(" SUCCEEDED")
    # us-east refuses EU data, so train runs in eu-west; report runs at the partner.
    assert [line for line in lines if line.startswith("step ")] == [
        "step extract on eu-west: SUCCEEDED",
        "step train on eu-west: SUCCEEDED",
        "step report on partner: SUCCEEDED",
    ]
    assert "rows 3 is int" in lines
    assert f"checksum {2**60 + 1} is int" in lines
    watched = [line.split()[2] for line in lines if line.startswith("watch ")]
    assert watched[-1] == "SUCCEEDED" and len(watched) == len(set(watched))
    (status_line,) = [line for line in lines if line.startswith("status ")]
    status = json.loads(status_line.removeprefix("status "))
    assert status["state"] == "SUCCEEDED"
    echoed = next(s for s in status["steps"] if s["id"] == "extract")["outputs"]["echo"]
    assert echoed == {"table": "sales", "rows": 3, "checksum": 2**60 + 1, "ratio": 0.5}
    assert type(echoed["rows"]) is int
    assert "not found: NOT_FOUND" in lines
    workflow_id = status["id"]
    assert f"async {workflow_id} SUCCEEDED, listed: True" in lines


async def test_integers_stay_integers_from_step_to_step_and_to_the_cli(fed):
    spec = {"name": "exact-values", "steps": [
        {"id": "up", "capability": "test.types", "params": {"n": 1, "big": BIG},
         "constraints": {"domains": ["eu-west"]}},
        {"id": "down", "capability": "test.types", "needs": ["up"],
         "constraints": {"domains": ["partner"]}},
    ]}
    async with AsyncClient(fed.address("eu-west")) as client:
        final = await client.submit(spec, wait=True, timeout=60)
    assert final.state == "SUCCEEDED", final
    up, down = final.step("up"), final.step("down")
    assert (up.domain, down.domain) == ("eu-west", "partner")
    assert up.outputs["n"] == 1 and type(up.outputs["n"]) is int
    assert up.outputs["big"] == BIG and type(up.outputs["big"]) is int
    # The downstream program, in another domain, got integers on its stdin.
    assert down.outputs["input_types"] == {
        "up": {"n": "int", "big": "int", "input_types": "dict", "int_sum": "int"}}
    assert down.outputs["int_sum"] == 2 * (1 + BIG)  # exact: no double rounding

    # `fedorch status --json`, asked of a third agent, shows the same integers.
    code, out, err = await _run(sys.executable, "-m", "fedorch.cli.main", "status", final.id,
                                "--peer", fed.address("us-east"), "--json")
    assert code == 0, out + err
    shown = {s["id"]: s["outputs"] for s in json.loads(out)["steps"]}
    assert shown["up"]["n"] == 1 and type(shown["up"]["n"]) is int
    assert shown["up"]["big"] == BIG and type(shown["up"]["big"]) is int
    assert f'"big": {BIG}' in out  # written as an integer, not 1.152921504606847e+18
    assert shown["down"]["int_sum"] == 2 * (1 + BIG)


async def test_sync_client_watches_and_cancels(fed):
    spec = {"name": "long", "data": {"jurisdiction": "EU"}, "steps": [
        {"id": "nap", "capability": "test.sleep", "params": {"seconds": 60}}]}

    def run() -> tuple[list[str], str, str]:
        with Client(fed.address("partner")) as client:
            workflow_id = client.submit(spec)
            seen = []
            for status in client.watch(workflow_id):
                seen.append(status.state)
                if status.step("nap").state == "RUNNING":
                    break  # leaves the stream; the workflow goes on
            client.cancel(workflow_id, reason="enough")
            final = client.wait(workflow_id, timeout=30)
            return seen, final.state, final.reason

    seen, state, reason = await asyncio.to_thread(run)
    assert seen[-1] == "RUNNING"
    assert state == "CANCELLED" and "enough" in reason


async def test_members_and_typed_errors(fed):
    async with AsyncClient(fed.address("us-east")) as client:
        members = {m.domain: m for m in await client.members()}
        assert set(members) == {"eu-west", "us-east", "partner"}
        assert members["us-east"].is_self and not members["eu-west"].is_self
        assert all(m.state == "ALIVE" for m in members.values())
        assert {c.name for c in members["partner"].capabilities} >= {"report.publish"}
        with pytest.raises(NotFound) as not_found:
            await client.status("eu-west.no-such")
        assert not_found.value.code.name == "NOT_FOUND"
        with pytest.raises(InvalidSpec) as invalid:
            await client.submit({"name": "bad", "steps": [{"id": "a", "capability": "x",
                                                           "needs": ["nope"]}]})
        assert "steps[0].needs[0]" in str(invalid.value) and invalid.value.code is None
        slow = await client.submit({"name": "slow", "data": {"jurisdiction": "EU"}, "steps": [
            {"id": "nap", "capability": "test.sleep", "params": {"seconds": 30}}]})
        try:
            with pytest.raises(WaitTimedOut) as timed_out:
                await client.wait(slow, timeout=0.5)
            assert timed_out.value.last is None or not timed_out.value.last.terminal
            assert f"workflow {slow} did not end within 0.5s" in str(timed_out.value)
        finally:
            await client.cancel(slow)

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    async with AsyncClient(closed, rpc_timeout=5) as client:
        with pytest.raises(Unreachable) as unreachable:
            await client.members()
        assert unreachable.value.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
