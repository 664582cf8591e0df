"""`fedorch audit`: verify a domain's audit log, show its records of a workflow, build
and check proofs (docs/audit.md).

Everything here is offline: `verify`, `show` and `proof` read a data dir (opened
read-only; the agent may be running), `check` reads a proof file and public keys. A
domain's records are what its own disk holds, so reading them needs neither a running
agent nor a client credential; and a third party checks a proof with no agent at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from fedorch.cli.errors import EXIT_FAILED, EXIT_USAGE, CliError

DATA_DIR = click.option(
    "--data-dir", required=True, envvar="FEDORCH_DATA_DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The agent's data dir (holds agent.db); $FEDORCH_DATA_DIR.")


def _trust(directory: Path):
    from fedorch.core.identity.keys import KeyFileError
    from fedorch.core.identity.trust import TrustStore

    files = [f for f in sorted(directory.glob("*.pub")) if not _is_client_key(f)]
    if not files:
        raise CliError(f"{directory}: no public key files (*.pub) of domains there", EXIT_USAGE)
    try:
        return TrustStore.from_files(files)
    except KeyFileError as e:
        raise CliError(str(e), EXIT_USAGE) from e


def _is_client_key(path: Path) -> bool:
    from fedorch.core.identity.clients import CLIENT_PUB_PREFIX

    try:
        with path.open("rb") as f:
            return f.read(len(CLIENT_PUB_PREFIX) + 1) == CLIENT_PUB_PREFIX.encode() + b" "
    except OSError:
        return False  # the domain key loader names the problem


def _client_keys(directory: Path):
    """Client keys (`fedorch keys init --client`) beside the domain keys: a proof's
    submitter, when listed, must have signed with the key held here."""
    from fedorch.core.identity.clients import ClientKeys
    from fedorch.core.identity.keys import KeyFileError

    try:
        return ClientKeys.from_files(f for f in sorted(directory.glob("*.pub"))
                                     if _is_client_key(f))
    except KeyFileError as e:
        raise CliError(str(e), EXIT_USAGE) from e


def _reader(data_dir: Path):
    from fedorch.runtime.store.audit_table import LogReader, NoLog

    try:
        return LogReader(data_dir)
    except NoLog as e:
        raise CliError(str(e), EXIT_USAGE) from e


@click.group()
def audit() -> None:
    """This domain's audit log and proofs of workflows."""


@audit.command()
@DATA_DIR
@click.option("--trust", "trust_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path),
              help="Check checkpoint signatures with the keys here (*.pub) rather than"
                   " the keys the log itself names.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify(data_dir: Path, trust_dir: Path | None, as_json: bool) -> None:
    """Check the hash chain and the signed checkpoints; exit 1 names the first bad
    record."""
    from fedorch.core.audit.chain import Problem
    from fedorch.runtime.store.audit_table import NoLog, verify_data_dir

    trust = _trust(trust_dir) if trust_dir is not None else None
    try:
        outcome = verify_data_dir(data_dir, trust.verify if trust is not None else None)
    except NoLog as e:
        raise CliError(str(e), EXIT_USAGE) from e
    if isinstance(outcome, Problem):
        if as_json:
            click.echo(json.dumps({"ok": False, "record": outcome.seq,
                                   "reason": outcome.reason}))
        raise CliError(f"audit log of {data_dir} is not intact: {outcome}", EXIT_FAILED)
    if as_json:
        click.echo(json.dumps({"ok": True, "domain": outcome.domain,
                               "records": outcome.records,
                               "checkpoints": outcome.checkpoints,
                               "unsigned_tail": outcome.unsigned_tail}))
    else:
        click.echo(f"intact: {outcome.records} records of {outcome.domain or '?'},"
                   f" {outcome.checkpoints} signed checkpoints,"
                   f" {outcome.unsigned_tail} records after the last one")


def _record_dict(record) -> dict:
    body = record.decoded()
    return {"seq": record.seq, "hash": record.hash.hex(), "kind": record.kind,
            "workflow": record.workflow, "time_ms": body.get("time_ms"),
            "data": body.get("data", {})}


_LONG = {"certificate", "evidence", "attestation", "spec"}


@audit.command()
@click.argument("workflow_id")
@DATA_DIR
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per record).")
def show(workflow_id: str, data_dir: Path, as_json: bool) -> None:
    """This domain's records of one workflow, in log order."""
    with _reader(data_dir) as reader:
        records = [_record_dict(r) for r in reader.acts(workflow_id)]
    if not records:
        raise CliError(f"no audit records of {workflow_id!r} in {data_dir}", EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for r in records:
        fields = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(r["data"].items())
                          if k not in _LONG)
        signed = sorted(k for k in _LONG if r["data"].get(k))
        extra = f" (holds {', '.join(signed)})" if signed else ""
        click.echo(f"{r['seq']:>6} {r['time_ms']} {r['kind']:<15} {fields}{extra}")


@audit.command()
@click.argument("workflow_id")
@DATA_DIR
def proof(workflow_id: str, data_dir: Path) -> None:
    """Print a self-contained JSON proof of one workflow coordinated by this domain
    (format 1 for the records of the older engine, `shells`; format 2 for the node
    engine's)."""
    from fedorch.core.audit.proof import ProofError, build_proof, dumps

    with _reader(data_dir) as reader:
        bodies = [r.decoded() for r in reader.acts(workflow_id)]
    try:
        click.echo(dumps(build_proof(workflow_id, bodies)), nl=False)
    except ProofError as e:
        raise CliError(str(e), EXIT_FAILED) from e


@audit.command()
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--trust", "trust_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of the public keys (*.pub) to check signatures with.")
@click.option("--json", "as_json", is_flag=True, help="Print the proven summary as JSON.")
def check(proof_file: Path, trust_dir: Path, as_json: bool) -> None:
    """Check a proof offline with public keys only; exit 1 if anything does not hold."""
    from fedorch.core.audit.proof import ProofError, check_proof

    trust = _trust(trust_dir)
    clients = _client_keys(trust_dir)
    try:
        document = json.loads(proof_file.read_bytes())
        summary = check_proof(document, trust, clients)
    except (ValueError, ProofError) as e:  # JSONDecodeError is a ValueError
        raise CliError(f"proof does not hold: {e}", EXIT_FAILED) from e
    except OSError as e:
        raise CliError(f"cannot read {proof_file}: {e}", EXIT_USAGE) from e
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    # Format 1 names the committed round's voters, format 2 each committed round's.
    voters = summary["voters"] if "voters" in summary else sorted(
        {d for domains in summary["votes"].values() for d in domains})
    click.echo(f"proof holds: {summary['workflow']} {summary['state']}"
               f" (coordinator {summary['coordinator']}, round {summary['round']},"
               f" voters {', '.join(voters) or 'none'})")
    signed = "signed by" if summary["signed"] else "unsigned, in the coordinator's word:"
    click.echo(f"  spec {signed} {summary['principal'] or 'unknown'}")
    for step, s in summary["steps"].items():
        epoch = f" epoch {s['epoch']}" if s.get("epoch") else ""
        click.echo(f"  {step}: {s['state']} on {s['domain'] or '-'}{epoch} attempt"
                   f" {s['attempt']} outputs sha256 {s['outputs_sha256'] or '-'}")
