"""Client identities on real agents: every Client call is signed and authorised.

eu-west knows alice@eu-west (submit, read, cancel) and bob (submit, read: no cancel);
us-east knows alice too, and forwards what it is asked about eu-west's workflows to
eu-west, signed with its domain key. mallory has a key nobody lists. Each refusal is
exit 4 from the real CLI, one line naming what was missing, and changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from fedorch.core.identity.clients import ClientIdentity, init_client_keys, load_identity
from fedorch.gen.fedorch.v1 import client_pb2
from fedorch.runtime.client_calls import SignedClientStub
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.federation import (
    running_federation,
    state_name,
    step_states,
    wait_for,
)

SLEEP = {"name": "test.sleep", "capacity": 8, "executor": {"type": "builtin", "name": "sleep"}}
LONG = """
name: long
steps:
  - id: wait
    capability: test.sleep
    params: {seconds: 120}
    constraints: {domains: [eu-west]}
"""


def _cli(*args: str, identity: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FEDORCH_IDENTITY"}
    if identity is not None:
        env["FEDORCH_IDENTITY"] = str(identity)
    return subprocess.run([sys.executable, "-m", "fedorch.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def keyring(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clients")
    return {name: init_client_keys(name, folder)[0]
            for name in ("alice@eu-west", "bob", "mallory", "carol@us-east")}


@pytest.fixture(scope="module")
def federation(tmp_path_factory, keyring):
    clients = keyring["alice@eu-west"].parent
    domains = {
        "eu-west": {
            "capabilities": [SLEEP],
            "clients": {"key_files": [str(clients / "alice@eu-west.pub"),
                                      str(clients / "bob.pub")]},
            # carol's key is not listed here: us-east, her home domain, vouches for her.
            "access": [{"principals": ["alice@eu-west"], "allow": ["submit", "read", "cancel"]},
                       {"principals": ["bob"], "allow": ["submit", "read"]},
                       {"principals": ["carol@us-east"], "allow": ["cancel"]}],
        },
        "us-east": {
            "capabilities": [SLEEP],
            "clients": {"key_files": [str(clients / "alice@eu-west.pub"),
                                      str(clients / "carol@us-east.pub")]},
            "access": [{"principals": ["alice@eu-west", "carol@us-east"],
                        "allow": ["read", "cancel"]}],
        },
    }
    alice = load_identity(keyring["alice@eu-west"])
    with running_federation(tmp_path_factory.mktemp("auth"), domains, identity=alice) as fed:
        yield fed


@pytest.fixture
async def fed(federation):
    yield federation
    await federation.close_channels()


async def _running_workflow(fed) -> str:
    workflow_id = await fed.submit("eu-west", LONG)
    await fed.wait_state("eu-west", workflow_id, states={"RUNNING"})

    async def step_running() -> bool:
        return step_states(await fed.status("eu-west", workflow_id))["wait"][0] == "RUNNING"

    await wait_for(step_running, 20, "the step to run")
    return workflow_id


def _cancels_audited(fed, workflow_id: str) -> list[str]:
    """The principals of eu-west's audit records of cancel requests for the workflow."""
    bodies = fed.rows("eu-west", "SELECT body FROM audit WHERE workflow_id=? AND"
                      " kind='client_request'", (workflow_id,))
    return [json.loads(body)["data"]["principal"] for (body,) in bodies
            if json.loads(body)["data"]["request"] == "cancel"]


def _refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 4, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedorch: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


async def test_refusals_exit_4_and_change_nothing(fed, keyring):
    workflow_id = await _running_workflow(fed)
    peer = fed.address("eu-west")
    before = len((await fed.client("eu-west").ListWorkflows(
        client_pb2.ListWorkflowsRequest(), timeout=5)).workflows)

    # No identity at all: refused for the permission the call needs.
    _refused(_cli("cancel", workflow_id, "--peer", peer), "no client identity", "'cancel'")
    _refused(_cli("status", workflow_id, "--peer", peer), "no client identity", "'read'")
    spec = fed.workdir / "spec.yaml"
    spec.write_text(LONG)
    _refused(_cli("submit", str(spec), "--peer", peer), "no client identity", "'submit'")
    # A key this agent does not list.
    _refused(_cli("cancel", workflow_id, "--peer", peer, identity=keyring["mallory"]),
             "unknown client 'mallory'")
    # A known client whose role lacks cancel.
    _refused(_cli("cancel", workflow_id, "--peer", peer, identity=keyring["bob"]),
             "'bob'", "'cancel'")

    status = await fed.status("eu-west", workflow_id)
    assert state_name(status) == "RUNNING", status
    assert step_states(status)["wait"][0] == "RUNNING"
    after = (await fed.client("eu-west").ListWorkflows(
        client_pb2.ListWorkflowsRequest(), timeout=5)).workflows
    assert len(after) == before  # the refused submit started nothing
    # Each refusal is counted by method and code (fedorch_client_refusals_total).
    def refusals(method: str, code: str) -> float:
        return fed.metric("eu-west", "fedorch_client_refusals_total", method=method,
                          code=code) or 0.0

    assert refusals("Cancel", "UNAUTHENTICATED") + refusals(
        "Cancel", "PERMISSION_DENIED") == 3  # no identity, an unknown key, bob
    assert refusals("Cancel", "PERMISSION_DENIED") >= 1  # bob is known, not allowed
    assert refusals("Submit", "UNAUTHENTICATED") + refusals("Submit", "PERMISSION_DENIED") == 1

    # bob may read; alice may cancel.
    shown = _cli("status", workflow_id, "--peer", peer, "--json", identity=keyring["bob"])
    assert shown.returncode == 0 and '"RUNNING"' in shown.stdout, shown
    done = _cli("cancel", workflow_id, "--peer", peer, "--json",
                identity=keyring["alice@eu-west"])
    assert done.returncode == 0, done.stderr
    final = await fed.wait_state("eu-west", workflow_id)
    assert state_name(final) == "CANCELLED"
    # The audit log names who cancelled; the refused attempts left no record.
    assert _cancels_audited(fed, workflow_id) == ["alice@eu-west"]


async def test_forwarded_calls_act_for_the_caller(fed, keyring):
    """us-east forwards alice's status call to eu-west (trusted domains may read); a
    cancel it forwards for alice@eu-west is refused, since only eu-west vouches for its
    own principals, and nothing changes; a cancel it forwards for its own carol@us-east,
    whom eu-west's rules allow, is done."""
    workflow_id = await _running_workflow(fed)
    via = fed.address("us-east")
    alice = keyring["alice@eu-west"]
    shown = _cli("status", workflow_id, "--peer", via, "--json", identity=alice)
    assert shown.returncode == 0 and '"coordinator": "eu-west"' in shown.stdout, shown
    _refused(_cli("cancel", workflow_id, "--peer", via, identity=alice),
             "alice@eu-west", "via domain us-east", "'cancel'")
    assert state_name(await fed.status("eu-west", workflow_id)) == "RUNNING"
    # carol@us-east, forwarded by her home domain, is allowed to cancel at eu-west.
    carol = _cli("cancel", workflow_id, "--peer", via, "--json",
                 identity=keyring["carol@us-east"])
    assert carol.returncode == 0, carol.stderr
    assert state_name(await fed.wait_state("eu-west", workflow_id)) == "CANCELLED"
    assert _cancels_audited(fed, workflow_id) == ["carol@us-east (via domain us-east)"]
    # Asked of eu-west directly, carol is unknown there (no key): refused.
    _refused(_cli("status", workflow_id, "--peer", fed.address("eu-west"),
                  identity=keyring["carol@us-east"]), "unknown client 'carol@us-east'")


async def test_get_agent_names_the_agents_domain_to_a_submitter(fed, keyring):
    """What a client signs its specs for: the domain of the agent it submits to, told
    to a caller allowed to submit (bob at eu-west); refused like Submit to one that is
    not (alice at us-east, which grants her read and cancel only)."""
    bob = load_identity(keyring["bob"])
    async with grpc.aio.insecure_channel(fed.address("eu-west")) as channel:
        stub = SignedClientStub(channel, bob.principal, bob.key.sign)
        reply = await stub.GetAgent(client_pb2.GetAgentRequest(), timeout=5)
    assert reply.domain == "eu-west"
    alice = load_identity(keyring["alice@eu-west"])
    async with grpc.aio.insecure_channel(fed.address("us-east")) as channel:
        stub = SignedClientStub(channel, alice.principal, alice.key.sign)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetAgent(client_pb2.GetAgentRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'submit'" in refused.value.details()


# ---- replay and fuzzing of the authentication metadata -----------------------------------

async def test_a_replayed_submit_is_refused(fed, keyring):
    alice = load_identity(keyring["alice@eu-west"])
    async with grpc.aio.insecure_channel(fed.address("eu-west")) as channel:
        stub = SignedClientStub(channel, alice.principal, alice.key.sign)
        from fedorch.core.identity.submission import sign_spec
        from fedorch.core.workflow.spec import parse_spec_text

        signed = sign_spec(alice.principal, alice.key.sign, parse_spec_text(LONG, "test"),
                           request_id="r-replayed", issued_at_ms=int(time.time() * 1000),
                           coordinator="eu-west")
        data = client_pb2.SubmitRequest(signed_spec=signed,
                                        request_id="r-replayed").SerializeToString()
        metadata = stub.metadata("Submit", data)
        first = await stub._calls["Submit"](data, timeout=5, metadata=metadata)
        count = len((await stub.ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                              timeout=5)).workflows)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub._calls["Submit"](data, timeout=5, metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "replayed" in refused.value.details()
        assert len((await stub.ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                             timeout=5)).workflows) == count
        await stub.Cancel(client_pb2.CancelRequest(id=first.id), timeout=5)


_KEYS = ("x-fedorch-principal", "x-fedorch-time-ms", "x-fedorch-nonce-bin",
         "x-fedorch-signature-bin", "x-fedorch-on-behalf-of")
_TEXT = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e),
                min_size=1, max_size=40)
MUTATIONS = st.one_of(
    st.tuples(st.just("replay-other-method"), st.none()),
    st.tuples(st.just("resign"), st.none()),
    st.tuples(st.just("drop"), st.sampled_from(_KEYS[:4])),
    st.tuples(st.just("set"), st.tuples(st.sampled_from((*_KEYS[:2], _KEYS[4])), _TEXT)),
    st.tuples(st.just("set"), st.tuples(st.sampled_from(_KEYS[2:4]), st.binary(max_size=80))),
    st.tuples(st.just("duplicate"), st.sampled_from(_KEYS[:4])),
    st.tuples(st.just("other-bytes"), st.binary(min_size=1, max_size=40)),
)


def _attempt_cancel(address: str, workflow_id: str, alice: ClientIdentity,
                    mallory: ClientIdentity, mutation) -> grpc.StatusCode:
    """One Cancel of a running workflow, signed by alice (allowed to cancel), then broken
    the way `mutation` says."""
    import asyncio

    async def go() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = SignedClientStub(channel, alice.principal, alice.key.sign)
            data = client_pb2.CancelRequest(id=workflow_id, reason="fuzz").SerializeToString()
            metadata = stub.metadata("Cancel", data)
            kind, arg = mutation
            if kind == "replay-other-method":  # a genuine read's signature, under Cancel
                read = client_pb2.GetWorkflowRequest(id=workflow_id).SerializeToString()
                metadata = stub.metadata("GetWorkflow", read)
                await stub._calls["GetWorkflow"](read, timeout=5, metadata=metadata)
            elif kind == "resign":  # alice's name, mallory's signature
                metadata = SignedClientStub(channel, alice.principal,
                                            mallory.key.sign).metadata("Cancel", data)
            elif kind == "drop":
                metadata = [(k, v) for k, v in metadata if k != arg]
            elif kind == "set":
                key, value = arg
                metadata = [(k, v) for k, v in metadata if k != key] + [(key, value)]
            elif kind == "duplicate":
                metadata = metadata + [(k, v) for k, v in metadata if k == arg]
            elif kind == "other-bytes":
                data = data + arg  # the signature covers other bytes than those sent
            try:
                await stub._calls["Cancel"](data, timeout=5, metadata=metadata)
            except grpc.aio.AioRpcError as e:
                return e.code()
            return grpc.StatusCode.OK

    return asyncio.run(go())


def test_fuzzed_auth_metadata_is_refused_and_changes_nothing(federation, keyring):
    import asyncio

    workflow_id = asyncio.run(_running_workflow_closing(federation))
    alice = load_identity(keyring["alice@eu-west"])
    mallory = load_identity(keyring["mallory"])
    address = federation.address("eu-west")
    codes: list[grpc.StatusCode] = []

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(MUTATIONS)
    def refused(mutation) -> None:
        code = _attempt_cancel(address, workflow_id, alice, mallory, mutation)
        codes.append(code)
        assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), \
            (mutation, code)

    refused()
    assert len(codes) >= 20

    async def still_running() -> None:
        try:
            status = await federation.status("eu-west", workflow_id)
            assert state_name(status) == "RUNNING", status
            assert step_states(status)["wait"][0] == "RUNNING"
        finally:
            await federation.close_channels()

    asyncio.run(still_running())  # and the agent keeps serving


async def _running_workflow_closing(fed) -> str:
    try:
        return await _running_workflow(fed)
    finally:
        await fed.close_channels()
