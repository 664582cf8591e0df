"""`fedorch keys init | rotate | revoke | ca`: domain and client keys, their rotation, and
a federation CA that issues the agents' TLS certificates."""

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
@click.option("--ca", "ca_dir", default=None,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="With --domain: also issue the agent's TLS certificate from the federation"
                   " CA in this directory (from `fedorch keys ca init`).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def init(domain: str | None, client: str | None, directory: Path, ca_dir: Path | None,
         as_json: bool) -> None:
    """Write DIR/NAME.key and DIR/NAME.pub for --domain NAME or --client NAME; never
    overwrites an existing key. With --ca: DIR/NAME.tls.key and DIR/NAME.crt too."""
    from fedorch.core.identity.clients import init_client_keys
    from fedorch.core.identity.keys import init_keys

    if (domain is None) == (client is None):
        raise CliError("give exactly one of --domain NAME or --client NAME", EXIT_USAGE)
    if ca_dir is not None and domain is None:
        raise CliError("--ca issues a domain's TLS certificate: give --domain NAME", EXIT_USAGE)
    ca = _read_ca(ca_dir) if ca_dir is not None else None
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
    issued = _issue(ca, domain, directory) if ca is not None and domain is not None else {}
    if as_json:
        named = {"domain": domain} if domain is not None else {"client": client}
        click.echo(json.dumps({**named, "key": str(private), "pub": str(public), **issued}))
    else:
        click.echo(f"private key: {private}")
        click.echo(f"public key:  {public}")
        for what, path in issued.items():
            click.echo(f"{what.replace('_', ' ')}: {path}")


# ---- a federation CA (core/identity/federation_ca.py) -----------------------------------

CA_KEY, CA_CERT = "ca.key", "ca.crt"


def _read_ca(ca_dir: Path) -> tuple[bytes, bytes]:
    from fedorch.core.identity.federation_ca import CaError, load_ca

    try:
        key_pem, cert_pem = (ca_dir / CA_KEY).read_bytes(), (ca_dir / CA_CERT).read_bytes()
        load_ca(key_pem, cert_pem)
    except OSError as exc:
        raise CliError(f"cannot read the CA in {ca_dir}: {exc}", EXIT_USAGE) from exc
    except CaError as exc:
        raise CliError(f"{ca_dir}: {exc}", EXIT_USAGE) from exc
    return key_pem, cert_pem


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write whole (a temporary file renamed over it): an agent re-reading the file never
    sees half of one."""
    import os

    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


def _issue(ca: tuple[bytes, bytes], domain: str, directory: Path) -> dict[str, str]:
    """Issue `domain`'s TLS certificate into DIR/NAME.tls.key and DIR/NAME.crt."""
    import time

    from fedorch.core.identity.federation_ca import issue_domain_cert

    issued = issue_domain_cert(ca[0], ca[1], domain, time.time())
    key_file, cert_file = directory / f"{domain}.tls.key", directory / f"{domain}.crt"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _replace(key_file, issued.key_pem, 0o600)
        _replace(cert_file, issued.cert_pem, 0o644)
    except OSError as exc:
        raise CliError(f"cannot write the certificate in {directory}: {exc}",
                       EXIT_FAILED) from exc
    return {"tls_key": str(key_file), "certificate": str(cert_file),
            "not_after": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued.not_after))}


@keys.group(name="ca")
def ca() -> None:
    """A federation CA: issues the agents' TLS certificates (instead of domain keys)."""


@ca.command(name="init")
@click.option("--dir", "directory", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory for ca.key (mode 0600) and ca.crt.")
@click.option("--name", default="fedorch federation CA", show_default=True,
              help="The CA's common name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ca_init(directory: Path, name: str, as_json: bool) -> None:
    """Make a federation CA; never overwrites one. Give every agent DIR/ca.crt as
    `tls.federation_ca`; keep DIR/ca.key offline."""
    import time

    from fedorch.core.identity.federation_ca import make_ca

    key_file, cert_file = directory / CA_KEY, directory / CA_CERT
    if key_file.exists() or cert_file.exists():
        raise CliError(f"refusing to overwrite an existing CA in {directory}", EXIT_FAILED)
    made = make_ca(name, time.time())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _replace(key_file, made.key_pem, 0o600)
        _replace(cert_file, made.cert_pem, 0o644)
    except OSError as exc:
        raise CliError(f"cannot write the CA in {directory}: {exc}", EXIT_FAILED) from exc
    if as_json:
        click.echo(json.dumps({"key": str(key_file), "certificate": str(cert_file)}))
    else:
        click.echo(f"CA key:         {key_file} (keep it offline)")
        click.echo(f"CA certificate: {cert_file} (tls.federation_ca of every agent)")


@ca.command(name="issue")
@click.option("--ca", "ca_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The CA's directory (ca.key, ca.crt).")
@click.option("--domain", required=True, help="The domain the certificate names.")
@click.option("--dir", "directory", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory for NAME.tls.key and NAME.crt (replaced: this renews them).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ca_issue(ca_dir: Path, domain: str, directory: Path, as_json: bool) -> None:
    """Issue (or renew) a domain's TLS certificate. A running agent picks up the new
    files within a minute, without a restart."""
    from fedorch.core.identity.keys import is_valid_domain

    if not is_valid_domain(domain):
        raise CliError(f"invalid domain name {domain!r}", EXIT_USAGE)
    issued = _issue(_read_ca(ca_dir), domain, directory)
    if as_json:
        click.echo(json.dumps({"domain": domain, **issued}))
    else:
        for what, path in issued.items():
            click.echo(f"{what.replace('_', ' ')}: {path}")


def _domain_in(directory: Path, domain: str | None) -> str:
    """The domain whose key DIR holds: --domain, or the one NAME.key with a NAME.pub."""
    if domain is not None:
        return domain
    found = sorted(p.stem for p in directory.glob("*.key")
                   if (directory / f"{p.stem}.pub").exists())
    if len(found) != 1:
        raise CliError(f"{directory}: holds {len(found)} keys ({', '.join(found) or 'none'});"
                       " name one with --domain NAME", EXIT_USAGE)
    return found[0]


@keys.command(name="rotate")
@click.option("--dir", "directory", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The domain's key directory (NAME.key, NAME.pub).")
@click.option("--domain", default=None, help="Domain name (when DIR holds several keys).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rotate(directory: Path, domain: str | None, as_json: bool) -> None:
    """Make a new domain key and a rotation record signed by the old and the new key.

    Writes DIR/NAME.key (the new key), DIR/NAME.pub and DIR/NAME.keyrecords, and keeps
    the old key as DIR/NAME.retired-SERIAL.key. Send the agent SIGHUP (or restart it):
    it signs with the new key and gossips the record; peers that trusted the old key
    move to the new one."""
    import time

    from fedorch.core.identity.key_records import KeyRecordError
    from fedorch.core.identity.keys import KeyFileError
    from fedorch.core.identity.rotation import rotate_keys
    from fedorch.runtime.store.identity import key_fingerprint

    name = _domain_in(directory, domain)
    try:
        done = rotate_keys(name, directory, int(time.time() * 1000))
    except (KeyFileError, KeyRecordError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except OSError as exc:
        raise CliError(f"cannot rotate the key in {directory}: {exc}", EXIT_FAILED) from exc
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    fingerprint = key_fingerprint(Ed25519PublicKey.from_public_bytes(done.change.new))
    if as_json:
        click.echo(json.dumps({"domain": name, "serial": done.change.serial,
                               "key": str(done.key_file), "pub": str(done.pub_file),
                               "records": str(done.records_file),
                               "retired": str(done.retired_file),
                               "fingerprint": fingerprint}))
    else:
        click.echo(f"rotated {name} to key {fingerprint} (serial {done.change.serial})")
        click.echo(f"record: {done.records_file}; old key kept as {done.retired_file}")
        click.echo("send the agent SIGHUP (or restart it) to start using the new key")


@keys.command(name="revoke")
@click.option("--dir", "directory", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The domain's key directory (NAME.key, NAME.keyrecords).")
@click.option("--domain", default=None, help="Domain name (when DIR holds several keys).")
@click.option("--key", "key_file", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The key to revoke: a private key file (signs its own revocation) or a"
                   " .pub. Default: the key the last rotation replaced.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def revoke(directory: Path, domain: str | None, key_file: Path | None, as_json: bool) -> None:
    """Publish a revocation of a compromised key, signed by that key or by its successor.

    Appends to DIR/NAME.keyrecords; send the agent SIGHUP (or restart it) and it gossips
    the revocation: from then on every agent refuses messages signed with that key."""
    import time

    from fedorch.core.identity.key_records import KeyRecordError
    from fedorch.core.identity.keys import KeyFileError
    from fedorch.core.identity.rotation import revoke_key
    from fedorch.runtime.store.identity import key_fingerprint

    name = _domain_in(directory, domain)
    try:
        change = revoke_key(name, directory, int(time.time() * 1000), key_file)
    except (KeyFileError, KeyRecordError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except OSError as exc:
        raise CliError(f"cannot write the revocation in {directory}: {exc}",
                       EXIT_FAILED) from exc
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    revoked = key_fingerprint(Ed25519PublicKey.from_public_bytes(change.old))
    if as_json:
        click.echo(json.dumps({"domain": name, "serial": change.serial, "revoked": revoked}))
    else:
        click.echo(f"revoked key {revoked} of {name} (serial {change.serial})")
        click.echo("send the agent SIGHUP (or restart it) to publish the revocation")
