"""Mutual TLS under a federation CA, on real agents (core/identity/federation_ca.py).

Three agents with `tls: {federation_ca, cert_file, key_file}`: each presents the
certificate the CA issued for its domain (SAN URI fedorch://domain/NAME); messages are
still signed by the domain keys of the trust store. A workflow runs across them; a peer
presenting a CA certificate of another domain, one for an untrusted domain, and one
issued by another CA are refused; the CLI and the health check talk TLS under the CA.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from fedorch.cli.demo import start_agents
from fedorch.core.identity.clients import init_client_keys, load_identity
from fedorch.core.identity.federation_ca import issue_domain_cert, make_ca
from fedorch.core.identity.tls import CLIENT_KIND, mint_leaf
from fedorch.runtime.client_calls import SignedClientStub
from fedorch.runtime.transport import TLS_CHANNEL_OPTIONS
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.federation import Federation, state_name, wait_for
from tests.integration.peer_probe import answered, send_probe

pytestmark = pytest.mark.integration

ECHO = {"type": "builtin", "name": "echo"}
NAMES = ("eu-west", "us-east", "partner")


class CaFederation(Federation):
    """A Federation under a federation CA; the test's channels trust the CA and present
    certificates it issued (or, for client calls, one certified by alice's key)."""

    def ca_pem(self) -> bytes:
        return (self.workdir / "ca" / "ca.crt").read_bytes()

    def channel(self, name: str, key_pem: bytes, cert_pem: bytes) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(self.ca_pem(), key_pem, cert_pem)
        return grpc.aio.secure_channel(self.address(name), credentials,
                                       options=TLS_CHANNEL_OPTIONS)

    def domain_channel(self, name: str, as_domain: str) -> grpc.aio.Channel:
        tls = self.workdir / "tls"
        return self.channel(name, (tls / f"{as_domain}.tls.key").read_bytes(),
                            (tls / f"{as_domain}.crt").read_bytes())

    def client(self, name: str):
        assert self.identity is not None
        if name not in self._channels:
            leaf = mint_leaf(CLIENT_KIND, self.identity.principal, self.identity.key,
                             time.time())
            self._channels[name] = self.channel(name, leaf.key_pem, leaf.cert_pem)
        return SignedClientStub(self._channels[name], self.identity.principal,
                                self.identity.key.sign)

    async def start(self, *names: str, deadline_s: float = 60) -> None:
        chosen = list(names or self.names)
        procs = start_agents({n: self.configs[n] for n in chosen},
                             {n: self.address(n) for n in chosen}, self.workdir)
        self.procs.update({p.domain: p for p in procs})
        for name in chosen:
            async with self.domain_channel(name, name) as channel:
                stub = health_pb2_grpc.HealthStub(channel)

                async def serving(name: str = name, stub=stub) -> bool:
                    assert self.procs[name].popen.poll() is None, f"{name} exited"
                    try:
                        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    except grpc.aio.AioRpcError:
                        return False
                    return reply.status == health_pb2.HealthCheckResponse.SERVING

                await wait_for(serving, deadline_s, f"{name} to serve under the CA")


def _write_ca(directory: Path, name: str) -> tuple[bytes, bytes]:
    ca = make_ca(name, time.time())
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.key").write_bytes(ca.key_pem)
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    return ca.key_pem, ca.cert_pem


@pytest.fixture(scope="module")
def ca_fed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("federation-ca")
    ca_key, ca_cert = _write_ca(workdir / "ca", "test federation CA")
    tls = workdir / "tls"
    tls.mkdir()
    for domain in (*NAMES, "mallory"):  # mallory: issued by the CA, trusted by nobody
        issued = issue_domain_cert(ca_key, ca_cert, domain, time.time())
        (tls / f"{domain}.tls.key").write_bytes(issued.key_pem)
        (tls / f"{domain}.crt").write_bytes(issued.cert_pem)
    init_client_keys("alice", workdir / "clients")
    alice = load_identity(workdir / "clients" / "alice.key")
    capabilities = {"eu-west": "data.extract", "us-east": "ml.train",
                    "partner": "report.publish"}
    domains = {
        name: {"tls": {"enabled": True, "federation_ca": str(workdir / "ca" / "ca.crt"),
                       "cert_file": str(tls / f"{name}.crt"),
                       "key_file": str(tls / f"{name}.tls.key")},
               "clients": {"key_files": [str(workdir / "clients" / "alice.pub")]},
               "access": [{"principals": ["alice"], "allow": ["submit", "read", "cancel"]}],
               "capabilities": [{"name": capabilities[name], "capacity": 2,
                                 "executor": ECHO}]}
        for name in NAMES}
    fed = CaFederation(workdir, domains, alice)
    fed.write_configs()
    try:
        asyncio.run(fed.start())
        asyncio.run(fed.wait_converged())
        asyncio.run(fed.close_channels())
        yield fed
    finally:
        fed.stop()


@pytest.fixture
async def fed(ca_fed):
    yield ca_fed
    await ca_fed.close_channels()


async def test_a_workflow_runs_across_agents_under_the_federation_ca(fed):
    workflow_id = await fed.submit("eu-west", """
name: across
steps:
  - {id: extract, capability: data.extract}
  - {id: train, capability: ml.train, needs: [extract]}
  - {id: report, capability: report.publish, needs: [train]}
""")
    status = await fed.wait_state("eu-west", workflow_id)
    assert state_name(status) == "SUCCEEDED", status
    assert {s.domain for s in status.steps} == set(NAMES)


async def test_a_peer_presenting_the_cas_certificate_of_another_domain_is_refused(fed):
    # partner's CA certificate, a message genuinely signed by eu-west: refused.
    async with fed.domain_channel("us-east", "partner") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await send_probe(channel, fed, "eu-west", "us-east")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "TLS identity 'partner' is not the sender 'eu-west'" in refused.value.details()
    # A certificate the CA issued to a domain nobody trusts names no domain here.
    async with fed.domain_channel("us-east", "mallory") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as untrusted:
            await send_probe(channel, fed, "eu-west", "us-east")
    assert untrusted.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "TLS identity 'unknown' is not the sender 'eu-west'" in untrusted.value.details()
    # eu-west's own certificate carries its message.
    async with fed.domain_channel("us-east", "eu-west") as channel:
        reply = await send_probe(channel, fed, "eu-west", "us-east")
    assert answered(fed, "us-east", reply)


async def test_a_certificate_from_another_ca_cannot_connect(fed, tmp_path):
    rogue_key, rogue_cert = _write_ca(tmp_path / "rogue", "test federation CA")  # same name
    issued = issue_domain_cert(rogue_key, rogue_cert, "eu-west", time.time())
    async with fed.channel("us-east", issued.key_pem, issued.cert_pem) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                            timeout=3)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # And an agent's certificate does not pass with the rogue CA as the caller's root.
    credentials = grpc.ssl_channel_credentials(rogue_cert, issued.key_pem, issued.cert_pem)
    async with grpc.aio.secure_channel(fed.address("us-east"), credentials,
                                       options=TLS_CHANNEL_OPTIONS) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as wrong_root:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                            timeout=3)
    assert wrong_root.value.code() == grpc.StatusCode.UNAVAILABLE


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDORCH_")}
    return subprocess.run([sys.executable, "-m", "fedorch.cli.main", *args],
                          env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_and_the_health_check_talk_tls_under_the_ca(ca_fed):
    identity = str(ca_fed.workdir / "clients" / "alice.key")
    ok = _cli("members", "--peer", ca_fed.address("eu-west"), "--agent-key",
              str(ca_fed.workdir / "ca" / "ca.crt"), "--identity", identity, "--json")
    assert ok.returncode == 0, ok.stderr
    assert '"domain": "partner"' in ok.stdout
    domain_key = _cli("members", "--peer", ca_fed.address("eu-west"), "--agent-key",
                      str(ca_fed.workdir / "keys" / "eu-west.pub"), "--identity", identity)
    assert domain_key.returncode == 3, (domain_key.stdout, domain_key.stderr)  # not its root
    health = _cli("agent", "health", "--config", str(ca_fed.configs["partner"]))
    assert health.returncode == 0, health.stderr
    assert health.stdout.strip().endswith(": SERVING")
