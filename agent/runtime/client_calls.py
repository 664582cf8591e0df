"""Signed calls to the Client service: a drop-in for the generated `ClientStub`.

The request is serialized here, once, and those exact bytes are both hashed into the
call's signature and sent (the stub's serializer is the identity), so the agent verifies
the signature over the bytes as received. Without a signer the calls go unsigned, which
an agent in open (loopback development) mode accepts and any other agent refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from fedorch.core.identity.clients import sign_call
from fedorch.core.identity.envelope import new_nonce
from fedorch.gen.fedorch.v1 import client_pb2
from google.protobuf.message_factory import GetMessageClass

SERVICE = client_pb2.DESCRIPTOR.services_by_name["Client"]


class SignedClientStub:
    """`stub.Submit(request, timeout=...)` etc., each call signed by `principal`.

    `sign` signs bytes with the principal's key; `on_behalf` names the principal a
    forwarding domain acts for. `clock` gives the wall-clock time in seconds."""

    def __init__(self, channel: grpc.aio.Channel, principal: str = "",
                 sign: Callable[[bytes], bytes] | None = None, *, on_behalf: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self._principal = principal
        self._sign = sign
        self._on_behalf = on_behalf
        self._clock = clock
        self._calls: dict[str, Any] = {}
        self._streaming: set[str] = set()  # client-streaming methods
        for method in SERVICE.methods:
            path = f"/{SERVICE.full_name}/{method.name}"
            reply = GetMessageClass(method.output_type).FromString
            if method.client_streaming:  # SubmitStream: each request serialized as sent
                self._calls[method.name] = channel.stream_stream(
                    path, request_serializer=GetMessageClass(
                        method.input_type).SerializeToString,
                    response_deserializer=reply)
                self._streaming.add(method.name)
                continue
            make = channel.unary_stream if method.server_streaming else channel.unary_unary
            # No request serializer: the request goes out as the bytes we signed.
            self._calls[method.name] = make(path, request_serializer=None,
                                            response_deserializer=reply)

    def metadata(self, method: str, request: bytes) -> list[tuple[str, str | bytes]]:
        if self._sign is None or not self._principal:
            return []
        return sign_call(self._principal, self._sign, method, request,
                         now_ms=int(self._clock() * 1000), nonce=new_nonce(),
                         on_behalf=self._on_behalf)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        calls = self.__dict__.get("_calls", {})
        if method not in calls:
            raise AttributeError(method)
        multicallable = calls[method]

        if method in self.__dict__.get("_streaming", ()):
            def streaming(requests, *, timeout: float, metadata=(), **kwargs):
                # A client stream's call is signed over no request bytes (its requests
                # are not known when it opens): the signature proves the caller and the
                # time; each request carries its own proof (a signed spec).
                signed = self.metadata(method, b"")
                return multicallable(requests, timeout=timeout,
                                     metadata=[*signed, *metadata], **kwargs)

            return streaming

        def call(request, *, timeout: float, metadata=(), **kwargs):
            data = request.SerializeToString()
            signed = self.metadata(method, data)
            return multicallable(data, timeout=timeout, metadata=[*signed, *metadata], **kwargs)

        return call
