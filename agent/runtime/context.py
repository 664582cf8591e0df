"""What every part of an agent shares: its identity, store, clock, tasks and saves.

The shells (coordination, participation, consensus, membership, audit, ...) each take
an AgentContext and reach one another through it; none of them imports another's
constructor, and this module imports none of them. `fedorch.runtime.agent.Agent` is
the one place that builds them all (the composition root), so the import graph has
no cycle: shells -> context, agent -> shells + context.

The context owns every background task through one TaskGroup (`run`), so nothing
outlives it: gossip, in-doubt queries, deliveries and step runs all end when the
agent stops.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.identity.key_records import raw_key
from fedorch.core.identity.keys import load_private_key
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.trust import TrustStore
from fedorch.core.membership.swim_types import LocalProtocolError as SwimMisuse
from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.core.negotiation.participant import Participant
from fedorch.core.policy.engine import summarize
from fedorch.core.workflow.progress import Progress
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2, status_pb2
from fedorch.runtime import telemetry
from fedorch.runtime.changes import Changes
from fedorch.runtime.config import trust_overlap_s
from fedorch.runtime.executors import build_from_config
from fedorch.runtime.executors.base import Executor
from fedorch.runtime.metrics import AgentMetrics
from fedorch.runtime.peers import PeerCallError, PeerChannels
from fedorch.runtime.ports import Clock, SystemClock, wall_ms_at
from fedorch.runtime.saved_statuses import SavedStatus, SavedStatuses
from fedorch.runtime.store.store import ReservationRow, Statement, StepRow, Store, WorkflowRow

log = logging.getLogger("fedorch.agent")

__all__ = ["Active", "AgentContext", "Changes", "SavedStatus", "Stop"]

PEER_RPC_TIMEOUT_S = 5.0
# Workflows ended here lately, so that a late result about one is acknowledged without a
# read. Past it (or once retention removed the workflow), a late result is answered from
# the store instead (StepRuns.late_result): a bound on memory, not on what is answered.
RECENTLY_FINISHED_MEMORY = 16_384
# Final statuses kept in memory after a workflow ends: its watchers ask for it right
# then. Older ones are read from SQLite.
FINAL_STATUS_MEMORY = 1024
# A core raises these when this agent's own code drove it wrongly: its state can no longer
# be trusted, so the agent stops (a restart recovers from SQLite) rather than live on
# half-dead with a core that may have half-applied an input.
BROKEN_INVARIANTS = (LocalProtocolError, SwimMisuse)


def task_kind(name: str) -> str:
    """The kind of a task, from its name ("in-doubt wf-1/2" -> "in-doubt"): a metric
    label must not carry workflow ids or addresses (one series each, without end)."""
    return name.split(" ", 1)[0].rstrip("?") or "task"


@dataclass
class Active:
    """A workflow this agent is working on: its row and, once committed, its progress."""

    row: WorkflowRow
    progress: Progress | None = None
    running: dict[str, asyncio.Task] = field(default_factory=dict)  # local step attempts
    # Created in this incarnation: any step row it has on disk was written by this
    # process, and results that came early are in memory too (no need to read them).
    fresh: bool = False
    # COMMIT records every participant acknowledged: collected with the next save.
    collect: list[tuple[str, int]] = field(default_factory=list)
    # Those a save has taken (written, or on their way): nobody need collect them again.
    collected: set[tuple[str, int]] = field(default_factory=set)


class AgentContext:
    """The state and services every shell of one agent shares (see the module doc).

    The shells themselves (coordination, participation, compensation, consensus, audit,
    membership) are attributes set by Agent, the composition root, before anything runs.
    """

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
        self.metrics.watch_store(lambda: (store.writes, store.commits,
                                                 store.statements))
        self.signer = Signer(self.domain, load_private_key(config.key_file))
        self.trust = TrustStore.from_files(config.trust.key_files,
                                           overlap_s=trust_overlap_s(config))
        self.trust.advance(self.now_ms() / 1000)
        # This domain's own key (and its chain after rotations) is added by Agent, which
        # builds the KeyChanges shell before anything is verified.
        # Called after a live trust change (the daemon's TLS roots follow the trust store).
        self.on_trust_change: list[Callable[[], None]] = []
        # Told of each workflow that ended here or whose decision was learned here: the
        # loops that act on such workflows (takeover, the certificate sweep) sleep until
        # then instead of looking every so often.
        self.on_settled: list[Callable[[str], None]] = []
        # Told after membership applied changes (a member's state or record): views of
        # the member list that wait for news (the console's feed) look again then.
        self.on_members_change: list[Callable[[], None]] = []
        neg = config.negotiation
        self.guard = ReplayGuard(int(neg.replay_window_s * 1000))
        self.peers = PeerChannels(
            self.signer, self.trust, self.guard, self.clock,
            on_error=lambda m, c: self.metrics.rpc_errors.labels(m, c).inc(),
            on_bytes=lambda m, d, n: self.metrics.peer_bytes.labels(m, d).inc(n),
            spawn=self.spawn if config.negotiation.batching else None,
            on_batch=lambda n: self.metrics.batch_items.labels("out").observe(n),
            on_heard=self.heard_from,
        )
        self._set_capabilities(config)
        self.participant = Participant(
            self.domain, config.policy, self.capacities,
            lease_s=neg.lease_s, query_interval_s=max(0.5, neg.prepare_timeout_s),
        )
        self.active: dict[str, Active] = {}
        # What the last saves of each workflow wrote: watchers and status reads are
        # answered from it instead of from SQLite (runtime.saved_statuses).
        self.statuses = SavedStatuses()
        self._final = self.statuses.final  # the entries of those that ended lately
        # Ended here lately: late messages about them need no buffering.
        self.recently_finished: OrderedDict[str, None] = OrderedDict()
        self.changes = Changes()
        # Made by open(), before the daemon's port serves: it needs the stored incarnation.
        self.membership = None  # a runtime.membership.Membership, made by Agent.open()
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = asyncio.Event()
        # Set once recovery is done and the loops run: until then the peer service answers
        # UNAVAILABLE (a peer retries), so no message reaches a half-built agent.
        self.ready = asyncio.Event()
        # Why the agent stopped on its own (a broken invariant, a loop that died); None
        # while it runs or after an ordinary stop. The daemon exits non-zero with it.
        self.fatal: str | None = None
        self.incarnation = 0  # this life's, set by Agent.open()
    def _set_capabilities(self, config: config_pb2.AgentConfig) -> None:
        self.capacities = {c.name: c.capacity for c in config.capabilities}
        self.costs = {c.name: c.cost for c in config.capabilities}
        self.executors: dict[str, Executor] = {
            c.name: build_from_config(c.executor)
            for c in config.capabilities
        }

    # ---- time and signing -------------------------------------------------------

    def now(self) -> float:
        """Monotonic seconds: every core's `now`, timers, leases, timeouts (see ports)."""
        return self.clock.monotonic()

    def now_ms(self) -> int:
        """Wall milliseconds: envelope timestamps, incarnations, ids, times for people."""
        return self.clock.wall_ms()

    def wall_ms_at(self, monotonic: float) -> int:
        """A monotonic instant (a lease's expiry) as wall milliseconds, to show or store."""
        return wall_ms_at(self.clock, monotonic)

    def seal(self, recipient: str, **payload: object) -> peer_pb2.Envelope:
        envelope = seal(self.signer, recipient=recipient, now_ms=self.now_ms(),
                        nonce=new_nonce(), **payload)
        if "vote" in payload:  # evidence that comes back to us: no need to verify it then
            self.trust.signed_here(self.domain, envelope.body, envelope.signature)
        return envelope

    # ---- lifecycle ---------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Run until stop(): recovery, then the background loops, all owned here."""
        await self.open()
        assert self.membership is not None
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            await self.audit.started(self.incarnation)
            await self.participation.recover()
            await self.coordination.recover()
            await self.compensation.recover()
            await self.coordination.outcomes.resend_owed()  # owed when it last stopped
            await self.participation.resolve_own_holds()
            self.publish_record_if_changed(force=True)
            tg.create_task(self._essential(self.membership.run(), "membership"),
                           name="membership")
            tg.create_task(self._essential(self.participation.timer_loop(), "in-doubt"),
                           name="in-doubt")
            tg.create_task(self._essential(self.coordination.sweep_loop(), "certificate sweep"),
                           name="certificate sweep")
            tg.create_task(self._essential(self.takeovers.run(), "takeover"), name="takeover")
            tg.create_task(self._essential(self.key_changes.run(), "key records"),
                           name="key records")
            self.ready.set()
            if ready is not None:
                ready.set()
            await self._stopping.wait()
            for active in self.active.values():
                for task in active.running.values():
                    task.cancel()
            raise Stop()

    def spawn(self, coro: Awaitable, name: str) -> asyncio.Task | None:
        """Start a task owned by the agent's TaskGroup (never fire-and-forget)."""
        if self._tg is None or self._stopping.is_set():
            coro.close()  # type: ignore[attr-defined]
            return None
        return self._tg.create_task(self._guarded(coro, name), name=name)

    async def run_owned(self, coro: Awaitable, name: str):
        """Run `coro` as a task the agent owns and return its result.

        RPC handlers use it for anything that changes state: gRPC cancels a handler
        when its caller goes away (a peer killed mid-call), and a change cut short
        half-way (an attempt recorded as started, its run never begun) would stay so.
        The handler waits on a future of its own that the task resolves: a handler
        cancelled cancels only that future (no shield needed), and the task finishes
        regardless.
        """
        result: asyncio.Future = asyncio.get_running_loop().create_future()

        async def runner() -> None:
            try:
                value = await coro
            except asyncio.CancelledError:
                result.cancel()
                raise
            except Exception as e:  # the caller sees it; the agent's other tasks do not
                if isinstance(e, BROKEN_INVARIANTS):  # ... but a broken core stops the agent
                    self.task_failed(name, e)
                if not result.done():  # else its caller went away
                    result.set_exception(e)
                    result.exception()  # retrieved: nobody may be left to see it
            else:
                if not result.done():
                    result.set_result(value)

        if self.spawn(runner(), name) is None:
            raise RuntimeError("the agent is stopping")
        return await result

    async def _guarded(self, coro: Awaitable, name: str) -> None:
        # A bug in one workflow's task must not take the whole agent down (the TaskGroup
        # would cancel everything): it is logged and counted, and the agent goes on,
        # unless it broke a core's invariant (task_failed).
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.task_failed(name, e)

    async def _essential(self, coro: Awaitable, name: str) -> None:
        """Run one of the agent's own loops: without it the agent would live on half-dead
        (no gossip, no in-doubt queries), so any exception in it stops the agent."""
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

    async def sleep(self, seconds: float) -> bool:
        """Wait, but wake at once when the agent stops; returns False when stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

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
        available = self.participant.available()
        produces = {c.name: dict(c.produces) for c in self.config.capabilities}
        return peer_pb2.DomainRecord(
            domain=self.domain, endpoint=self.endpoint, labels=dict(self.config.labels),
            policy=summarize(self.config.policy),
            capabilities=[
                peer_pb2.CapabilityInfo(name=name, capacity=cap, available=available[name],
                                        cost=self.costs[name], produces=produces.get(name, {}))
                for name, cap in sorted(self.capacities.items())
            ],
            signing_key=raw_key(self.signer.public_key()),
        )

    def publish_record_if_changed(self, force: bool = False) -> None:
        """Offer the current record to membership (it publishes on change, rate-limited)."""
        if self.membership is not None:
            self.membership.publish(self.current_record(), force=force)
        used = self.participant.in_use()
        for cap in self.capacities.keys() | used.keys():  # a freed capability reads 0
            self.metrics.reserved_slots.labels(cap).set(used.get(cap, 0))

    def endpoint_of(self, domain: str, known: dict[str, str] | None = None) -> str | None:
        if domain == self.domain:
            return self.endpoint
        found = self.membership.endpoint(domain) if self.membership is not None else None
        return found or (known or {}).get(domain)

    # ---- reliable delivery ---------------------------------------------------------

    async def deliver(
        self,
        domain: str,
        method: str,
        *,
        endpoints: dict[str, str] | None = None,
        give_up_after: float,
        **payload: object,
    ) -> peer_pb2.Ack | None:
        """Send one message until the peer acknowledges it, with backoff.

        Each attempt is a freshly sealed envelope (new nonce), and receivers are
        idempotent, so a retry after a lost reply is harmless. A refusal for good
        ends it; one that asks to be sent later (`retry_later`) is retried like a
        failed call. Returns the peer's answer (ok, or refused for good), or None
        when it gives up (the receiver then asks on its own: in-doubt queries) or
        the agent stops.
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
                    if body.ack.ok:
                        return body.ack
                    if not body.ack.retry_later:
                        log.warning("%s refused %s: %s", domain, method, body.ack.error)
                        return body.ack
                    log.info("%s asks for %s later: %s", domain, method, body.ack.error)
                except PeerCallError as e:
                    log.debug("%s to %s failed: %s", method, domain, e)
            if self.now() + backoff > deadline:
                return None
            if not await self.sleep(backoff):
                return None
            backoff = min(backoff * 2, 5.0)
        return None

    # ---- workflow status -----------------------------------------------------------

    async def save(self, active: Active, steps: list[str] | None = None,
                   reservation: ReservationRow | None = None,
                   also: Sequence[Statement] = ()) -> list[int]:
        """Persist the row and the named steps (all when None), and with them the given
        reservation and statements, in one transaction; then wake watchers. Returns how
        many rows each statement of `also` changed."""
        row = active.row
        row.updated_ms = self.now_ms()
        rows = []
        if active.progress is not None:
            ids = list(active.progress.steps) if steps is None else steps
            rows = [self._step_row(active, sid) for sid in ids]
        collect, active.collect = active.collect, []
        active.collected.update(collect)
        # What this write holds: the row may change while it is on its way (another task
        # ending the workflow), and the copy kept for status must not run ahead of its steps.
        written = replace(row)
        try:
            counts = await self.store.save_workflow(
                written, rows, reservation=reservation,
                also=[*also, *(self.store.collect_commit_statement(*k) for k in collect)])
        except BaseException:
            active.collect[:0] = collect
            active.collected.difference_update(collect)
            raise
        if collect:
            self.metrics.collected_decisions.inc(len(collect))
        if self.active.get(row.id) is active:  # a copy of what is now on disk
            self.statuses.saved(written, rows, progress=active.progress is not None,
                                every_step=steps is None)
        else:  # written after its end: the entry kept at the end is out of date
            self._final.pop(row.id, None)
        await self.changes.bump(row.id)
        return counts[:len(also)]

    @staticmethod
    def _step_row(active: Active, step_id: str) -> StepRow:
        s = active.progress.steps[step_id]  # type: ignore[union-attr]
        return StepRow(active.row.id, s.id, s.domain, s.state.value, s.attempts, s.outputs,
                       s.error, list(s.replaced_from))

    def saved_final(self, workflow_id: str) -> SavedStatus | None:
        """What the write that ended a workflow put on disk, if it ended lately here."""
        return self._final.get(workflow_id) if workflow_id not in self.active else None

    def _in_memory(self, workflow_id: str) -> SavedStatus | None:
        """What the last write of a workflow put on disk, if memory still holds it: its
        last save while active, else (not begun again since) the write that ended it."""
        return self.statuses.last(workflow_id, workflow_id in self.active)

    async def status(self, workflow_id: str) -> status_pb2.WorkflowStatus | None:
        from fedorch.runtime.convert import status_message

        saved = self._in_memory(workflow_id)
        if saved is not None:
            return await self.compensation.overlay(status_message(saved.row, saved.steps))
        row, steps = await self.store.get_workflow_with_steps(workflow_id)
        if row is None:
            return None
        return await self.compensation.overlay(status_message(row, steps))

    def saved_state(self, workflow_id: str) -> str | None:
        """The state of a workflow as its last save here wrote it, if that is in memory
        (None: ask `status`). A watcher that follows states only reads this on each change
        instead of building a whole status."""
        saved = self._in_memory(workflow_id)
        return None if saved is None else saved.row.state

    def forget(self, workflow_ids: list[str]) -> None:
        """Retention compacted these ended workflows: status must not serve them from
        memory, and nothing kept in memory for them is needed any more."""
        for workflow_id in workflow_ids:
            self._final.pop(workflow_id, None)
            self.recently_finished.pop(workflow_id, None)
            self.changes.forget(workflow_id)
            telemetry.forget(workflow_id)

    def finished(self, workflow_id: str) -> None:
        active = self.active.pop(workflow_id, None)
        self.statuses.ended(workflow_id, FINAL_STATUS_MEMORY)
        if active is not None:
            for task in active.running.values():
                task.cancel()
        telemetry.ended(workflow_id)  # its attempts stay parents of compensation spans
        self.recently_finished[workflow_id] = None
        while len(self.recently_finished) > RECENTLY_FINISHED_MEMORY:
            old, _ = self.recently_finished.popitem(last=False)
            self.changes.forget(old)
        self.settled(workflow_id)

    def settled(self, workflow_id: str) -> None:
        """A workflow ended here, or its decision was learned here (see on_settled)."""
        for hook in self.on_settled:
            hook(workflow_id)


class Stop(Exception):
    """Raised inside the TaskGroup to cancel every task it owns on stop()."""
