"""Real agents on `engine: node`: one Node core and one driver per daemon.

Three agents run a three-domain workflow to SUCCEEDED, its status read from its
coordinator; a participant, or the coordinator, SIGKILLed after the commit and
restarted recovers from node.db, and every step still runs exactly once.
"""

from __future__ import annotations

import pathlib
import sys
import time
import uuid

import grpc
import pytest
from fedorch.core.identity.clients import init_client_keys, load_identity
from fedorch.core.identity.keys import load_public_key_file
from fedorch.core.identity.submission import sign_spec
from fedorch.core.identity.tls import trust_bundle
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2

from tests.integration.federation import (
    TEST_TIMINGS,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_daemon import _config, _run_agent
from tests.integration.test_mtls import TlsFederation

pytestmark = pytest.mark.integration

GATE_STEP = str(pathlib.Path(__file__).parent / "steps" / "counted_gate.py")
NAMES = ("n1", "n2", "n3")
# A long suspicion keeps a killed agent from being declared DEAD while it is away: these
# tests restart what they kill (takeover is test_node_engine_takeover.py's).
DOMAINS = {
    name: {
        "engine": "node",
        "gossip": {"profile": "local", "tuning": {"suspicion_alpha": 60}},
        # The suite's commit protocol (FEDORCH_TEST_COMMIT), as every federation's.
        "negotiation": {**TEST_TIMINGS["negotiation"]},
        "capabilities": [
            {"name": "test.echo", "capacity": 8,
             "executor": {"type": "builtin", "name": "echo"}},
            {"name": "test.gate", "capacity": 4,
             "executor": {"type": "command", "argv": [sys.executable, GATE_STEP]}},
        ],
    }
    for name in NAMES
}


def _chain(capability: str, params: dict[str, dict] | None = None, retries: int = 0) -> str:
    """A workflow a -> b -> c, one step in each of n1, n2, n3; with `retries`, its steps
    may run again after a crash cut an attempt short (idempotent)."""
    params = params or {}
    again = f", retries: {retries}, idempotent: true" if retries else ""
    lines = ["name: chain", "steps:"]
    for i, (step, domain) in enumerate(zip("abc", NAMES, strict=True)):
        needs = f", needs: [{'abc'[i - 1]}]" if i else ""
        p = params.get(step)
        with_params = f", params: {p}" if p else ""
        lines.append(f"  - {{id: {step}, capability: {capability}{again},"
                     f" constraints: {{domains: [{domain}]}}{needs}{with_params}}}")
    return "\n".join(lines) + "\n"


@pytest.fixture
async def fed(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        yield fed


async def test_three_domain_workflow_succeeds(fed):
    wid = await fed.submit("n1", _chain("test.echo"))
    status = await fed.wait_state("n1", wid, deadline_s=30)
    assert state_name(status) == "SUCCEEDED", status
    assert status.coordinator == "n1"
    assert step_states(status) == {"a": ("SUCCEEDED", "n1", 1), "b": ("SUCCEEDED", "n2", 1),
                                   "c": ("SUCCEEDED", "n3", 1)}
    # Asked of a participant, the status comes from the coordinator.
    assert await fed.status("n3", wid) == status
    # A participant lists the workflow it took part in, from its own Node.
    listed = await fed.client("n2").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                  timeout=5)
    assert wid in [w.id for w in listed.workflows]
    # An ended workflow's cancel is refused, naming its end (test_node_engine_cancel.py).
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await fed.client("n1").Cancel(client_pb2.CancelRequest(id=wid), timeout=5)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already ended SUCCEEDED" in refused.value.details()


async def test_watch_follows_a_workflow_to_its_end(fed):
    spec = _chain("test.echo")
    watch = fed.client("n1").SubmitAndWatch(client_pb2.SubmitAndWatchRequest(
        submit=client_pb2.SubmitRequest(spec=parse_spec_text(spec, "test")),
        state_changes_only=True), timeout=30)
    states = [state_name(s) async for s in watch]
    assert states[-1] == "SUCCEEDED", states
    assert "RUNNING" in states


async def test_submit_and_watch_sends_only_the_states_asked_for_and_the_end(fed):
    spec = parse_spec_text(_chain("test.echo"), "test")

    async def watched(**asked) -> list[str]:
        watch = fed.client("n1").SubmitAndWatch(client_pb2.SubmitAndWatchRequest(
            submit=client_pb2.SubmitRequest(spec=spec), state_changes_only=True,
            **asked), timeout=30)
        return [state_name(s) async for s in watch]

    every = await watched()
    assert every[0] == "NEGOTIATING" and every[-1] == "SUCCEEDED", every
    asked = await watched(states=[status_pb2.WORKFLOW_STATE_RUNNING])
    assert asked[-1] == "SUCCEEDED", asked
    assert set(asked) <= {"RUNNING", "SUCCEEDED"}, asked  # no NEGOTIATING
    # Only terminal statuses wanted: the end alone.
    assert await watched(states=[status_pb2.WORKFLOW_STATE_SUCCEEDED]) == \
        ["SUCCEEDED"]


async def test_participant_killed_after_commit_recovers_from_node_db(fed, tmp_path):
    gate = tmp_path / "gate"
    open_gate = tmp_path / "open"
    open_gate.touch()
    runs = {step: tmp_path / f"runs-{step}" for step in "abc"}
    params = {step: {"runs": str(runs[step]),
                     "gate": str(gate if step == "a" else open_gate)} for step in "abc"}
    wid = await fed.submit("n1", _chain("test.gate", params))

    async def a_started() -> bool:
        return runs["a"].exists() and runs["a"].read_text() == "start\n"

    # Step a runs at n1, held at its gate: the workflow is committed everywhere.
    await wait_for(a_started, 30, "step a to start at n1")
    assert state_name(await fed.status("n1", wid)) == "RUNNING"
    fed.kill("n2")
    await fed.close_channels()
    await fed.start("n2")
    gate.touch()
    status = await fed.wait_state("n1", wid, deadline_s=60)
    assert state_name(status) == "SUCCEEDED", status
    assert step_states(status) == {"a": ("SUCCEEDED", "n1", 1), "b": ("SUCCEEDED", "n2", 1),
                                   "c": ("SUCCEEDED", "n3", 1)}
    for step in "abc":  # each step ran once, and completed
        assert runs[step].read_text() == "start\ndone\n", step


async def test_a_retried_submission_is_one_workflow_watched_from_anywhere(fed):
    request = client_pb2.SubmitRequest(spec=parse_spec_text(_chain("test.echo"), "test"),
                                       request_id="retried-once")
    first = await fed.client("n1").Submit(request, timeout=5)
    again = await fed.client("n1").Submit(request, timeout=5)
    assert first.id == again.id
    # n3 follows it at its coordinator n1, to its end.
    watch = fed.client("n3").Watch(client_pb2.GetWorkflowRequest(
        id=first.id, state_changes_only=True), timeout=30)
    seen = [status async for status in watch]
    assert state_name(seen[-1]) == "SUCCEEDED" and seen[-1].coordinator == "n1"
    listed = await fed.client("n1").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                  timeout=5)
    assert [w.id for w in listed.workflows].count(first.id) == 1


async def test_coordinator_killed_after_commit_finishes_after_restart(fed, tmp_path):
    gate = tmp_path / "gate"
    open_gate = tmp_path / "open"
    open_gate.touch()
    runs = {step: tmp_path / f"runs-{step}" for step in "abc"}
    params = {step: {"runs": str(runs[step]),
                     "gate": str(gate if step == "b" else open_gate)} for step in "abc"}
    wid = await fed.submit("n1", _chain("test.gate", params))

    async def b_started() -> bool:
        return runs["b"].exists() and runs["b"].read_text() == "start\n"

    # Step a is done at n1 and b runs at n2, held at its gate.
    await wait_for(b_started, 30, "step b to start at n2")

    async def n3_sees_a_slot_of_n2_taken() -> bool:
        members = await fed.members("n3")
        return any(m.domain == "n2" and c.name == "test.gate" and c.available == 3
                   for m in members for c in m.capabilities)

    # The Node's reservation shows in n2's published record (capacity 4).
    await wait_for(n3_sees_a_slot_of_n2_taken, 30, "n3 to see a slot of n2 taken")
    fed.kill("n1")
    await fed.close_channels()
    await fed.start("n1")
    gate.touch()
    status = await fed.wait_state("n1", wid, deadline_s=60)
    assert state_name(status) == "SUCCEEDED", status
    assert step_states(status) == {"a": ("SUCCEEDED", "n1", 1), "b": ("SUCCEEDED", "n2", 1),
                                   "c": ("SUCCEEDED", "n3", 1)}
    for step in "abc":
        assert runs[step].read_text() == "start\ndone\n", step


async def test_engine_node_with_classic_two_phase_commit_runs_classic_rounds(tmp_path):
    """`negotiation.commit: 2pc` (once refused at start-up): the rounds name no acceptor
    and the workflow runs to its end, the certificate's record collected."""
    classic = {n: {**DOMAINS[n], "negotiation": {**DOMAINS[n]["negotiation"],
                                                  "commit": "2pc"}} for n in NAMES}
    async with started_federation(tmp_path, classic) as fed:
        wid = await fed.submit("n1", _chain("test.echo"))
        status = await fed.wait_state("n1", wid, deadline_s=30)
        assert state_name(status) == "SUCCEEDED", status
        assert fed.node_table("n1", "rows")[wid].acceptors == ()
        for n in NAMES:
            assert fed.node_table(n, "electorates").get(wid, ()) == ()
            assert not any(w == wid for w, _ in fed.node_table(n, "acceptor"))


class _NodeTlsFederation(TlsFederation):
    def roots(self) -> bytes:
        return trust_bundle([load_public_key_file(self.workdir / "keys" / f"{d}.pub")
                             for d in self.names])


async def test_a_signed_submission_runs_over_mutual_tls(tmp_path):
    init_client_keys("alice", tmp_path / "clients")
    alice = load_identity(tmp_path / "clients" / "alice.key")
    secured = {"tls": {"enabled": True},
               "clients": {"key_files": [str(tmp_path / "clients" / "alice.pub")]},
               "access": [{"principals": ["alice"], "allow": ["submit", "read"]}]}
    fed = _NodeTlsFederation(tmp_path, {n: {**DOMAINS[n], **secured} for n in NAMES}, alice)
    fed.write_configs()
    try:
        await fed.start()
        await fed.wait_converged()
        spec = parse_spec_text(_chain("test.echo"), "test")
        request_id = uuid.uuid4().hex
        signed = sign_spec(alice.principal, alice.key.sign, spec, request_id=request_id,
                           issued_at_ms=int(time.time() * 1000), coordinator="n1")
        reply = await fed.client("n1").Submit(client_pb2.SubmitRequest(
            request_id=request_id, signed_spec=signed), timeout=5)
        status = await fed.wait_state("n1", reply.id, deadline_s=30)
        assert state_name(status) == "SUCCEEDED", status
        assert "(mutual TLS)" in (fed.workdir / "n1.log").read_text()
        # A signed spec not bound to its coordinator is refused, naming the engine.
        unbound = sign_spec(alice.principal, alice.key.sign, spec, request_id="unbound",
                            issued_at_ms=int(time.time() * 1000))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await fed.client("n1").Submit(client_pb2.SubmitRequest(
                request_id="unbound", signed_spec=unbound), timeout=5)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "engine: node" in refused.value.details()
    finally:
        await fed.close_channels()
        fed.stop()


async def test_a_refused_round_is_placed_again_elsewhere(tmp_path):
    pick = {"name": "test.pick", "capacity": 4,
            "executor": {"type": "builtin", "name": "echo"}}
    domains = {
        "n1": DOMAINS["n1"],
        # n2 ranks first (cheaper) but takes no work from n1, and keeps its policy
        # private: the coordinator learns it by refusal.
        "n2": {**DOMAINS["n2"], "capabilities": [{**pick, "cost": 1}],
               "policy": {"accept_from": ["n3"], "publish": False}},
        "n3": {**DOMAINS["n3"], "capabilities": [{**pick, "cost": 5}]},
    }
    async with started_federation(tmp_path, domains) as fed:
        wid = await fed.submit("n1", "name: pick\nsteps:\n  - {id: p, capability: test.pick}\n")
        status = await fed.wait_state("n1", wid, deadline_s=30)
    assert state_name(status) == "SUCCEEDED", status
    assert step_states(status) == {"p": ("SUCCEEDED", "n3", 1)}
    assert status.rounds == 2  # n2 refused round 1; round 2 excluded it


def test_a_node_db_that_is_not_one_exits_2_naming_it(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "node.db").write_bytes(b"not SQLite at all, " * 300)
    result = _run_agent(_config(tmp_path, engine="node"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "node.db: not a node store" in lines[0], lines
