"""`fedorch demo`: a local federation of three agents and one workflow across it.

The steps are plain functions so that tests can drive them one at a time:
`ensure_keys`, `pick_free_ports`, `write_configs` (from scenarios/demo/<domain>.yaml),
`start_agents`, `wait_healthy`, `wait_members_alive`, `stop_agents`, `log_tail`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
import fedorch
import grpc
import yaml
from fedorch.cli.client import CHANNEL_OPTIONS, AgentClient
from fedorch.cli.common import console, settings
from fedorch.cli.errors import EXIT_FAILED, CliError, one_line, rpc_errors
from fedorch.cli.follow import wait_for_terminal
from fedorch.cli.render import (
    change_lines,
    member_state_name,
    members_table,
    status_to_dict,
    steps_table,
    workflow_state_name,
)
from fedorch.cli.workflows import load_spec
from fedorch.gen.fedorch.v1 import client_pb2, spec_pb2, status_pb2
from rich.console import Console
from rich.rule import Rule
from rich.text import Text

T = TypeVar("T")

DOMAINS: tuple[str, ...] = ("eu-west", "us-east", "partner")
COORDINATOR = "eu-west"
HOST = "127.0.0.1"
STARTUP_DEADLINE_S = 20.0
STOP_GRACE_S = 10.0
DEFAULT_WORKFLOW_WAIT_S = 120.0


class DemoError(Exception):
    """The demo could not get its federation going."""


def repo_root() -> Path:
    return Path(fedorch.__file__).resolve().parent.parent


def scenario_dir() -> Path:
    return repo_root() / "scenarios" / "demo"


# ---- keys, ports, configs ------------------------------------------------------------


def ensure_keys(domains: Sequence[str], keys_dir: Path) -> dict[str, Path]:
    """Each domain's private key path; makes missing key pairs, reuses complete ones."""
    from fedorch.core.identity.keys import init_keys

    found: dict[str, Path] = {}
    try:
        keys_dir.mkdir(parents=True, exist_ok=True)
        for domain in domains:
            private, public = keys_dir / f"{domain}.key", keys_dir / f"{domain}.pub"
            if not (private.exists() and public.exists()):
                private, public = init_keys(domain, keys_dir)
            found[domain] = Path(private)
    except (OSError, ValueError) as exc:
        raise DemoError(f"cannot make demo keys in {keys_dir}: {exc}") from exc
    return found


def pick_free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct ports that were free a moment ago (bind port 0, read, close)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


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


# ---- processes -----------------------------------------------------------------------


@dataclass
class AgentProcess:
    domain: str
    address: str
    config: Path
    log_path: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid


def agent_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "fedorch.cli.main", "agent", "run", "--config", str(config)]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(repo_root())
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not existing else os.pathsep.join([root, existing])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_agents(
    configs: dict[str, Path],
    addresses: dict[str, str],
    workdir: Path,
    command: Any = agent_command,
) -> list[AgentProcess]:
    """Start one agent per config, output to WORKDIR/<domain>.log.

    If one fails to start, the ones already started are stopped before raising.
    """
    env = _child_env()
    started: list[AgentProcess] = []
    try:
        for domain, config in configs.items():
            log_path = workdir / f"{domain}.log"
            with open(log_path, "ab") as log:
                popen = subprocess.Popen(
                    command(config),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                    env=env,
                    start_new_session=True,  # our Ctrl-C is ours; agents get SIGTERM from us
                )
            started.append(AgentProcess(domain, addresses[domain], config, log_path, popen))
    except BaseException:
        stop_agents(started)
        raise
    return started


def _signal(popen: subprocess.Popen[bytes], signum: int) -> None:
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(popen.pid, signum)


def stop_agents(agents: Sequence[AgentProcess], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every agent still running, wait up to grace_s in all, then SIGKILL."""
    try:
        for proc in agents:
            _signal(proc.popen, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in agents:
            try:
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(proc.popen, signal.SIGKILL)
                proc.popen.wait()
    except BaseException:  # e.g. a second Ctrl-C: no more patience, but nothing left behind
        for proc in agents:
            _signal(proc.popen, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.popen.wait(timeout=5)
        raise


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _exited(proc: AgentProcess) -> DemoError | None:
    code = proc.popen.poll()
    if code is None:
        return None
    return DemoError(f"agent {proc.domain} exited with code {code} (log: {proc.log_path})")


async def wait_healthy(
    agents: Sequence[AgentProcess], deadline_s: float = STARTUP_DEADLINE_S
) -> None:
    """Poll each agent's gRPC health service until it answers SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + deadline_s
    for proc in agents:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if (error := _exited(proc)) is not None:
                    raise error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DemoError(
                        f"agent {proc.domain} at {proc.address} was not SERVING "
                        f"within {deadline_s:g}s (log: {proc.log_path})"
                    )
                try:
                    reply = await stub.Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=min(1.0, remaining)
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                await asyncio.sleep(0.2)


async def wait_members_alive(
    proc: AgentProcess,
    domains: Sequence[str],
    rpc_timeout: float,
    deadline_s: float = STARTUP_DEADLINE_S,
    others: Sequence[AgentProcess] = (),
) -> list[client_pb2.MemberInfo]:
    """Poll proc's ListMembers until every domain is ALIVE; return that member list."""
    deadline = time.monotonic() + deadline_s
    seen: dict[str, str] = {}
    async with AgentClient(proc.address, rpc_timeout) as client:
        while True:
            for p in (proc, *others):
                if (error := _exited(p)) is not None:
                    raise error
            try:
                members = await client.list_members()
            except grpc.RpcError:
                members = []
            seen = {m.domain: member_state_name(m.state) for m in members}
            if all(seen.get(d) == "ALIVE" for d in domains):
                return members
            if time.monotonic() >= deadline:
                view = ", ".join(f"{d}={s}" for d, s in sorted(seen.items())) or "nothing"
                raise DemoError(
                    f"{proc.domain} did not see {', '.join(domains)} ALIVE within "
                    f"{deadline_s:g}s (it sees {view})"
                )
            await asyncio.sleep(0.25)


async def _first_exit(agents: Sequence[AgentProcess], interval_s: float) -> None:
    while True:
        for proc in agents:
            if (error := _exited(proc)) is not None:
                raise error
        await asyncio.sleep(interval_s)


async def until_an_agent_exits(
    work: Coroutine[Any, Any, T], agents: Sequence[AgentProcess], interval_s: float = 0.5
) -> T:
    """Await `work`, but raise DemoError as soon as one of the agents exits."""
    task = asyncio.ensure_future(work)
    guard = asyncio.ensure_future(_first_exit(agents, interval_s))
    try:
        await asyncio.wait({task, guard}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        guard.result()  # raises the DemoError
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        for pending in (task, guard):
            pending.cancel()
        await asyncio.gather(task, guard, return_exceptions=True)


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
        for line in change_lines(previous, current):
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


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let a SIGTERM to the demo unwind like Ctrl-C, so its agents are stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
        with _sigterm_as_interrupt():
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
