"""Many real agent processes on 127.0.0.1, for benchmarks.

Each agent gets its own key, config, data dir, gRPC port and metrics port
under one work dir; trust lists name every other agent; seeds are a few other
agents chosen with a seeded random generator. Every process is stopped by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml
from fedorch.cli.demo import (
    AgentProcess,
    ensure_keys,
    pick_free_ports,
    start_agents,
    stop_agents,
    wait_healthy,
)
from fedorch.gen.fedorch.v1 import client_pb2, client_pb2_grpc
from fedorch.runtime.peers import CHANNEL_OPTIONS
from fedorch.runtime.port_leases import release_ports
from fedorch.runtime.supervisor import CommandFor, agent_command
from prometheus_client.parser import text_string_to_metric_families

HOST = "127.0.0.1"
RPC_TIMEOUT_S = 5.0


@dataclass
class RealNet:
    workdir: Path
    names: list[str]
    bodies: dict[str, dict] = field(default_factory=dict)  # per agent: merged into its config
    extra: dict = field(default_factory=dict)  # merged into every config (gossip, ...)
    seed: int = 1
    ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    configs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, AgentProcess] = field(default_factory=dict)
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    # One stub per agent: a stub builds a callable per RPC (about 35 us here), which a
    # stub per call paid for every workflow the benchmarks submit.
    _stubs: dict[str, client_pb2_grpc.ClientStub] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return f"{HOST}:{self.ports[name]}"

    def write_configs(self) -> None:
        rng = random.Random(self.seed)
        keys = ensure_keys(self.names, self.workdir / "keys")
        free = pick_free_ports(2 * len(self.names))
        self.ports = dict(zip(self.names, free[: len(self.names)], strict=True))
        self.metrics_ports = dict(zip(self.names, free[len(self.names):], strict=True))
        for name in self.names:
            others = [o for o in self.names if o != name]
            config = {
                "domain": name,
                "listen": self.address(name),
                "data_dir": str(self.workdir / "data" / name),
                "key_file": str(keys[name]),
                "seeds": [self.address(o) for o in rng.sample(others, min(3, len(others)))],
                "trust": {"key_files": [str(self.workdir / "keys" / f"{o}.pub")
                                        for o in others]},
                "metrics_listen": f"{HOST}:{self.metrics_ports[name]}",
                "log_level": "warning",
                "capabilities": [{"name": "bench.echo", "capacity": 64,
                                  "executor": {"type": "builtin", "name": "echo"}}],
                **self.extra,
                **self.bodies.get(name, {}),
            }
            path = self.workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            self.configs[name] = path

    async def start(self, *names: str, deadline_s: float = 60,
                    command: CommandFor = agent_command) -> None:
        chosen = list(names or self.names)
        procs = start_agents({n: self.configs[n] for n in chosen},
                             {n: self.address(n) for n in chosen}, self.workdir, command)
        self.procs.update({p.domain: p for p in procs})
        await wait_healthy(procs, deadline_s=deadline_s)

    def stop(self, *names: str) -> None:
        """Stop these agents by pid (all of them with no names: then the federation's
        ports are given back too, since none of its agents listens any more)."""
        chosen = list(names or self.procs)
        stop_agents([self.procs.pop(n) for n in chosen if n in self.procs])
        if not names:
            release_ports([*self.ports.values(), *self.metrics_ports.values()])

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)

    def sighup(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGHUP)

    def client(self, name: str) -> client_pb2_grpc.ClientStub:
        stub = self._stubs.get(name)
        if stub is None:
            # Short reconnect backoff: agents here are killed and restarted on purpose.
            channel = self._channels[name] = grpc.aio.insecure_channel(
                self.address(name), options=CHANNEL_OPTIONS)
            stub = self._stubs[name] = client_pb2_grpc.ClientStub(channel)
        return stub

    def metrics_address(self, name: str) -> str:
        return f"{HOST}:{self.metrics_ports[name]}"

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()

    async def members(self, name: str) -> list[client_pb2.MemberInfo]:
        try:
            reply = await self.client(name).ListMembers(client_pb2.ListMembersRequest(),
                                                        timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return []
        return list(reply.members)

    async def views(self) -> dict[str, list[client_pb2.MemberInfo]]:
        """Every running agent's member list, fetched concurrently."""
        running = list(self.procs)
        lists = await asyncio.gather(*(self.members(n) for n in running))
        return dict(zip(running, lists, strict=True))

    def metric(self, name: str, metric: str, **labels: str) -> float:
        """One sample from an agent's Prometheus endpoint (0 when absent)."""
        url = f"http://{HOST}:{self.metrics_ports[name]}/metrics"
        text = urllib.request.urlopen(url, timeout=RPC_TIMEOUT_S).read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == metric and all(sample.labels.get(k) == v
                                                 for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


async def poll_until(predicate, deadline_s: float, interval_s: float = 0.1) -> float | None:
    """Seconds until the async predicate held, or None when the deadline passed first."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(interval_s)
    return None
