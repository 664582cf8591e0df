"""End-to-end signed submission on real agents.

eu-west knows the clients alice and bob (both may submit and read). us-east takes
eu-west's work only for alice (`accept_from: [{domain: eu-west, principals: [alice]}]`),
and its own. The real CLI signs each spec with the caller's identity; every participant
verifies it in the PREPARE; a coordinator that alters the spec meets a NO; a principal
that a participant's policy does not take ends ABORTED with the refusal naming it; and
the proof of a workflow carries the submitter's signature, checked offline.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.clients import (
    init_client_keys,
    load_client_public_key_file,
    load_identity,
)
from fedorch.core.identity.submission import sign_spec, submission_payload
from fedorch.core.node.votes import carried
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, spec_pb2

from tests.integration.federation import running_federation, wait_for

pytestmark = pytest.mark.integration

ECHO = {"name": "work.echo", "capacity": 4, "executor": {"type": "builtin", "name": "echo"}}
ACROSS = """
name: across
steps:
  - {id: here, capability: work.echo, params: {table: sales}, constraints: {domains: [eu-west]}}
  - {id: there, capability: work.echo, needs: [here], constraints: {domains: [us-east]}}
"""


def _cli(*args: str, identity: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FEDORCH_IDENTITY"}
    if identity is not None:
        env["FEDORCH_IDENTITY"] = str(identity)
    return subprocess.run([sys.executable, "-m", "fedorch.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def keyring(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clients")
    return {name: init_client_keys(name, folder)[0] for name in ("alice", "bob")}


def _domains(keyring) -> dict[str, dict]:
    clients = keyring["alice"].parent
    return {
        "eu-west": {
            "capabilities": [ECHO],
            "clients": {"key_files": [str(clients / "alice.pub"), str(clients / "bob.pub")]},
            "access": [{"principals": ["alice", "bob"], "allow": ["submit", "read"]}],
        },
        "us-east": {
            "capabilities": [ECHO],
            "clients": {"key_files": [str(clients / "alice.pub")]},
            "access": [{"principals": ["alice"], "allow": ["read"]}],
            "policy": {"accept_from": ["us-east", {"domain": "eu-west",
                                                   "principals": ["alice"]}]},
        },
    }


@pytest.fixture(scope="module")
def federation(tmp_path_factory, keyring):
    alice = load_identity(keyring["alice"])
    with running_federation(tmp_path_factory.mktemp("signed"), _domains(keyring),
                            identity=alice) as fed:
        yield fed


@pytest.fixture
async def fed(federation):
    yield federation
    await federation.close_channels()


def _submit(fed, identity: Path) -> subprocess.CompletedProcess[str]:
    spec = fed.workdir / "across.yaml"
    spec.write_text(ACROSS)
    return _cli("submit", str(spec), "--peer", fed.address("eu-west"), "--wait",
                "--timeout", "60", "--json", identity=identity)


async def test_a_principal_a_participant_does_not_take_ends_aborted_naming_it(fed, keyring):
    refused = _submit(fed, keyring["bob"])
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    status = json.loads(refused.stdout)
    assert status["state"] == "ABORTED"
    assert "principal 'bob@eu-west' is not accepted from coordinator 'eu-west'" in \
        status["reason"], status["reason"]
    assert all(step["state"] != "SUCCEEDED" for step in status["steps"])  # nothing ran
    # The same spec from alice runs across both domains.
    taken = _submit(fed, keyring["alice"])
    assert taken.returncode == 0, (taken.stdout, taken.stderr)
    status = json.loads(taken.stdout)
    assert status["state"] == "SUCCEEDED"
    assert {s["id"]: s["domain"] for s in status["steps"]} == {"here": "eu-west",
                                                                "there": "us-east"}


def _bound() -> dict:
    """What binds a signed spec to one submission: a fresh request id, signed now."""
    return {"request_id": uuid.uuid4().hex, "issued_at_ms": int(time.time() * 1000)}


async def test_the_agent_takes_only_a_spec_signed_by_the_caller(fed, keyring):
    """Unsigned, or signed by another principal than the caller: UNAUTHENTICATED, and no
    workflow starts."""
    client = fed.client("eu-west")
    count = len((await client.ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                            timeout=5)).workflows)
    spec = parse_spec_text(ACROSS, "test")
    with pytest.raises(grpc.aio.AioRpcError) as unsigned:
        await client.Submit(client_pb2.SubmitRequest(spec=spec), timeout=5)
    assert unsigned.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "submission not signed" in unsigned.value.details()
    bob = load_identity(keyring["bob"])
    as_bob = sign_spec(bob.principal, bob.key.sign, spec, **_bound())
    with pytest.raises(grpc.aio.AioRpcError) as other:  # alice's call, bob's signed spec
        await client.Submit(client_pb2.SubmitRequest(signed_spec=as_bob), timeout=5)
    assert other.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "names principal 'bob', but the call is from 'alice'" in other.value.details()
    alice = load_identity(keyring["alice"])
    edited = sign_spec(alice.principal, alice.key.sign, spec, **_bound())
    edited.spec = edited.spec.replace(b"sales", b"wages")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await client.Submit(client_pb2.SubmitRequest(signed_spec=edited), timeout=5)
    assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bad signature" in bad.value.details()
    after = (await client.ListWorkflows(client_pb2.ListWorkflowsRequest(), timeout=5)).workflows
    assert len(after) == count


# ---- the proof carries the submitter's signature -------------------------------------


@pytest.fixture
async def proven(fed, keyring, tmp_path) -> tuple[dict, Path]:
    """A workflow alice submitted, ended; its proof, and a directory of public keys
    (the domains' and alice's)."""
    taken = _submit(fed, keyring["alice"])
    assert taken.returncode == 0, taken.stderr
    workflow_id = json.loads(taken.stdout)["id"]
    data = fed.workdir / "data" / "eu-west"

    async def built():
        result = _cli("audit", "proof", workflow_id, "--data-dir", str(data))
        return result if result.returncode == 0 else None

    result = await wait_for(built, 20, "the proof of the ended workflow")
    public = tmp_path / "public"
    public.mkdir()
    for pub in (fed.workdir / "keys").glob("*.pub"):
        shutil.copy(pub, public)
    shutil.copy(keyring["alice"].parent / "alice.pub", public)
    return json.loads(result.stdout), public


def _check(tmp_path: Path, proof: dict, trust: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    return _cli("audit", "check", str(path), "--trust", str(trust), "--json")


async def test_a_proof_holds_the_submitters_signature_and_check_verifies_it(
        fed, proven, tmp_path):
    proof, public = proven
    result = _check(tmp_path, proof, public)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["principal"], summary["signed"]) == ("alice", True)
    shown = _cli("audit", "check", str(tmp_path / "proof.json"), "--trust", str(public))
    assert shown.returncode == 0 and "spec signed by alice" in shown.stdout, shown
    spec_bytes = base64.b64decode(proof["submission"]["spec"])
    signature = base64.b64decode(proof["submission"]["client_signature"])
    _, key = load_client_public_key_file(public / "alice.pub")
    attestation = proof["submission"]["attestation"]
    # Format 2: the statement sealed with its audit batch.
    statement = json.loads(carried(base64.b64decode(attestation)))
    signed = spec_pb2.SignedSpec(principal="alice", spec=spec_bytes,
                                 request_id=statement["signed_request_id"],
                                 issued_at_ms=statement["signed_at_ms"],
                                 coordinator=statement["signed_coordinator"])
    assert signed.request_id and signed.issued_at_ms  # bound to its one submission
    key.verify(signature, submission_payload(signed))  # alice's, over those bytes


def _edited_spec(proof: dict) -> dict:
    edited = json.loads(json.dumps(proof))
    spec = base64.b64decode(edited["submission"]["spec"]).replace(b"sales", b"wages")
    edited["submission"]["spec"] = base64.b64encode(spec).decode()
    return edited


def _other_signature(proof: dict) -> dict:
    """A well-formed signature over the same spec, by a key that is not alice's."""
    edited = json.loads(json.dumps(proof))
    spec = base64.b64decode(edited["submission"]["spec"])
    forged = Ed25519PrivateKey.generate().sign(submission_payload(
        spec_pb2.SignedSpec(principal="alice", spec=spec)))
    edited["submission"]["client_signature"] = base64.b64encode(forged).decode()
    return edited


@pytest.mark.parametrize("edit, needle", [
    (_edited_spec, "spec's hash differs"),
    (_other_signature, "bad signature"),
    (lambda p: {**p, "submission": {**p["submission"], "client_signature": None}},
     "submission.client_signature"),
])
async def test_a_proof_whose_submission_is_edited_fails_its_check(fed, proven, tmp_path,
                                                                  edit, needle):
    proof, public = proven
    result = _check(tmp_path, edit(proof), public)
    assert result.returncode == 1 and "proof does not hold" in result.stderr, result.stderr
    assert needle in result.stderr, result.stderr


async def test_a_proof_fails_when_the_checker_holds_another_key_for_the_principal(
        fed, proven, tmp_path):
    proof, public = proven
    (public / "alice.pub").unlink()
    impostor = init_client_keys("alice", tmp_path / "impostor")[1]
    shutil.copy(impostor, public / "alice.pub")
    result = _check(tmp_path, proof, public)
    assert result.returncode == 1, result.stdout
    assert "vouched for another key of alice" in result.stderr, result.stderr


async def test_policy_explain_judges_the_principal_of_the_identity(fed, keyring):
    spec = fed.workdir / "across.yaml"
    spec.write_text(ACROSS)
    verdicts = {}
    for name in ("alice", "bob"):
        shown = _cli("policy", "explain", str(spec), "--peer", fed.address("eu-west"),
                     "--json", identity=keyring[name])
        assert shown.returncode == 0, shown.stderr
        result = json.loads(shown.stdout)
        assert result["principal"] == f"{name}@eu-west"
        verdicts[name] = next(v for v in result["verdicts"]
                              if (v["step"], v["domain"]) == ("there", "us-east"))
    assert verdicts["alice"]["verdict"] == "yes", verdicts["alice"]
    assert verdicts["bob"]["verdict"] == "no"
    assert any("principal 'bob@eu-west' is not accepted" in r
               for r in verdicts["bob"]["reasons"]), verdicts["bob"]
