"""The Python client with identities and mutual TLS, on real agents, as the CLI has them.

Two agents with `tls: {enabled: true}` know alice (submit, read, cancel) and bob (submit,
read: no cancel); a third, plaintext on loopback, has `clients:` configured and so
requires signed calls. alice submits and reads over TLS, from the constructor's
arguments and from $FEDORCH_IDENTITY / $FEDORCH_AGENT_KEY; bob's cancel and an unsigned
caller are NotAllowed, with the agent's one line, and change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc
import pytest
from fedorch import AsyncClient, Client
from fedorch.client import NotAllowed, Unreachable
from fedorch.core.identity.clients import init_client_keys, load_identity
from fedorch.core.identity.keys import load_public_key_file
from fedorch.core.identity.tls import trust_bundle

from tests.integration.federation import running_federation
from tests.integration.test_mtls import TlsFederation

pytestmark = pytest.mark.integration

TLS_DOMAINS = ("eu-west", "us-east")
ECHO = {"type": "builtin", "name": "echo"}
SLEEP = {"name": "test.sleep", "capacity": 4, "executor": {"type": "builtin", "name": "sleep"}}
ACROSS = {"name": "across", "steps": [
    {"id": "extract", "capability": "data.extract", "params": {"rows": 3}},
    {"id": "train", "capability": "ml.train", "needs": ["extract"]},
]}
LONG = {"name": "long", "steps": [
    {"id": "wait", "capability": "test.sleep", "params": {"seconds": 120},
     "constraints": {"domains": ["eu-west"]}},
]}
STEP_LIMIT_S = 60


class _TlsFederation(TlsFederation):
    """test_mtls's TLS federation, for any set of domains (its roots are theirs)."""

    def roots(self) -> bytes:
        return trust_bundle([load_public_key_file(self.workdir / "keys" / f"{d}.pub")
                             for d in self.names])


@pytest.fixture(scope="module")
def keyring(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("client-keys")
    return {name: init_client_keys(name, folder)[0] for name in ("alice", "bob")}


def _access(keyring: dict[str, Path]) -> dict:
    return {"clients": {"key_files": [str(p.with_suffix(".pub")) for p in keyring.values()]},
            "access": [{"principals": ["alice"], "allow": ["submit", "read", "cancel"]},
                       {"principals": ["bob"], "allow": ["submit", "read"]}]}


@pytest.fixture(scope="module")
def tls_fed(tmp_path_factory, keyring):
    body = {"tls": {"enabled": True}, **_access(keyring)}
    domains = {
        "eu-west": {**body, "capabilities": [
            {"name": "data.extract", "capacity": 2, "executor": ECHO}, SLEEP]},
        "us-east": {**body, "capabilities": [
            {"name": "ml.train", "capacity": 2, "executor": ECHO}]},
    }
    fed = _TlsFederation(tmp_path_factory.mktemp("client-tls"), domains,
                         load_identity(keyring["alice"]))
    fed.write_configs()
    try:
        asyncio.run(fed.start())
        asyncio.run(fed.wait_converged())
        asyncio.run(fed.close_channels())
        yield fed
    finally:
        fed.stop()


@pytest.fixture(scope="module")
def signed_fed(tmp_path_factory, keyring):
    """One plaintext loopback agent that requires signed calls (it has `clients:`)."""
    domains = {"eu-west": {"capabilities": [SLEEP], **_access(keyring)}}
    with running_federation(tmp_path_factory.mktemp("client-signed"), domains,
                            identity=load_identity(keyring["alice"])) as fed:
        yield fed


@pytest.fixture(autouse=True)
def _no_env_identity(monkeypatch):
    """The client reads these when not given; the caller's own must not leak in."""
    monkeypatch.delenv("FEDORCH_IDENTITY", raising=False)
    monkeypatch.delenv("FEDORCH_AGENT_KEY", raising=False)


def _agent_key(fed, domain: str) -> Path:
    return fed.workdir / "keys" / f"{domain}.pub"


def test_an_allowed_identity_submits_and_reads_over_tls(tls_fed, keyring, monkeypatch):
    with Client(tls_fed.address("eu-west"), identity=keyring["alice"],
                agent_key=_agent_key(tls_fed, "eu-west")) as alice:
        assert alice.identity.principal == "alice"
        final = alice.submit(ACROSS, wait=True, timeout=STEP_LIMIT_S)
        assert final.state == "SUCCEEDED", final
        assert (final.step("extract").domain, final.step("train").domain) == TLS_DOMAINS
        assert final.step("extract").outputs["echo"] == {"rows": 3}
        assert final.step("train").outputs["inputs"] == ["extract"]
        assert {m.domain: m.state for m in alice.members()} == {
            "eu-west": "ALIVE", "us-east": "ALIVE"}
        assert final.id in [w.id for w in alice.list_workflows()]

    # From the environment, as the CLI: us-east forwards the read to eu-west.
    monkeypatch.setenv("FEDORCH_IDENTITY", str(keyring["alice"]))
    monkeypatch.setenv("FEDORCH_AGENT_KEY", str(_agent_key(tls_fed, "us-east")))
    with Client(tls_fed.address("us-east")) as alice:
        forwarded = alice.status(final.id)
    assert forwarded.state == "SUCCEEDED" and forwarded.coordinator == "eu-west"

    # TLS is really checked: another domain's key does not certify eu-west, and a
    # caller with no client certificate fails the handshake (the CLI's exit 3).
    with Client(tls_fed.address("eu-west"), identity=keyring["alice"],
                agent_key=_agent_key(tls_fed, "us-east")) as wrong_key:
        with pytest.raises(Unreachable):
            wrong_key.members()
    with Client(tls_fed.address("eu-west"), identity="",
                agent_key=_agent_key(tls_fed, "eu-west")) as anonymous:
        assert anonymous.identity is None
        with pytest.raises(Unreachable):
            anonymous.members()


async def test_a_role_lacking_cancel_is_not_allowed_and_changes_nothing(tls_fed, keyring):
    address, key = tls_fed.address("eu-west"), _agent_key(tls_fed, "eu-west")
    async with AsyncClient(address, identity=keyring["bob"], agent_key=key) as bob, \
            AsyncClient(address, identity=keyring["alice"], agent_key=key) as alice:
        workflow_id = await bob.submit(LONG)  # bob may submit
        try:
            async with asyncio.timeout(STEP_LIMIT_S), \
                    contextlib.aclosing(bob.watch(workflow_id)) as updates:
                async for status in updates:
                    if status.state == "RUNNING" and status.step("wait").state == "RUNNING":
                        break

            with pytest.raises(NotAllowed) as refused:
                await bob.cancel(workflow_id, "bob may not")
            error = refused.value
            assert error.code == grpc.StatusCode.PERMISSION_DENIED
            assert error.message.startswith(f"not allowed by {address}: ")
            assert "'bob'" in error.message and "'cancel'" in error.message
            assert "\n" not in str(error)

            after = await bob.status(workflow_id)
            assert after.state == "RUNNING" and after.step("wait").state == "RUNNING", after
            assert after.step("wait").attempts == 1
        finally:
            await alice.cancel(workflow_id, "test over")
        final = await alice.wait(workflow_id, timeout=STEP_LIMIT_S)
        assert final.state == "CANCELLED", final


def test_no_identity_is_not_allowed_and_changes_nothing(signed_fed, keyring):
    address = signed_fed.address("eu-west")
    with Client(address) as anonymous:
        assert anonymous.identity is None and anonymous.agent_key == ""
        with pytest.raises(NotAllowed) as refused:
            anonymous.submit(LONG)
        error = refused.value
        assert error.code == grpc.StatusCode.UNAUTHENTICATED
        assert error.message.startswith(f"not authenticated by {address}: ")
        assert "no client identity" in error.message and "'submit'" in error.message
        with pytest.raises(NotAllowed, match="'read'"):
            anonymous.list_workflows()
    with Client(address, identity=keyring["alice"]) as alice:
        assert alice.list_workflows() == []  # the refused submit started nothing
