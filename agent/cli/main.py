"""The `fedorch` command: a click group; exit codes per ARCHITECTURE §6.

0 ok; 1 the operation ran and failed; 2 bad usage or invalid input; 3 agent unreachable;
4 not authenticated or not allowed.
Errors are one stderr line starting with "fedorch: error: " (see errors.CliError).

Each subcommand's module is imported only when that subcommand runs: `fedorch agent run`
(every agent of a federation, every scenario and integration test starts one) would
otherwise import the client, rich, the benchmarks and the scenario runner before the
daemon, for nothing. The listing of `fedorch --help` needs each command's one-line
summary only; it is kept here (SUBCOMMANDS) and a test checks it against the commands.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click
from fedorch.cli.settings import DEFAULT_RPC_TIMEOUT_S, Settings


class Subcommand(NamedTuple):
    module: str  # under fedorch.cli
    attribute: str  # the click command in it
    summary: str  # the first paragraph of its help, as `fedorch --help` lists it


SUBCOMMANDS: dict[str, Subcommand] = {
    "agent": Subcommand("run_agent", "agent_group",
                        "Run the agent daemon, or check that it serves."),
    "audit": Subcommand("audit", "audit", "This domain's audit log and proofs of workflows."),
    "bench": Subcommand("bench", "bench",
                        "Benchmarks: they print numbers; targets are shown beside them."),
    "cancel": Subcommand("workflows", "cancel",
                         "Cancel a workflow and print the resulting status."),
    "console": Subcommand("console", "console_group",
                          "The web console (console_listen in the agent config)."),
    "demo": Subcommand("demo", "demo", "A local federation of three agents, a workflow across "
                       "it, the result."),
    "keys": Subcommand("keys", "keys", "Manage domain and client keys."),
    "list": Subcommand("workflows", "list_workflows", "List the workflows this agent knows."),
    "members": Subcommand("members", "members",
                          "List the federation's members as this agent sees them."),
    "policy": Subcommand("policy", "policy", "Data-flow and admission policy."),
    "scenario": Subcommand("scenario", "scenario", "Multi-domain scenarios: a federation, "
                           "faults, and what must hold."),
    "status": Subcommand("workflows", "status", "Show a workflow's status (any agent can "
                         "answer)."),
    "submit": Subcommand("workflows", "submit", "Submit the workflow spec FILE; print its id, "
                         "or with --wait its final status."),
    "trust": Subcommand("trust", "trust",
                        "Change which domains an agent trusts (live, with --pid)."),
    "watch": Subcommand("workflows", "watch", "Follow a workflow live until it ends; exit 0 if "
                        "it SUCCEEDED, else 1."),
}


def load_subcommand(name: str) -> click.Command:
    entry = SUBCOMMANDS[name]
    command = getattr(importlib.import_module(f"fedorch.cli.{entry.module}"), entry.attribute)
    if not isinstance(command, click.Command) or command.name != name:
        raise RuntimeError(f"fedorch.cli.{entry.module}.{entry.attribute} is not the "
                           f"{name!r} command")
    return command


class LazyGroup(click.Group):
    """A group whose subcommands are imported when one is run (or asked for help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*SUBCOMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            self.add_command(load_subcommand(cmd_name))
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing from the kept summaries, as click writes it, importing nothing."""
        rows = []
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        for name in names:
            loaded = self.commands.get(name)
            if loaded is not None:
                if loaded.hidden:
                    continue
                rows.append((name, loaded.get_short_help_str(limit)))
            else:
                summary = click.Command(name, help=SUBCOMMANDS[name].summary)
                rows.append((name, summary.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def main() -> None:
    cli(prog_name="fedorch")


if __name__ == "__main__":
    main()
