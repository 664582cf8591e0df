"""What every part of an agent shares: its identity, store, clock, signing, peers, tasks.

Membership, the audit log, key changes and the Node's engine each take an AgentContext
and reach what they share through it; none of them imports another's constructor, and
this module imports none of them. `fedorch.runtime.agent.Agent` is the one place that
builds them (the composition root), so the import graph has no cycle: parts -> context,
agent -> parts + context.

The context owns its background tasks through one TaskGroup (`Agent.run`), so nothing
outlives it; an exception in one of the agent's own loops stops the agent with a reason
(`fatal`) the daemon exits 1 with, and a restart recovers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.identity.key_records import raw_key
from fedorch.core.identity.keys import load_private_key
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.trust import TrustStore
from fedorch.core.membership.swim_types import LocalProtocolError as SwimMisuse
from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.core.policy.engine import summarize
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2
from fedorch.runtime.config import trust_overlap_s
from fedorch.runtime.executors import build_from_config
from fedorch.runtime.executors.base import Executor
from fedorch.runtime.metrics import AgentMetrics
from fedorch.runtime.peers import PeerChannels
from fedorch.runtime.ports import Clock, SystemClock
from fedorch.runtime.store.store import Store

log = logging.getLogger("fedorch.agent")

__all__ = ["BROKEN_INVARIANTS", "AgentContext", "Stop", "task_kind"]

# A core raises these when this agent's own code drove it wrongly: its state can no longer
# be trusted, so the agent stops (a restart recovers) rather than live on half-dead with
# a core that may have half-applied an input.
BROKEN_INVARIANTS = (LocalProtocolError, SwimMisuse)


def task_kind(name: str) -> str:
    """The kind of a task, from its name ("node-store-retry x" -> "node-store-retry"): a
    metric label must not carry workflow ids or addresses (one series each, without end)."""
    return name.split(" ", 1)[0].rstrip("?") or "task"


class AgentContext:
    """The state and services the parts of one agent share (see the module doc); the
    parts themselves (membership, audit, key_changes) are attributes set by Agent."""

    node_participant: Any = None  # the Node's Participant, once the NodeAgent is built
    node_view: Any = None  # the NodeAgent's read view (status.py): what the console reads
    node_reloaded: Callable[[], None] | None = None  # told after each reload

    def __init__(self, config: config_pb2.AgentConfig, store: Store, *,
                 clock: Clock | None = None, rng: random.Random | None = None):
        self.config = config
        self.config_path = ""  # set by the daemon; SIGHUP re-reads it
        self.domain = config.domain
        self.endpoint = config.advertise or config.listen
        self.store = store
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng or random.Random()
        self.metrics = AgentMetrics()
        self.metrics.watch_store(lambda: (store.writes, store.commits, store.statements))
        self.signer = Signer(self.domain, load_private_key(config.key_file))
        self.trust = TrustStore.from_files(config.trust.key_files,
                                           overlap_s=trust_overlap_s(config))
        self.trust.advance(self.now_ms() / 1000)
        # Called after a live trust change (the daemon's TLS roots follow the trust store).
        self.on_trust_change: list[Callable[[], None]] = []
        # Told after membership applied changes (a member's state or record): the Node's
        # member view, and views of the member list that wait for news (the console's).
        self.on_members_change: list[Callable[[], None]] = []
        self.guard = ReplayGuard(int(config.negotiation.replay_window_s * 1000))
        self.peers = PeerChannels(
            self.signer, self.trust, self.guard, self.clock,
            on_error=lambda m, c: self.metrics.rpc_errors.labels(m, c).inc(),
            on_bytes=lambda m, d, n: self.metrics.peer_bytes.labels(m, d).inc(n),
            spawn=self.spawn,
            on_heard=self.heard_from,
        )
        self._set_capabilities(config)
        # Made by Agent.open(), before the daemon's port serves: it needs the stored
        # incarnation (a runtime.membership.Membership).
        self.membership: Any = None
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = asyncio.Event()
        # Set once the loops run: until then the peer service answers UNAVAILABLE (a
        # peer retries), so no message reaches a half-built agent.
        self.ready = asyncio.Event()
        # Why the agent stopped on its own (a broken invariant, a loop that died); None
        # while it runs or after an ordinary stop. The daemon exits non-zero with it.
        self.fatal: str | None = None
        self.incarnation = 0  # this life's, set by Agent.open()
        self.key_changes: Any = None  # runtime.key_changes.KeyChanges, set by Agent
        self.audit: Any = None  # runtime.audit.Audit, set by Agent

    def _set_capabilities(self, config: config_pb2.AgentConfig) -> None:
        self.capacities = {c.name: c.capacity for c in config.capabilities}
        self.costs = {c.name: c.cost for c in config.capabilities}
        self.executors: dict[str, Executor] = {
            c.name: build_from_config(c.executor) for c in config.capabilities}

    # ---- time and signing -------------------------------------------------------

    def now(self) -> float:
        """Monotonic seconds: timers, leases, timeouts (see ports)."""
        return self.clock.monotonic()

    def now_ms(self) -> int:
        """Wall milliseconds: envelope timestamps, incarnations, ids, times for people."""
        return self.clock.wall_ms()

    def seal(self, recipient: str, **payload: object) -> peer_pb2.Envelope:
        return seal(self.signer, recipient=recipient, now_ms=self.now_ms(),
                    nonce=new_nonce(), **payload)

    # ---- lifecycle ---------------------------------------------------------------

    def spawn(self, coro: Awaitable, name: str) -> asyncio.Task | None:
        """Start a task owned by the agent's TaskGroup (never fire-and-forget)."""
        if self._tg is None or self._stopping.is_set():
            coro.close()  # type: ignore[attr-defined]
            return None
        return self._tg.create_task(self._guarded(coro, name), name=name)

    async def _guarded(self, coro: Awaitable, name: str) -> None:
        # A bug in one task must not take the whole agent down (the TaskGroup would
        # cancel everything): it is logged and counted, and the agent goes on, unless it
        # broke a core's invariant (task_failed).
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.task_failed(name, e)

    async def _essential(self, coro: Awaitable, name: str) -> None:
        """Run one of the agent's own loops: without it the agent would live on half-dead
        (no gossip), so any exception in it stops the agent."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.task_failed(name, e)
            self.fail(f"the {name} loop failed: {type(e).__name__}: {e}")

    def task_failed(self, name: str, error: BaseException) -> None:
        """An exception in a task: logged once with its traceback and counted
        (fedorch_task_errors_total{task}); a broken invariant stops the agent."""
        self.metrics.task_errors.labels(task_kind(name)).inc()
        if isinstance(error, BROKEN_INVARIANTS):
            log.critical("broken invariant in task %r; stopping the agent", name,
                         exc_info=error)
            self.fail(f"broken invariant in task {name!r}: {type(error).__name__}: {error}")
        else:
            log.error("task %r failed", name, exc_info=error)

    def fail(self, reason: str) -> None:
        """Stop the agent for a reason the daemon reports (non-zero exit); the first wins."""
        if self.fatal is None:
            self.fatal = reason
        self.stop()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # ---- this domain's record ------------------------------------------------------

    def heard_from(self, domain: str) -> None:
        """A message `domain` signed reached this agent just now (a peer call, or the
        answer to one of ours): membership counts it as a sign of life, and a channel
        to it failing since it was down is opened afresh (PeerChannels.revive)."""
        if self.membership is not None:
            self.membership.heard_from(domain)
            endpoint = self.membership.endpoint(domain)
            if endpoint is not None:
                self.peers.revive(endpoint)

    def current_record(self) -> peer_pb2.DomainRecord:
        """This domain's record: its free capacity is the Node's, whose participant holds
        this domain's reservations (all free until the Node is built). Membership offers
        the record again every probe period, so a reservation shows within about one
        (rate-limited by `gossip.publish_interval_s`)."""
        available = (self.node_participant.available()
                     if self.node_participant is not None else {})
        produces = {c.name: dict(c.produces) for c in self.config.capabilities}
        return peer_pb2.DomainRecord(
            domain=self.domain, endpoint=self.endpoint, labels=dict(self.config.labels),
            policy=summarize(self.config.policy),
            capabilities=[
                peer_pb2.CapabilityInfo(name=name, capacity=cap,
                                        available=available.get(name, cap),
                                        cost=self.costs[name], produces=produces.get(name, {}))
                for name, cap in sorted(self.capacities.items())
            ],
            signing_key=raw_key(self.signer.public_key()),
        )

    def publish_record_if_changed(self, force: bool = False) -> None:
        """Offer the current record to membership (it publishes on change, rate-limited)."""
        if self.membership is not None:
            self.membership.publish(self.current_record(), force=force)

    def endpoint_of(self, domain: str, known: dict[str, str] | None = None) -> str | None:
        if domain == self.domain:
            return self.endpoint
        found = self.membership.endpoint(domain) if self.membership is not None else None
        return found or (known or {}).get(domain)


class Stop(Exception):
    """Raised inside the TaskGroup to cancel every task it owns on stop()."""
