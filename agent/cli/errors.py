"""Exit codes and the one-line error the CLI prints (ARCHITECTURE §6)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
import grpc

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and failed
EXIT_USAGE = 2  # bad usage or invalid input
EXIT_UNREACHABLE = 3  # agent unreachable
EXIT_DENIED = 4  # not authenticated or not allowed

# Status codes that mean "your input is wrong" rather than "it ran and failed".
_INPUT_CODES = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE}
)
# Status codes that mean "could not talk to the agent".
UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def one_line(text: str) -> str:
    """Collapse any whitespace run (newlines included) to one space."""
    return " ".join(str(text).split())


class CliError(click.ClickException):
    """An error that ends the command: one stderr line, a contract exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(one_line(message))
        self.exit_code = exit_code

    def show(self, file: object = None) -> None:
        click.echo(f"fedorch: error: {self.format_message()}", err=True)


def rpc_error(exc: grpc.RpcError, peer: str) -> CliError:
    """Map a failed RPC to a CliError with the contract's exit code."""
    code = exc.code() if hasattr(exc, "code") else None
    details = one_line(exc.details() or "") if hasattr(exc, "details") else ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return CliError(
            f"agent unreachable at {peer}: {details or 'unavailable'}", EXIT_UNREACHABLE
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(
            f"agent at {peer} did not answer in time (deadline exceeded)", EXIT_UNREACHABLE
        )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return CliError(f"not authenticated by {peer}: {details or 'no identity'}", EXIT_DENIED)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return CliError(f"not allowed by {peer}: {details or 'permission denied'}", EXIT_DENIED)
    name = code.name if code is not None else "UNKNOWN"
    message = f"{details} ({name})" if details else name
    if code in _INPUT_CODES:
        return CliError(message, EXIT_USAGE)
    return CliError(f"agent at {peer}: {message}", EXIT_FAILED)


@contextlib.contextmanager
def rpc_errors(peer: str) -> Iterator[None]:
    """Turn any grpc.RpcError raised in the block into a CliError."""
    try:
        yield
    except grpc.RpcError as exc:
        raise rpc_error(exc, peer) from exc
