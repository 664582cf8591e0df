"""The `fedorch` command: a click group; exit codes per ARCHITECTURE §6.

0 ok; 1 the operation ran and failed; 2 bad usage or invalid input; 3 agent unreachable;
4 not authenticated or not allowed.
Errors are one stderr line starting with "fedorch: error: " (see errors.CliError).
"""

from __future__ import annotations

import click
from fedorch.cli.audit import audit
from fedorch.cli.bench import bench
from fedorch.cli.client import DEFAULT_RPC_TIMEOUT_S
from fedorch.cli.common import Settings
from fedorch.cli.console import console_group
from fedorch.cli.demo import demo
from fedorch.cli.keys import keys
from fedorch.cli.members import members
from fedorch.cli.policy import policy
from fedorch.cli.run_agent import agent_group
from fedorch.cli.scenario import scenario
from fedorch.cli.trust import trust
from fedorch.cli.workflows import cancel, list_workflows, status, submit, watch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--rpc-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_RPC_TIMEOUT_S,
    show_default=True,
    envvar="FEDORCH_RPC_TIMEOUT",
    metavar="S",
    help="Deadline for each RPC, in seconds.",
)
@click.pass_context
def cli(ctx: click.Context, rpc_timeout: float) -> None:
    """fedorch: a federated workflow orchestrator with no centre."""
    ctx.obj = Settings(rpc_timeout=rpc_timeout)


for command in (keys, agent_group, submit, status, watch, cancel, list_workflows, members, demo,
                bench, scenario, audit, policy, trust, console_group):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="fedorch")


if __name__ == "__main__":
    main()
