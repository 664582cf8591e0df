"""The console's pages, fragments and event streams (aiohttp, Jinja2, server-sent events).

Pages are rendered on the server; htmx swaps in the fragments that the event streams
send or announce, and the workflow page's DAG is drawn by Cytoscape.js with the dagre
layout. Every asset is served from the package (static/): no CDN.

Reads need nothing (see loopback_hosts_only). Write actions (POST /workflows/ID/cancel)
are registered only with a WriteGate (writes.py), which admits a request by its console
token and this agent's `access` rules, exactly as the Client service admits a call; the
cancel button is drawn only then (`can_write`). See docs/console.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import fedorch.runtime.console.views as views
import fedorch.runtime.console.writes as writes
import jinja2
import markupsafe
from aiohttp import web
from aiohttp_sse import sse_response
from fedorch.core.identity.clients import Caller, ClientAuthError
from fedorch.core.identity.console_token import verify_token
from fedorch.runtime.console.feed import Feed, Listener
from fedorch.runtime.console.writes import WriteGate

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.console")
HERE = Path(__file__).parent
AGENT = web.AppKey("agent", object)
FEED = web.AppKey("feed", Feed)
CLOSING = web.AppKey("closing", asyncio.Event)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
# An event stream with nothing to say still writes a comment this often, so that a
# browser or proxy notices a dead connection.
SSE_PING_S = 15.0
STREAM_WAKE_S = 1.0  # how soon an open stream notices that the console is closing

# The write actions' gate; absent: the console registers no write route at all.
GATE = web.AppKey("gate", WriteGate)
# The agent's own Client service: a cancel is its Cancel, called in-process (writes.py).
CLIENT = web.AppKey("client", object)


def _when(ms: int) -> str:
    if not ms:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, loudly
    )
    env.filters["when"] = _when
    env.globals["states"] = views.WORKFLOW_STATES
    env.globals["terminal_states"] = views.TERMINAL_NAMES
    env.globals["static"] = _static_urls()
    return env


def _static_urls() -> Callable[[str], str]:
    """`static(name)`: the asset's URL with its content hash, so that browsers cache it
    and never keep an old one after an upgrade."""
    versions = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
                for p in (HERE / "static").iterdir() if p.is_file()}
    return lambda name: f"/static/{name}?v={versions[name]}"


def is_loopback(host: str) -> bool:
    """`host` (a name or an address, IPv6 with or without brackets) is this machine."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another host name: it may resolve anywhere
        return False


def _host_of(header: str) -> str:
    """The host part of a Host header (`name:port`, `[v6]:port`, or no port)."""
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rpartition(":")[0] if ":" in header else header


@web.middleware
async def loopback_hosts_only(request: web.Request, handler):
    """A console on loopback answers only requests addressed to a loopback name. A web
    page the operator visits could otherwise point its own host name at 127.0.0.1 (DNS
    rebinding) and read the console from the operator's browser."""
    if not is_loopback(_host_of(request.host or "")):
        raise web.HTTPMisdirectedRequest(
            text="this console listens on loopback: open it as http://127.0.0.1:PORT or "
                 "http://localhost:PORT (or set console_listen to the address you use)")
    return await handler(request)


def make_app(agent: AgentContext, gate: WriteGate | None = None, *,
             loopback: bool = True, client: object | None = None) -> web.Application:
    """The console. `gate`: write actions are served, each admitted by it (None: the
    console is read-only). `loopback`: it listens on a loopback address, so requests
    must name a loopback host too (see loopback_hosts_only). `client`: the agent's own
    Client service (its Cancel is the console's)."""
    app = web.Application(middlewares=[loopback_hosts_only] if loopback else [])
    templates = make_templates()
    app[AGENT] = agent
    app[TEMPLATES] = templates
    app[CLOSING] = asyncio.Event()
    app[FEED] = Feed(agent, lambda members: _render(
        templates, "_members.html", members=members, domain=agent.domain))
    app.add_routes([
        web.get("/", map_page, name="map"),
        web.get("/workflows", list_page, name="workflows"),
        web.get("/workflows/{id}", workflow_page, name="workflow"),
        web.get("/fragments/members", members_fragment),
        web.get("/fragments/workflows", list_fragment),
        web.get("/fragments/workflows/{id}", workflow_fragment),
        web.get("/api/workflows/{id}/graph", workflow_graph),
        web.get("/favicon.ico", no_icon),
        web.get("/events/federation", federation_events),
        web.get("/events/workflows/{id}", workflow_events),
        web.static("/static", HERE / "static"),
    ])
    if gate is not None:
        app[GATE] = gate
        if client is not None:
            app[CLIENT] = client
        app.add_routes([
            web.post("/workflows/{id}/cancel", cancel_action),
            web.post("/api/identity", identity_check),
        ])
    return app


def _render(templates: jinja2.Environment, name: str, **values) -> str:
    return templates.get_template(name).render(**values)


def _page(request: web.Request, name: str, **values) -> web.Response:
    agent = request.app[AGENT]
    html = _render(request.app[TEMPLATES], name, domain=agent.domain,
                   can_write=GATE in request.app, **values)
    return web.Response(text=html, content_type="text/html")


async def no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


# ---- the federation map ----------------------------------------------------------------

async def map_page(request: web.Request) -> web.Response:
    return _page(request, "map.html", page="map", members=views.members(request.app[AGENT]))


async def members_fragment(request: web.Request) -> web.Response:
    return _page(request, "_members.html", members=views.members(request.app[AGENT]))


# ---- the workflow list -------------------------------------------------------------------

def _filter(request: web.Request) -> views.ListFilter:
    try:
        return views.ListFilter.of(dict(request.query))
    except ValueError as e:
        raise web.HTTPBadRequest(text=str(e)) from None


async def list_page(request: web.Request) -> web.Response:
    wanted = _filter(request)
    found, total = await views.workflows(request.app[AGENT], wanted)
    return _page(request, "workflows.html", page="workflows", workflows=found, total=total, wanted=wanted)


async def list_fragment(request: web.Request) -> web.Response:
    found, total = await views.workflows(request.app[AGENT], _filter(request))
    return _page(request, "_workflows.html", workflows=found, total=total)


# ---- one workflow -------------------------------------------------------------------------

async def _view(request: web.Request) -> views.WorkflowView:
    agent = request.app[AGENT]
    workflow_id = request.match_info["id"]
    status = await views.status(agent, workflow_id)
    if status is None:
        raise web.HTTPNotFound(text=f"no workflow {workflow_id!r}")
    return await views.workflow_view(agent, status)


async def workflow_page(request: web.Request) -> web.Response:
    view = await _view(request)
    # Inside <script>: JSON with "<" escaped cannot close the element early.
    graph = markupsafe.Markup(json.dumps(view.graph()).replace("<", "\\u003c"))
    return _page(request, "workflow.html", page="workflows", w=view, graph=graph)


async def workflow_fragment(request: web.Request) -> web.Response:
    return _page(request, "_workflow.html", w=await _view(request))


async def workflow_graph(request: web.Request) -> web.Response:
    return web.json_response((await _view(request)).graph())


# ---- write actions ------------------------------------------------------------------------

def _refused(request: web.Request, action: str, e: web.HTTPException) -> web.HTTPException:
    code = "UNAUTHENTICATED" if e.status == 401 else "PERMISSION_DENIED"
    request.app[AGENT].metrics.client_refusals.labels(action, code).inc()
    log.warning("console %s refused (%d): %s", action, e.status, e.text)
    return e


async def cancel_action(request: web.Request) -> web.Response:
    """POST /workflows/ID/cancel, JSON body {"reason": optional text}: the workflow's
    status after the cancel as JSON, or 400/401/403/404 with {"error": why} (and on a
    node-engine agent 409 for an ended workflow, naming its end, 503 while no
    coordinator can take it: writes.http_error)."""
    workflow_id = request.match_info["id"]
    try:
        who = request.app[GATE].admit(request, "cancel", workflow_id)
    except (web.HTTPUnauthorized, web.HTTPForbidden) as e:
        raise _refused(request, "ConsoleCancel", e) from None
    reason = writes.check_cancel(workflow_id, await writes.read_json_body(request))
    status = await writes.cancel(request.app[AGENT], who, workflow_id, reason,
                                 request.app.get(CLIENT))
    view = await views.workflow_view(request.app[AGENT], status)
    return web.json_response({"id": view.id, "state": view.state,
                              "principal": who.principal})


async def identity_check(request: web.Request) -> web.Response:
    """POST /api/identity with a token: whom it names and what it allows here, so that
    the page can say who acts (401 when it does not verify). Changes nothing."""
    gate = request.app[GATE]
    gate.same_site(request)
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith(writes.BEARER):
        raise writes.unauthenticated("no console token (Authorization: Bearer TOKEN)")
    try:
        grant = verify_token(header[len(writes.BEARER):].strip(), gate.clients, gate.domain,
                             now_s=gate.clock())
    except ClientAuthError as e:
        raise writes.unauthenticated(e.reason) from None
    allowed = []
    for permission in sorted(grant.allow):
        try:
            gate.policy.authorize(Caller(grant.principal), permission)
            allowed.append(permission)
        except ClientAuthError:
            pass
    return web.json_response({"principal": grant.principal, "token_allows": sorted(grant.allow),
                              "allowed_here": allowed, "workflow": grant.workflow,
                              "expires_s": grant.expires_s})


# ---- event streams ------------------------------------------------------------------------

async def federation_events(request: web.Request) -> web.StreamResponse:
    """The map's and the list's stream: fed by the one Feed, never by a timer per page."""
    feed, closing = request.app[FEED], request.app[CLOSING]
    listener = feed.listen()
    try:
        async with sse_response(request) as stream:
            stream.ping_interval = SSE_PING_S
            # What changed between the page's render and this connection is not lost:
            # the stream starts with the current map and a nudge to re-read the list.
            await stream.send(feed.render_members(views.members(request.app[AGENT])),
                              event="members")
            await stream.send("connected", event="workflows")
            with contextlib.suppress(ConnectionResetError):  # the browser went away
                while not closing.is_set() and stream.is_connected():
                    for kind, data in (await listener.take(STREAM_WAKE_S)).items():
                        await stream.send(data, event=kind)
            return stream
    finally:
        feed.leave(listener)


async def workflow_events(request: web.Request) -> web.StreamResponse:
    """One workflow's stream: a new status fragment and graph at each change, woken by
    the agent's change notification for that workflow (or the coordinator's Watch)."""
    agent, closing = request.app[AGENT], request.app[CLOSING]
    templates = request.app[TEMPLATES]
    latest = Listener()

    async def pump() -> None:
        try:
            async for status in views.follow(agent, request.match_info["id"]):
                latest.put("status", status)
        except Exception:  # the page keeps its last status; the agent goes on
            log.exception("following %s for the console failed", request.match_info["id"])
        latest.put("end", None)

    # Owned by this handler: cancelled below however the stream ends.
    pumping = asyncio.create_task(pump(), name="console follow")
    try:
        async with sse_response(request) as stream:
            stream.ping_interval = SSE_PING_S
            with contextlib.suppress(ConnectionResetError):  # the browser went away
                await _send_statuses(stream, latest, agent, templates, closing,
                                     GATE in request.app)
            return stream
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping


async def _send_statuses(stream, latest: Listener, agent: AgentContext,
                         templates: jinja2.Environment, closing: asyncio.Event,
                         can_write: bool) -> None:
    """A graph and a status fragment for each new status; "ended" once there is no more."""
    ended = False
    while not ended and not closing.is_set() and stream.is_connected():
        got = await latest.take(STREAM_WAKE_S)
        if "status" in got:
            view = await views.workflow_view(agent, got["status"])
            await stream.send(json.dumps(view.graph()), event="graph")
            await stream.send(_render(templates, "_workflow.html", w=view,
                                      domain=agent.domain, can_write=can_write),
                              event="status")
        ended = "end" in got
    if ended:
        # The page keeps what it shows; this tells it not to reconnect and replay
        # the same last status again and again.
        await stream.send("ended", event="ended")
