"""What starting an agent imports: `fedorch agent run` and the daemon load what serving
needs and nothing else. Every agent of a federation pays its imports in CPU before it
serves (fifty at once in a join storm, several in every scenario and integration test),
so the cut is checked here by name, in a fresh interpreter, not by timing."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from fedorch.cli.main import SUBCOMMANDS, cli, load_subcommand

# Heavy packages an agent without tracing or a console never uses: the terminal UI
# (rich), the CLI's other commands (client, benchmarks, scenario runner, demo), the
# OpenTelemetry SDK (psutil comes with its resource detection), the console's web stack.
NOT_FOR_SERVING = (
    "rich",
    "ruamel",
    "jwt",
    "psutil",
    "opentelemetry",
    "aiohttp",
    "fedorch.cli.client",
    "fedorch.cli.common",
    "fedorch.cli.bench",
    "fedorch.cli.demo",
    "fedorch.cli.scenario",
    "fedorch.bench",
    "fedorch.scenario",
    "fedorch.runtime.console.server",
    "fedorch.runtime.telemetry_sdk",
)


def _imported(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return set(out.split())


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules
                  if any(m == name or m.startswith(name + ".") for name in NOT_FOR_SERVING))


def test_the_agent_run_path_imports_nothing_it_does_not_serve_with() -> None:
    # What `python -m fedorch.cli.main agent run` loads before the daemon's main runs.
    modules = _imported("from fedorch.cli.main import cli\n"
                        "cli.get_command(None, 'agent')\n"
                        "import fedorch.runtime.daemon")
    assert "fedorch.runtime.daemon" in modules  # the probe did import the daemon
    assert "grpc" in modules
    assert _heavy(modules) == []


def test_the_bare_cli_imports_no_subcommand() -> None:
    modules = _imported("from fedorch.cli.main import cli")
    assert "click" in modules
    assert sorted(m for m in modules if m.startswith("fedorch.cli.")) == [
        "fedorch.cli.main", "fedorch.cli.settings"]


def test_tracing_configured_loads_the_sdk_then(tmp_path) -> None:
    # The other side of the lazy import: telemetry set up does load OpenTelemetry.
    modules = _imported(
        "from fedorch.runtime import telemetry\n"
        "from fedorch.gen.fedorch.v1 import config_pb2\n"
        f"c = config_pb2.AgentConfig(domain='a')\nc.telemetry.file = {str(tmp_path / 's')!r}\n"
        "telemetry.setup(c)\ntelemetry.shutdown()")
    assert "fedorch.runtime.telemetry_sdk" in modules
    assert "opentelemetry.sdk.trace" in modules


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_kept_summary_is_the_commands_own(name: str) -> None:
    command = load_subcommand(name)
    kept = click.Command(name, help=SUBCOMMANDS[name].summary)
    assert kept.get_short_help_str(200) == command.get_short_help_str(200)


def test_every_subcommand_module_holds_only_listed_commands() -> None:
    # A command added to a module but not to SUBCOMMANDS would never be reachable.
    modules = {entry.module for entry in SUBCOMMANDS.values()}
    for module in modules:
        mod = __import__(f"fedorch.cli.{module}", fromlist=["_"])
        top = {obj.name for obj in vars(mod).values()
               if isinstance(obj, click.Command) and obj.__module__ == mod.__name__
               and not _is_subcommand_of_a_group(obj, mod)}
        assert top <= set(SUBCOMMANDS), (module, top - set(SUBCOMMANDS))


def _is_subcommand_of_a_group(command: click.Command, mod) -> bool:
    return any(isinstance(obj, click.Group) and command in obj.commands.values()
               for obj in vars(mod).values())


def test_help_lists_every_command_with_its_summary() -> None:
    from click.testing import CliRunner

    lazy = CliRunner().invoke(cli, ["--help"]).output
    eager = click.Group(name="cli", params=cli.params, help=cli.help,
                        context_settings=cli.context_settings)
    for name in SUBCOMMANDS:
        eager.add_command(load_subcommand(name))
    assert lazy == CliRunner().invoke(eager, ["--help"]).output
    assert "scenario" in lazy and "agent" in lazy
