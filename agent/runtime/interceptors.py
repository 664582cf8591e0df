"""Server interceptors: client authentication, and undecodable requests.

ClientAuthInterceptor authenticates and authorises every Client-service call
(UNAUTHENTICATED / PERMISSION_DENIED, before the handler runs, so nothing changes).
MalformedRequestInterceptor: undecodable request bytes become INVALID_ARGUMENT.

Left alone, grpc reports a request that fails to parse as UNKNOWN with a
Python exception in its details. We wrap each handler's deserializer so that
bad bytes reach the handler as a marker, and answer with a clear error; the
agent keeps serving either way.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from fedorch.core.identity.clients import (
    METHOD_PERMISSIONS,
    AccessPolicy,
    AccessRule,
    Caller,
    ClientAuthError,
    ClientKeys,
    verify_call,
)
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.tls import peer_domain
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import peer_pb2

log = logging.getLogger("fedorch.auth")


@dataclass(frozen=True)
class _Undecodable:
    error: str


def _safe(deserializer):
    if deserializer is None:
        return None

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception as e:  # DecodeError and friends: any bytes may arrive
            return _Undecodable(f"{type(e).__name__}: {e}")

    return parse


def _guard_unary(behavior):
    async def handler(request, context):
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"malformed request: {request.error}")
        return await behavior(request, context)

    return handler


def _guard_stream(behavior):
    async def handler(request, context):
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"malformed request: {request.error}")
        async for item in behavior(request, context):
            yield item

    return handler


def _guard_requests(behavior):
    """A bidirectional stream (the Peer service's NodeTurns): undecodable bytes anywhere
    in it end the stream with INVALID_ARGUMENT."""

    async def handler(requests, context):
        async def parsed():
            async for request in requests:
                if isinstance(request, _Undecodable):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                        f"malformed request: {request.error}")
                yield request

        async for item in behavior(parsed(), context):
            yield item

    return handler


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _guard_unary(handler.unary_unary),
                request_deserializer=_safe(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _guard_stream(handler.unary_stream),
                request_deserializer=_safe(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _guard_requests(handler.stream_stream),
                request_deserializer=_safe(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        return handler


# ---- client authentication -------------------------------------------------------------

CLIENT_SERVICE_PREFIX = "/fedorch.v1.Client/"
# The verified caller of the Client call being served (None: unsigned, in open mode).
# The Client service reads it to forward a call on that caller's behalf.
CURRENT_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "fedorch_client_caller", default=None)


class ClientAuth:
    """Authenticates and authorises each Client call (see core/identity/clients.py)."""

    def __init__(self, clients: ClientKeys, trust: TrustStore, policy: AccessPolicy,
                 replay_window_ms: int, clock: Callable[[], float] = time.time) -> None:
        self.clients = clients
        self.trust = trust
        self.policy = policy
        self.guard = ReplayGuard(replay_window_ms)
        self.clock = clock
        # Told of each refusal (method name, gRPC code name): the daemon counts them in
        # fedorch_client_refusals_total{method,code}.
        self.on_refused: Callable[[str, str], None] = lambda method, code: None

    def check(self, method: str, metadata, request: bytes) -> Caller | None:
        """The caller, if allowed `method`; ClientAuthError otherwise (changes nothing)."""
        permission = METHOD_PERMISSIONS.get(method)
        if permission is None:  # a method added to the service without a rule: refuse
            raise ClientAuthError(f"no permission is defined for {method}",
                                  unauthenticated=False)
        try:
            caller = verify_call(list(metadata or ()), method, request, clients=self.clients,
                                 trust=self.trust, guard=self.guard,
                                 now_ms=int(self.clock() * 1000))
        except ClientAuthError:
            if not self.policy.open:
                raise
            caller = None  # open mode: a bad signature earns nothing, but costs nothing
        self.policy.authorize(caller, permission)
        return caller


@dataclass(frozen=True)
class _Received:
    raw: bytes
    parsed: object


def _keep_bytes(deserializer):
    def parse(data: bytes):
        return _Received(bytes(data), deserializer(data) if deserializer else data)

    return parse


async def _admit(auth: ClientAuth, method: str, received: _Received, context) -> None:
    try:
        caller = auth.check(method, context.invocation_metadata(), received.raw)
    except ClientAuthError as e:
        log.warning("client call %s from %s refused: %s", method, context.peer(), e.reason)
        code = (grpc.StatusCode.UNAUTHENTICATED if e.unauthenticated
                else grpc.StatusCode.PERMISSION_DENIED)
        auth.on_refused(method.rsplit("/", 1)[-1], code.name)
        await context.abort(code, e.reason)
    CURRENT_CALLER.set(caller)


class ClientAuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks every Client-service call before its handler runs, over the request bytes
    exactly as received. Put it before MalformedRequestInterceptor: a caller that is not
    allowed learns nothing, not even whether its request parsed."""

    def __init__(self, auth: ClientAuth) -> None:
        self.auth = auth

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        path = handler_call_details.method
        if handler is None or not path.startswith(CLIENT_SERVICE_PREFIX):
            return handler
        method = path.removeprefix(CLIENT_SERVICE_PREFIX)
        auth = self.auth
        if handler.unary_unary is not None:
            behavior = handler.unary_unary

            async def unary(received: _Received, context):
                await _admit(auth, method, received, context)
                return await behavior(received.parsed, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=_keep_bytes(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def streaming(received: _Received, context):
                await _admit(auth, method, received, context)
                async for item in stream(received.parsed, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                streaming, request_deserializer=_keep_bytes(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:  # SubmitStream
            requests_stream = handler.stream_stream

            async def bidi(request_iterator, context):
                # Admitted once, at the call's opening, by its signature over no request
                # bytes (client_calls.py); each submission's signed spec binds it to
                # its principal (client_service.py `_signed_spec`).
                await _admit(auth, method, _Received(b"", None), context)
                async for item in requests_stream(request_iterator, context):
                    yield item

            return grpc.stream_stream_rpc_method_handler(
                bidi, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler


def is_loopback_listen(listen: str) -> bool:
    """True when `listen` binds a loopback address only (127.0.0.0/8, ::1, localhost)."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_auth_from_config(config, trust: TrustStore,
                            clock: Callable[[], float] = time.time) -> ClientAuth:
    """The agent's ClientAuth. With no `clients:` and a loopback `listen` the client API is
    open (development and `fedorch demo`); anywhere else unsigned calls are refused."""
    clients = ClientKeys.from_files(config.clients.key_files)
    rules = [AccessRule(frozenset(r.principals), frozenset(r.allow)) for r in config.access]
    open_access = not config.clients.key_files and is_loopback_listen(config.listen)
    if open_access:
        log.warning("no clients configured and listening on loopback: the client API is "
                    "open to every local caller (development mode; see docs/security.md)")
    elif not config.clients.key_files:
        log.warning("no clients configured: every client call is refused, except calls "
                    "other agents forward (see docs/security.md)")
    return ClientAuth(clients, trust, AccessPolicy(rules, open_access=open_access),
                      int(config.negotiation.replay_window_s * 1000), clock)


# ---- TLS identity of peers -------------------------------------------------------------

PEER_SERVICE_PREFIX = "/fedorch.v1.Peer/"
_TLS_CACHE_SIZE = 1024


class PeerTlsInterceptor(grpc.aio.ServerInterceptor):
    """With mutual TLS: a peer message must come over a connection whose certificate is
    its sender's (certified by that domain's own trusted key, or issued for it by the
    federation CA); anything else is refused
    with UNAUTHENTICATED before the handler runs. Bytes that do not parse as an envelope
    pass on, to be refused by the handler as before."""

    def __init__(self, trust: TrustStore,
                 name_peer: Callable[[bytes, TrustStore], str | None] = peer_domain) -> None:
        self.trust = trust
        # Which domain a certificate speaks for: certified by its domain key (default),
        # or issued by the federation CA (AgentTls.peer_domain says which applies).
        self._name_peer = name_peer
        self._domains: dict[bytes, str | None] = {}  # certificate PEM -> domain

    def forget(self) -> None:
        """Trust changed: certificates are named again against the new store."""
        self._domains.clear()

    def tls_domain(self, context) -> str | None:
        pems = (context.auth_context() or {}).get("x509_pem_cert") or [b""]
        pem = bytes(pems[0])
        if pem not in self._domains:
            if len(self._domains) >= _TLS_CACHE_SIZE:
                self._domains.clear()
            self._domains[pem] = self._name_peer(pem, self.trust) if pem else None
        return self._domains[pem]

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(PEER_SERVICE_PREFIX):
            return handler
        check = self
        if handler.stream_stream is not None:  # NodeTurns: every envelope of the stream
            stream = handler.stream_stream

            async def streaming(requests, context):
                async def checked():
                    async for received in requests:
                        await check._check_sender(received, context)
                        yield received.parsed

                async for item in stream(checked(), context):
                    yield item

            return grpc.stream_stream_rpc_method_handler(
                streaming, request_deserializer=_keep_bytes(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        if handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary

        async def unary(received: _Received, context):
            await check._check_sender(received, context)
            return await behavior(received.parsed, context)

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=_keep_bytes(handler.request_deserializer),
            response_serializer=handler.response_serializer)

    async def _check_sender(self, received: _Received, context) -> None:
        sender = _claimed_sender(received.raw)
        if sender is not None:
            domain = self.tls_domain(context)
            if domain != sender:
                log.warning("peer message from %s claims %r over a TLS connection of %r",
                            context.peer(), sender, domain)
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"TLS identity {domain or 'unknown'!r} is not the sender {sender!r}")


def _claimed_sender(raw: bytes) -> str | None:
    try:
        envelope = peer_pb2.Envelope.FromString(raw)
        return peer_pb2.Body.FromString(envelope.body).sender
    except Exception:  # not an envelope: the handler refuses it
        return None
