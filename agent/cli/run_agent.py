"""`fedorch agent run`: the daemon in the foreground (implemented in agent.server.daemon)."""

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
def run_agent(config_path: str) -> None:
    """Run the agent daemon in the foreground until SIGTERM/SIGINT."""
    try:
        from fedorch.runtime.daemon import main as daemon_main
    except ImportError as exc:
        raise CliError(f"the agent daemon is not available: {exc}", EXIT_FAILED) from exc
    sys.exit(daemon_main(config_path))
