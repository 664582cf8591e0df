"""Server interceptor: undecodable request bytes become INVALID_ARGUMENT.

Left alone, grpc reports a request that fails to parse as UNKNOWN with a
Python exception in its details. We wrap each handler's deserializer so that
bad bytes reach the handler as a marker, and answer with a clear error; the
agent keeps serving either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


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
        return handler
