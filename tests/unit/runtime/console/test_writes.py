"""The console's write gate over real HTTP on 127.0.0.1: who may cancel, and that every
refusal is a clear 400/401/403 that changes nothing. (An allowed cancel on real agents:
tests/integration/test_console_cancel.py.)"""

from __future__ import annotations

import time

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from fedorch.core.identity.clients import (
    AccessPolicy,
    AccessRule,
    Caller,
    ClientKeys,
    init_client_keys,
    load_identity,
)
from fedorch.core.identity.console_token import issue_token
from fedorch.gen.fedorch.v1 import client_pb2, spec_pb2, status_pb2
from fedorch.runtime.console.app import make_app
from fedorch.runtime.console.writes import WriteGate
from fedorch.runtime.interceptors import CURRENT_CALLER

from tests.unit.runtime.console.given_view import GivenView

WID = "alpha.w1"


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clients")
    return {name: load_identity(init_client_keys(name, folder)[0])
            for name in ("alice", "bob", "mallory")}


def _gate(people, *, open_access: bool = False) -> WriteGate:
    known = ClientKeys({n: people[n].key.public_key() for n in ("alice", "bob")})
    policy = AccessPolicy([AccessRule(frozenset({"alice"}), frozenset({"read", "cancel"})),
                           AccessRule(frozenset({"bob"}), frozenset({"read"}))],
                          open_access=open_access)
    return WriteGate("alpha", known, policy, time.time)


def _token(identity, domain: str = "alpha", **kwargs) -> str:
    return issue_token(identity, domain, ["cancel"], now_s=time.time(), nonce=bytes(16),
                       **kwargs)


async def _save(agent, state: str = "RUNNING") -> None:
    spec = spec_pb2.WorkflowSpec(name="demo", steps=[spec_pb2.StepSpec(id="a", capability="x")])
    if not isinstance(agent.node_view, GivenView):
        agent.node_view = GivenView()
    agent.node_view.show(WID, spec, state, placement={"a": "alpha"},
                         steps={"a": ("RUNNING", 1, {})})


@pytest.fixture
async def client(agent, people):
    async with TestClient(TestServer(make_app(agent, _gate(people)), host="127.0.0.1")) as c:
        yield c


def _post(client, token: str = "", **headers: str):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(f"/workflows/{WID}/cancel", json={"reason": "test"}, headers=headers)


async def _unchanged(agent) -> None:
    assert (await agent.node_view.read(WID)).state == status_pb2.WORKFLOW_STATE_RUNNING
    assert await agent.store.audit_records(WID) == []


async def test_refusals_say_why_and_change_nothing(agent, client, people):
    await _save(agent)
    alice, bob, mallory = people["alice"], people["bob"], people["mallory"]
    cases = [
        ({}, 401, "no client identity"),
        ({"token": _token(bob)}, 403, "principal 'bob' is not allowed 'cancel'"),
        ({"token": _token(mallory)}, 401, "unknown client 'mallory'"),
        ({"token": _token(alice, "beta")}, 401, "another console"),
        ({"token": _token(alice, workflow="alpha.other")}, 403, "does not carry 'cancel' on"),
        ({"token": _token(alice), "Origin": "http://evil.example"}, 403, "cross-origin"),
        ({"token": _token(alice), "Sec-Fetch-Site": "cross-site"}, 403, "cross-site"),
        ({"token": "garbage"}, 401, "malformed"),
    ]
    for args, status, message in cases:
        reply = await _post(client, **args)
        assert reply.status == status, (args, await reply.text())
        assert message in (await reply.json())["error"], (args, await reply.text())
    assert (await _post(client)).headers["WWW-Authenticate"].startswith("Bearer")
    # Authorised, but a form post (what another site could send) is not taken.
    form = await client.post(f"/workflows/{WID}/cancel", data={"reason": "x"},
                             headers={"Authorization": f"Bearer {_token(alice)}"})
    assert form.status == 400 and "application/json" in (await form.json())["error"]
    bad_id = await client.post("/workflows/no%20such/cancel", json={},
                               headers={"Authorization": f"Bearer {_token(alice)}"})
    assert bad_id.status == 400
    # No state change on GET.
    assert (await client.get(f"/workflows/{WID}/cancel")).status == 405
    await _unchanged(agent)


async def test_identity_check_names_what_the_token_may_do_here(client, people):
    def ask(token: str):
        return client.post("/api/identity", headers={"Authorization": f"Bearer {token}"})

    alice = await (await ask(_token(people["alice"]))).json()
    assert alice["principal"] == "alice" and alice["allowed_here"] == ["cancel"]
    bob = await (await ask(_token(people["bob"]))).json()
    assert bob["token_allows"] == ["cancel"] and bob["allowed_here"] == []
    assert (await ask(_token(people["mallory"]))).status == 401


async def test_cancel_button_only_where_writes_are_served(agent, client):
    await _save(agent)
    html = await (await client.get(f"/workflows/{WID}")).text()
    assert 'id="cancel-workflow"' in html and "writes.js" in html and "read-only" not in html
    async with TestClient(TestServer(make_app(agent), host="127.0.0.1")) as plain:
        html = await (await plain.get(f"/workflows/{WID}")).text()
        assert 'id="cancel-workflow"' not in html and "read-only" in html
        assert (await plain.post(f"/workflows/{WID}/cancel", json={})).status in (404, 405)
    await _save(agent, "SUCCEEDED")
    html = await (await client.get(f"/workflows/{WID}")).text()
    assert 'id="cancel-workflow"' not in html  # nothing left to cancel


def _request(headers: dict[str, str]):
    return make_mocked_request("POST", f"/workflows/{WID}/cancel",
                               headers={"Host": "127.0.0.1:9", **headers})


def test_open_access_admits_the_consoles_own_page_only(people):
    gate = _gate(people, open_access=True)
    admitted = gate.admit(_request({"Origin": "http://127.0.0.1:9"}), "cancel", WID)
    assert admitted.caller is None and admitted.principal == ""
    with pytest.raises(web.HTTPForbidden) as refused:
        gate.admit(_request({}), "cancel", WID)  # no browser said it came from the page
    assert "Origin" in refused.value.text
    for origin in ("http://evil.example", "null", "http://127.0.0.1:10"):
        with pytest.raises(web.HTTPForbidden):
            gate.admit(_request({"Origin": origin}), "cancel", WID)
    # The page's scheme may differ (a proxy that ends TLS): host and port decide.
    assert gate.admit(_request({"Origin": "https://127.0.0.1:9"}), "cancel", WID).caller is None
    # A valid token still names who acts (and is audited so).
    named = gate.admit(_request({"Authorization": f"Bearer {_token(people['alice'])}"}),
                       "cancel", WID)
    assert named.principal == "alice"


class _NodeClientService:
    """The Cancel of the agent's Client service, as the console sees it: it
    answers as told and keeps what each call saw (caller, peer, request)."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, str, object]] = []
        self.answer: tuple[grpc.StatusCode, str] | None = None

    async def Cancel(self, request, context):
        self.calls.append((CURRENT_CALLER.get(), context.peer(), request))
        if self.answer is not None:
            await context.abort(*self.answer)
        status = status_pb2.WorkflowStatus(id=request.id, coordinator="alpha",
                                           state=status_pb2.WORKFLOW_STATE_CANCELLED)
        return client_pb2.CancelReply(status=status)


@pytest.fixture
async def node_client(agent, people):
    service = _NodeClientService()
    app = make_app(agent, _gate(people), client=service)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        c.service = service
        yield c


async def test_a_cancel_is_the_client_services_with_the_admitted_caller(
        agent, node_client, people):
    """The console's cancel is the agent's Client service's Cancel, called as a call from
    the admitted principal (which it audits and forwards for); the caller it saw is not
    left behind, and the console itself changes nothing."""
    await _save(agent)
    reply = await _post(node_client, _token(people["alice"]))
    assert reply.status == 200, await reply.text()
    assert await reply.json() == {"id": WID, "state": "CANCELLED", "principal": "alice"}
    [(caller, peer, request)] = node_client.service.calls
    assert caller == Caller("alice") and peer == "console"
    assert (request.id, request.reason, request.local_only) == (WID, "test", False)
    assert CURRENT_CALLER.get() is None
    await _unchanged(agent)
    # Refused before the call: the gate still decides who may cancel.
    assert (await _post(node_client, _token(people["bob"]))).status == 403
    assert len(node_client.service.calls) == 1


@pytest.mark.parametrize(("code", "http"), [
    (grpc.StatusCode.NOT_FOUND, 404),
    (grpc.StatusCode.FAILED_PRECONDITION, 409),
    (grpc.StatusCode.UNAVAILABLE, 503),
    (grpc.StatusCode.PERMISSION_DENIED, 403),
    (grpc.StatusCode.INVALID_ARGUMENT, 400),
    (grpc.StatusCode.INTERNAL, 502),
])
async def test_a_cancels_refusal_is_an_http_error_saying_why(
        node_client, people, code, http):
    why = f"{WID} already ended SUCCEEDED: nothing to cancel"
    node_client.service.answer = (code, why)
    reply = await _post(node_client, _token(people["alice"]))
    assert reply.status == http, await reply.text()
    assert why in (await reply.json())["error"]
    assert CURRENT_CALLER.get() is None
