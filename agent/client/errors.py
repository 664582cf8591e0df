"""The exceptions the Python client raises: one type per thing a caller can act on.

Every one carries the gRPC status code the agent answered with (``code``; None when the
client found the problem itself, e.g. a spec that fails its checks before it is sent)
and a one-line message. They are never raw ``grpc.RpcError``s, so that callers need not
import grpc to tell "the agent is down" from "no such workflow".
"""

from __future__ import annotations

import grpc


class FedorchError(Exception):
    """Base of every client error: ``code`` (grpc.StatusCode or None) and ``message``."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        self.message = " ".join(str(message).split())
        self.code = code
        super().__init__(self.message)


class Unreachable(FedorchError):
    """The agent did not answer: down, wrong address, or past the call's deadline."""


class InvalidSpec(FedorchError):
    """The spec (or another argument) is invalid; the message names the field and the fix."""


class NotFound(FedorchError):
    """No such workflow at the agent asked (nor at its coordinator)."""


class NotAllowed(FedorchError):
    """The agent refused who the caller is, or what it asked for."""


class OperationFailed(FedorchError):
    """The agent took the request and could not carry it out."""


class WaitTimedOut(FedorchError, TimeoutError):
    """A wait for a workflow's end ran out of time; the workflow goes on. ``last`` is
    the last status seen (or None)."""

    def __init__(self, message: str, last: object = None) -> None:
        super().__init__(message)
        self.last = last


_BY_CODE: dict[grpc.StatusCode, type[FedorchError]] = {
    grpc.StatusCode.UNAVAILABLE: Unreachable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unreachable,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidSpec,
    grpc.StatusCode.OUT_OF_RANGE: InvalidSpec,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.PERMISSION_DENIED: NotAllowed,
    grpc.StatusCode.UNAUTHENTICATED: NotAllowed,
}

_REFUSED_BY = {grpc.StatusCode.UNAUTHENTICATED: "not authenticated by",
               grpc.StatusCode.PERMISSION_DENIED: "not allowed by"}


def from_rpc_error(exc: grpc.RpcError, peer: str) -> FedorchError:
    """The typed error for a failed call to the agent at ``peer``."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else ""
    return from_code(code, details, peer)


def from_code(code: grpc.StatusCode | None, details: str | None, peer: str) -> FedorchError:
    """The typed error for a refusal with this code and message (a failed call, or one
    submission of a stream refused alone)."""
    details = " ".join((details or "").split())
    kind = _BY_CODE.get(code, OperationFailed) if code is not None else OperationFailed
    if code == grpc.StatusCode.UNAVAILABLE:
        message = f"agent unreachable at {peer}: {details or 'unavailable'}"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"agent at {peer} did not answer in time (deadline exceeded)"
    elif code in _REFUSED_BY:
        # As the CLI says it: who refused, then the agent's line (the principal and the
        # permission it lacks, or what was missing).
        reason = f"{details} ({code.name})" if details else code.name
        message = f"{_REFUSED_BY[code]} {peer}: {reason}"
    else:
        name = code.name if code is not None else "UNKNOWN"
        message = f"{details} ({name})" if details else f"agent at {peer}: {name}"
    return kind(message, code)


__all__ = [
    "FedorchError",
    "InvalidSpec",
    "NotAllowed",
    "NotFound",
    "OperationFailed",
    "Unreachable",
    "WaitTimedOut",
    "from_code",
    "from_rpc_error",
]
