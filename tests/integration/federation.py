"""A federation of real agent processes on 127.0.0.1 for integration tests.

Agents run as `python -m agent.cli.main agent run` subprocesses with their
own keys, configs and data dirs under a temporary directory; every process
is stopped by pid when the test (or fixture) ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml

from agent.cli.demo import (
    AgentProcess,
    ensure_keys,
    pick_free_ports,
    start_agents,
    stop_agents,
    wait_healthy,
    wait_members_alive,
)
from agent.gen.fedorch.v1 import client_pb2, client_pb2_grpc, spec_pb2, status_pb2
from agent.workflow.spec import parse_spec_text

HOST = "127.0.0.1"
TERMINAL = {"SUCCEEDED", "FAILED", "ABORTED", "CANCELLED"}
RPC_TIMEOUT_S = 5.0


def state_name(status: status_pb2.WorkflowStatus) -> str:
    return status_pb2.WorkflowState.Name(status.state).removeprefix("WORKFLOW_STATE_")


def step_states(status: status_pb2.WorkflowStatus) -> dict[str, tuple[str, str, int]]:
    return {
        s.id: (status_pb2.StepState.Name(s.state).removeprefix("STEP_STATE_"), s.domain,
               s.attempts)
        for s in status.steps
    }


@dataclass
class Federation:
    workdir: Path
    domains: dict[str, dict]           # domain -> config body (without addresses/paths)
    ports: dict[str, int] = field(default_factory=dict)
    configs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, AgentProcess] = field(default_factory=dict)
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def address(self, domain: str) -> str:
        return f"{HOST}:{self.ports[domain]}"

    def write_configs(self) -> None:
        names = list(self.domains)
        keys = ensure_keys(names, self.workdir / "keys")
        free = pick_free_ports(2 * len(names))
        self.ports = {d: free[i] for i, d in enumerate(names)}
        metrics = {d: free[len(names) + i] for i, d in enumerate(names)}
        for d, body in self.domains.items():
            config = {
                "domain": d,
                "listen": self.address(d),
                "data_dir": str(self.workdir / "data" / d),
                "key_file": str(keys[d]),
                "seeds": [self.address(o) for o in names if o != d],
                "trust": {"key_files": [str(self.workdir / "keys" / f"{o}.pub")
                                        for o in names if o != d]},
                "metrics_listen": f"{HOST}:{metrics[d]}",
                "gossip": {"interval_s": 0.2, "suspect_after_s": 2, "dead_after_s": 4},
                "negotiation": {"prepare_timeout_s": 2, "lease_s": 4, "max_rounds": 3},
                **body,
            }
            path = self.workdir / f"{d}.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            self.configs[d] = path

    def metrics_address(self, domain: str) -> str:
        config = yaml.safe_load(self.configs[domain].read_text())
        return config["metrics_listen"]

    async def start(self, *domains: str) -> None:
        names = list(domains or self.domains)
        procs = start_agents({d: self.configs[d] for d in names},
                             {d: self.address(d) for d in names}, self.workdir)
        for p in procs:
            self.procs[p.domain] = p
        await wait_healthy(procs, deadline_s=30)

    async def wait_converged(self, deadline_s: float = 30) -> None:
        running = [d for d in self.domains if d in self.procs]
        for d in running:
            await wait_members_alive(self.procs[d], running, RPC_TIMEOUT_S, deadline_s)

    def stop(self, *domains: str) -> None:
        names = list(domains or self.procs)
        stop_agents([self.procs.pop(d) for d in names if d in self.procs])

    def kill(self, domain: str) -> None:
        """SIGKILL: a crash, no shutdown path at all."""
        proc = self.procs.pop(domain)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)

    def client(self, domain: str) -> client_pb2_grpc.ClientStub:
        channel = self.channels.get(domain)
        if channel is None:
            channel = self.channels[domain] = grpc.aio.insecure_channel(self.address(domain))
        return client_pb2_grpc.ClientStub(channel)

    async def close_channels(self) -> None:
        for channel in self.channels.values():
            await channel.close()
        self.channels.clear()

    # ---- workflows ---------------------------------------------------------------

    async def submit(self, domain: str, spec: spec_pb2.WorkflowSpec | str) -> str:
        if isinstance(spec, str):
            spec = parse_spec_text(spec, "test")
        reply = await self.client(domain).Submit(client_pb2.SubmitRequest(spec=spec),
                                                 timeout=RPC_TIMEOUT_S)
        return reply.id

    async def status(self, domain: str, workflow_id: str) -> status_pb2.WorkflowStatus:
        return await self.client(domain).GetWorkflow(
            client_pb2.GetWorkflowRequest(id=workflow_id), timeout=RPC_TIMEOUT_S)

    async def wait_state(self, domain: str, workflow_id: str, states=TERMINAL,
                         deadline_s: float = 60) -> status_pb2.WorkflowStatus:
        """Poll until the workflow is in one of `states` (a condition with a deadline)."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                status = await self.status(domain, workflow_id)
                if state_name(status) in states:
                    return status
            except grpc.aio.AioRpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                    raise
                status = None
            if time.monotonic() > deadline:
                raise AssertionError(f"{workflow_id} not in {states} within {deadline_s}s: "
                                     f"{status}")
            await asyncio.sleep(0.1)


async def wait_for(predicate, deadline_s: float, what: str, interval: float = 0.1):
    """Await an async predicate until it returns a truthy value, or fail after the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        await asyncio.sleep(interval)
