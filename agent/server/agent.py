"""The agent: wires the sans-I/O cores to gRPC, SQLite and executors.

One Agent per daemon. It owns every background task through one TaskGroup
(`run`), so nothing outlives it: gossip, in-doubt queries, deliveries and step
runs all end when the agent stops. Coordination and Participation hold the
two halves of the negotiation; this module holds what both need.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agent.executor import build_executor
from agent.executor.base import Executor
from agent.gen.fedorch.v1 import config_pb2, peer_pb2, status_pb2
from agent.identity.envelope import Signer, new_nonce, open_evidence, seal
from agent.identity.keys import load_private_key
from agent.identity.replay import ReplayGuard
from agent.identity.trust import TrustStore
from agent.membership.table import MembershipTable, MemberState
from agent.negotiation.participant import Participant
from agent.policy.engine import summarize
from agent.server.metrics import AgentMetrics
from agent.server.peers import PeerCallError, PeerChannels
from agent.store.store import StepRow, Store, WorkflowRow
from agent.workflow.progress import Progress

log = logging.getLogger("fedorch.agent")

TERMINAL_WORKFLOW_STATES = frozenset({"SUCCEEDED", "FAILED", "ABORTED", "CANCELLED"})
PEER_RPC_TIMEOUT_S = 5.0


@dataclass
class Active:
    """A workflow this agent is working on: its row and, once committed, its progress."""

    row: WorkflowRow
    progress: Progress | None = None
    running: dict[str, asyncio.Task] = field(default_factory=dict)  # local step attempts


class Changes:
    """Wakes watchers when a workflow's status changes (no polling)."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._version: dict[str, int] = {}

    def version(self, workflow_id: str) -> int:
        return self._version.get(workflow_id, 0)

    async def bump(self, workflow_id: str) -> None:
        async with self._cond:
            self._version[workflow_id] = self.version(workflow_id) + 1
            self._cond.notify_all()

    async def wait_past(self, workflow_id: str, seen: int, timeout: float) -> int:
        async with self._cond:
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self.version(workflow_id) > seen), timeout
                )
            except TimeoutError:
                pass
            return self.version(workflow_id)


class Agent:
    def __init__(self, config: config_pb2.AgentConfig, store: Store, *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None):
        self.config = config
        self.config_path = ""  # set by the daemon; SIGHUP re-reads it
        self.domain = config.domain
        self.endpoint = config.advertise or config.listen
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.metrics = AgentMetrics()
        self.signer = Signer(self.domain, load_private_key(config.key_file))
        self.trust = TrustStore.from_files(config.trust.key_files)
        self.trust.add(self.domain, self.signer.public_key())
        neg = config.negotiation
        self.guard = ReplayGuard(int(neg.replay_window_s * 1000))
        self.peers = PeerChannels(
            self.signer, self.trust, self.guard, clock,
            on_error=lambda m, c: self.metrics.rpc_errors.labels(m, c).inc(),
        )
        g = config.gossip
        self.membership = MembershipTable(
            self.domain, self._verify_record,
            suspect_after=g.suspect_after_s, dead_after=g.dead_after_s,
        )
        self._set_capabilities(config)
        self.participant = Participant(
            self.domain, config.policy, self.capacities,
            lease_s=neg.lease_s, query_interval_s=max(0.5, neg.prepare_timeout_s),
        )
        self.active: dict[str, Active] = {}
        self.changes = Changes()
        self._record_version = 0
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = asyncio.Event()
        self._wake_timers = asyncio.Event()
        # Set by the daemon: the two protocol halves (kept separate for size).
        from agent.server.coordination import Coordination
        from agent.server.participation import Participation

        self.coordination = Coordination(self)
        self.participation = Participation(self)

    def _set_capabilities(self, config: config_pb2.AgentConfig) -> None:
        self.capacities = {c.name: c.capacity for c in config.capabilities}
        self.costs = {c.name: c.cost for c in config.capabilities}
        self.executors: dict[str, Executor] = {
            c.name: build_executor(
                c.executor.type, argv=list(c.executor.argv), env=dict(c.executor.env),
                name=c.executor.name, cwd=c.executor.cwd or None,
            )
            for c in config.capabilities
        }

    RELOADABLE = ("labels", "capabilities", "policy", "log_level")

    async def reload(self, config: config_pb2.AgentConfig) -> list[str]:
        """Apply a re-read config (SIGHUP): labels, capabilities, policy.

        Returns the fields that changed but need a restart (they are left as they were).
        Steps already running keep the executor they started with.
        """
        fixed = [f.name for f in config_pb2.AgentConfig.DESCRIPTOR.fields
                 if f.name not in self.RELOADABLE
                 and getattr(config, f.name) != getattr(self.config, f.name)]
        self._set_capabilities(config)
        self.participant.reconfigure(config.policy, self.capacities)
        self.config.labels.clear()
        self.config.labels.update(config.labels)
        del self.config.capabilities[:]
        self.config.capabilities.extend(config.capabilities)
        self.config.policy.CopyFrom(config.policy)
        await self.publish_record()
        log.info("configuration reloaded: %d capabilities", len(self.capacities))
        return fixed

    # ---- time and signing -------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def seal(self, recipient: str, **payload: object) -> peer_pb2.Envelope:
        return seal(self.signer, recipient=recipient, now_ms=self.now_ms(), nonce=new_nonce(),
                    **payload)

    def _verify_record(self, envelope: peer_pb2.Envelope, domain: str) -> bool:
        try:
            body = open_evidence(envelope, self.trust, expect="record")
        except Exception:  # AuthError
            return False
        return body.sender == domain

    # ---- lifecycle ---------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Run until stop(): recovery, then the background loops, all owned here."""
        stored = await self.store.get_meta("record_version")
        self._record_version = int(stored) if stored else 0
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            await self.publish_record()
            await self.participation.recover()
            await self.coordination.recover()
            tg.create_task(self._gossip_loop(), name="gossip")
            tg.create_task(self.participation.timer_loop(), name="in-doubt")
            if ready is not None:
                ready.set()
            await self._stopping.wait()
            for active in self.active.values():
                for task in active.running.values():
                    task.cancel()
            raise _Stop()

    def spawn(self, coro: Awaitable, name: str) -> asyncio.Task | None:
        """Start a task owned by the agent's TaskGroup (never fire-and-forget)."""
        if self._tg is None or self._stopping.is_set():
            coro.close()  # type: ignore[attr-defined]
            return None
        return self._tg.create_task(self._guarded(coro, name), name=name)

    async def _guarded(self, coro: Awaitable, name: str) -> None:
        # A bug in one workflow's task must not take the whole agent down
        # (the TaskGroup would cancel everything): log it loudly and go on.
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %r failed", name)

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Wait, but wake at once when the agent stops; returns False when stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    # ---- gossip --------------------------------------------------------------------

    async def publish_record(self, leaving: bool = False) -> None:
        # Versions are millisecond timestamps (kept monotonic), so a restarted
        # agent's record outranks the one it published before it stopped.
        self._record_version = max(self._record_version + 1, self.now_ms())
        available = self.participant.available()
        record = peer_pb2.DomainRecord(
            domain=self.domain, version=self._record_version, endpoint=self.endpoint,
            labels=dict(self.config.labels), policy=summarize(self.config.policy),
            leaving=leaving,
            capabilities=[
                peer_pb2.CapabilityInfo(name=name, capacity=cap, available=available[name],
                                        cost=self.costs[name])
                for name, cap in sorted(self.capacities.items())
            ],
        )
        envelope = self.seal("", record=record)
        self.membership.publish_self(envelope, record, self.now())
        await self.store.set_meta("record_version", str(self._record_version))
        for cap, used in self.participant.in_use().items():
            self.metrics.reserved_slots.labels(cap).set(used)

    async def _gossip_loop(self) -> None:
        interval = self.config.gossip.interval_s
        fanout = self.config.gossip.fanout
        while not self.stopping:
            await self.publish_record()
            targets = self.membership.gossip_targets(self.rng, fanout, self.now())
            if len(targets) < fanout:
                # Seeds until the federation is known: how a new agent joins,
                # and how a restarted one finds its way back.
                known = set(targets) | {self.endpoint}
                targets += [s for s in self.config.seeds if s not in known]
            await asyncio.gather(*(self.exchange(t) for t in targets))
            self._count_members()
            if not await self.sleep(interval * (0.75 + 0.5 * self.rng.random())):
                return

    async def exchange(self, endpoint: str) -> None:
        """One push-pull with a peer at `endpoint` (its domain may be unknown: a seed)."""
        mine = self.membership.envelopes()
        try:
            body, _ = await self.peers.call(
                endpoint, "Gossip", recipient="", expect="gossip",
                timeout=min(PEER_RPC_TIMEOUT_S, max(1.0, self.config.gossip.interval_s * 2)),
                gossip=peer_pb2.GossipExchange(records=mine),
            )
        except PeerCallError as e:
            log.debug("gossip with %s failed: %s", endpoint, e)
            return
        self.metrics.gossip_exchanges.labels("out").inc()
        self.metrics.gossip_bytes.labels("out").inc(sum(e.ByteSize() for e in mine))
        self.metrics.gossip_bytes.labels("in").inc(body.gossip.ByteSize())
        self.membership.merge(body.gossip.records, self.now())

    def receive_gossip(self, exchange: peer_pb2.GossipExchange) -> peer_pb2.GossipExchange:
        self.metrics.gossip_exchanges.labels("in").inc()
        self.membership.merge(exchange.records, self.now())
        return peer_pb2.GossipExchange(records=self.membership.envelopes())

    def _count_members(self) -> None:
        now = self.now()
        counts = {s: 0 for s in MemberState}
        for m in self.membership.members():
            counts[self.membership.state(m, now)] += 1
        for state, n in counts.items():
            self.metrics.members.labels(state.value).set(n)

    def endpoint_of(self, domain: str, known: dict[str, str] | None = None) -> str | None:
        if domain == self.domain:
            return self.endpoint
        return self.membership.endpoint(domain) or (known or {}).get(domain)

    # ---- reliable delivery ---------------------------------------------------------

    async def deliver(
        self,
        domain: str,
        method: str,
        *,
        endpoints: dict[str, str] | None = None,
        give_up_after: float,
        **payload: object,
    ) -> bool:
        """Send one message until the peer acknowledges it, with backoff.

        Each attempt is a freshly sealed envelope (new nonce), and receivers are
        idempotent, so a retry after a lost reply is harmless. Returns False when
        it gives up (the receiver then asks on its own: in-doubt queries) or the
        agent stops.
        """
        deadline = self.now() + give_up_after
        backoff = 0.1
        while not self.stopping:
            endpoint = self.endpoint_of(domain, endpoints)
            if endpoint is not None:
                try:
                    body, _ = await self.peers.call(
                        endpoint, method, recipient=domain, expect="ack",
                        timeout=PEER_RPC_TIMEOUT_S, **payload,
                    )
                    if not body.ack.ok:
                        log.warning("%s refused %s: %s", domain, method, body.ack.error)
                    return True
                except PeerCallError as e:
                    log.debug("%s to %s failed: %s", method, domain, e)
            if self.now() + backoff > deadline:
                return False
            if not await self.sleep(backoff):
                return False
            backoff = min(backoff * 2, 5.0)
        return False

    # ---- workflow status -----------------------------------------------------------

    async def save(self, active: Active, steps: list[str] | None = None) -> None:
        """Persist the row and the named steps (all when None), then wake watchers."""
        active.row.updated_ms = self.now_ms()
        rows = []
        if active.progress is not None:
            ids = list(active.progress.steps) if steps is None else steps
            rows = [self._step_row(active, sid) for sid in ids]
        await self.store.save_workflow(active.row, rows)
        await self.changes.bump(active.row.id)

    @staticmethod
    def _step_row(active: Active, step_id: str) -> StepRow:
        s = active.progress.steps[step_id]  # type: ignore[union-attr]
        return StepRow(active.row.id, s.id, s.domain, s.state.value, s.attempts, s.outputs,
                       s.error)

    async def status(self, workflow_id: str) -> status_pb2.WorkflowStatus | None:
        row = await self.store.get_workflow(workflow_id)
        if row is None:
            return None
        steps = {s.step_id: s for s in await self.store.get_steps(workflow_id)}
        from agent.server.convert import status_message

        return status_message(row, steps)

    def finished(self, workflow_id: str) -> None:
        active = self.active.pop(workflow_id, None)
        if active is not None:
            for task in active.running.values():
                task.cancel()


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel every task it owns on stop()."""


async def run_until_stopped(agent: Agent, ready: asyncio.Event | None = None) -> None:
    try:
        await agent.run(ready)
    except* _Stop:
        pass
