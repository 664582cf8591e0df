"""`fedorch console token`: a short-lived token with which a browser acts on one
domain's web console as the client identity that signed it (docs/console.md)."""

from __future__ import annotations

import json
import os
import time
import urllib.parse

import click
from fedorch.cli.common import identity_option, settings
from fedorch.cli.errors import EXIT_USAGE, CliError
from fedorch.core.identity.console_token import (
    DEFAULT_TTL_S,
    MAX_TTL_S,
    WRITE_PERMISSIONS,
    issue_token,
)

NONCE_BYTES = 16


@click.group(name="console")
def console_group() -> None:
    """The web console (console_listen in the agent config)."""


@console_group.command(name="token")
@identity_option
@click.option("--domain", required=True,
              help="The domain whose console will take the token (shown in its header, "
                   "'served by'); every other console refuses it.")
@click.option("--allow", "allow", multiple=True, default=WRITE_PERMISSIONS, show_default=True,
              type=click.Choice(WRITE_PERMISSIONS),
              help="A write action the token carries (repeatable). The agent's access "
                   "rules still decide what the identity may do.")
@click.option("--ttl", type=click.IntRange(1, MAX_TTL_S), default=DEFAULT_TTL_S,
              show_default=True, metavar="S", help="Seconds the token stays valid.")
@click.option("--workflow", default="", metavar="ID",
              help="Only for this workflow (default: any).")
@click.option("--url", default="", metavar="URL",
              help="The console's address: print URL/#token=... to open instead of the "
                   "bare token (the fragment never reaches a server or its logs).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token(domain: str, allow: tuple[str, ...], ttl: int, workflow: str, url: str,
          as_json: bool) -> None:
    """Print a console token signed by --identity (or $FEDORCH_IDENTITY)."""
    identity = settings().identity
    if identity is None:
        raise CliError("a console token is signed by a client identity: give --identity FILE "
                       "or set FEDORCH_IDENTITY", EXIT_USAGE)
    if url and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CliError(f"--url must be an http(s) address, got {url!r}", EXIT_USAGE)
    now = time.time()
    try:
        signed = issue_token(identity, domain, allow, now_s=now, nonce=os.urandom(NONCE_BYTES),
                             ttl_s=ttl, workflow=workflow)
    except ValueError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    link = f"{url.split('#')[0].rstrip('/')}/#token={signed}" if url else ""
    if as_json:
        click.echo(json.dumps({"token": signed, "principal": identity.principal,
                               "domain": domain, "allow": sorted(set(allow)),
                               "workflow": workflow, "expires_s": int(now) + ttl,
                               **({"url": link} if link else {})}))
    else:
        click.echo(link or signed)
