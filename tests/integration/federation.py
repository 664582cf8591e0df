"""A federation of real agent processes on 127.0.0.1 for integration tests.

Built on agent.bench.realnet.RealNet (keys, configs, data dirs, processes
stopped by pid), with the workflow helpers tests need.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
from fedorch.bench.realnet import RPC_TIMEOUT_S, RealNet
from fedorch.core.identity.clients import ClientIdentity, home_domain
from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.keys import load_private_key
from fedorch.core.identity.submission import sign_spec
from fedorch.core.workflow.lifecycle import TERMINAL_NAMES
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2, peer_pb2_grpc, spec_pb2, status_pb2
from fedorch.runtime.client_calls import SignedClientStub
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.supervisor import wait_members_alive

TERMINAL = TERMINAL_NAMES
# The commit protocol the federations run (FEDORCH_TEST_COMMIT=2pc runs the suite with
# classic two-phase commit; the default is the daemon's, Paxos Commit).
COMMIT = os.environ.get("FEDORCH_TEST_COMMIT", "paxos")
# Fast timings so that tests about liveness and leases finish quickly.
TEST_TIMINGS = {
    "log_level": "info",
    "gossip": {"profile": "local"},
    "negotiation": {"prepare_timeout_s": 2, "lease_s": 4, "max_rounds": 3, "commit": COMMIT},
}



def node_engine_domains(names: tuple[str, ...], capabilities, *,
                        takeover_after_s: float = 3) -> dict[str, dict]:
    """Configs of `engine: node` agents with coordinator takeover after
    `takeover_after_s` and the suite's commit protocol (FEDORCH_TEST_COMMIT: Paxos
    Commit unless it says 2pc); `capabilities(name)`: what each offers."""
    return {name: {"engine": "node", "gossip": {"profile": "local"},
                   "negotiation": {**TEST_TIMINGS["negotiation"],
                                   "takeover_after_s": takeover_after_s},
                   "capabilities": capabilities(name)}
            for name in names}

def state_name(status: status_pb2.WorkflowStatus) -> str:
    return status_pb2.WorkflowState.Name(status.state).removeprefix("WORKFLOW_STATE_")


def step_states(status: status_pb2.WorkflowStatus) -> dict[str, tuple[str, str, int]]:
    return {
        s.id: (status_pb2.StepState.Name(s.state).removeprefix("STEP_STATE_"), s.domain,
               s.attempts)
        for s in status.steps
    }


class Federation(RealNet):
    def __init__(self, workdir: Path, domains: dict[str, dict],
                 identity: ClientIdentity | None = None) -> None:
        super().__init__(workdir, list(domains), bodies=domains,
                         extra=TEST_TIMINGS)
        # Signs the test's client calls, for agents that have `clients:` configured.
        self.identity = identity
        self._answering: dict[str, str] = {}  # agent name -> its domain (GetAgent)

    def client(self, name: str):
        if self.identity is None:
            return super().client(name)
        super().client(name)  # opens (and keeps) the channel
        return SignedClientStub(self._channels[name], self.identity.principal,
                                self.identity.key.sign)

    async def wait_converged(self, deadline_s: float = 30) -> None:
        running = list(self.procs)
        if self.identity is not None:
            async def all_alive() -> bool:
                views = await self.views()
                return all({m.domain for m in members
                            if m.state == client_pb2.MEMBER_STATE_ALIVE} >= set(running)
                           for members in views.values())

            await wait_for(all_alive, deadline_s, "every agent to see every other ALIVE")
            return
        for d in running:
            await wait_members_alive(self.procs[d], running, RPC_TIMEOUT_S, deadline_s)

    async def close_channels(self) -> None:
        await self.close()

    def rows(self, name: str, sql: str, args: tuple = ()) -> list[tuple]:
        """Read an agent's agent.db (its audit log, key records, meta), read-only: WAL
        lets it go on writing."""
        path = self.workdir / "data" / name / "agent.db"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def node_table(self, name: str, table: str) -> dict:
        """One table of agent `name`'s node.db (`Disk.<table>`, core/node/records.py),
        decoded, read-only: key -> value (None for a set table's keys)."""
        path = self.workdir / "data" / name / "node.db"
        codec = node_codec()
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return {codec.decode(k): None if v is None else codec.decode(v)
                    for k, v in db.execute(f"SELECT k, v FROM node_{table} ORDER BY rowid")}
        finally:
            db.close()

    async def wait_capacity_free(self, deadline_s: float = 30) -> None:
        """Until every agent sees every capability of every member free again. The slots
        an earlier test's workflows held are released as their steps end, but a member
        republishes its free capacity at most once per gossip.publish_interval_s: until
        then, placement elsewhere still counts those slots as taken, scores that domain
        as loaded, and may put a step somewhere other than where a test expects it."""
        async def free() -> bool:
            views = await self.views()
            return all(c.available == c.capacity for members in views.values()
                       for m in members for c in m.capabilities)

        await wait_for(free, deadline_s, "every capability to be free at every agent")

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Signal agent `name` by its pid: SIGSTOP freezes it, SIGCONT resumes it."""
        os.kill(self.procs[name].pid, sig)

    async def prepared(self, name: str, workflow_id: str) -> bool:
        """`name` voted YES: its PREPARED hold is in node.db (it is, before the vote)."""
        return [h.state.value for (wf, _), h in self.node_table(name, "holds").items()
                if wf == workflow_id] == ["prepared"]

    def signer(self, domain: str) -> Signer:
        """Sign as `domain` (its key from this federation's key dir)."""
        return Signer(domain, load_private_key(self.workdir / "keys" / f"{domain}.key"))

    async def peer_call(self, domain: str, method: str,
                        envelope: peer_pb2.Envelope) -> peer_pb2.Envelope:
        """One Peer RPC to `domain`, as a peer would make it; the signed reply."""
        async with grpc.aio.insecure_channel(self.address(domain)) as channel:
            return await getattr(peer_pb2_grpc.PeerStub(channel), method)(
                envelope, timeout=RPC_TIMEOUT_S)

    async def submit(self, domain: str, spec: spec_pb2.WorkflowSpec | str) -> str:
        if isinstance(spec, str):
            spec = parse_spec_text(spec, "test")
        request = client_pb2.SubmitRequest(spec=spec)
        if self.identity is not None:  # agents with client identities take signed specs only
            request_id = uuid.uuid4().hex  # signed with the spec: one submission
            request = client_pb2.SubmitRequest(request_id=request_id, signed_spec=sign_spec(
                self.identity.principal, self.identity.key.sign, spec, request_id=request_id,
                issued_at_ms=int(time.time() * 1000),
                coordinator=await self.coordinator(domain)))
        reply = await self.client(domain).Submit(request, timeout=RPC_TIMEOUT_S)
        return reply.id

    async def coordinator(self, domain: str) -> str:
        """The domain a signed spec submitted to `domain`'s agent names as its
        coordinator: the principal's home domain, else what the agent says it is
        (GetAgent, as the CLI asks it), asked once per agent."""
        home = home_domain(self.identity.principal) if self.identity is not None else ""
        if home:
            return home
        if domain not in self._answering:
            self._answering[domain] = (await self.client(domain).GetAgent(
                client_pb2.GetAgentRequest(), timeout=RPC_TIMEOUT_S)).domain
        return self._answering[domain]

    async def status(self, domain: str, workflow_id: str) -> status_pb2.WorkflowStatus:
        return await self.client(domain).GetWorkflow(
            client_pb2.GetWorkflowRequest(id=workflow_id), timeout=RPC_TIMEOUT_S)

    async def local_status(self, domain: str,
                           workflow_id: str) -> status_pb2.WorkflowStatus | None:
        """What `domain` itself knows of the workflow (`local_only`: never routed to its
        coordinator); None when it does not answer (down, not known there)."""
        try:
            return await self.client(domain).GetWorkflow(
                client_pb2.GetWorkflowRequest(id=workflow_id, local_only=True),
                timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return None

    async def answers_after(self, domain: str, workflow_id: str) -> bool:
        """`domain` answered a client call. Its reservation is on disk before its vote
        leaves, so a test that freezes a voter as soon as the reservation shows may keep
        the vote with it; an answer from the voter's loop comes from a later turn than
        the vote's reply (NOT_FOUND counts: a voter need not know the workflow yet)."""
        try:
            await self.client(domain).GetWorkflow(
                client_pb2.GetWorkflowRequest(id=workflow_id, local_only=True),
                timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            return e.code() == grpc.StatusCode.NOT_FOUND
        return True

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


@contextlib.asynccontextmanager
async def started_federation(workdir: Path, domains: dict[str, dict],
                             identity: ClientIdentity | None = None):
    """Start the agents and wait until they all see each other; after, stop every one of
    them by pid (resuming any the test left SIGSTOPped, so that it can stop)."""
    fed = Federation(workdir, domains, identity)
    fed.write_configs()
    try:
        await fed.start()
        await fed.wait_converged()
        yield fed
    finally:
        for proc in fed.procs.values():
            if proc.popen.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        await fed.close_channels()
        fed.stop()


@contextlib.contextmanager
def running_federation(workdir: Path, domains: dict[str, dict],
                       identity: ClientIdentity | None = None) -> Iterator[Federation]:
    """Start the agents, wait until they all see each other; stop them (by pid) after."""
    fed = Federation(workdir, domains, identity)
    fed.write_configs()
    try:
        asyncio.run(fed.start())
        asyncio.run(fed.wait_converged())
        asyncio.run(fed.close_channels())  # channels belong to the loop that made them
        yield fed
    finally:
        fed.stop()


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


async def holds(what, deadline_s: float, what_for: str) -> bool:
    """Did `what()` (a sync check) come true within the deadline? For a test that sets
    its premise up again when it did not (wait_for fails instead)."""
    async def check():
        return what()

    try:
        await wait_for(check, deadline_s, what_for)
    except AssertionError:
        return False
    return True


def naps_running(seconds: str) -> list[int]:
    """Pids of live processes running `sleep SECONDS` (zombies have no command line):
    the step processes of a test's naps (tests/integration/steps/nap.py), found by a
    nap length no other process on the machine uses (the `seconds` fixture)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", seconds.encode()]:
            pids.append(int(entry))
    return pids
