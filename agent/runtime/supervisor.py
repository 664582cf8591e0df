"""Local agent processes: keys, free ports, start, health wait, signals, stop, log tails.

Ports are leased (`fedorch.runtime.port_leases`), not merely found free: a lock file per
port keeps every other fedorch process on the machine from handing out the same port
between our pick and the agent's bind (the cause of "Address already in use" when
test workers start federations in parallel). The module docstring there says why this
was chosen over restarting an agent on new ports, and what it does not prevent.

Shared by `fedorch demo`, `fedorch scenario run`, the benchmarks and the integration
tests. Every process is started in its own session (a Ctrl-C to the caller is the
caller's; agents get SIGTERM from us) and stopped by its pid: SIGTERM, a grace period,
then SIGKILL. Nothing here looks processes up by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import fedorch
import grpc
from fedorch.core.identity.clients import ClientIdentity
from fedorch.gen.fedorch.v1 import client_pb2
from fedorch.runtime.port_leases import NoFreePortError, lease_ports

T = TypeVar("T")

HOST = "127.0.0.1"
STARTUP_DEADLINE_S = 20.0
STOP_GRACE_S = 10.0
# Agents are addressed directly; an HTTP proxy from the environment would only get in
# the way (and would turn "connection refused" into a slow failure).
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (("grpc.enable_http_proxy", 0),)


class SupervisorError(Exception):
    """Agents could not be started, did not come up, or one of them exited."""


def repo_root() -> Path:
    return Path(fedorch.__file__).resolve().parent.parent


# ---- keys and ports -----------------------------------------------------------------


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
        raise SupervisorError(f"cannot make keys in {keys_dir}: {exc}") from exc
    return found


def pick_free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct ports leased to this process (see `fedorch.runtime.port_leases`).

    They stay leased until `port_leases.release_ports` or the end of this process, so no
    other fedorch process takes one before (or while) an agent of ours listens on it.
    """
    try:
        return lease_ports(count, host)
    except NoFreePortError as exc:
        raise SupervisorError(str(exc)) from exc


# ---- processes ----------------------------------------------------------------------


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


CommandFor = Callable[[Path], list[str]]


def agent_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "fedorch.cli.main", "agent", "run", "--config", str(config)]


def child_env() -> dict[str, str]:
    """The environment agents run in: this checkout first on the path, unbuffered output."""
    env = dict(os.environ)
    root = str(repo_root())
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not existing else os.pathsep.join([root, existing])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_agent(
    domain: str,
    config: Path,
    address: str,
    workdir: Path,
    command: CommandFor = agent_command,
    wrap: Sequence[str] = (),
) -> AgentProcess:
    """Start one agent, its output appended to WORKDIR/<domain>.log. `wrap` goes before
    the command (e.g. `ip netns exec NS`)."""
    log_path = workdir / f"{domain}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            [*wrap, *command(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=child_env(),
            start_new_session=True,  # our Ctrl-C is ours; agents get SIGTERM from us
        )
    return AgentProcess(domain, address, config, log_path, popen)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is over, then raise KeyboardInterrupt.

    Around starting a process and recording it: an interrupt between the fork and the
    record would leave a process nobody knows to stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGINT,
                                                                    signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        raise KeyboardInterrupt


def start_agents(
    configs: dict[str, Path],
    addresses: dict[str, str],
    workdir: Path,
    command: CommandFor = agent_command,
) -> list[AgentProcess]:
    """Start one agent per config, output to WORKDIR/<domain>.log.

    If one fails to start, the ones already started are stopped before raising.
    """
    started: list[AgentProcess] = []
    try:
        for domain, config in configs.items():
            with deferred_interrupts():
                started.append(start_agent(domain, config, addresses[domain], workdir,
                                           command))
    except BaseException:
        stop_agents(started)
        raise
    return started


def send_signal(proc: AgentProcess, signum: int) -> bool:
    """Signal the agent by its pid if it is still running; whether it was."""
    if proc.popen.poll() is not None:
        return False
    try:
        os.kill(proc.pid, signum)
    except ProcessLookupError:
        return False
    return True


def kill_agent(proc: AgentProcess, wait_s: float = 10.0) -> None:
    """SIGKILL (a crash, as far as the agent can tell) and reap."""
    send_signal(proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(timeout=wait_s)


def stop_agents(agents: Sequence[AgentProcess], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every agent still running, wait up to grace_s in all, then SIGKILL.

    A paused (SIGSTOPped) agent is resumed after the SIGTERM so that it can act on it.
    """
    try:
        for proc in agents:
            if send_signal(proc, signal.SIGTERM):
                send_signal(proc, signal.SIGCONT)
        deadline = time.monotonic() + grace_s
        for proc in agents:
            try:
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                send_signal(proc, signal.SIGKILL)
                proc.popen.wait()
    except BaseException:  # e.g. a second Ctrl-C: no more patience, but nothing left behind
        for proc in agents:
            send_signal(proc, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.popen.wait(timeout=5)
        raise


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def exited(proc: AgentProcess) -> SupervisorError | None:
    """The error to raise when the agent has exited, else None."""
    code = proc.popen.poll()
    if code is None:
        return None
    return SupervisorError(f"agent {proc.domain} exited with code {code} (log: {proc.log_path})")


# ---- waiting on agents --------------------------------------------------------------


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
                if (error := exited(proc)) is not None:
                    raise error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SupervisorError(
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


async def list_members(address: str, rpc_timeout: float,
                       identity: ClientIdentity | None = None) -> list[client_pb2.MemberInfo]:
    """One ListMembers call, signed by `identity` if given; [] when the agent does not
    answer."""
    from fedorch.runtime.client_calls import SignedClientStub

    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = SignedClientStub(channel, identity.principal if identity else "",
                                identity.key.sign if identity else None)
        try:
            reply = await stub.ListMembers(client_pb2.ListMembersRequest(),
                                           timeout=rpc_timeout)
        except grpc.RpcError:
            return []
    return list(reply.members)


def member_state(member: client_pb2.MemberInfo) -> str:
    return client_pb2.MemberState.Name(member.state).removeprefix("MEMBER_STATE_")


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
    while True:
        for p in (proc, *others):
            if (error := exited(p)) is not None:
                raise error
        members = await list_members(proc.address, rpc_timeout)
        seen = {m.domain: member_state(m) for m in members}
        if all(seen.get(d) == "ALIVE" for d in domains):
            return members
        if time.monotonic() >= deadline:
            view = ", ".join(f"{d}={s}" for d, s in sorted(seen.items())) or "nothing"
            raise SupervisorError(
                f"{proc.domain} did not see {', '.join(domains)} ALIVE within "
                f"{deadline_s:g}s (it sees {view})"
            )
        await asyncio.sleep(0.25)


async def _first_exit(agents: Sequence[AgentProcess], interval_s: float) -> None:
    while True:
        for proc in agents:
            if (error := exited(proc)) is not None:
                raise error
        await asyncio.sleep(interval_s)


async def until_an_agent_exits(
    work: Coroutine[Any, Any, T], agents: Sequence[AgentProcess], interval_s: float = 0.5
) -> T:
    """Await `work`, but raise SupervisorError as soon as one of the agents exits."""
    task = asyncio.ensure_future(work)
    guard = asyncio.ensure_future(_first_exit(agents, interval_s))
    try:
        await asyncio.wait({task, guard}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        guard.result()  # raises the SupervisorError
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        for pending in (task, guard):
            pending.cancel()
        await asyncio.gather(task, guard, return_exceptions=True)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Let a SIGTERM to this process unwind like Ctrl-C, so its agents are stopped."""
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
