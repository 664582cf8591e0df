"""`fedorch agent run`: the daemon in the foreground (implemented in fedorch.runtime.daemon)."""

from __future__ import annotations

import sys

import click
from fedorch.cli.errors import EXIT_FAILED, CliError


@click.group(name="agent")
def agent_group() -> None:
    """Run the agent daemon."""


@agent_group.command(name="run")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Agent config YAML (ARCHITECTURE §6).",
)
@click.option(
    "--start-fresh",
    is_flag=True,
    help="If the data dir's agent.db is refused (missing, empty, corrupt or another's),"
    " move it aside (agent.db.bad-TIME) and start with an empty database.",
)
def run_agent(config_path: str, start_fresh: bool) -> None:
    """Run the agent daemon in the foreground until SIGTERM/SIGINT."""
    try:
        from fedorch.runtime.daemon import main as daemon_main
    except ImportError as exc:
        raise CliError(f"the agent daemon is not available: {exc}", EXIT_FAILED) from exc
    sys.exit(daemon_main(config_path, start_fresh=start_fresh))
