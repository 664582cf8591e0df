"""The `fedorch` CLI: rendering, exit codes, and commands against a fake agent.

The fake agent is a real grpc.aio server implementing the Client service with canned
answers. It runs on its own event loop in a background thread, because the CLI calls
asyncio.run in the test's thread (through click's CliRunner).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import types
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import click
import grpc
import pytest
from click.testing import CliRunner, Result
from fedorch.cli import demo as demo_mod
from fedorch.cli import render
from fedorch.cli.client import parse_peer
from fedorch.cli.errors import EXIT_UNREACHABLE, CliError, rpc_error
from fedorch.cli.main import cli
from fedorch.gen.fedorch.v1 import client_pb2, client_pb2_grpc, peer_pb2, status_pb2
from google.protobuf import struct_pb2
from rich.console import Console

REPO = Path(__file__).resolve().parents[3]
WS = status_pb2  # enum values live on the module

# ---- canned statuses -----------------------------------------------------------------


def make_status(
    wf_id: str, state: int, *, reason: str = "", rounds: int = 1
) -> status_pb2.WorkflowStatus:
    status = status_pb2.WorkflowStatus(
        id=wf_id,
        name="eu-sales-model",
        state=state,
        coordinator="eu-west",
        reason=reason,
        rounds=rounds,
    )
    extract = status.steps.add(
        id="extract", domain="eu-west", state=WS.STEP_STATE_SUCCEEDED, attempts=1
    )
    extract.capability = "data.extract"
    extract.outputs.update({"rows": 3, "table": "sales"})
    train = status.steps.add(id="train", domain="eu-west", capability="ml.train")
    if state == WS.WORKFLOW_STATE_SUCCEEDED:
        train.state, train.attempts = WS.STEP_STATE_SUCCEEDED, 1
        train.outputs.update({"model": "m-1"})
    elif state == WS.WORKFLOW_STATE_ABORTED:
        train.state = WS.STEP_STATE_PENDING
    else:
        train.state, train.attempts = WS.STEP_STATE_RUNNING, 1
    status.refusals.add(
        round=1, domain="us-east", steps=["train"], reason="residency: EU data not accepted"
    )
    return status


def member(domain: str, port: int, *, me: bool = False) -> client_pb2.MemberInfo:
    info = client_pb2.MemberInfo(
        domain=domain,
        address=f"127.0.0.1:{port}",
        state=client_pb2.MEMBER_STATE_ALIVE,
        version=4,
        incarnation=7,
        last_heard_ms=1_500,
        self=me,
    )
    info.labels["jurisdiction"] = "EU"
    info.capabilities.append(peer_pb2.CapabilityInfo(name="ml.train", capacity=2, available=1))
    return info


# ---- the fake agent ------------------------------------------------------------------


class FakeAgent(client_pb2_grpc.ClientServicer):
    """Canned answers. Workflow ids are "wf-" + the submitted spec's name."""

    def __init__(self) -> None:
        self.submits: list[client_pb2.SubmitRequest] = []
        self.cancels: list[client_pb2.CancelRequest] = []
        self.gets: dict[str, list[status_pb2.WorkflowStatus]] = {}  # popped until one left
        self.watches: dict[str, list[status_pb2.WorkflowStatus]] = {}
        self.watch_mode: dict[str, str] = {}  # "stream" (default) | "break" | "hang"
        self.watch_requests: list[client_pb2.GetWorkflowRequest] = []
        self.submit_watches: list[client_pb2.SubmitAndWatchRequest] = []
        # SubmitAndWatch: "stream" (default: like Watch, after the submit), "unimplemented"
        # (an agent without it), "break-first" (submits, then breaks before any status)
        self.submit_watch_mode = "stream"
        self.members: list[client_pb2.MemberInfo] = []
        self.hang_get = False
        self.invalid_submit = False
        self.never: asyncio.Event | None = None  # created on the server's loop

    def _never(self) -> asyncio.Event:
        if self.never is None:
            self.never = asyncio.Event()
        return self.never

    async def Submit(self, request, context):
        self.submits.append(request)
        if self.invalid_submit:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "steps[0].capability: bad")
        return client_pb2.SubmitReply(id=f"wf-{request.spec.name}")

    async def GetWorkflow(self, request, context):
        if self.hang_get:
            await self._never().wait()
        queue = self.gets.get(request.id)
        if not queue:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no workflow {request.id!r}")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    async def Watch(self, request, context) -> AsyncIterator[status_pb2.WorkflowStatus]:
        self.watch_requests.append(request)
        async for update in self._stream(request.id, context):
            yield update

    async def SubmitAndWatch(self, request, context) -> AsyncIterator[status_pb2.WorkflowStatus]:
        if self.submit_watch_mode == "unimplemented":
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        self.submit_watches.append(request)
        reply = await self.Submit(request.submit, context)
        if self.submit_watch_mode == "break-first":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "stream lost")
        async for update in self._stream(reply.id, context):
            yield update

    async def _stream(self, workflow_id: str, context) -> AsyncIterator[status_pb2.WorkflowStatus]:
        updates = self.watches.get(workflow_id)
        if updates is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no workflow {workflow_id!r}")
        mode = self.watch_mode.get(workflow_id, "stream")
        for update in updates:
            yield update
            if mode == "break":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "stream lost")
        if mode == "hang":
            await self._never().wait()

    async def Cancel(self, request, context):
        self.cancels.append(request)
        status = make_status(request.id, WS.WORKFLOW_STATE_CANCELLED, reason=request.reason)
        return client_pb2.CancelReply(status=status)

    async def ListWorkflows(self, request, context):
        reply = client_pb2.ListWorkflowsReply()
        reply.workflows.append(make_status("wf-a", WS.WORKFLOW_STATE_RUNNING))
        reply.workflows.append(make_status("wf-b", WS.WORKFLOW_STATE_SUCCEEDED))
        return reply

    async def ListMembers(self, request, context):
        return client_pb2.ListMembersReply(members=self.members)


class ServerThread:
    """A grpc.aio server on 127.0.0.1:0, on its own loop in a daemon thread."""

    def __init__(self, servicer: FakeAgent) -> None:
        self.servicer = servicer
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.port = 0
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="fake-agent", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            # A stream handler the server cancelled may leave its async generator
            # suspended; finalised later by the collector, with this loop closed, it
            # would print its GeneratorExit into whatever stderr a later test captures.
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())

    async def _serve(self) -> None:
        try:
            server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            client_pb2_grpc.add_ClientServicer_to_server(self.servicer, server)
            self.port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            self._stop = asyncio.Event()
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            raise
        self.ready.set()
        await self._stop.wait()
        await server.stop(None)

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(10), "fake agent did not start"
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        assert not self.thread.is_alive(), "fake agent did not stop"
        self.loop.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def fake() -> Iterator[tuple[FakeAgent, str]]:
    servicer = FakeAgent()
    server = ServerThread(servicer)
    server.start()
    try:
        yield servicer, server.address
    finally:
        server.stop()


@pytest.fixture
def spec_file(tmp_path: Path) -> Callable[[str], Path]:
    def write(name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"name: {name}\n"
            "data: {jurisdiction: EU}\n"
            "steps:\n"
            "  - id: extract\n    capability: data.extract\n"
            "  - id: train\n    capability: ml.train\n    needs: [extract]\n"
        )
        return path

    pytest.importorskip("fedorch.core.workflow.spec")
    return write


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    # Wide enough that rich tables do not wrap the words the tests look for.
    env = {"COLUMNS": "200", **(env or {})}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def assert_one_error_line(result: Result, *fragments: str) -> None:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fedorch: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def free_port() -> int:
    return demo_mod.pick_free_ports(1)[0]


# ---- rendering -----------------------------------------------------------------------


def test_status_to_dict_follows_the_contract() -> None:
    status = make_status("wf-1", WS.WORKFLOW_STATE_SUCCEEDED, rounds=2)
    assert render.status_to_dict(status) == {
        "id": "wf-1",
        "name": "eu-sales-model",
        "state": "SUCCEEDED",
        "coordinator": "eu-west",
        "epoch": 0,
        "reason": "",
        "compensation": "NONE",
        "steps": [
            {
                "id": "extract",
                "domain": "eu-west",
                "state": "SUCCEEDED",
                "attempts": 1,
                "outputs": {"rows": 3.0, "table": "sales"},
                "error": "",
            },
            {
                "id": "train",
                "domain": "eu-west",
                "state": "SUCCEEDED",
                "attempts": 1,
                "outputs": {"model": "m-1"},
                "error": "",
            },
        ],
        "refusals": [
            {
                "round": 1,
                "domain": "us-east",
                "steps": ["train"],
                "reason": "residency: EU data not accepted",
            }
        ],
        "rounds": 2,
    }


def test_status_shows_compensation_states() -> None:
    status = make_status("wf-2", WS.WORKFLOW_STATE_FAILED)
    status.steps[0].state = status_pb2.STEP_STATE_COMPENSATED
    status.steps[1].state = status_pb2.STEP_STATE_COMPENSATION_FAILED
    status.compensation = status_pb2.COMPENSATION_SUMMARY_FAILED
    printed = render.status_to_dict(status)
    assert printed["compensation"] == "FAILED"
    assert [s["state"] for s in printed["steps"]] == ["COMPENSATED", "COMPENSATION_FAILED"]
    console = Console(width=200, record=True)
    console.print(render.status_renderable(status))
    text = console.export_text()
    assert "compensation FAILED" in text and "COMPENSATION_FAILED" in text


def test_status_dict_empty_outputs_and_enum_names() -> None:
    status = status_pb2.WorkflowStatus(id="x", state=WS.WORKFLOW_STATE_NEGOTIATING)
    status.steps.add(id="a", state=WS.STEP_STATE_WAITING)
    status.steps.add(id="b", state=WS.STEP_STATE_RUNNING, outputs=struct_pb2.Struct())
    got = render.status_to_dict(status)
    assert got["state"] == "NEGOTIATING"
    assert [s["state"] for s in got["steps"]] == ["WAITING", "RUNNING"]
    assert [s["outputs"] for s in got["steps"]] == [{}, {}]
    assert got["refusals"] == [] and got["rounds"] == 0
    json.dumps(got)  # JSON-ready
    assert render.workflow_state_name(99) == "UNKNOWN_99"
    for value in status_pb2.WorkflowState.values():
        assert not render.workflow_state_name(value).startswith("WORKFLOW_STATE_")


def test_member_to_dict_shape() -> None:
    got = render.members_to_list([member("eu-west", 7101, me=True)])
    assert got == [
        {
            "domain": "eu-west",
            "address": "127.0.0.1:7101",
            "state": "ALIVE",
            "labels": {"jurisdiction": "EU"},
            "capabilities": [{"name": "ml.train", "capacity": 2, "available": 1}],
            "incarnation": 7,
            "version": 4,
            "last_heard_ms": 1500,
            "self": True,
        }
    ]


def test_last_heard_seconds_reads_timestamps_and_ages() -> None:
    assert render.last_heard_seconds(0) is None
    assert render.last_heard_seconds(2_500) == 2.5
    now = 1_700_000_000_000
    assert render.last_heard_seconds(now - 4_000, now_ms=now) == 4.0


def test_change_lines_report_refusals_and_replacement() -> None:
    before = render.status_to_dict(status_pb2.WorkflowStatus(id="w", state=2))
    after_msg = make_status("w", WS.WORKFLOW_STATE_RUNNING)
    after = render.status_to_dict(after_msg)
    lines = render.change_lines(before, after)
    assert "workflow w RUNNING" in lines
    assert "round 1: us-east refused train: residency: EU data not accepted" in lines
    assert "step train RUNNING on eu-west (attempt 1)" in lines
    moved = json.loads(json.dumps(after))
    moved["steps"][1]["domain"] = "partner"
    assert "step train re-placed: eu-west -> partner" in render.change_lines(after, moved)
    assert render.change_lines(after, after) == []


def test_refusal_summary_says_where_the_step_went() -> None:
    status = make_status("w", WS.WORKFLOW_STATE_SUCCEEDED)
    assert demo_mod.refusal_summary(status) == [
        "round 1: us-east refused train: residency: EU data not accepted",
        "  -> train was re-placed on eu-west",
    ]


def test_rpc_error_exit_codes() -> None:
    def err(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "a\nb")

    assert rpc_error(err(grpc.StatusCode.UNAVAILABLE), "p:1").exit_code == 3
    assert rpc_error(err(grpc.StatusCode.DEADLINE_EXCEEDED), "p:1").exit_code == 3
    assert rpc_error(err(grpc.StatusCode.NOT_FOUND), "p:1").exit_code == 2
    assert rpc_error(err(grpc.StatusCode.INVALID_ARGUMENT), "p:1").exit_code == 2
    failed = rpc_error(err(grpc.StatusCode.FAILED_PRECONDITION), "p:1")
    assert failed.exit_code == 1
    assert "\n" not in failed.format_message()
    assert CliError("x\ny").format_message() == "x y"


def test_parse_peer() -> None:
    assert parse_peer(" 127.0.0.1:7101 ") == "127.0.0.1:7101"
    assert parse_peer("[::1]:7101") == "[::1]:7101"
    assert parse_peer("agent-1.example:80") == "agent-1.example:80"
    for bad in ("nope", "host:0", "host:70000", "a b:1", ":7101"):
        with pytest.raises(ValueError):
            parse_peer(bad)


# ---- commands against the fake agent ----------------------------------------------------


def test_submit_prints_the_id_with_a_request_id(fake, spec_file) -> None:
    agent, address = fake
    result = invoke("submit", str(spec_file("plain")), "--peer", address)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "wf-plain"
    result = invoke("submit", str(spec_file("plain")), "--peer", address, "--json")
    assert json.loads(result.stdout) == {"id": "wf-plain"}
    ids = [r.request_id for r in agent.submits]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert agent.submits[0].spec.steps[1].needs == ["extract"]


def will_succeed(agent: FakeAgent, workflow_id: str) -> status_pb2.WorkflowStatus:
    """Canned answers for a workflow that is RUNNING and then SUCCEEDED; the last."""
    running = make_status(workflow_id, WS.WORKFLOW_STATE_RUNNING)
    done = make_status(workflow_id, WS.WORKFLOW_STATE_SUCCEEDED)
    agent.gets[workflow_id] = [running]
    agent.watches[workflow_id] = [running, done]
    return done


def test_submit_wait_json_succeeded_exits_0(fake, spec_file) -> None:
    agent, address = fake
    done = will_succeed(agent, "wf-good")
    result = invoke("submit", str(spec_file("good")), "--peer", address, "--wait", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == render.status_to_dict(done)
    assert result.stderr == ""
    # One call submits and follows; only the end is printed, so the agent is asked for
    # changes of state, not step news.
    assert [r.state_changes_only for r in agent.submit_watches] == [True]
    assert len(agent.submits) == 1 and agent.watch_requests == []


@pytest.mark.parametrize("mode", ["unimplemented", "break-first"])
def test_submit_wait_submits_again_with_the_same_request_id_and_follows(
        fake, spec_file, mode) -> None:
    """An agent without SubmitAndWatch, or a call that breaks before its first status:
    a plain Submit with the same request_id (it starts nothing new), then a Watch."""
    agent, address = fake
    agent.submit_watch_mode = mode
    will_succeed(agent, "wf-again")
    result = invoke("submit", str(spec_file("again")), "--peer", address, "--wait", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "SUCCEEDED"
    assert len(agent.submits) == (1 if mode == "unimplemented" else 2)
    assert len({r.request_id for r in agent.submits}) == 1
    assert [r.state_changes_only for r in agent.watch_requests] == [True]


def test_submit_wait_json_aborted_exits_1(fake, spec_file) -> None:
    agent, address = fake
    negotiating = status_pb2.WorkflowStatus(id="wf-bad", state=WS.WORKFLOW_STATE_NEGOTIATING)
    aborted = make_status("wf-bad", WS.WORKFLOW_STATE_ABORTED, reason="no domain takes train")
    agent.gets["wf-bad"] = [negotiating]
    agent.watches["wf-bad"] = [negotiating, aborted]
    result = invoke("submit", str(spec_file("bad")), "--peer", address, "--wait", "--json")
    assert result.exit_code == 1
    got = json.loads(result.stdout)
    assert got["state"] == "ABORTED" and got["reason"] == "no domain takes train"
    assert got["refusals"][0]["domain"] == "us-east"
    assert_one_error_line(result, "wf-bad", "ABORTED")


def test_submit_wait_falls_back_to_polling_when_the_stream_breaks(fake, spec_file) -> None:
    agent, address = fake
    running = make_status("wf-poll", WS.WORKFLOW_STATE_RUNNING)
    done = make_status("wf-poll", WS.WORKFLOW_STATE_SUCCEEDED)
    agent.gets["wf-poll"] = [running, running, done]
    agent.watches["wf-poll"] = [running]
    agent.watch_mode["wf-poll"] = "break"
    result = invoke("submit", str(spec_file("poll")), "--peer", address, "--wait", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "SUCCEEDED"
    assert agent.gets["wf-poll"] == [done]  # every canned answer was asked for


def test_submit_wait_times_out_with_exit_1(fake, spec_file) -> None:
    agent, address = fake
    running = make_status("wf-slow", WS.WORKFLOW_STATE_RUNNING)
    agent.gets["wf-slow"] = [running]
    agent.watches["wf-slow"] = [running]
    agent.watch_mode["wf-slow"] = "hang"
    result = invoke(
        "submit", str(spec_file("slow")), "--peer", address, "--wait", "--timeout", "0.3"
    )
    assert result.exit_code == 1
    assert_one_error_line(result, "timed out waiting for workflow wf-slow", "RUNNING")


def test_submit_bad_spec_exits_2_and_sends_nothing(fake, tmp_path: Path) -> None:
    pytest.importorskip("fedorch.core.workflow.spec")
    agent, address = fake
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\nsteps: []\n")
    result = invoke("submit", str(bad), "--peer", address)
    assert result.exit_code == 2
    assert_one_error_line(result, "bad.yaml", "steps")
    assert agent.submits == []


def test_submit_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("submit", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2


def test_submit_refused_by_the_agent_as_invalid_exits_2(fake, spec_file) -> None:
    agent, address = fake
    agent.invalid_submit = True
    result = invoke("submit", str(spec_file("inv")), "--peer", address)
    assert result.exit_code == 2
    assert_one_error_line(result, "steps[0].capability: bad", "INVALID_ARGUMENT")


def test_status_json_and_table(fake) -> None:
    agent, address = fake
    done = make_status("wf-s", WS.WORKFLOW_STATE_SUCCEEDED)
    agent.gets["wf-s"] = [done]
    result = invoke("status", "wf-s", "--peer", address, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == render.status_to_dict(done)
    table = invoke("status", "wf-s", "--peer", address)
    assert table.exit_code == 0
    for word in ("wf-s", "SUCCEEDED", "extract", "train", "us-east", "residency"):
        assert word in table.stdout


def test_status_not_found_exits_2(fake) -> None:
    _, address = fake
    result = invoke("status", "nope", "--peer", address, "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert_one_error_line(result, "nope")


def test_peer_from_environment(fake) -> None:
    agent, address = fake
    agent.gets["wf-env"] = [make_status("wf-env", WS.WORKFLOW_STATE_RUNNING)]
    result = invoke("status", "wf-env", "--json", env={"FEDORCH_PEER": address})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "wf-env"


def test_unreachable_agent_exits_3() -> None:
    address = f"127.0.0.1:{free_port()}"
    for args in (("status", "x"), ("members", "--json"), ("list",), ("cancel", "x")):
        result = invoke(*args, "--peer", address)
        assert result.exit_code == EXIT_UNREACHABLE, (args, result.stderr)
        assert_one_error_line(result, address)


def test_rpc_timeout_bounds_every_call(fake) -> None:
    agent, address = fake
    agent.hang_get = True
    result = invoke("--rpc-timeout", "0.2", "status", "wf-x", "--peer", address)
    assert result.exit_code == 3
    assert_one_error_line(result, "deadline")


def test_bad_peer_is_a_usage_error() -> None:
    assert invoke("status", "x", "--peer", "no-port").exit_code == 2


def test_members_json_shape(fake) -> None:
    agent, address = fake
    agent.members = [member("eu-west", 7101, me=True), member("us-east", 7102)]
    result = invoke("members", "--peer", address, "--json")
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)
    assert [m["domain"] for m in got] == ["eu-west", "us-east"]
    for entry in got:
        assert {"domain", "address", "state", "labels", "capabilities"} <= set(entry)
        assert entry["state"] in {"ALIVE", "SUSPECT", "DEAD", "LEFT"}
        assert entry["capabilities"] == [{"name": "ml.train", "capacity": 2, "available": 1}]
    assert got == render.members_to_list(agent.members)
    table = invoke("members", "--peer", address)
    assert table.exit_code == 0
    for word in ("eu-west", "us-east", "ALIVE", "jurisdiction=EU", "ml.train 1/2", "1.5s ago"):
        assert word in table.stdout


def test_list_and_cancel(fake) -> None:
    agent, address = fake
    result = invoke("list", "--peer", address, "--json")
    assert result.exit_code == 0, result.stderr
    assert [(w["id"], w["state"]) for w in json.loads(result.stdout)] == [
        ("wf-a", "RUNNING"),
        ("wf-b", "SUCCEEDED"),
    ]
    table = invoke("list", "--peer", address)
    assert "wf-a" in table.stdout and "1/2" in table.stdout and "2/2" in table.stdout
    result = invoke("cancel", "wf-a", "--peer", address, "--reason", "no longer needed", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "CANCELLED"
    assert [(c.id, c.reason) for c in agent.cancels] == [("wf-a", "no longer needed")]


def test_watch_prints_one_line_per_change_off_a_tty(fake) -> None:
    agent, address = fake
    running = make_status("wf-w", WS.WORKFLOW_STATE_RUNNING)
    failed = make_status("wf-w", WS.WORKFLOW_STATE_FAILED, reason="train failed")
    failed.steps[1].state = WS.STEP_STATE_FAILED
    failed.steps[1].error = "exit 3"
    agent.gets["wf-w"] = [running]
    agent.watches["wf-w"] = [running, running, failed]
    result = invoke("watch", "wf-w", "--peer", address)
    assert result.exit_code == 1
    out = result.stdout
    assert "workflow wf-w RUNNING" in out
    assert "round 1: us-east refused train: residency: EU data not accepted" in out
    assert "step train FAILED on eu-west (attempt 1): exit 3" in out
    assert "workflow wf-w FAILED: train failed" in out
    assert out.count("workflow wf-w RUNNING") == 1  # repeated updates print nothing
    assert_one_error_line(result, "FAILED")
    assert [r.state_changes_only for r in agent.watch_requests] == [False]  # steps shown


def test_watch_json_lines_and_success(fake) -> None:
    agent, address = fake
    running = make_status("wf-j", WS.WORKFLOW_STATE_RUNNING)
    done = make_status("wf-j", WS.WORKFLOW_STATE_SUCCEEDED)
    agent.gets["wf-j"] = [running]
    agent.watches["wf-j"] = [running, done]
    result = invoke("watch", "wf-j", "--peer", address, "--json")
    assert result.exit_code == 0, result.stderr
    states = [json.loads(line)["state"] for line in result.stdout.splitlines()]
    assert states == ["RUNNING", "SUCCEEDED"]


def test_watch_unknown_id_exits_2(fake) -> None:
    _, address = fake
    result = invoke("watch", "ghost", "--peer", address)
    assert result.exit_code == 2
    assert_one_error_line(result, "ghost")


# ---- keys and agent run ----------------------------------------------------------------


def test_keys_init(tmp_path: Path) -> None:
    pytest.importorskip("fedorch.core.identity.keys")
    result = invoke("keys", "init", "--domain", "eu-west", "--dir", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)
    assert got == {
        "domain": "eu-west",
        "key": str(tmp_path / "eu-west.key"),
        "pub": str(tmp_path / "eu-west.pub"),
    }
    assert (tmp_path / "eu-west.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "eu-west.pub").exists()
    again = invoke("keys", "init", "--domain", "eu-west", "--dir", str(tmp_path))
    assert again.exit_code == 1
    assert_one_error_line(again, "eu-west.key")
    bad = invoke("keys", "init", "--domain", "not a domain!", "--dir", str(tmp_path))
    assert bad.exit_code == 2
    assert_one_error_line(bad)
    plain = invoke("keys", "init", "--domain", "us-east", "--dir", str(tmp_path))
    assert plain.exit_code == 0
    assert str(tmp_path / "us-east.key") in plain.stdout


def test_agent_run_exits_with_the_daemons_code(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("domain: x\n")
    seen: list[tuple[str, bool]] = []

    def fake_main(config_path: str, start_fresh: bool = False) -> int:
        seen.append((config_path, start_fresh))
        return 7

    daemon = types.ModuleType("fedorch.runtime.daemon")
    daemon.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fedorch.runtime.daemon", daemon)
    result = invoke("agent", "run", "--config", str(config))
    assert result.exit_code == 7
    assert invoke("agent", "run", "--config", str(config), "--start-fresh").exit_code == 7
    assert seen == [(str(config), False), (str(config), True)]
    assert invoke("agent", "run", "--config", str(tmp_path / "missing.yaml")).exit_code == 2


def test_python_dash_m_runs_the_cli() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "fedorch.cli.main", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "submit" in done.stdout and "demo" in done.stdout


# ---- demo building blocks --------------------------------------------------------------


def test_pick_free_ports_are_distinct() -> None:
    ports = demo_mod.pick_free_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)


def test_write_configs_moves_templates_onto_the_run(tmp_path: Path) -> None:
    templates = demo_mod.scenario_dir()
    if not all((templates / f"{d}.yaml").exists() for d in demo_mod.DOMAINS):
        pytest.skip("scenarios/demo templates not written yet")
    ports = dict(zip(demo_mod.DOMAINS, (41001, 41002, 41003), strict=True))
    written = demo_mod.write_configs(templates, tmp_path, ports)
    assert set(written) == set(demo_mod.DOMAINS)
    import yaml

    keys = tmp_path / "keys"
    for domain, path in written.items():
        assert path == tmp_path / f"{domain}.yaml"
        config = yaml.safe_load(path.read_text())
        address = f"127.0.0.1:{ports[domain]}"
        assert config["domain"] == domain
        assert config["listen"] == address and config["advertise"] == address
        others = {f"127.0.0.1:{p}" for d, p in ports.items() if d != domain}
        assert set(config["seeds"]) == others
        assert config["data_dir"] == str(tmp_path / "data" / domain)
        assert config["key_file"] == str(keys / f"{domain}.key")
        assert all(Path(f).parent == keys for f in config["trust"]["key_files"])
        assert str(keys / f"{domain}.pub") not in config["trust"]["key_files"]
        assert "metrics_listen" not in config
        assert (tmp_path / "data" / domain).is_dir()
    if importable("fedorch.runtime.config") and importable("fedorch.core.identity.keys"):
        from fedorch.runtime.config import load_config

        demo_mod.ensure_keys(demo_mod.DOMAINS, keys)
        for domain, path in written.items():
            loaded = load_config(path)
            assert loaded.listen == f"127.0.0.1:{ports[domain]}"


def test_rewrite_config_resolves_command_executors(tmp_path: Path) -> None:
    template_dir = tmp_path / "tpl"
    (template_dir / "steps").mkdir(parents=True)
    (template_dir / "steps" / "train.py").write_text("print('{}')\n")
    template = {
        "domain": "a",
        "listen": "127.0.0.1:7101",
        "seeds": ["127.0.0.1:7102"],
        "metricsListen": "127.0.0.1:9101",
        "capabilities": [
            {
                "name": "ml.train",
                "executor": {"type": "command", "argv": ["python3", "steps/train.py", "-v"]},
            }
        ],
    }
    config = demo_mod.rewrite_config(
        template,
        "a",
        addresses={"a": "127.0.0.1:5001", "b": "127.0.0.1:5002"},
        template_addresses={"a": ["127.0.0.1:7101"], "b": ["127.0.0.1:7102"]},
        workdir=tmp_path / "run",
        keys_dir=tmp_path / "run" / "keys",
        template_dir=template_dir,
    )
    assert config["seeds"] == ["127.0.0.1:5002"]
    assert config["trust"]["key_files"] == [str(tmp_path / "run" / "keys" / "b.pub")]
    assert "metricsListen" not in config and "metrics_listen" not in config
    executor = config["capabilities"][0]["executor"]
    assert executor["argv"] == [
        sys.executable,
        str((template_dir / "steps" / "train.py").resolve()),
        "-v",
    ]
    assert executor["cwd"] == str(template_dir.resolve())
    assert template["seeds"] == ["127.0.0.1:7102"]  # the template itself is untouched


def test_start_agents_logs_and_stop_agents_tolerates_exited(tmp_path: Path) -> None:
    configs = {"eu-west": tmp_path / "eu-west.yaml"}
    started = demo_mod.start_agents(
        configs,
        {"eu-west": "127.0.0.1:1"},
        tmp_path,
        command=lambda cfg: [sys.executable, "-c", f"print('hello from', {str(cfg)!r})"],
    )
    assert [p.domain for p in started] == ["eu-west"]
    assert started[0].popen.wait(timeout=30) == 0
    demo_mod.stop_agents(started)
    assert demo_mod.log_tail(tmp_path / "eu-west.log") == f"hello from {configs['eu-west']}"


def _ready_child(script: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"  # handlers are installed
    return proc


def test_stop_agents_terminates_then_kills(tmp_path: Path) -> None:
    polite = _ready_child("import time; print('ready', flush=True); time.sleep(120)")
    stubborn = _ready_child(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(120)"
    )
    agents = [
        demo_mod.AgentProcess("a", "127.0.0.1:1", tmp_path / "a.yaml", tmp_path / "a.log", polite),
        demo_mod.AgentProcess(
            "b", "127.0.0.1:2", tmp_path / "b.yaml", tmp_path / "b.log", stubborn
        ),
    ]
    try:
        demo_mod.stop_agents(agents, grace_s=0.5)
        assert polite.returncode == -signal.SIGTERM
        assert stubborn.returncode == -signal.SIGKILL
    finally:
        for proc in (polite, stubborn):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


def importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


@pytest.mark.integration
def test_demo_end_to_end(tmp_path: Path) -> None:
    """The whole demo: three real agent processes. Needs the daemon."""
    pytest.importorskip("fedorch.runtime.daemon")
    result = invoke("demo", "--workdir", str(tmp_path / "run"), "--timeout", "60")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "round 1: us-east refused train" in result.stdout
    assert "SUCCEEDED" in result.stdout
    for domain in demo_mod.DOMAINS:
        assert (tmp_path / "run" / f"{domain}.log").exists()


def test_cli_error_is_a_click_exception() -> None:
    assert issubclass(CliError, click.ClickException)
    assert CliError("boom", 2).exit_code == 2


def test_until_an_agent_exits_stops_waiting_for_a_dead_federation(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    gone.wait(timeout=30)
    proc = demo_mod.AgentProcess("eu-west", "127.0.0.1:1", tmp_path / "c", tmp_path / "l", gone)

    async def never() -> None:
        await asyncio.Event().wait()

    async def answer() -> int:
        return 42

    with pytest.raises(demo_mod.DemoError, match="eu-west exited with code 4"):
        asyncio.run(demo_mod.until_an_agent_exits(never(), [proc], interval_s=0.01))
    assert asyncio.run(demo_mod.until_an_agent_exits(answer(), [], interval_s=0.01)) == 42


def test_compact_json_shows_whole_numbers_as_integers() -> None:
    status = make_status("w", WS.WORKFLOW_STATE_SUCCEEDED)
    outputs = render.struct_to_dict(status.steps[0].outputs)
    assert outputs == {"rows": 3.0, "table": "sales"}  # JSON keeps what protobuf says
    assert render.compact_json(outputs) == '{"rows":3,"table":"sales"}'
    assert render.compact_json({"x": [1.5, {"y": 2.0}]}) == '{"x":[1.5,{"y":2}]}'
    assert render.compact_json({}) == ""
