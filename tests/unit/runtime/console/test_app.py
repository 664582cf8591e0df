"""The web console on an agent in-process (not started: no membership), over real HTTP on
127.0.0.1: its config field, pages, filters, event streams and its one shared feed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from fedorch.cli.demo import pick_free_ports
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.config import ConfigError, parse_config_text
from fedorch.runtime.console import ConsoleError, start_console
from fedorch.runtime.console.app import FEED, make_app
from fedorch.runtime.console.views import ListFilter, WorkflowSummary
from fedorch.runtime.membership import Member

from tests.unit.runtime.console.given_view import GivenView
from tests.unit.runtime.test_wakeups import _until

BASE = "domain: alpha\nlisten: 127.0.0.1:7101\ndata_dir: data\nkey_file: k.key\n"


def _spec() -> spec_pb2.WorkflowSpec:
    return spec_pb2.WorkflowSpec(name="demo", steps=[
        spec_pb2.StepSpec(id="a", capability="x"),
        spec_pb2.StepSpec(id="b", capability="y", needs=["a"]),
    ])


async def _save(agent, wid: str, state: str) -> None:
    if not isinstance(agent.node_view, GivenView):
        agent.node_view = GivenView()
    agent.node_view.show(wid, _spec(), state, placement={"a": "alpha", "b": "beta"},
                         steps={"a": ("SUCCEEDED", 1, {"n": 1})})
    # What the Node did, appended to agent.db's audit log once node.db holds it
    # (node_engine/audit.py): the commit the console's feed wakes on.
    await agent.audit.append("acts", wid, acts=[])


@pytest.fixture
async def client(agent):
    agent.node_view = GivenView()
    async with TestClient(TestServer(make_app(agent), host="127.0.0.1")) as c:
        yield c


# ---- config ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "error"), [
    ("9201", "must be HOST:PORT"),
    ("127.0.0.1:7101", "must differ from listen"),
])
def test_console_listen_is_checked(tmp_path, value, error):
    with pytest.raises(ConfigError, match=error):
        parse_config_text(BASE + f"console_listen: '{value}'\n", "a.yaml", tmp_path)


def test_console_is_off_unless_configured(tmp_path):
    assert parse_config_text(BASE, "a.yaml", tmp_path).console_listen == ""
    config = parse_config_text(BASE + "console_listen: 127.0.0.1:9201\n", "a.yaml", tmp_path)
    assert config.console_listen == "127.0.0.1:9201"


# ---- filters --------------------------------------------------------------------------------

def test_list_filter():
    w = WorkflowSummary("eu.01ab", "train", "RUNNING", "eu", 1, "", 0, 0)
    assert ListFilter.of({"state": "running", "q": "01a"}).matches(w)
    assert ListFilter.of({"q": "train", "coordinator": "eu"}).matches(w)
    assert not ListFilter.of({"state": "FAILED"}).matches(w)
    assert not ListFilter.of({"coordinator": "us"}).matches(w)
    with pytest.raises(ValueError, match="state must be one of"):
        ListFilter.of({"state": "BOGUS"})


# ---- pages ------------------------------------------------------------------------------------

async def test_pages(agent, client):
    await _save(agent, "alpha.w1", "RUNNING")
    await _save(agent, "alpha.w2", "SUCCEEDED")
    page = await client.get("/")
    assert page.status == 200
    assert "No members known yet" in await page.text()  # membership not started

    listed = await (await client.get("/workflows")).text()
    assert 'data-id="alpha.w1"' in listed and 'data-id="alpha.w2"' in listed
    filtered = await (await client.get("/fragments/workflows?state=SUCCEEDED")).text()
    assert 'data-id="alpha.w2"' in filtered and 'data-id="alpha.w1"' not in filtered
    bad = await client.get("/workflows?state=BOGUS")
    assert bad.status == 400 and "state must be one of" in await bad.text()

    one = await client.get("/workflows/alpha.w1")
    assert one.status == 200
    html = await one.text()
    assert 'data-step="b" data-domain="beta"' in html  # placed, not run yet
    graph = await (await client.get("/api/workflows/alpha.w1/graph")).json()
    assert graph["edges"] == [["a", "b"]]
    assert {s["id"]: (s["domain"], s["state"]) for s in graph["steps"]} == {
        "a": ("alpha", "SUCCEEDED"), "b": ("beta", "PENDING")}
    assert (await client.get("/workflows/alpha.nope")).status == 404
    # Every asset a page names is served from the package.
    for src in ("htmx.min.js", "htmx-ext-sse.min.js", "cytoscape.min.js",
                "cytoscape-dagre.min.js", "console.js", "live.js", "console.css"):
        assert f"/static/{src}?v=" in html
        assert (await client.get(f"/static/{src}")).status == 200


async def test_no_write_route_without_a_gate(client):
    for method, path in (("POST", "/workflows/alpha.w1/cancel"), ("POST", "/workflows/alpha.w1"),
                         ("DELETE", "/workflows/alpha.w1")):
        assert (await client.request(method, path)).status in (404, 405)


# ---- event streams and the feed ------------------------------------------------------------

async def test_workflow_stream_sends_status_then_ends(agent, client):
    await _save(agent, "alpha.w3", "SUCCEEDED")
    reply = await client.get("/events/workflows/alpha.w3")
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    text = await reply.text()  # an ended workflow: one status, then the end, then closed
    events = [line.removeprefix("event: ") for line in text.splitlines()
              if line.startswith("event: ")]
    assert events == ["graph", "status", "ended"]
    graph = json.loads(next(line.removeprefix("data: ") for line in text.splitlines()
                            if line.startswith("data: {")))
    assert graph["state"] == "SUCCEEDED"


async def test_feed_tells_listeners_what_changed_only(agent):
    feed = make_app(agent)[FEED]
    first, second = feed.listen(), feed.listen()
    feed.check()  # the first look: nothing to compare with, nothing sent
    assert first.pending == {} and second.pending == {}
    await _save(agent, "alpha.w4", "RUNNING")
    feed.check()
    assert set(first.pending) == {"workflows"} and set(second.pending) == {"workflows"}
    assert await first.take(1.0) == {"workflows": str(agent.store.commits)}
    feed.check()  # nothing new
    assert first.pending == {}
    feed.leave(second)
    await _save(agent, "alpha.w4", "SUCCEEDED")
    feed.check()
    assert set(first.pending) == {"workflows"} and second not in feed.listeners


async def test_the_feed_looks_only_when_something_changed(agent, monkeypatch):
    feed = make_app(agent)[FEED]
    feed.tick_s = 0.01
    looks = []
    check = feed.check
    monkeypatch.setattr(feed, "check", lambda: looks.append(1) or check())
    listener = feed.listen()
    runner = asyncio.create_task(feed.run())
    try:
        await _until(lambda: bool(looks) and feed.sleep.parked, "the first look, then parked")
        # Nothing changes: parked with no deadline, not on a tick.
        assert feed.sleep.deadline is None and listener.pending == {}
        looked = len(looks)
        await _save(agent, "alpha.w5", "RUNNING")  # a commit wakes it
        assert await listener.take(5.0) == {"workflows": str(agent.store.commits)}
        assert len(looks) == looked + 1
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


# ---- the server ---------------------------------------------------------------------------------

async def test_console_starts_and_stops(agent):
    agent.node_view = GivenView()
    assert await start_console("", agent) is None
    port = pick_free_ports(1)[0]
    console = await start_console(f"127.0.0.1:{port}", agent)
    try:
        assert console.port == port
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/workflows",
                                   timeout=aiohttp.ClientTimeout(total=5)) as page:
                assert page.status == 200
    finally:
        await console.stop()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConsoleError, match="cannot listen"):
            await start_console(f"127.0.0.1:{port}", agent)


class _Membership:
    """What the console reads of membership: the member list."""

    def __init__(self, members: list) -> None:
        self.list = members

    def members(self) -> list:
        return list(self.list)


def _member(domain: str, state: str, free: int) -> Member:
    record = peer_pb2.DomainRecord(domain=domain, labels={"zone": "a"}, capabilities=[
        peer_pb2.CapabilityInfo(name="x", capacity=2, available=free)])
    return Member(domain, f"127.0.0.1:{7100 + len(domain)}", state, 1, 0.0, record, 1)


async def test_feed_sends_the_map_when_a_member_changes(agent):
    agent.membership = _Membership([_member("alpha", "ALIVE", 0), _member("beta", "ALIVE", 2)])
    feed = make_app(agent)[FEED]
    listener = feed.listen()
    feed.check()
    assert listener.pending == {}
    agent.membership.list[1] = _member("beta", "ALIVE", 1)  # a free slot fewer, by gossip
    feed.check()
    html = (await listener.take(1.0))["members"]
    assert 'data-capability="x" data-free="1"' in html
    agent.membership.list[1] = _member("beta", "SUSPECT", 1)
    feed.check()
    assert 'data-domain="beta" data-state="SUSPECT"' in (await listener.take(1.0))["members"]
    feed.check()  # nothing new
    assert listener.pending == {}


async def test_a_loopback_console_answers_loopback_hosts_only(agent, client):
    for host in ("127.0.0.1:9201", "localhost:8080", "[::1]:9201", "localhost"):
        assert (await client.get("/workflows", headers={"Host": host})).status == 200, host
    for host in ("attacker.example:9201", "10.1.2.3:9201", "attacker.example"):
        refused = await client.get("/workflows", headers={"Host": host})
        assert refused.status == 421, host
        assert "listens on loopback" in await refused.text()
    async with TestClient(TestServer(make_app(agent, loopback=False), host="127.0.0.1")) as c:
        assert (await c.get("/workflows", headers={"Host": "console.example"})).status == 200
