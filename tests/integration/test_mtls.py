"""Mutual TLS on real agents: every channel encrypted, each certificate bound to its domain.

Three agents with `tls: {enabled: true}` on 127.0.0.1. Certificates are minted from domain
keys; nothing else is configured. A workflow runs across them; the CLI talks TLS with
`--agent-key`; a peer presenting another domain's certificate, a certificate made in
another domain's name, an untrusted certificate and a plaintext caller are all refused.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fedorch.cli.demo import start_agents
from fedorch.core.identity.clients import init_client_keys, load_identity
from fedorch.core.identity.keys import init_keys, load_private_key, load_public_key_file
from fedorch.core.identity.tls import CLIENT_KIND, DOMAIN_KIND, mint_leaf, trust_bundle
from fedorch.runtime.client_calls import SignedClientStub
from fedorch.runtime.transport import TLS_CHANNEL_OPTIONS
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.federation import Federation, state_name, wait_for
from tests.integration.peer_probe import answered, send_probe

pytestmark = pytest.mark.integration

ECHO = {"type": "builtin", "name": "echo"}
NAMES = ("eu-west", "us-east", "partner")


class TlsFederation(Federation):
    """A Federation whose agents require mutual TLS; the test's channels present
    certificates minted from the federation's keys."""

    def roots(self) -> bytes:
        return trust_bundle([load_public_key_file(self.workdir / "keys" / f"{d}.pub")
                             for d in NAMES])

    def channel(self, name: str, key_pem: bytes, cert_pem: bytes) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(self.roots(), key_pem, cert_pem)
        return grpc.aio.secure_channel(self.address(name), credentials,
                                       options=TLS_CHANNEL_OPTIONS)

    def domain_channel(self, name: str, as_domain: str) -> grpc.aio.Channel:
        key = load_private_key(self.workdir / "keys" / f"{as_domain}.key")
        leaf = mint_leaf(DOMAIN_KIND, as_domain, key, time.time())
        return self.channel(name, leaf.key_pem, leaf.cert_pem)

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

                await wait_for(serving, deadline_s, f"{name} to serve over TLS")


@pytest.fixture(scope="module")
def tls_fed(tmp_path_factory):
    import asyncio

    workdir = tmp_path_factory.mktemp("mtls")
    init_client_keys("alice", workdir / "clients")
    alice = load_identity(workdir / "clients" / "alice.key")
    body = {"tls": {"enabled": True},
            "clients": {"key_files": [str(workdir / "clients" / "alice.pub")]},
            "access": [{"principals": ["alice"], "allow": ["submit", "read", "cancel"]}]}
    domains = {
        "eu-west": {**body, "capabilities": [{"name": "data.extract", "capacity": 2,
                                              "executor": ECHO}]},
        "us-east": {**body, "capabilities": [{"name": "ml.train", "capacity": 2,
                                              "executor": ECHO}]},
        "partner": {**body, "capabilities": [{"name": "report.publish", "capacity": 2,
                                              "executor": ECHO}]},
    }
    fed = TlsFederation(workdir, domains, alice)
    fed.write_configs()
    try:
        asyncio.run(fed.start())
        asyncio.run(fed.wait_converged())
        asyncio.run(fed.close_channels())
        yield fed
    finally:
        fed.stop()


@pytest.fixture
async def fed(tls_fed):
    yield tls_fed
    await tls_fed.close_channels()


async def test_a_workflow_runs_across_agents_over_mutual_tls(fed):
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
    # Asked of us-east, the status comes from eu-west over us-east's TLS channel.
    forwarded = await fed.status("us-east", workflow_id)
    assert forwarded.coordinator == "eu-west" and state_name(forwarded) == "SUCCEEDED"
    assert f"coordinator of {workflow_id} unreachable" not in \
        (fed.workdir / "us-east.log").read_text()  # answered by eu-west, not locally
    assert "(mutual TLS)" in (fed.workdir / "eu-west.log").read_text()


def _cli(fed, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDORCH_")}
    return subprocess.run([sys.executable, "-m", "fedorch.cli.main", *args,
                           "--identity", str(fed.workdir / "clients" / "alice.key")],
                          env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_talks_tls_to_the_agent_its_key_names(tls_fed):
    keys = tls_fed.workdir / "keys"
    peer = tls_fed.address("eu-west")
    ok = _cli(tls_fed, "members", "--peer", peer, "--agent-key", str(keys / "eu-west.pub"),
              "--json")
    assert ok.returncode == 0, ok.stderr
    assert '"domain": "partner"' in ok.stdout
    # Another domain's key does not certify eu-west's certificate; plaintext gets nowhere.
    wrong = _cli(tls_fed, "members", "--peer", peer, "--agent-key", str(keys / "us-east.pub"))
    assert wrong.returncode == 3, (wrong.stdout, wrong.stderr)
    plain = _cli(tls_fed, "members", "--peer", peer)
    assert plain.returncode == 3, (plain.stdout, plain.stderr)


async def test_a_peer_presenting_another_domains_certificate_is_refused(fed):
    # partner's certificate, a message genuinely signed by eu-west: refused.
    async with fed.domain_channel("us-east", "partner") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await send_probe(channel, fed, "eu-west", "us-east")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "TLS identity 'partner' is not the sender 'eu-west'" in refused.value.details()
    # The same kind of message over eu-west's own certificate is answered.
    async with fed.domain_channel("us-east", "eu-west") as channel:
        reply = await send_probe(channel, fed, "eu-west", "us-east")
    assert answered(fed, "us-east", reply)


def _forged_leaf(fed, signer_domain: str, claimed: str) -> tuple[bytes, bytes]:
    """A certificate naming `claimed` as subject and issuer, signed by `signer_domain`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, claimed)])
    cert = (x509.CertificateBuilder().subject_name(name)
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                       f"fedorch domain {signer_domain}")]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(claimed)]), critical=False)
            .sign(load_private_key(fed.workdir / "keys" / f"{signer_domain}.key"), None))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


async def test_a_certificate_made_in_another_domains_name_is_refused(fed):
    # partner certifies a key as "eu-west": the handshake passes (partner is trusted) but
    # the certificate is partner's, so it cannot carry eu-west's messages.
    async with fed.channel("us-east", *_forged_leaf(fed, "partner", "eu-west")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await send_probe(channel, fed, "eu-west", "us-east")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "is not the sender 'eu-west'" in refused.value.details()


async def test_untrusted_certificates_and_plaintext_cannot_connect(fed, tmp_path):
    init_keys("mallory", tmp_path)
    leaf = mint_leaf(DOMAIN_KIND, "mallory", load_private_key(tmp_path / "mallory.key"),
                     time.time())
    async with fed.channel("us-east", leaf.key_pem, leaf.cert_pem) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                            timeout=3)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.insecure_channel(fed.address("us-east")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as plain:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                            timeout=3)
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE


def test_keys_dir_has_no_certificate_files(tls_fed):
    """Certificates are minted from the domain keys at start: nothing to copy or renew."""
    assert sorted(p.suffix for p in Path(tls_fed.workdir / "keys").iterdir()) == \
        [".key"] * 3 + [".pub"] * 3


def test_agent_health_checks_over_tls_with_the_agents_own_key(tls_fed):
    ok = subprocess.run([sys.executable, "-m", "fedorch.cli.main", "agent", "health",
                         "--config", str(tls_fed.configs["partner"])],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith(": SERVING")
