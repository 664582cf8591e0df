"""Live trust on three real agents: a domain removed by `fedorch trust remove` (or by an
edited trust list and SIGHUP) has its next peer message refused and counted, and its
gossip no longer counts; added back live it is accepted again; the change survives a
restart of the agent that made it."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest
import yaml
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import started_federation, wait_for
from tests.integration.peer_probe import probe, refusal_label, send_probe

pytestmark = pytest.mark.integration

ALIVE = client_pb2.MEMBER_STATE_ALIVE
NAMES = ["a", "b", "c"]


def _fedorch(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "fedorch.cli.main", *args],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def _trusted(fed, name: str) -> set[str]:
    code, out = _fedorch("trust", "list", "--config", str(fed.configs[name]), "--json")
    assert code == 0, out
    return {row["domain"] for row in json.loads(out)["trusted"]}


async def _state_of(fed, observer: str, subject: str):
    members = await fed.members(observer)
    return next((m.state for m in members if m.domain == subject), None)


async def _query_refused(fed, sender: str, recipient: str) -> bool:
    """`sender` asks `recipient` a signed question: True when it is refused as unknown."""
    try:
        await fed.peer_call(recipient, *probe(fed, sender, recipient))
    except grpc.aio.AioRpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
        return True
    return False


def _refusals(fed, name: str) -> float:
    return fed.metric(name, "fedorch_rejected_messages_total", reason=refusal_label(fed, name))


async def _removed_at(fed, remover: str, removed: str) -> None:
    before = _refusals(fed, remover)
    assert await _query_refused(fed, removed, remover)
    assert _refusals(fed, remover) == before + 1
    # Its gossip no longer counts: the remover cannot hear it refute, so it is not ALIVE.
    async def not_alive() -> bool:
        return await _state_of(fed, remover, removed) != ALIVE
    await wait_for(not_alive, 30, f"{removed} no longer ALIVE at {remover}")
    # The others, who still trust it, keep it ALIVE and still take its messages.
    other = next(n for n in NAMES if n not in (remover, removed))
    assert await _state_of(fed, other, removed) == ALIVE
    assert not await _query_refused(fed, removed, other)


async def _accepted_at(fed, observer: str, subject: str) -> None:
    async def alive() -> bool:
        return await _state_of(fed, observer, subject) == ALIVE
    await wait_for(alive, 30, f"{subject} ALIVE again at {observer}")
    assert not await _query_refused(fed, subject, observer)


async def test_trust_cli_remove_and_add_back_live(tmp_path):
    async with started_federation(tmp_path, {n: {} for n in NAMES}) as fed:
        pid = str(fed.procs["a"].pid)
        config = str(fed.configs["a"])
        assert _trusted(fed, "a") == {"b", "c"}
        code, out = _fedorch("trust", "remove", "c", "--config", config, "--pid", pid)
        assert code == 0, out
        assert _trusted(fed, "a") == {"b"}
        await _removed_at(fed, "a", "c")

        # Bad input changes nothing: the own domain, an unknown one.
        for bad in ("a", "nobody"):
            code, out = _fedorch("trust", "remove", bad, "--config", config, "--pid", pid)
            assert code == 2, out
        assert _trusted(fed, "a") == {"b"}

        code, out = _fedorch("trust", "add", str(tmp_path / "keys" / "c.pub"),
                             "--config", config, "--pid", pid)
        assert code == 0, out
        assert _trusted(fed, "a") == {"b", "c"}
        await _accepted_at(fed, "a", "c")
        # Both changes are in a's audit log, in order.
        rows = fed.rows("a", "SELECT body FROM audit WHERE kind='trust_changed' ORDER BY seq")
        changes = [json.loads(bytes(r[0]))["data"] for r in rows]
        assert [(c["change"], c["domain"]) for c in changes] == [("remove", "c"), ("add", "c")]


async def test_sighup_trust_list_and_restart(tmp_path):
    async with started_federation(tmp_path, {n: {} for n in NAMES}) as fed:
        path = fed.configs["b"]
        original = path.read_text()
        edited = yaml.safe_load(original)
        edited["trust"]["key_files"] = [f for f in edited["trust"]["key_files"]
                                        if not f.endswith("/a.pub")]
        path.write_text(yaml.safe_dump(edited, sort_keys=False))
        fed.sighup("b")
        await wait_for(lambda: _query_refused(fed, "a", "b"), 30, "b to refuse a")
        await _removed_at(fed, "b", "a")

        # The change survives a restart: b comes back still refusing a.
        fed.stop("b")
        await fed.close_channels()
        await fed.start("b")
        assert await _query_refused(fed, "a", "b")
        await wait_for(lambda: _accepted_c(fed), 30, "b to see c ALIVE after its restart")
        assert await _state_of(fed, "b", "a") != ALIVE

        # Put back, SIGHUP: a is accepted again.
        path.write_text(original)
        fed.sighup("b")
        await wait_for(lambda: _not_refused(fed, "a", "b"), 30, "b to take a again")
        await _accepted_at(fed, "b", "a")


async def _accepted_c(fed) -> bool:
    return await _state_of(fed, "b", "c") == ALIVE


async def _not_refused(fed, sender: str, recipient: str) -> bool:
    return not await _query_refused(fed, sender, recipient)




@pytest.fixture
async def tls_fed(tmp_path):
    from fedorch.core.identity.clients import init_client_keys, load_identity

    from tests.integration.test_mtls import TlsFederation

    init_client_keys("alice", tmp_path / "clients")
    alice = load_identity(tmp_path / "clients" / "alice.key")
    body = {"tls": {"enabled": True},
            "clients": {"key_files": [str(tmp_path / "clients" / "alice.pub")]},
            "access": [{"principals": ["alice"], "allow": ["read"]}]}
    fed = TlsFederation(tmp_path, {n: body for n in ("eu-west", "us-east", "partner")}, alice)
    fed.write_configs()
    try:
        await fed.start()
        await fed.wait_converged()
        yield fed
    finally:
        await fed.close_channels()
        fed.stop()


async def _tls_query(fed, sender: str, recipient: str) -> grpc.StatusCode | None:
    """A signed question over a new connection presenting `sender`'s own certificate:
    None when answered, else the refusal's status code."""
    async with fed.domain_channel(recipient, sender) as channel:
        try:
            await send_probe(channel, fed, sender, recipient)
        except grpc.aio.AioRpcError as e:
            return e.code()
    return None


async def test_a_removed_domains_tls_root_goes_too(tls_fed):
    fed = tls_fed
    config, pid = str(fed.configs["eu-west"]), str(fed.procs["eu-west"].pid)
    assert await _tls_query(fed, "partner", "eu-west") is None
    code, out = _fedorch("trust", "remove", "partner", "--config", config, "--pid", pid)
    assert code == 0, out

    # A new connection with partner's certificate fails its handshake (UNAVAILABLE at the
    # caller); us-east, still trusted, is answered as before.
    async def handshake_refused() -> bool:
        return await _tls_query(fed, "partner", "eu-west") == grpc.StatusCode.UNAVAILABLE
    await wait_for(handshake_refused, 30, "eu-west to refuse partner's certificate")
    assert await _tls_query(fed, "us-east", "eu-west") is None

    async def dropped() -> bool:
        return await _state_of(fed, "eu-west", "partner") is None
    await wait_for(dropped, 30, "partner gone from eu-west's members")

    code, out = _fedorch("trust", "add", str(fed.workdir / "keys" / "partner.pub"),
                         "--config", config, "--pid", pid)
    assert code == 0, out

    async def answered() -> bool:
        return await _tls_query(fed, "partner", "eu-west") is None
    await wait_for(answered, 30, "eu-west to take partner's certificate again")
    await _accepted_at_tls(fed)


async def _accepted_at_tls(fed) -> None:
    async def alive() -> bool:
        return await _state_of(fed, "eu-west", "partner") == ALIVE
    await wait_for(alive, 30, "partner ALIVE again at eu-west")
