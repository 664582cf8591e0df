"""A domain's policy weighs the submitter on three real agents running `engine: node`.

n1 knows the clients alice and bob (both may submit and read). n2 takes n1's work only
for alice (`accept_from: [n3, {domain: n1, principals: [alice]}]`). A workflow with a
step that only n2 may run, signed by bob, meets n2's NO naming the rule and ends
ABORTED with that reason; the same spec signed by alice runs across n1 and n2.
"""

from __future__ import annotations

import time
import uuid

import pytest
from fedorch.core.identity.clients import ClientIdentity, init_client_keys, load_identity
from fedorch.core.identity.submission import sign_spec
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2
from fedorch.runtime.client_calls import SignedClientStub

from tests.integration.federation import (
    RPC_TIMEOUT_S,
    TEST_TIMINGS,
    started_federation,
    state_name,
    step_states,
)

pytestmark = pytest.mark.integration

NAMES = ("n1", "n2", "n3")
ECHO = {"name": "test.echo", "capacity": 4, "executor": {"type": "builtin", "name": "echo"}}
ACROSS = """
name: across
steps:
  - {id: here, capability: test.echo, constraints: {domains: [n1]}}
  - {id: there, capability: test.echo, needs: [here], constraints: {domains: [n2]}}
"""


def _domains(clients) -> dict[str, dict]:
    known = {"clients": {"key_files": [str(clients / "alice.pub"), str(clients / "bob.pub")]},
             "access": [{"principals": ["alice", "bob"], "allow": ["submit", "read"]}]}
    domains = {name: {"engine": "node",
                      "gossip": {"profile": "local"},
                      # The node engine runs Paxos Commit only.
                      "negotiation": {**TEST_TIMINGS["negotiation"]},
                      "capabilities": [ECHO], **known}
               for name in NAMES}
    domains["n2"]["policy"] = {"accept_from": ["n3", {"domain": "n1", "principals": ["alice"]}]}
    return domains


async def _submit_as(fed, who: ClientIdentity) -> str:
    """`who` signs the spec for coordinator n1 and submits it there in a call it signs."""
    fed.client("n1")  # opens the channel
    stub = SignedClientStub(fed._channels["n1"], who.principal, who.key.sign)
    request_id = uuid.uuid4().hex
    signed = sign_spec(who.principal, who.key.sign, parse_spec_text(ACROSS, "test"),
                       request_id=request_id, issued_at_ms=int(time.time() * 1000),
                       coordinator="n1")
    reply = await stub.Submit(client_pb2.SubmitRequest(request_id=request_id,
                                                       signed_spec=signed),
                              timeout=RPC_TIMEOUT_S)
    return reply.id


async def test_a_principal_the_participants_policy_does_not_take_is_refused_by_name(
        tmp_path):
    clients = tmp_path / "clients"
    for name in ("alice", "bob"):
        init_client_keys(name, clients)
    alice = load_identity(clients / "alice.key")
    bob = load_identity(clients / "bob.key")
    async with started_federation(tmp_path, _domains(clients), identity=alice) as fed:
        refused = await fed.wait_state("n1", await _submit_as(fed, bob), deadline_s=30)
        assert state_name(refused) == "ABORTED", refused
        assert "accept_from: principal 'bob@n1' is not accepted from coordinator 'n1'" \
            in refused.reason, refused.reason
        assert "n2" in refused.reason, refused.reason
        assert all(state != "SUCCEEDED" for state, _, _ in step_states(refused).values())

        taken = await fed.wait_state("n1", await _submit_as(fed, alice), deadline_s=30)
        assert state_name(taken) == "SUCCEEDED", taken
        assert {s: d for s, (_, d, _) in step_states(taken).items()} == \
            {"here": "n1", "there": "n2"}
