"""Shared CLI plumbing: settings on the click context, the --peer and --identity options,
running async."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from fedorch.cli.client import DEFAULT_PEER, AgentClient, parse_peer
from fedorch.cli.errors import EXIT_USAGE, CliError
from fedorch.cli.settings import Settings
from rich.console import Console

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def settings() -> Settings:
    ctx = click.get_current_context()
    found = ctx.find_object(Settings)
    return found if found is not None else Settings()


def client_for(peer: str) -> AgentClient:
    current = settings()
    return AgentClient(peer, current.rpc_timeout, current.identity, current.agent_key)


def _load_identity(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Load --identity (or $FEDORCH_IDENTITY) into the settings; a bad file is bad usage."""
    if not value:
        return
    from fedorch.core.identity.clients import load_identity
    from fedorch.core.identity.keys import KeyFileError

    try:
        identity = load_identity(value)
    except KeyFileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    found = ctx.find_object(Settings)
    if found is None:
        found = ctx.ensure_object(Settings)
    found.identity = identity


def _check_agent_key(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if not value:
        return
    from pathlib import Path

    from fedorch.core.identity.federation_ca import CaError, load_ca
    from fedorch.core.identity.keys import KeyFileError, load_public_key_file

    try:
        data = Path(value).read_bytes() if Path(value).is_file() else b""
        if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
            load_ca(None, data)  # the federation CA: accepts the certificates it issued
        else:
            load_public_key_file(value)
    except (KeyFileError, OSError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except CaError as exc:
        raise CliError(f"{value}: {exc}", EXIT_USAGE) from None
    found = ctx.find_object(Settings)
    if found is None:
        found = ctx.ensure_object(Settings)
    found.agent_key = value


def identity_option(func: F) -> F:
    func = click.option(
        "--agent-key",
        envvar="FEDORCH_AGENT_KEY",
        metavar="FILE",
        expose_value=False,
        callback=_check_agent_key,
        help="The agent's domain key (.pub), or the federation CA's certificate: talk "
             "mutual TLS and accept only a certificate that key certified (or that CA "
             "issued) (env FEDORCH_AGENT_KEY).",
    )(func)
    return click.option(
        "--identity",
        envvar="FEDORCH_IDENTITY",
        metavar="FILE",
        expose_value=False,
        is_eager=True,
        callback=_load_identity,
        help="Client identity to sign calls with, from `fedorch keys init --client` "
             "(env FEDORCH_IDENTITY).",
    )(func)


def _check_peer(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return parse_peer(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def peer_option(func: F) -> F:
    return click.option(
        "--peer",
        envvar="FEDORCH_PEER",
        default=DEFAULT_PEER,
        show_default=True,
        metavar="HOST:PORT",
        callback=_check_peer,
        help="Agent to talk to (env FEDORCH_PEER).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# Width for output that is not a terminal (pipes, files, CI logs): rich's default of 80
# columns folds tables badly, and nobody reads those lines on an 80-column screen.
PIPE_WIDTH = 160


def console() -> Console:
    """A console on the current stdout (click's test runner swaps it)."""
    con = Console(highlight=False)
    if not con.is_terminal and not os.environ.get("COLUMNS"):
        con = Console(highlight=False, width=PIPE_WIDTH)
    return con
