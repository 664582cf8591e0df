"""The console's write actions (cancel), behind the same client identities as the CLI.

A write request proves its principal with a console token (agent/core/identity/
console_token.py) in `Authorization: Bearer`, and is then authorised by this agent's
`access` rules exactly as a Client-service call of the same permission is
(AccessPolicy.authorize): the token narrows what its principal may do here, never widens
it. With open access (no `clients:` and a loopback `listen`, where the Client service
takes unsigned calls) an untokened write is allowed too, as `fedorch cancel` is.

Cross-site requests are refused before anything else: writes are POST only, with a JSON
body (a cross-site form cannot send one without a CORS preflight, which the console never
answers), and a request whose `Origin` or `Sec-Fetch-Site` says another site sent it is
refused with 403. Every refusal changes nothing; an allowed cancel is audited with its
principal, as a CLI cancel is.

An admitted cancel is the agent's own Client service's
Cancel (node_engine/cancels.py), called in-process (`ClientCall`) with the admitted
caller as the verified one: it goes where `fedorch cancel` goes (the coordinator of the
workflow's current epoch, a successor after a takeover), is audited there as a CLI cancel
is (peer "console"), and is refused as it refuses one. Its gRPC refusals become HTTP
statuses (`http_error`): unknown 404, ended 409 naming the end, no coordinator to take it
503 (cancel again), not allowed 403.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from aiohttp import web
from fedorch.core.identity.authority import InvalidWorkflowId, check_workflow_id
from fedorch.core.identity.clients import (
    AccessPolicy,
    Caller,
    ClientAuthError,
    ClientKeys,
)
from fedorch.core.identity.console_token import ConsoleGrant, verify_token
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2
from fedorch.runtime.interceptors import CURRENT_CALLER

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.console")
FORWARD_TIMEOUT_S = 5.0
MAX_REASON_CHARS = 500
MAX_BODY_BYTES = 4096
BEARER = "bearer "
# Sec-Fetch-Site values of a request the console's own page (or a typed URL) made.
SAME_SITE_FETCH = frozenset({"same-origin", "none"})


def _json_error(status: type[web.HTTPException], message: str, **headers: str):
    return status(text=json.dumps({"error": message}), content_type="application/json",
                  headers=headers or None)


def unauthenticated(message: str) -> web.HTTPUnauthorized:
    return _json_error(web.HTTPUnauthorized, message,
                       **{"WWW-Authenticate": 'Bearer realm="fedorch-console"'})


def forbidden(message: str) -> web.HTTPForbidden:
    return _json_error(web.HTTPForbidden, message)


def bad_request(message: str) -> web.HTTPBadRequest:
    return _json_error(web.HTTPBadRequest, message)


@dataclass(frozen=True)
class Admitted:
    """Who a write request comes from: `caller` None only with open access and no token."""

    caller: Caller | None
    grant: ConsoleGrant | None

    @property
    def principal(self) -> str:
        return self.caller.principal if self.caller is not None else ""


class WriteGate:
    """Decides whether a console request may write. `clients` and `policy` are the ones
    the agent's Client service checks calls with; `clock` gives wall-clock seconds."""

    def __init__(self, domain: str, clients: ClientKeys, policy: AccessPolicy,
                 clock: Callable[[], float]) -> None:
        self.domain = domain
        self.clients = clients
        self.policy = policy
        self.clock = clock

    @property
    def open(self) -> bool:
        return self.policy.open

    def same_site(self, request: web.Request) -> None:
        """403 unless the request comes from the console's own pages (or no browser)."""
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site not in SAME_SITE_FETCH:
            raise forbidden(f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:40]})")
        origin = request.headers.get("Origin")
        # Host and port only: a reverse proxy that ends TLS in front of the console makes
        # the page's scheme differ from the one the console sees.
        if origin is not None and urllib.parse.urlsplit(origin).netloc != request.host:
            raise forbidden(f"cross-origin request refused (Origin: {origin[:100]})")

    def admit(self, request: web.Request, permission: str, workflow_id: str = "") -> Admitted:
        """The request's identity, if it may do `permission` (on `workflow_id`) here;
        401 (no or bad token) or 403 (not allowed, or cross-site) otherwise."""
        self.same_site(request)
        header = request.headers.get("Authorization", "")
        if not header:
            if self.open:
                if request.headers.get("Origin") is None:
                    # Open access has no identity to check, so the browser's own word that
                    # the console's page sent it is the whole guard: it must give one.
                    raise forbidden("an untokened write needs the Origin header of the "
                                    "console's own page")
                return Admitted(None, None)
            raise unauthenticated(
                f"no client identity: '{permission}' needs a console token; make one with "
                f"`fedorch console token --identity FILE --domain {self.domain}` and give it "
                "to the console")
        if not header.lower().startswith(BEARER):
            raise unauthenticated("the Authorization header must be 'Bearer TOKEN'")
        try:
            grant = verify_token(header[len(BEARER):].strip(), self.clients, self.domain,
                                 now_s=self.clock())
        except ClientAuthError as e:
            if self.open:  # as for a call: a bad signature earns nothing, costs nothing
                return Admitted(None, None)
            raise unauthenticated(e.reason) from None
        if not grant.permits(permission, workflow_id):
            what = f" on {workflow_id}" if grant.workflow else ""
            raise forbidden(f"this token does not carry '{permission}'{what} (it allows "
                            f"{', '.join(sorted(grant.allow))}"
                            f"{' on ' + grant.workflow if grant.workflow else ''})")
        caller = Caller(grant.principal)
        try:
            self.policy.authorize(caller, permission)
        except ClientAuthError as e:
            raise forbidden(e.reason) from None
        return Admitted(caller, grant)


async def read_json_body(request: web.Request) -> dict:
    """The request's JSON object body (400 otherwise): only a page of the console's own,
    or a client that means it, sends application/json."""
    if request.content_type != "application/json":
        raise bad_request("send the request as application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise bad_request(f"request body over {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise bad_request(f"request body over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def check_cancel(workflow_id: str, body: dict) -> str:
    """The cancel's reason, once the id and the body are valid (400 otherwise)."""
    try:
        check_workflow_id(workflow_id)
    except InvalidWorkflowId as e:
        raise bad_request(str(e)) from None
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise bad_request(f"reason must be text of at most {MAX_REASON_CHARS} characters")
    return reason.strip()


async def cancel(agent: AgentContext, who: Admitted, workflow_id: str, reason: str,
                 client: object | None = None) -> status_pb2.WorkflowStatus:
    """Cancel as the Client service's Cancel does: `client`, the agent's own Client
    service, routes and takes the cancel (see the module doc)."""
    if client is None:  # a console built without the agent's Client service
        raise _json_error(web.HTTPServiceUnavailable, "this console cannot cancel")
    reason = reason or f"by request (console, {who.principal or 'anonymous'})"
    request = client_pb2.CancelRequest(id=workflow_id, reason=reason)
    reply = await ClientCall(who.caller).run(client.Cancel, request)
    log.info("%s cancelled from the console by %s", workflow_id,
             who.principal or "anonymous")
    return reply.status


def http_error(code: grpc.StatusCode, detail: str) -> web.HTTPException:
    """The HTTP answer to a Client-service refusal, {"error": detail}: the same cases the
    CLI tells apart by exit code."""
    status = _HTTP_OF_GRPC.get(code)
    if status is None:
        return _json_error(web.HTTPBadGateway, f"{detail} ({code.name})")
    return _json_error(status, detail)


_HTTP_OF_GRPC: dict[grpc.StatusCode, type[web.HTTPException]] = {
    grpc.StatusCode.NOT_FOUND: web.HTTPNotFound,
    grpc.StatusCode.PERMISSION_DENIED: web.HTTPForbidden,
    grpc.StatusCode.UNAUTHENTICATED: web.HTTPForbidden,
    grpc.StatusCode.INVALID_ARGUMENT: web.HTTPBadRequest,
    # An ended workflow (its end named), or another end already told: nothing changed.
    grpc.StatusCode.FAILED_PRECONDITION: web.HTTPConflict,
    # No coordinator could take it yet (a takeover under way): cancel again by id.
    grpc.StatusCode.UNAVAILABLE: web.HTTPServiceUnavailable,
}


class CallAborted(Exception):
    """What a Client-service handler called in-process ended with (context.abort)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class ClientCall:
    """One Client-service call made in-process for the console: the handler runs as it
    does for a gRPC call the interceptor admitted with `caller` (None: unsigned, in open
    mode), which it reads to audit the call and to sign what it forwards on the caller's
    behalf. Its aborts become HTTP errors (http_error)."""

    def __init__(self, caller: Caller | None) -> None:
        self.caller = caller

    async def run(self, handler, request):
        token = CURRENT_CALLER.set(self.caller)
        try:
            return await handler(request, self)
        except CallAborted as e:
            raise http_error(e.code, e.details) from None
        finally:
            CURRENT_CALLER.reset(token)

    # ---- the part of grpc.aio.ServicerContext the Client service's handlers use ----

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata=()):
        raise CallAborted(code, details)

    def peer(self) -> str:
        return "console"

    def invocation_metadata(self) -> tuple:
        return ()
