"""Workflows across three real agent processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys

import grpc
import pytest
from fedorch.core.workflow import values
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import state_name, step_states, wait_for

pytestmark = pytest.mark.integration

DEMO = """
name: eu-sales-model
data: {jurisdiction: EU}
steps:
  - id: extract
    capability: data.extract
    params: {table: sales}
  - id: train
    capability: ml.train
    needs: [extract]
  - id: report
    capability: report.publish
    needs: [train]
"""


async def test_workflow_across_three_domains_with_refusal_and_replacement(fed):
    wid = await fed.submit("eu-west", DEMO)
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "SUCCEEDED", status
    steps = step_states(status)
    assert steps == {
        "extract": ("SUCCEEDED", "eu-west", 1),
        "train": ("SUCCEEDED", "eu-west", 1),
        "report": ("SUCCEEDED", "partner", 1),
    }
    # us-east is cheaper for ml.train but its private residency policy refuses EU data.
    assert [(r.round, r.domain, list(r.steps)) for r in status.refusals] == \
        [(1, "us-east", ["train"])]
    assert "residency" in status.refusals[0].reason
    assert status.rounds == 2
    # Outputs flowed downstream across domains: report saw train's outputs as its input.
    report = next(s for s in status.steps if s.id == "report")
    assert list(values.read_object(report, "outputs")["inputs"]) == ["train"]


async def test_status_from_any_agent(fed):
    wid = await fed.submit("eu-west", DEMO)
    final = await fed.wait_state("eu-west", wid)
    for domain in ("us-east", "partner"):
        seen = await fed.status(domain, wid)
        assert seen.id == wid and seen.coordinator == "eu-west"
        assert step_states(seen) == step_states(final)

    async def partner_knows_the_end():
        listed = await fed.client("partner").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                           timeout=5)
        return any(w.id == wid and state_name(w) == "SUCCEEDED" for w in listed.workflows)

    await wait_for(partner_knows_the_end, 10, "partner to learn the workflow succeeded")


async def test_watch_streams_until_terminal_from_a_participant(fed):
    wid = await fed.submit("eu-west", DEMO)
    seen = []
    async for status in fed.client("partner").Watch(
            client_pb2.GetWorkflowRequest(id=wid), timeout=60):
        seen.append(state_name(status))
    assert seen[-1] == "SUCCEEDED"
    assert len(seen) >= 1


async def test_a_state_only_watch_through_a_participant_sends_each_state_once(fed):
    wid = await fed.submit("eu-west", DEMO)
    seen, last = [], None
    async for status in fed.client("partner").Watch(
            client_pb2.GetWorkflowRequest(id=wid, state_changes_only=True), timeout=60):
        seen.append(state_name(status))
        last = status
    assert seen[-1] == "SUCCEEDED"
    # The flag went along to the coordinator: no state comes twice in a row.
    assert all(a != b for a, b in itertools.pairwise(seen)), seen
    # The status sent is whole all the same: every step, as it ended.
    assert {s: st for s, (st, _, _) in step_states(last).items()} == \
        {"extract": "SUCCEEDED", "train": "SUCCEEDED", "report": "SUCCEEDED"}


async def test_command_executor_steps_pass_outputs_across_domains(fed):
    wid = await fed.submit("eu-west", """
name: numbers
steps:
  - id: first
    capability: test.double
    params: {n: 5}
  - id: second
    capability: test.double
    params: {n: 3}
    needs: [first]
""")
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "SUCCEEDED", status
    steps = {s.id: s for s in status.steps}
    first, second = (values.read_object(steps[k], "outputs") for k in ("first", "second"))
    assert first["n"] == 10
    assert second["n"] == 2 * 3 + 10  # the upstream's output arrived
    assert second["workflow"] == wid and steps["second"].domain == "partner"


async def test_command_executor_failure_reports_stderr(fed):
    wid = await fed.submit("eu-west", """
name: negative
steps:
  - id: broken
    capability: test.double
    params: {n: -1}
""")
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "FAILED", status
    assert "negative n is not allowed" in status.steps[0].error


async def test_step_retries_then_succeeds(fed):
    wid = await fed.submit("eu-west", """
name: flaky
steps:
  - id: flaky
    capability: test.flaky
    params: {times: 1, message: first attempt fails}
    retries: 1
""")
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "SUCCEEDED", status
    assert step_states(status)["flaky"] == ("SUCCEEDED", "eu-west", 2)


async def test_step_fails_after_retries_and_skips_downstream(fed):
    wid = await fed.submit("eu-west", """
name: broken
steps:
  - id: flaky
    capability: test.flaky
    params: {message: always broken}
    retries: 2
  - id: report
    capability: report.publish
    needs: [flaky]
""")
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "FAILED", status
    steps = step_states(status)
    assert steps["flaky"] == ("FAILED", "eu-west", 3)
    assert steps["report"][0] in ("SKIPPED", "CANCELLED")
    assert "always broken" in status.reason


async def test_step_timeout_counts_as_failure(fed):
    wid = await fed.submit("eu-west", """
name: slow
steps:
  - id: slow
    capability: test.sleep
    params: {seconds: 30}
    timeout_s: 0.3
    constraints: {domains: [eu-west]}
""")
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "FAILED", status
    assert "timed out" in status.steps[0].error


async def test_cancel_stops_a_running_workflow(fed):
    wid = await fed.submit("eu-west", """
name: long
steps:
  - id: wait
    capability: test.sleep
    params: {seconds: 60}
    constraints: {domains: [partner]}
""")
    await fed.wait_state("eu-west", wid, states={"RUNNING"})

    async def partner_running():
        s = await fed.status("partner", wid)
        return step_states(s)["wait"][0] == "RUNNING"

    await wait_for(partner_running, 20, "the step to run at partner")
    # Cancel through a participant: it forwards to the coordinator.
    reply = await fed.client("partner").Cancel(client_pb2.CancelRequest(id=wid), timeout=10)
    assert state_name(reply.status) == "CANCELLED"
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "CANCELLED", status


async def test_unplaceable_workflow_is_aborted_with_reasons(fed):
    wid = await fed.submit("eu-west", """
name: nowhere
data: {jurisdiction: EU}
steps:
  - id: train
    capability: ml.train
    constraints: {domains: [us-east]}
""")
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "ABORTED", status
    assert "us-east" in status.reason and "residency" in status.reason


async def test_invalid_spec_is_refused_and_changes_nothing(fed):
    before = await fed.client("eu-west").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                       timeout=5)
    spec = parse_spec_text(DEMO, "test")
    spec.steps[0].needs.append("report")  # a cycle: extract -> report -> train -> extract
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.client("eu-west").Submit(client_pb2.SubmitRequest(spec=spec), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cycle" in err.value.details()
    huge = parse_spec_text(DEMO, "test")
    huge.steps[0].params.update({"blob": "x" * (1024 * 1024 + 10)})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.client("eu-west").Submit(client_pb2.SubmitRequest(spec=huge), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = await fed.client("eu-west").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                      timeout=5)
    assert len(after.workflows) == len(before.workflows)


async def test_submit_and_watch_follows_the_workflow_it_started_to_its_end(fed):
    spec = parse_spec_text(DEMO, "test")
    request = client_pb2.SubmitAndWatchRequest(
        submit=client_pb2.SubmitRequest(spec=spec, request_id="run-and-follow-1"),
        state_changes_only=True)
    statuses = [s async for s in fed.client("eu-west").SubmitAndWatch(request, timeout=60)]
    ids = {s.id for s in statuses}
    assert len(ids) == 1 and ids.pop().startswith("eu-west.")
    states = [state_name(s) for s in statuses]
    assert states[-1] == "SUCCEEDED" and "RUNNING" in states
    assert all(a != b for a, b in itertools.pairwise(states)), states
    assert step_states(statuses[-1])["report"] == ("SUCCEEDED", "partner", 1)
    # The same request_id again starts nothing: it follows the same workflow, now ended.
    again = [s async for s in fed.client("eu-west").SubmitAndWatch(request, timeout=60)]
    assert [(s.id, state_name(s)) for s in again] == [(statuses[-1].id, "SUCCEEDED")]


async def test_submit_and_watch_refuses_an_invalid_spec_and_changes_nothing(fed):
    before = await fed.client("eu-west").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                       timeout=5)
    spec = parse_spec_text(DEMO, "test")
    spec.steps[0].needs.append("report")  # a cycle
    call = fed.client("eu-west").SubmitAndWatch(
        client_pb2.SubmitAndWatchRequest(submit=client_pb2.SubmitRequest(spec=spec)),
        timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cycle" in err.value.details()
    after = await fed.client("eu-west").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                      timeout=5)
    assert len(after.workflows) == len(before.workflows)


async def test_cli_submit_wait_runs_a_workflow_in_one_call(fed, tmp_path):
    spec_file = tmp_path / "wf.yaml"
    spec_file.write_text(DEMO)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fedorch.cli.main", "submit", str(spec_file), "--peer",
        fed.address("eu-west"), "--wait", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    final = json.loads(out)
    assert final["state"] == "SUCCEEDED" and final["id"].startswith("eu-west.")
    assert {s["id"]: s["state"] for s in final["steps"]} == \
        {"extract": "SUCCEEDED", "train": "SUCCEEDED", "report": "SUCCEEDED"}


async def test_idempotent_submit(fed):
    spec = parse_spec_text(DEMO, "test")
    request = client_pb2.SubmitRequest(spec=spec, request_id="retry-me-1")
    first = await fed.client("eu-west").Submit(request, timeout=5)
    second = await fed.client("eu-west").Submit(request, timeout=5)
    assert first.id == second.id
    await fed.wait_state("eu-west", first.id)
    # Concurrent retries (the first still in flight) also get one workflow.
    racing = client_pb2.SubmitRequest(spec=spec, request_id="retry-me-2")
    replies = await asyncio.gather(*(fed.client("eu-west").Submit(racing, timeout=5)
                                     for _ in range(5)))
    assert len({r.id for r in replies}) == 1
    listed = await fed.client("eu-west").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                       timeout=5)
    assert sum(w.id == replies[0].id for w in listed.workflows) == 1


async def test_unknown_workflow_is_not_found(fed):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.status("us-east", "eu-west.doesnotexist")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_members_and_metrics(fed):
    reply = await fed.client("us-east").ListMembers(client_pb2.ListMembersRequest(), timeout=5)
    assert {m.domain for m in reply.members} == {"eu-west", "us-east", "partner"}
    assert all(m.state == client_pb2.MEMBER_STATE_ALIVE for m in reply.members)
    partner = next(m for m in reply.members if m.domain == "partner")
    assert {c.name for c in partner.capabilities} == {"report.publish", "test.sleep",
                                                      "test.double"}
    # us-east keeps its policy private: nothing but "not published" is gossiped.
    us = next(m for m in reply.members if m.domain == "us-east")
    assert not us.policy.published and not us.policy.residency_accept
    await fed.wait_state("eu-west", await fed.submit("eu-west", DEMO))  # us-east refuses

    def sample(metric, **labels):
        return fed.metric("us-east", metric, **labels)

    assert await asyncio.to_thread(sample, "fedorch_votes_total", vote="no") >= 1
    assert await asyncio.to_thread(sample, "fedorch_peer_bytes_total", rpc="Swim",
                                   direction="out") > 0
    assert await asyncio.to_thread(sample, "fedorch_swim_probes_sent_total") > 0
    assert await asyncio.to_thread(sample, "fedorch_members", state="ALIVE") == 3
    # Live envelopes are verified without the cache of verified signatures (each new
    # by its nonce); the votes their Accepts and decisions carry are answered from it.
    assert await asyncio.to_thread(sample, "fedorch_signature_verifies_total",
                                   result="uncached") > 0
    # The daemon's process and its garbage collector, beside the agent's own numbers.
    assert await asyncio.to_thread(sample, "process_resident_memory_bytes") > 0
    assert await asyncio.to_thread(sample, "process_cpu_seconds_total") > 0
    assert await asyncio.to_thread(sample, "python_gc_collections_total",
                                   generation="0") > 0
