"""`fedorch trust add FILE | remove DOMAIN | list`: change which domains an agent trusts.

The agent's config file stays the one source of truth: these commands edit its
`trust.key_files` list (comments and layout kept; the new file is checked by the agent's
own config loader before it replaces the old one, atomically) and, given `--pid`, send
the running agent SIGHUP, which applies the change live. A restart reads the same file,
so the change survives it. Bad input changes nothing (exit 2); a config the caller may
not write or an agent it may not signal is exit 4.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
from pathlib import Path

import click
from fedorch.cli.errors import EXIT_DENIED, EXIT_USAGE, CliError
from fedorch.core.identity.keys import KeyFileError, load_public_key_file
from fedorch.runtime.config import ConfigError, load_config
from fedorch.runtime.store.identity import key_fingerprint
from ruamel.yaml import YAML, YAMLError

CONFIG_OPTION = click.option(
    "--config", "config_path", required=True, metavar="FILE",
    type=click.Path(dir_okay=False), help="The agent's config file (its trust list is edited).")
PID_OPTION = click.option(
    "--pid", type=click.IntRange(min=1), default=None, metavar="PID",
    help="The running agent's process id: send it SIGHUP to apply the change now.")


def _load(config_path: str):
    try:
        return load_config(config_path)
    except ConfigError as e:
        raise CliError(str(e), EXIT_USAGE) from None


def _trusted(config) -> list[dict]:
    """One row per trust.key_files entry (paths as the loader resolved them)."""
    rows = []
    for path in config.trust.key_files:
        try:
            domain, key = load_public_key_file(path)
        except KeyFileError as e:
            raise CliError(str(e), EXIT_USAGE) from None
        rows.append({"domain": domain, "key_file": path, "fingerprint": key_fingerprint(key)})
    return rows


def _edit(config_path: str, change) -> None:
    """Apply `change` to the YAML document's trust.key_files list, check the result with
    the agent's loader, then replace the file atomically; on any error nothing changed."""
    yaml = YAML()  # round-trip: comments and key order survive
    path = Path(config_path)
    try:
        doc = yaml.load(path.read_text())
    except PermissionError as e:
        raise CliError(f"{config_path}: {e.strerror}", EXIT_DENIED) from None
    except (OSError, YAMLError) as e:
        raise CliError(f"{config_path}: {e}", EXIT_USAGE) from None
    trust = doc.setdefault("trust", {})
    key_files = trust.setdefault("key_files", [])
    change(key_files)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".trust-", suffix=".yaml", dir=path.parent)
    except PermissionError as e:
        raise CliError(f"{path.parent}: {e.strerror}", EXIT_DENIED) from None
    try:
        with os.fdopen(fd, "w") as out:
            yaml.dump(doc, out)
        _load(tmp)  # the agent would refuse it: refuse it here, before it replaces anything
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _check_signal(pid: int | None) -> None:
    """Before editing: a pid that names no process, or one we may not signal, changes
    nothing (signal 0 checks both without sending anything)."""
    if pid is None:
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise CliError(f"no process {pid}: nothing changed", EXIT_USAGE) from None
    except PermissionError:
        raise CliError(f"not allowed to signal process {pid}: nothing changed",
                       EXIT_DENIED) from None


def _signal(pid: int | None, config_path: str) -> None:
    if pid is None:
        click.echo(f"changed {config_path}; send the agent SIGHUP to apply it now "
                   "(it applies at the latest on restart)")
        return
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise CliError(f"no process {pid}: {config_path} changed, not applied yet",
                       EXIT_USAGE) from None
    except PermissionError:
        raise CliError(f"not allowed to signal process {pid}: {config_path} changed, "
                       "not applied yet", EXIT_DENIED) from None
    click.echo(f"changed {config_path}; sent SIGHUP to {pid}")


@click.group()
def trust() -> None:
    """Change which domains an agent trusts (live, with --pid)."""


@trust.command("add")
@click.argument("key_file", type=click.Path(dir_okay=False))
@CONFIG_OPTION
@PID_OPTION
def add(key_file: str, config_path: str, pid: int | None) -> None:
    """Trust the domain whose public key is KEY_FILE (a domain .pub)."""
    try:
        domain, key = load_public_key_file(key_file)
    except KeyFileError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    config = _load(config_path)
    if domain == config.domain:
        raise CliError(f"{domain!r} is this agent's own domain", EXIT_USAGE)
    for row in _trusted(config):
        if row["domain"] == domain:
            if row["fingerprint"] != key_fingerprint(key):
                raise CliError(f"domain {domain!r} is already trusted with a different key "
                               f"({row['key_file']})", EXIT_USAGE)
            click.echo(f"{domain} is already trusted ({row['key_file']})")
            return
    absolute = os.path.abspath(key_file)
    _check_signal(pid)
    _edit(config_path, lambda files: files.append(absolute))
    _signal(pid, config_path)


@trust.command("remove")
@click.argument("domain")
@CONFIG_OPTION
@PID_OPTION
def remove(domain: str, config_path: str, pid: int | None) -> None:
    """Stop trusting DOMAIN: its next message to this agent is refused."""
    config = _load(config_path)
    if domain == config.domain:
        raise CliError(f"{domain!r} is this agent's own domain: it cannot be removed",
                       EXIT_USAGE)
    # Indexes line up: the loader keeps the list's order, only resolving each path.
    drop = {i for i, row in enumerate(_trusted(config)) if row["domain"] == domain}
    if not drop:
        raise CliError(f"domain {domain!r} is not trusted in {config_path}", EXIT_USAGE)

    def change(files) -> None:
        for index in sorted(drop, reverse=True):
            del files[index]

    _check_signal(pid)
    _edit(config_path, change)
    _signal(pid, config_path)


def _learned_records(config) -> list:
    """The key records the agent learned (its database, read-only) and this domain's own
    (NAME.keyrecords beside its key); [] when the agent has not run yet."""
    import sqlite3

    from fedorch.gen.fedorch.v1 import keys_pb2

    records = [c.record for c in _own_records(config)]
    path = Path(config.data_dir) / "agent.db"
    if path.is_file():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                rows = db.execute("SELECT record FROM key_records ORDER BY learned_ms").fetchall()
        except sqlite3.DatabaseError as e:
            raise CliError(f"{path}: cannot read the learned key records ({e})",
                           EXIT_USAGE) from None
        records += [keys_pb2.KeyRecord.FromString(r[0]) for r in rows]
    return records


def _own_records(config) -> list:
    from fedorch.core.identity.rotation import read_records, records_path

    try:
        return read_records(records_path(config.key_file))
    except KeyFileError as e:
        raise CliError(str(e), EXIT_USAGE) from None


def _keys_now(config, rows: list[dict]) -> dict[str, list[dict]]:
    """Per domain, the keys it has now: from the configured files, moved on by the
    rotation and revocation records learned (see key_records.key_states)."""
    import time

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from fedorch.core.identity.key_records import key_states
    from fedorch.core.identity.trust import TrustStore

    store = TrustStore()
    for row in rows:
        store.add(row["domain"], load_public_key_file(row["key_file"])[1])
    try:  # this domain's root: the oldest key its own records lead from, else its .pub
        own = _own_records(config)
        rotations = sorted((c for c in own if c.kind == "rotation"), key=lambda c: c.serial)
        root = (Ed25519PublicKey.from_public_bytes(rotations[0].old) if rotations else
                load_public_key_file(Path(config.key_file).with_suffix(".pub"))[1])
        store.add(config.domain, root)
    except (KeyFileError, ValueError) as e:
        raise CliError(f"{config.key_file}: {e}", EXIT_USAGE) from None
    now = time.time()
    store.advance(now)
    store.learn(_learned_records(config))
    out: dict[str, list[dict]] = {}
    for domain in store.domains():
        keys = store.keys_of(domain)
        out[domain] = [] if keys is None else [
            {"fingerprint": key_fingerprint(Ed25519PublicKey.from_public_bytes(raw)),
             "state": state,
             **({"until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))}
                if state == "overlap" and until is not None else {})}
            for raw, state, until in key_states(keys, now)]
    return out


@trust.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def list_trust(config_path: str, as_json: bool) -> None:
    """The domains the config trusts (what the agent trusts after its last SIGHUP), each
    with the keys it has now: the configured one moved on by the rotations and
    revocations the agent learned (active, overlap, retired or revoked)."""
    config = _load(config_path)
    rows = _trusted(config)
    keys = _keys_now(config, rows)
    for row in rows:
        row["keys"] = keys.get(row["domain"], [])
    if as_json:
        click.echo(json.dumps({"domain": config.domain, "keys": keys.get(config.domain, []),
                               "trusted": rows}, indent=2))
        return
    click.echo(f"{config.domain} (this agent's own domain)")
    for key in keys.get(config.domain, []):
        click.echo(f"  {key['fingerprint']}\t{key['state']}\t{key.get('until', '')}".rstrip())
    for row in rows:
        click.echo(f"{row['domain']}\t{row['key_file']}")
        for key in row["keys"]:
            click.echo(f"  {key['fingerprint']}\t{key['state']}\t"
                       f"{key.get('until', '')}".rstrip())
