"""`fedorch keys init`: a domain's or a client's Ed25519 key pair."""

from __future__ import annotations

import json
from pathlib import Path

import click
from fedorch.cli.errors import EXIT_FAILED, EXIT_USAGE, CliError


@click.group()
def keys() -> None:
    """Manage domain and client keys."""


@keys.command(name="init")
@click.option("--domain", default=None, help="Domain name; names the key files.")
@click.option("--client", default=None,
              help="Client principal (alice or alice@eu-west); names the key files.")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for NAME.key (mode 0600) and NAME.pub.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def init(domain: str | None, client: str | None, directory: Path, as_json: bool) -> None:
    """Write DIR/NAME.key and DIR/NAME.pub for --domain NAME or --client NAME; never
    overwrites an existing key."""
    from fedorch.core.identity.clients import init_client_keys
    from fedorch.core.identity.keys import init_keys

    if (domain is None) == (client is None):
        raise CliError("give exactly one of --domain NAME or --client NAME", EXIT_USAGE)
    try:
        if domain is not None:
            private, public = init_keys(domain, directory)
        else:
            private, public = init_client_keys(client, directory)  # type: ignore[arg-type]
    except FileExistsError as exc:
        raise CliError(f"refusing to overwrite an existing key: {exc}", EXIT_FAILED) from exc
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except OSError as exc:
        raise CliError(f"cannot write keys in {directory}: {exc}", EXIT_FAILED) from exc
    if as_json:
        named = {"domain": domain} if domain is not None else {"client": client}
        click.echo(json.dumps({**named, "key": str(private), "pub": str(public)}))
    else:
        click.echo(f"private key: {private}")
        click.echo(f"public key:  {public}")
