"""`fedorch keys init`: a domain's Ed25519 key pair."""

from __future__ import annotations

import json
from pathlib import Path

import click
from fedorch.cli.errors import EXIT_FAILED, EXIT_USAGE, CliError


@click.group()
def keys() -> None:
    """Manage domain keys."""


@keys.command(name="init")
@click.option("--domain", required=True, help="Domain name; names the key files.")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for NAME.key (mode 0600) and NAME.pub.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def init(domain: str, directory: Path, as_json: bool) -> None:
    """Write DIR/NAME.key and DIR/NAME.pub; never overwrites an existing key."""
    from fedorch.core.identity.keys import init_keys

    try:
        private, public = init_keys(domain, directory)
    except FileExistsError as exc:
        raise CliError(f"refusing to overwrite an existing key: {exc}", EXIT_FAILED) from exc
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except OSError as exc:
        raise CliError(f"cannot write keys in {directory}: {exc}", EXIT_FAILED) from exc
    if as_json:
        click.echo(json.dumps({"domain": domain, "key": str(private), "pub": str(public)}))
    else:
        click.echo(f"private key: {private}")
        click.echo(f"public key:  {public}")
