"""Coordinator takeover on real `engine: node` agents: signed grants, membership from SWIM.

Four node-engine agents; n1 coordinates a workflow whose first step runs at n2 and
whose second, long, step runs at n3. Once the second step runs (the workflow is
committed everywhere), n1 is SIGKILLed and never restarted. Its membership view makes
it DEAD at n2 and n3 (posted to their Nodes as `MemberViews`); the lowest live
participant, n2, claims epoch 1 from the electorate (n1, n2, n3), wins it on n3's
grant signed with n3's domain key (checked with n2's trust store), and once the second
step's result reaches it, ends the workflow SUCCEEDED and tells n3. Both answer
`status` with the new coordinator and its epoch (asked through them, the dead
coordinator the id names cannot answer), and so does n4, which takes no part in the
workflow: it asks the live members, and its watch, begun at n1, follows the end at
n2. The 20 s bound is the behaviour asked for;
without takeover the workflow stays RUNNING until n1 restarts.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys
import time

import grpc
import pytest
from fedorch.gen.fedorch.v1 import client_pb2, client_pb2_grpc

from tests.integration.federation import (
    node_engine_domains,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

GATE_STEP = str(pathlib.Path(__file__).parent / "steps" / "counted_gate.py")
SUCCEEDED_WITHIN_S = 20
WORK = [{"name": "test.gate", "capacity": 4,
         "executor": {"type": "command", "argv": [sys.executable, GATE_STEP]}}]
# n1 coordinates and runs nothing; n4 takes no part in the workflow.
DOMAINS = node_engine_domains(
    ("n1", "n2", "n3", "n4"), lambda name: WORK if name in ("n2", "n3") else [])


def _spec(runs: dict[str, pathlib.Path], gates: dict[str, pathlib.Path]) -> str:
    return f"""
name: taken-over
steps:
  - id: a
    capability: test.gate
    params: {{runs: "{runs['a']}", gate: "{gates['a']}"}}
    constraints: {{domains: [n2]}}
  - id: b
    capability: test.gate
    needs: [a]
    params: {{runs: "{runs['b']}", gate: "{gates['b']}"}}
    constraints: {{domains: [n3]}}
"""


async def test_a_dead_coordinator_is_taken_over_by_signed_grants(tmp_path):
    runs = {step: tmp_path / f"runs-{step}" for step in "ab"}
    gates = {"a": tmp_path / "open", "b": tmp_path / "gate-b"}
    gates["a"].touch()
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await fed.submit("n1", _spec(runs, gates))

        async def b_running() -> bool:
            return runs["b"].exists() and runs["b"].read_text() == "start\n"

        # a is done at n2 and b runs at n3, held at its gate: committed everywhere.
        await wait_for(b_running, 30, "step b to start at n3")
        for name in ("n2", "n3"):
            status = await fed.local_status(name, wid)
            assert status is not None and state_name(status) == "RUNNING", (name, status)
            assert (status.coordinator, status.epoch) == ("n1", 0), status
        # n4 takes no part: its watch follows the workflow at n1 until n1 dies, then at
        # whoever the live members say coordinates it.
        # (on a channel of its own: the federation's are closed once n1 is killed)
        watch_channel = grpc.aio.insecure_channel(fed.address("n4"))
        watch = client_pb2_grpc.ClientStub(watch_channel).Watch(client_pb2.GetWorkflowRequest(
            id=wid, state_changes_only=True), timeout=SUCCEEDED_WITHIN_S + 30)
        watched = asyncio.create_task(_collect(watch))
        coordinator = fed.procs["n1"].popen
        fed.kill("n1")  # SIGKILL, reaped by its pid; never restarted
        killed_at = time.monotonic()
        await fed.close_channels()
        await asyncio.to_thread(gates["b"].touch)  # b may finish now, n1 gone

        async def ended_at(name: str):
            s = await fed.local_status(name, wid)
            return s if s is not None and state_name(s) == "SUCCEEDED" else None

        await wait_for(lambda: ended_at("n2"), SUCCEEDED_WITHIN_S + 5,
                       "the successor n2 to end the workflow")
        await wait_for(lambda: ended_at("n3"), SUCCEEDED_WITHIN_S + 5,
                       "n3 to learn the successor's end")
        assert time.monotonic() - killed_at <= SUCCEEDED_WITHIN_S
        assert coordinator.poll() is not None and "n1" not in fed.procs  # still dead
        for name in ("n2", "n3"):  # status asked through each survivor
            answer = await fed.status(name, wid)
            assert state_name(answer) == "SUCCEEDED", (name, answer)
            assert (answer.coordinator, answer.epoch) == ("n2", 1), (name, answer)
            assert {k: v[:2] for k, v in step_states(answer).items()} == {
                "a": ("SUCCEEDED", "n2"), "b": ("SUCCEEDED", "n3")}, (name, answer)
        for step in "ab":  # each step ran once, and completed
            assert runs[step].read_text() == "start\ndone\n", step
        # n4 knows nothing of the workflow, and the coordinator its id names is dead: it
        # asks the live members and answers with the successor's status.
        assert await fed.local_status("n4", wid) is None
        answer = await fed.status("n4", wid)
        assert state_name(answer) == "SUCCEEDED", answer
        assert (answer.coordinator, answer.epoch) == ("n2", 1), answer
        try:
            seen = await asyncio.wait_for(watched, 30)
        finally:
            await watch_channel.close()
        assert [state_name(s) for s in seen] == ["RUNNING", "SUCCEEDED"], seen
        assert (seen[-1].coordinator, seen[-1].epoch) == ("n2", 1), seen[-1]


async def _collect(call) -> list:
    try:
        return [status async for status in call]
    finally:
        call.cancel()
