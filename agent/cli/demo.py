"""`fedorch demo`: a local federation of three agents and one workflow across it.

The steps are plain functions so that tests can drive them one at a time:
`write_configs` (from scenarios/demo/<domain>.yaml) here, and the process supervisor's
`ensure_keys`, `pick_free_ports`, `start_agents`, `wait_healthy`, `wait_members_alive`,
`stop_agents`, `log_tail` (fedorch.runtime.supervisor, re-exported for callers of this
module).
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml
from fedorch.cli.client import AgentClient
from fedorch.cli.common import console, settings
from fedorch.cli.errors import EXIT_FAILED, CliError, one_line, rpc_errors
from fedorch.cli.follow import wait_for_terminal
from fedorch.cli.render import (
    TERMINAL_NAMES,
    change_lines,
    members_table,
    status_to_dict,
    steps_table,
    workflow_state_name,
)
from fedorch.cli.workflows import load_spec
from fedorch.gen.fedorch.v1 import spec_pb2, status_pb2
from fedorch.runtime.supervisor import (  # noqa: F401 - re-exported, see the docstring
    STARTUP_DEADLINE_S,
    STOP_GRACE_S,
    AgentProcess,
    SupervisorError,
    agent_command,
    ensure_keys,
    log_tail,
    pick_free_ports,
    repo_root,
    sigterm_as_interrupt,
    start_agents,
    stop_agents,
    until_an_agent_exits,
    wait_healthy,
    wait_members_alive,
)
from rich.console import Console
from rich.rule import Rule
from rich.text import Text

DOMAINS: tuple[str, ...] = ("eu-west", "us-east", "partner")
COORDINATOR = "eu-west"
HOST = "127.0.0.1"
DEFAULT_WORKFLOW_WAIT_S = 120.0


# The demo's errors are the supervisor's: agents that would not start or that exited.
DemoError = SupervisorError


def scenario_dir() -> Path:
    return repo_root() / "scenarios" / "demo"


# ---- keys, ports, configs ------------------------------------------------------------


def _port(address: str) -> str:
    return address.rsplit(":", 1)[-1]


def _pop_any(config: dict[str, Any], *names: str) -> Any:
    """Remove a field under any of its spellings (snake_case or JSON camelCase)."""
    value = None
    for name in names:
        if name in config:
            popped = config.pop(name)
            value = popped if value is None else value
    return value


def _resolve_path_arg(arg: Any, bases: Sequence[Path]) -> Any:
    """An executor argument naming a file next to the template (or in the repo) → absolute."""
    if not isinstance(arg, str) or not arg or arg.startswith("-") or os.path.isabs(arg):
        return arg
    if "/" not in arg and not arg.endswith((".py", ".sh")):
        return arg
    for base in bases:
        candidate = base / arg
        if candidate.exists():
            return str(candidate.resolve())
    return arg


def rewrite_config(
    template: dict[str, Any],
    domain: str,
    *,
    addresses: dict[str, str],
    template_addresses: dict[str, list[str]],
    workdir: Path,
    keys_dir: Path,
    template_dir: Path,
) -> dict[str, Any]:
    """A template agent config moved onto this run's ports, work dir and keys."""
    config = copy.deepcopy(template)
    address = addresses[domain]
    config["domain"] = domain
    config["listen"] = address
    config["advertise"] = address

    by_address: dict[str, str] = {}
    by_port: dict[str, str] = {}
    for other, olds in template_addresses.items():
        for old in olds:
            by_address[old] = addresses[other]
            by_port[_port(old)] = addresses[other]
    template_seeds = list(config.get("seeds") or [])
    seeds: list[str] = []
    for seed in template_seeds:
        new = by_address.get(seed) or by_port.get(_port(str(seed)))
        if new and new != address and new not in seeds:
            seeds.append(new)
    if template_seeds and not seeds:
        seeds = [a for d, a in addresses.items() if d != domain]
    config["seeds"] = seeds

    _pop_any(config, "data_dir", "dataDir")
    config["data_dir"] = str(workdir / "data" / domain)
    _pop_any(config, "key_file", "keyFile")
    config["key_file"] = str(keys_dir / f"{domain}.key")
    _pop_any(config, "metrics_listen", "metricsListen")

    trust = dict(config.get("trust") or {})
    listed = _pop_any(trust, "key_files", "keyFiles") or []
    if listed:
        trust["key_files"] = [str(keys_dir / Path(str(f)).name) for f in listed]
    else:
        trust["key_files"] = [str(keys_dir / f"{d}.pub") for d in addresses if d != domain]
    config["trust"] = trust

    bases = (template_dir, repo_root())
    for capability in config.get("capabilities") or []:
        executor = capability.get("executor") if isinstance(capability, dict) else None
        if not isinstance(executor, dict):
            continue
        argv = list(executor.get("argv") or [])
        if argv:
            if argv[0] in ("python", "python3"):
                argv[0] = sys.executable
            executor["argv"] = [argv[0], *(_resolve_path_arg(a, bases) for a in argv[1:])]
        # A command executor runs in its cwd, by default the config's directory: keep that
        # the template's directory, now that the config itself lives in the work dir.
        cwd = executor.get("cwd")
        if executor.get("type") == "command" or cwd:
            cwd = str(cwd or ".")
            if not os.path.isabs(cwd):
                executor["cwd"] = str((template_dir / cwd).resolve())
    return config


def write_configs(template_dir: Path, workdir: Path, ports: dict[str, int]) -> dict[str, Path]:
    """Write WORKDIR/<domain>.yaml for each domain of `ports`; return their paths."""
    templates: dict[str, dict[str, Any]] = {}
    for domain in ports:
        path = template_dir / f"{domain}.yaml"
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DemoError(f"cannot read demo config template {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise DemoError(f"demo config template {path} is not a YAML mapping")
        templates[domain] = loaded
    addresses = {domain: f"{HOST}:{port}" for domain, port in ports.items()}
    template_addresses = {
        domain: [str(t[k]) for k in ("listen", "advertise") if t.get(k)]
        for domain, t in templates.items()
    }
    keys_dir = workdir / "keys"
    written: dict[str, Path] = {}
    for domain, template in templates.items():
        config = rewrite_config(
            template,
            domain,
            addresses=addresses,
            template_addresses=template_addresses,
            workdir=workdir,
            keys_dir=keys_dir,
            template_dir=template_dir,
        )
        (workdir / "data" / domain).mkdir(parents=True, exist_ok=True)
        out = workdir / f"{domain}.yaml"
        out.write_text(yaml.safe_dump(config, sort_keys=False))
        written[domain] = out
    return written


# ---- the show ------------------------------------------------------------------------


def refusal_summary(status: status_pb2.WorkflowStatus) -> list[str]:
    """ "round 1: us-east refused train: <reason>" and where each refused step went."""
    placed = {step.id: step.domain for step in status.steps}
    lines: list[str] = []
    for refusal in status.refusals:
        steps = list(refusal.steps) or ["its steps"]
        for step_id in steps:
            lines.append(
                f"round {refusal.round}: {refusal.domain} refused {step_id}: {refusal.reason}"
            )
            now = placed.get(step_id, "")
            if now and now != refusal.domain:
                lines.append(f"  -> {step_id} was re-placed on {now}")
    return lines


def terminal_last(lines: list[str], current: dict[str, Any]) -> list[str]:
    """The lines of one status change with the workflow's terminal state moved last: the
    update that ends a workflow also carries its last step's end, which happened first."""
    if current.get("state") not in TERMINAL_NAMES:
        return lines
    ending = f"workflow {current.get('id', '')} {current['state']}"
    ends = [line for line in lines if line.startswith(ending)]
    return [line for line in lines if not line.startswith(ending)] + ends


def _say(con: Console, text: str, style: str = "") -> None:
    con.print(Text(text, style=style), soft_wrap=True)


async def _drive(
    agents: Sequence[AgentProcess],
    spec: spec_pb2.WorkflowSpec,
    rpc_timeout: float,
    limit_s: float,
    con: Console,
) -> status_pb2.WorkflowStatus:
    coordinator = next(a for a in agents if a.domain == COORDINATOR)

    con.print(Rule("agents"))
    await wait_healthy(agents)
    for proc in agents:
        _say(con, f"{proc.domain} SERVING at {proc.address} (pid {proc.pid})")
    members = await wait_members_alive(
        coordinator, [a.domain for a in agents], rpc_timeout, others=agents
    )
    con.print(members_table(members))

    con.print(Rule("workflow"))
    previous: dict[str, Any] | None = None

    def show(status: status_pb2.WorkflowStatus) -> None:
        nonlocal previous
        current = status_to_dict(status)
        for line in terminal_last(change_lines(previous, current), current):
            style = "yellow" if " refused " in line or "re-placed" in line else ""
            _say(con, f"  {line}", style)
        previous = current

    async def submit_and_follow() -> status_pb2.WorkflowStatus:
        async with AgentClient(coordinator.address, rpc_timeout) as client:
            with rpc_errors(coordinator.address):
                workflow_id = await client.submit(spec, uuid.uuid4().hex)
                name = spec.name or "workflow"
                _say(con, f"submitted {name} as {workflow_id} to {COORDINATOR}")
                return await wait_for_terminal(client, workflow_id, limit_s, show)

    final = await until_an_agent_exits(submit_and_follow(), agents)

    con.print(Rule("result"))
    _say(con, f"negotiation took {final.rounds} round(s)")
    for line in refusal_summary(final):
        _say(con, line, "yellow")
    con.print(steps_table(final, title="which domain ran which step"))
    state = workflow_state_name(final.state)
    message = f"workflow {final.id} {state}"
    if final.reason:
        message += f": {final.reason}"
    _say(con, message, "bold green" if state == "SUCCEEDED" else "bold red")
    return final


def run_demo(
    workdir: Path | None,
    keep: bool,
    rpc_timeout: float,
    limit_s: float = DEFAULT_WORKFLOW_WAIT_S,
    con: Console | None = None,
    template_dir: Path | None = None,
) -> int:
    """The whole demo; returns the exit code. Every agent started is stopped."""
    con = con or console()
    template_dir = template_dir or scenario_dir()
    temporary = workdir is None
    root = Path(tempfile.mkdtemp(prefix="fedorch-demo-")) if workdir is None else workdir
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    agents: list[AgentProcess] = []
    code = EXIT_FAILED
    interrupted = False
    try:
        with sigterm_as_interrupt():
            try:
                con.print(Rule("fedorch demo"))
                _say(con, f"work dir {root}")
                spec = load_spec(template_dir / "workflow.yaml")
                ensure_keys(DOMAINS, root / "keys")
                ports = dict(zip(DOMAINS, pick_free_ports(len(DOMAINS)), strict=True))
                configs = write_configs(template_dir, root, ports)
                addresses = {d: f"{HOST}:{p}" for d, p in ports.items()}
                agents = start_agents(configs, addresses, root)
                final = asyncio.run(_drive(agents, spec, rpc_timeout, limit_s, con))
                code = 0 if final.state == status_pb2.WORKFLOW_STATE_SUCCEEDED else EXIT_FAILED
            finally:
                stop_agents(agents)
    except (DemoError, CliError) as exc:
        # Whatever went wrong (no federation, agent unreachable, bad spec), the demo failed.
        message = exc.format_message() if isinstance(exc, CliError) else one_line(str(exc))
        click.echo(f"fedorch: error: {message}", err=True)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if code != 0 and agents and not interrupted:
            for proc in agents:
                con.print(Rule(f"{proc.domain} log (last lines)"))
                con.print(Text(log_tail(proc.log_path)))
        if temporary and not keep and code == 0:
            shutil.rmtree(root, ignore_errors=True)
        else:
            _say(con, f"configs, keys and logs kept in {root}")
    return code


@click.command()
@click.option("--keep", is_flag=True, help="Keep the work dir (configs, keys, logs).")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Work dir to use (default: a new temporary dir).",
)
@click.option(
    "--timeout",
    "limit_s",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_WORKFLOW_WAIT_S,
    show_default=True,
    metavar="S",
    help="How long to wait for the workflow.",
)
def demo(keep: bool, workdir: Path | None, limit_s: float) -> None:
    """A local federation of three agents, a workflow across it, the result."""
    code = run_demo(workdir, keep, settings().rpc_timeout, limit_s)
    if code:
        sys.exit(code)
