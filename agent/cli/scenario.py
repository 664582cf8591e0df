"""`fedorch scenario run FILE` and `fedorch scenario compose FILE --out DIR`.

Exit codes: 0 every expectation held; 1 one failed (or the federation did not come up);
2 the file is invalid, or asks for a fault the runner cannot apply.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import click
from fedorch.cli.common import console, json_option, settings
from fedorch.cli.errors import EXIT_FAILED, EXIT_USAGE, CliError
from fedorch.runtime.config import SourceError
from rich.rule import Rule
from rich.text import Text


@click.group()
def scenario() -> None:
    """Multi-domain scenarios: a federation, faults, and what must hold."""


def _load(path: Path):
    from fedorch.scenario.loader import load_scenario

    try:
        return load_scenario(path)
    except SourceError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


@scenario.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--runner", type=click.Choice(["process", "netns"]), default="process",
              show_default=True, help="process: agents on 127.0.0.1; netns: one network "
              "namespace per domain (root).")
@click.option("--keep", is_flag=True, help="Keep the work dir (configs, keys, logs, data).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work dir to use (default: a new temporary dir).")
@click.option("--skip-unsupported", is_flag=True,
              help="Skip (exit 0) a scenario whose faults this runner cannot apply, "
              "instead of refusing it (exit 2).")
@click.option("--busy", type=click.IntRange(0, 64), default=None, metavar="N",
              help="Load the host with N CPU-bound processes while the scenario runs "
              "(overrides the file's load.busy_processes; 0: none).")
@json_option
def run_command(file: Path, runner: str, keep: bool, workdir: Path | None,
                skip_unsupported: bool, busy: int | None, as_json: bool) -> None:
    """Run a scenario; exit 0 when every expectation holds, 1 when one fails."""
    from fedorch.scenario import report
    from fedorch.scenario.netns_check import NetnsUnavailable
    from fedorch.scenario.process import UnsupportedFault
    from fedorch.scenario.runner import check_runner, execute

    loaded = _load(file)
    temporary = workdir is None
    root = Path(tempfile.mkdtemp(prefix=f"fedorch-{loaded.name}-")) if temporary else workdir
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        check_runner(loaded, runner, root)
    except (UnsupportedFault, NetnsUnavailable) as exc:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
        if skip_unsupported:
            click.echo(f"skipped: {exc}")
            return
        raise CliError(str(exc), EXIT_USAGE) from None
    con = console()
    if not as_json:
        con.print(Rule(f"scenario {loaded.name}"))
        if loaded.scenario.description:
            con.print(Text(" ".join(loaded.scenario.description.split())), soft_wrap=True)
        con.print(Text(f"work dir {root}", style="dim"), soft_wrap=True)
        con.print(Rule("timeline (seconds since the agents were started)"))

    def emit(event) -> None:
        if not as_json:
            report.print_event(con, event)

    result = None
    try:
        result = execute(loaded, runner, root, settings().rpc_timeout, emit, busy=busy)
    finally:
        kept = keep or not temporary or result is None or not result.passed
        if not kept:
            shutil.rmtree(root, ignore_errors=True)
    if as_json:
        click.echo(json.dumps(report.to_json(result), indent=2))
    else:
        report.print_summary(con, result)
        if kept:
            con.print(Text(f"configs, keys, logs and data kept in {root}", style="dim"),
                      soft_wrap=True)
    if not result.passed:
        sys.exit(EXIT_FAILED)


@scenario.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check_command(file: Path) -> None:
    """Check a scenario file without running it."""
    loaded = _load(file)
    click.echo(f"{file}: ok ({len(loaded.domains)} domains, {len(loaded.workflows)} "
               f"submissions, {len(loaded.scenario.faults)} faults, "
               f"{len(loaded.scenario.expect)} expectations)")


@scenario.command("compose")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the project into (made if missing).")
@click.option("--context", default=None, metavar="PATH",
              help="Docker build context as seen from --out (default: this checkout).")
def compose_command(file: Path, out: Path, context: str | None) -> None:
    """Write the scenario as a docker-compose project (services, networks, volumes,
    configs, healthchecks, a one-shot submitter, a README)."""
    from fedorch.scenario.compose import write_project

    loaded = _load(file)
    try:
        written = write_project(loaded, out, context)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc}", EXIT_USAGE) from None
    click.echo(f"wrote {len(written)} files to {out}: docker compose -f "
               f"{out / 'docker-compose.yml'} up --build (see {out / 'README.md'})")
