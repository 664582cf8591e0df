"""Workflow commands: submit, status, watch, cancel, list."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import click
from fedorch.cli.common import (
    client_for,
    console,
    identity_option,
    json_option,
    peer_option,
    run,
)
from fedorch.cli.errors import EXIT_FAILED, EXIT_USAGE, CliError, one_line, rpc_errors
from fedorch.cli.follow import submit_and_wait, wait_for_terminal
from fedorch.cli.render import (
    change_lines,
    status_renderable,
    status_to_dict,
    to_json,
    workflow_state_name,
    workflows_table,
)
from fedorch.gen.fedorch.v1 import client_pb2, spec_pb2, status_pb2
from rich.live import Live

DEFAULT_WAIT_S = 300.0
_POSITIVE = click.FloatRange(min=0, min_open=True)


def load_spec(path: Path) -> spec_pb2.WorkflowSpec:
    """Load and validate a spec file; an invalid one is a usage error (exit 2)."""
    try:
        from fedorch.core.workflow.spec import load_spec_file
    except ImportError as exc:  # pragma: no cover - only while the package is incomplete
        raise CliError(f"workflow spec support is not available: {exc}", EXIT_FAILED) from exc
    import yaml

    try:
        return load_spec_file(path)
    except (ValueError, OSError, yaml.YAMLError) as exc:
        message = one_line(str(exc)) or type(exc).__name__
        if str(path) not in message and path.name not in message:
            message = f"{path}: {message}"
        raise CliError(message, EXIT_USAGE) from exc


def print_status(status: status_pb2.WorkflowStatus, as_json: bool) -> None:
    if as_json:
        click.echo(to_json(status_to_dict(status)))
    else:
        console().print(status_renderable(status))


def fail_unless_succeeded(status: status_pb2.WorkflowStatus) -> None:
    if status.state == status_pb2.WORKFLOW_STATE_SUCCEEDED:
        return
    message = f"workflow {status.id} ended {workflow_state_name(status.state)}"
    if status.reason:
        message += f": {status.reason}"
    raise CliError(message, EXIT_FAILED)


# ---- submit ----------------------------------------------------------------------------


@click.command()
@click.argument("files", metavar="FILE...", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@peer_option
@identity_option
@click.option("--wait", is_flag=True, help="Wait for a terminal state and print the status.")
@click.option(
    "--timeout",
    "limit_s",
    type=_POSITIVE,
    default=DEFAULT_WAIT_S,
    show_default=True,
    metavar="S",
    help="With --wait: give up after S seconds (exit 1).",
)
@json_option
def submit(files: tuple[Path, ...], peer: str, wait: bool, limit_s: float,
           as_json: bool) -> None:
    """Submit the workflow spec FILE; print its id, or with --wait its final status.

    Several FILEs go in one call (SubmitStream: an agent on `engine: node`): one line
    per file, its id or why it was refused (with --json, one object per file); a
    refused one does not stop the others; exit 1 if any was refused (with --wait: or
    did not succeed)."""
    if len(files) > 1:
        submit_many(files, peer, wait, limit_s, as_json)
        return
    spec = load_spec(files[0])
    request_id = uuid.uuid4().hex

    async def go() -> tuple[str, status_pb2.WorkflowStatus | None]:
        async with client_for(peer) as client:
            with rpc_errors(peer):
                if wait:
                    final = await submit_and_wait(client, spec, request_id, limit_s)
                    return final.id, final
                return await client.submit(spec, request_id), None

    workflow_id, status = run(go())
    if status is None:
        click.echo(json.dumps({"id": workflow_id}) if as_json else workflow_id)
        return
    print_status(status, as_json)
    fail_unless_succeeded(status)


def submit_many(files: tuple[Path, ...], peer: str, wait: bool, limit_s: float,
                as_json: bool) -> None:
    specs = [load_spec(f) for f in files]  # every file checked before anything is sent

    async def go() -> list[dict[str, Any]]:
        async with client_for(peer) as client:
            told: list[dict[str, Any]] = [{"file": str(f)} for f in files]
            open_ones = len(files)
            with rpc_errors(peer):
                requests = [client_pb2.SubmitStreamRequest(
                    submit=await client.submit_request(spec, uuid.uuid4().hex), token=str(i))
                    for i, spec in enumerate(specs)]
                # The deadline: the wait's with --wait, else one call's.
                call = client.submit_stream(requests, limit_s if wait else client.rpc_timeout)
                try:
                    async for update in call:
                        one = told[int(update.token)]
                        if update.code:  # refused: told in full
                            one["error"] = update.reason
                            open_ones -= 1
                        elif update.HasField("status"):  # the end (no state asked for)
                            if wait:  # else only the ids are printed
                                one["status"] = update.status
                                open_ones -= 1
                        else:  # accepted
                            one["id"] = update.id
                            open_ones -= not wait
                        if open_ones == 0:
                            break
                finally:
                    call.cancel()
            return told

    told = run(go())
    failed = 0
    for one in told:
        status = one.pop("status", None)
        if "error" in one or (wait and (status is None or status.state
                                        != status_pb2.WORKFLOW_STATE_SUCCEEDED)):
            failed += 1
        if as_json:
            if status is not None:
                one["status"] = status_to_dict(status)
            continue
        if "error" in one:
            click.echo(f"{one['file']}: refused: {one['error']}")
        elif status is not None:
            reason = f" ({status.reason})" if status.reason else ""
            click.echo(f"{one['file']}: {one['id']} {workflow_state_name(status.state)}{reason}")
        else:
            click.echo(f"{one['file']}: {one.get('id', '')}")
    if as_json:
        click.echo(to_json(told))
    if failed:
        raise CliError(f"{failed} of {len(told)} specs " + (
            "were refused or did not succeed" if wait else "were refused"), EXIT_FAILED)


# ---- status ----------------------------------------------------------------------------


@click.command()
@click.argument("workflow_id", metavar="ID")
@peer_option
@identity_option
@json_option
def status(workflow_id: str, peer: str, as_json: bool) -> None:
    """Show a workflow's status (any agent can answer)."""

    async def go() -> status_pb2.WorkflowStatus:
        async with client_for(peer) as client:
            with rpc_errors(peer):
                return await client.get_workflow(workflow_id)

    print_status(run(go()), as_json)


# ---- watch -----------------------------------------------------------------------------


@click.command()
@click.argument("workflow_id", metavar="ID")
@peer_option
@identity_option
@click.option(
    "--timeout",
    "limit_s",
    type=_POSITIVE,
    default=None,
    metavar="S",
    help="Give up after S seconds (exit 1). Default: no limit.",
)
@json_option
def watch(workflow_id: str, peer: str, limit_s: float | None, as_json: bool) -> None:
    """Follow a workflow live until it ends; exit 0 if it SUCCEEDED, else 1.

    On a terminal, a live table; otherwise one line per change (--json: one JSON
    object per line per update).
    """
    con = console()

    async def go(on_update: Any) -> status_pb2.WorkflowStatus:
        async with client_for(peer) as client:
            with rpc_errors(peer):
                return await wait_for_terminal(client, workflow_id, limit_s, on_update)

    if as_json:

        def emit_json(status: status_pb2.WorkflowStatus) -> None:
            click.echo(json.dumps(status_to_dict(status)))

        final = run(go(emit_json))
    elif con.is_terminal:
        with Live(console=con, auto_refresh=False, transient=False) as live:

            def redraw(status: status_pb2.WorkflowStatus) -> None:
                live.update(status_renderable(status), refresh=True)

            final = run(go(redraw))
    else:
        previous: dict[str, Any] | None = None

        def print_changes(status: status_pb2.WorkflowStatus) -> None:
            nonlocal previous
            current = status_to_dict(status)
            stamp = time.strftime("%H:%M:%S")
            for line in change_lines(previous, current):
                click.echo(f"{stamp} {line}")
            previous = current

        final = run(go(print_changes))
    fail_unless_succeeded(final)


# ---- cancel ----------------------------------------------------------------------------


@click.command()
@click.argument("workflow_id", metavar="ID")
@peer_option
@identity_option
@click.option("--reason", default="cancelled by user", show_default=True)
@json_option
def cancel(workflow_id: str, peer: str, reason: str, as_json: bool) -> None:
    """Cancel a workflow and print the resulting status."""

    async def go() -> status_pb2.WorkflowStatus:
        async with client_for(peer) as client:
            with rpc_errors(peer):
                return await client.cancel(workflow_id, reason)

    print_status(run(go()), as_json)


# ---- list ------------------------------------------------------------------------------


@click.command(name="list")
@peer_option
@identity_option
@json_option
def list_workflows(peer: str, as_json: bool) -> None:
    """List the workflows this agent knows."""

    async def go() -> list[status_pb2.WorkflowStatus]:
        async with client_for(peer) as client:
            with rpc_errors(peer):
                return await client.list_workflows()

    workflows = run(go())
    if as_json:
        click.echo(to_json([status_to_dict(w) for w in workflows]))
    elif not workflows:
        click.echo("no workflows")
    else:
        console().print(workflows_table(workflows))
