"""Real agents on `engine: node`: many submissions in one SubmitStream call.

A stream of workflows, one of them with a bad spec, runs every good one to SUCCEEDED
and refuses the bad one alone with its reason; a submission retried with the same
request id, in the stream and by Submit, is one workflow; the Python client's
`submit_many` does the same through the library (a spec no domain can take is
taken and ends ABORTED with the reason, the others go on); agents that require signed calls
take a signed stream and its signed specs, refuse an unsigned spec in it alone, and
an unsigned call whole.
"""

from __future__ import annotations

import time

import grpc
import pytest
from fedorch.client import AsyncClient
from fedorch.core.identity.clients import init_client_keys, load_identity
from fedorch.core.identity.submission import sign_spec
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, client_pb2_grpc, spec_pb2, status_pb2

from tests.integration.federation import started_federation, state_name
from tests.integration.test_node_engine import DOMAINS, _chain

pytestmark = pytest.mark.integration

GOOD = 6  # with the retried one, 7 at once: within test.echo's 8 slots per domain
TERMINAL = {"SUCCEEDED", "FAILED", "ABORTED", "CANCELLED"}


def _bad_spec() -> spec_pb2.WorkflowSpec:
    """A spec the agent's checks refuse: its step needs a step it does not have."""
    return spec_pb2.WorkflowSpec(name="bad", steps=[spec_pb2.StepSpec(
        id="a", capability="test.echo", needs=["nowhere"])])


def _unplaceable_spec() -> spec_pb2.WorkflowSpec:
    """A valid spec no member can take (the client's own checks pass it)."""
    return parse_spec_text("name: nowhere\nsteps:\n  - {id: a, capability: test.nowhere}\n",
                           "test")


async def test_a_stream_runs_the_good_submissions_and_refuses_the_bad_one_alone(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        good = parse_spec_text(_chain("test.echo"), "test")
        requests = [client_pb2.SubmitStreamRequest(
            submit=client_pb2.SubmitRequest(spec=good), token=f"good-{i}",
            state_changes_only=True, states=[status_pb2.WORKFLOW_STATE_RUNNING])
            for i in range(GOOD)]
        requests.insert(3, client_pb2.SubmitStreamRequest(
            submit=client_pb2.SubmitRequest(spec=_bad_spec()), token="bad"))
        # The same request id twice in the stream: one workflow, both tokens told of it.
        retried = client_pb2.SubmitRequest(spec=good, request_id="stream-retried")
        requests += [client_pb2.SubmitStreamRequest(submit=retried, token="retry-1"),
                     client_pb2.SubmitStreamRequest(submit=retried, token="retry-2")]
        call = fed.client("n1").SubmitStream(iter(requests), timeout=60)
        updates: dict[str, list[client_pb2.SubmitStreamUpdate]] = {}
        async for update in call:
            updates.setdefault(update.token, []).append(update)

        assert set(updates) == {r.token for r in requests}
        (refused,) = updates["bad"]
        assert refused.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "nowhere" in refused.reason and not refused.id
        ids = set()
        for token, told in updates.items():
            if token == "bad":
                continue
            assert told[0].id and not told[0].HasField("status"), told  # accepted first
            states = [state_name(u.status) for u in told[1:]]
            assert states[-1] == "SUCCEEDED", (token, states, told[-1].status.reason)
            assert all(u.id == told[0].id for u in told)
            if token.startswith("good"):
                assert states == ["RUNNING", "SUCCEEDED"], (token, states)
            ids.add(told[0].id)
        assert updates["retry-1"][0].id == updates["retry-2"][0].id
        assert len(ids) == GOOD + 1  # the retried pair made one workflow

        # Retried again, by Submit: the same workflow; the coordinator lists it once.
        again = await fed.client("n1").Submit(retried, timeout=5)
        assert again.id == updates["retry-1"][0].id
        listed = await fed.client("n1").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                      timeout=5)
        listed_ids = [w.id for w in listed.workflows]
        assert listed_ids.count(again.id) == 1
        assert ids <= set(listed_ids)
        assert all(state_name(w) == "SUCCEEDED" for w in listed.workflows if w.id in ids)


async def test_submit_many_through_the_python_client(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        good = parse_spec_text(_chain("test.echo"), "test")
        async with AsyncClient(fed.address("n1"), identity="") as client:
            done = await client.submit_many([good, _unplaceable_spec(), good], wait=True,
                                            timeout=60)
            assert [d.index for d in done] == [0, 1, 2]
            # Taken, and ended ABORTED with why at once.
            assert done[1].ok and done[1].id and done[1].status is not None, done[1]
            assert done[1].status.state == "ABORTED", done[1]
            assert "no placement: a: no eligible domain for 'test.nowhere'" \
                in done[1].status.reason, done[1].status.reason
            for d in (done[0], done[2]):
                assert d.ok and d.status is not None and d.status.id == d.id
                assert d.status.state == "SUCCEEDED", d
            assert done[0].id != done[2].id
            # Without wait: the ids once accepted; a repeated request id, the same one.
            ids = await client.submit_many([good, good], request_ids=["same", "same"])
            assert ids[0].ok and ids[0].id == ids[1].id and ids[0].status is None


async def test_a_stream_to_agents_that_require_signed_calls(tmp_path):
    init_client_keys("alice", tmp_path / "clients")
    alice = load_identity(tmp_path / "clients" / "alice.key")
    closed = {"clients": {"key_files": [str(tmp_path / "clients" / "alice.pub")]},
              "access": [{"principals": ["alice"], "allow": ["submit", "read"]}]}
    async with started_federation(tmp_path, {n: {**DOMAINS[n], **closed} for n in DOMAINS},
                                  alice) as fed:
        spec = parse_spec_text(_chain("test.echo"), "test")
        signed = sign_spec(alice.principal, alice.key.sign, spec, request_id="signed-1",
                           issued_at_ms=int(time.time() * 1000), coordinator="n1")
        requests = [
            client_pb2.SubmitStreamRequest(token="signed", submit=client_pb2.SubmitRequest(
                request_id="signed-1", signed_spec=signed)),
            # In a signed call, but its spec not signed: refused alone.
            client_pb2.SubmitStreamRequest(token="unsigned-spec", submit=client_pb2.SubmitRequest(
                spec=spec, request_id="unsigned-1"))]
        updates = [u async for u in fed.client("n1").SubmitStream(iter(requests), timeout=60)]
        by_token: dict[str, list] = {}
        for u in updates:
            by_token.setdefault(u.token, []).append(u)
        (refused,) = by_token["unsigned-spec"]
        assert refused.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert "not signed" in refused.reason
        assert state_name(by_token["signed"][-1].status) == "SUCCEEDED"
        # A call not signed at all is refused whole, before any submission is read. It
        # sends none: a request written while the server ends the call can fail on the
        # client's side first (INTERNAL, "Failed execute_batch"), hiding the refusal.
        unsigned = client_pb2_grpc.ClientStub(fed._channels["n1"])
        with pytest.raises(grpc.aio.AioRpcError) as whole:
            async for _ in unsigned.SubmitStream(iter(()), timeout=10):
                pass
        assert whole.value.code() == grpc.StatusCode.UNAUTHENTICATED
