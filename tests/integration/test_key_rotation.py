"""Key rotation and revocation on real agents.

- `fedorch keys rotate` on one domain while its step runs, then SIGHUP: the workflow
  still SUCCEEDS; the peers (which were configured with the old key) learned the new
  one by gossip and kept the record; once the overlap is over the old key is refused
  and the new one accepted, and a new workflow runs on the rotated domain.
- `fedorch keys revoke`: the revoked key's next message is refused on every agent,
  counted as revoked_key, and still refused after a restart; once the current key is
  revoked too, the domain refuses submissions (`fedorch submit` exits 1 with the reason).
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import grpc
import pytest
import yaml
from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.keys import load_private_key
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2

from tests.integration.federation import Federation, state_name, wait_for
from tests.integration.peer_probe import probe

pytestmark = pytest.mark.integration

GATE = pathlib.Path(__file__).parent / "steps" / "gate.py"
ECHO = {"type": "builtin", "name": "echo"}
OVERLAP_S = 3
DOMAINS = {
    "home": {"capabilities": [{"name": "test.echo", "capacity": 2, "executor": ECHO}]},
    "worker": {"capabilities": [
        {"name": "test.gate", "capacity": 2,
         "executor": {"type": "command", "argv": [sys.executable, str(GATE)]}},
    ]},
    "third": {"capabilities": [{"name": "test.echo", "capacity": 2, "executor": ECHO}]},
}


def _spec(gate: pathlib.Path) -> str:
    return f"""
name: across-a-rotation
steps:
  - id: wait
    capability: test.gate
    params: {{gate: "{gate}", wait_s: 60}}
    constraints: {{domains: [worker]}}
  - id: after
    capability: test.echo
    needs: [wait]
    constraints: {{domains: [third]}}
"""


def _fedorch(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "fedorch.cli.main", *args],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def _configure(fed: Federation) -> None:
    """A short rotation overlap everywhere; the peers trust a copy of worker's `.pub` as
    it was at the start (the rotation rewrites the key dir's), as another operator's
    host would hold it."""
    copy = fed.workdir / "peers" / "worker.pub"
    copy.parent.mkdir()
    copy.write_bytes((fed.workdir / "keys" / "worker.pub").read_bytes())
    for path in fed.configs.values():
        config = yaml.safe_load(path.read_text())
        config["trust"]["rotation_overlap_s"] = OVERLAP_S
        config["trust"]["key_files"] = [str(copy) if f.endswith("/worker.pub") else f
                                        for f in config["trust"]["key_files"]]
        path.write_text(yaml.safe_dump(config, sort_keys=False))


class _Started:
    """A federation whose configs carry a short rotation overlap; stopped by pid."""

    def __init__(self, tmp_path: pathlib.Path) -> None:
        self.fed = Federation(tmp_path, DOMAINS)

    async def __aenter__(self) -> Federation:
        fed = self.fed
        fed.write_configs()
        _configure(fed)
        try:
            await fed.start()
            await fed.wait_converged()
        except BaseException:
            # `async with` runs __aexit__ only once __aenter__ has returned: the agents
            # started before a failed health or convergence wait are stopped here.
            await self.__aexit__()
            raise
        return fed

    async def __aexit__(self, *exc) -> None:
        for proc in self.fed.procs.values():
            if proc.popen.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        await self.fed.close_channels()
        self.fed.stop()


async def _query(fed: Federation, signer: Signer, recipient: str) -> grpc.StatusCode | None:
    """A signed question from `signer` to `recipient`: None when answered, else the code."""
    try:
        await fed.peer_call(recipient, *probe(fed, signer, recipient))
    except grpc.aio.AioRpcError as e:
        return e.code()
    return None


def _learned(fed: Federation, name: str, domain: str, kind: str) -> bool:
    rows = fed.rows(name, "SELECT record FROM key_records WHERE domain=?", (domain,))
    from fedorch.core.identity.key_records import open_record
    from fedorch.gen.fedorch.v1 import keys_pb2

    return any(open_record(keys_pb2.KeyRecord.FromString(r[0])).kind == kind for r in rows)


async def test_rotation_mid_workflow_keeps_it_running(tmp_path):
    async with _Started(tmp_path) as fed:
        keys = tmp_path / "keys"
        old = Signer("worker", load_private_key(keys / "worker.key"))
        gate = tmp_path / "gate"
        wf = await fed.submit("home", _spec(gate))

        async def waiting() -> bool:  # as worker, which runs it, shows it
            status = await fed.local_status("worker", wf)
            steps = {s.id: s for s in status.steps} if status is not None else {}
            return "wait" in steps and steps["wait"].state == status_pb2.STEP_STATE_RUNNING
        await wait_for(waiting, 60, "the gated step to run on worker")

        code, out = _fedorch("keys", "rotate", "--dir", str(keys), "--domain", "worker")
        assert code == 0, out
        new = Signer("worker", load_private_key(keys / "worker.key"))
        assert new.public_key() != old.public_key()
        fed.sighup("worker")

        # The peers were configured with worker's old key only: they learn the new one
        # from worker's gossip, and keep the record.
        for peer in ("home", "third"):
            await wait_for(lambda p=peer: _async(_learned(fed, p, "worker", "rotation")),
                           30, f"{peer} to learn worker's rotation")

        gate.touch()
        status = await fed.wait_state("home", wf, deadline_s=60)
        assert state_name(status) == "SUCCEEDED", status

        # After the overlap the old key is refused everywhere, the new one taken.
        for peer in ("home", "third"):
            async def old_refused(p=peer) -> bool:
                return await _query(fed, old, p) == grpc.StatusCode.UNAUTHENTICATED
            await wait_for(old_refused, 30, f"{peer} to refuse worker's old key")
            assert await _query(fed, new, peer) is None

        # worker signs with its new key: a new workflow through it still runs.
        gate2 = tmp_path / "gate2"
        gate2.touch()
        wf2 = await fed.submit("home", _spec(gate2))
        status = await fed.wait_state("home", wf2, deadline_s=60)
        assert state_name(status) == "SUCCEEDED", status

        # A restart of a peer keeps the new key (the record was kept).
        fed.stop("third")
        await fed.close_channels()
        await fed.start("third")
        assert await _query(fed, old, "third") == grpc.StatusCode.UNAUTHENTICATED
        assert await _query(fed, new, "third") is None

        # worker's audit log, checkpointed under both keys, verifies (stopped: its last
        # records are checkpointed under the new key as it stops).
        fed.stop("worker")
        code, out = _fedorch("audit", "verify", "--data-dir", str(tmp_path / "data" / "worker"))
        assert code == 0, out


async def _async(value):
    return value


def _revoked_count(fed: Federation, name: str) -> float:
    return fed.metric(name, "fedorch_rejected_messages_total", reason="revoked_key")


async def test_a_revoked_key_is_refused_on_every_agent(tmp_path):
    async with _Started(tmp_path) as fed:
        keys = tmp_path / "keys"
        old = Signer("worker", load_private_key(keys / "worker.key"))
        # Rotate, then revoke the old key (signed by its successor): a compromised key
        # stops working at once, overlap or not.
        code, out = _fedorch("keys", "rotate", "--dir", str(keys), "--domain", "worker")
        assert code == 0, out
        code, out = _fedorch("keys", "revoke", "--dir", str(keys), "--domain", "worker")
        assert code == 0, out
        new = Signer("worker", load_private_key(keys / "worker.key"))
        fed.sighup("worker")

        for peer in ("home", "third"):
            before = _revoked_count(fed, peer)

            async def refused(p=peer) -> bool:
                return await _query(fed, old, p) == grpc.StatusCode.UNAUTHENTICATED
            await wait_for(refused, 30, f"{peer} to refuse worker's revoked key")
            assert _revoked_count(fed, peer) > before
            assert await _query(fed, new, peer) is None
            assert _learned(fed, peer, "worker", "revocation")
            audited = fed.rows(peer, "SELECT body FROM audit WHERE kind='trust_changed'")
            assert any(b'"revoke"' in bytes(row[0]) for row in audited), audited

        # Persisted: a restarted peer refuses the revoked key from its first message.
        fed.stop("home")
        await fed.close_channels()
        await fed.start("home")
        assert await _query(fed, old, "home") == grpc.StatusCode.UNAUTHENTICATED
        assert await _query(fed, new, "home") is None

        # Revoking the current key too leaves worker no valid key: it refuses submissions
        # with the reason (exit 1) rather than coordinate workflows its peers would refuse.
        spec = tmp_path / "one.yaml"
        spec.write_text("name: one\nsteps:\n  - {id: s, capability: test.echo}\n")
        code, out = _fedorch("keys", "revoke", "--dir", str(keys), "--domain", "worker",
                             "--key", str(keys / "worker.key"))
        assert code == 0, out
        fed.sighup("worker")

        def submitted() -> tuple[int, str]:
            return _fedorch("submit", str(spec), "--peer", fed.address("worker"))

        async def refused() -> bool:
            return "has no valid key" in submitted()[1]
        await wait_for(refused, 30, "worker to refuse submissions once its key is revoked")
        listing = client_pb2.ListWorkflowsRequest()
        before = (await fed.client("worker").ListWorkflows(listing, timeout=10)).workflows
        code, out = submitted()
        assert code == 1 and "domain worker has no valid key (its key is revoked)" in out, out
        after = (await fed.client("worker").ListWorkflows(listing, timeout=10)).workflows
        assert len(after) == len(before)  # nothing submitted


async def test_under_mutual_tls_peers_take_the_certificate_of_the_new_key(tmp_path):
    from fedorch.core.identity.clients import init_client_keys, load_identity
    from fedorch.core.identity.keys import load_public_key_file
    from fedorch.core.identity.tls import DOMAIN_KIND, mint_leaf, trust_bundle
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tests.integration.test_mtls import TlsFederation

    class Tls(TlsFederation):
        def roots(self) -> bytes:  # this test's domains, their keys as the files say now
            return trust_bundle([load_public_key_file(self.workdir / "keys" / f"{d}.pub")
                                 for d in DOMAINS])

    init_client_keys("alice", tmp_path / "clients")
    alice = load_identity(tmp_path / "clients" / "alice.key")
    body = {"tls": {"enabled": True},
            "clients": {"key_files": [str(tmp_path / "clients" / "alice.pub")]},
            "access": [{"principals": ["alice"], "allow": ["submit", "read"]}]}
    fed = Tls(tmp_path, {n: {**body, **d} for n, d in DOMAINS.items()}, alice)
    fed.write_configs()
    _configure(fed)
    keys = tmp_path / "keys"
    try:
        await fed.start()
        await fed.wait_converged()
        code, out = _fedorch("keys", "rotate", "--dir", str(keys), "--domain", "worker")
        assert code == 0, out
        fed.sighup("worker")
        for peer in ("home", "third"):
            await wait_for(lambda p=peer: _async(_learned(fed, p, "worker", "rotation")),
                           30, f"{peer} to learn worker's rotation")

        async def handshake(as_key: pathlib.Path) -> bool:
            """A new connection to home with a certificate `as_key` certified as worker."""
            leaf = mint_leaf(DOMAIN_KIND, "worker", load_private_key(as_key), time.time())
            async with fed.channel("home", leaf.key_pem, leaf.cert_pem) as channel:
                try:
                    await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=5)
                except grpc.aio.AioRpcError:
                    return False
            return True

        # Past the overlap: a certificate certified by the old key fails its handshake,
        # one certified by the new key is taken.
        old_key = keys / "worker.retired-1.key"
        await wait_for(lambda: _not(handshake(old_key)), 30, "home to refuse the old key's cert")
        assert await handshake(keys / "worker.key")

        # And worker's own agent (its certificate re-issued under the new key) still
        # works with both peers: a workflow through it succeeds.
        gate = tmp_path / "gate"
        gate.touch()
        wf = await fed.submit("home", _spec(gate))
        status = await fed.wait_state("home", wf, deadline_s=60)
        assert state_name(status) == "SUCCEEDED", status

        # home restarted: its trust list still names worker's old key, but its TLS anchors
        # come from what it learned, so worker's new certificate is taken.
        fed.stop("home")
        await fed.close_channels()
        await fed.start("home")
        assert await handshake(keys / "worker.key")
        assert not await handshake(old_key)
        wf = await fed.submit("home", _spec(gate))
        status = await fed.wait_state("home", wf, deadline_s=60)
        assert state_name(status) == "SUCCEEDED", status
    finally:
        await fed.close_channels()
        fed.stop()


async def _not(awaitable) -> bool:
    return not await awaitable
