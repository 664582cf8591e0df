"""`NodeAgent`: the daemon's engine, one Node core driven by one NodeDriver.

Theory of operation
-------------------
The daemon builds a NodeAgent around the `Agent` (runtime/agent.py), which keeps what
is not the Node's: its store (agent.db: identity, incarnation, key records, audit log),
trust, signing, the replay guard, peer channels, metrics, and membership (SWIM and
signed domain records, run by the Agent's own TaskGroup; its record publishes the
Node's free capacity, `Agent.node_participant`).

What the NodeAgent composes, on the ports of runtime/ports.py:
- a `Node` (agent/core/node; `PlacedNode`, placing.py: each round placed by the
  placement code of core/workflow/placement.py over the members this agent sees), restored from `node.db` in the data dir
  (`SqliteDurable`: one transaction per driver turn, committed in a thread of its
  own while the event loop runs (commit_thread.py), WAL, synchronous=FULL), its
  policy and capacities from the config, its timings from `negotiation` and its
  retention of ended workflows from `retention` (`timing_of`), its peers the members
  membership sees;
- the `SystemClock` (monotonic for the Node, wall time for envelopes and ids);
- `GrpcTransport` (transport.py): one signed envelope per turn and peer, one sender
  task per peer;
- `NodeExecutors` (executors.py): the executors the config names (builtin, command...),
  each attempt's process group on record (step_processes.py); before the Node is
  restored, what an earlier life's attempts left running is stopped
  (`stop_leftovers`), so that the Node resolves them with nothing of them left;
- `ReconfiguringNode` (reload.py): a SIGHUP reload reaches the Node (policy,
  capacities) and the executors as a `Reconfigure` input, applied in the driver's
  turn (`_config_reloaded`, told by `Agent.reload`);
- `StatusView` (status.py): the StatusSink, and the read view the client service
  answers from;
- `TurnBoundary` and `AuthorizedNode` (boundary.py): what the NodeTurn RPC checks
  before it posts, and the authority check the driver makes before the Node steps a
  message;
- self-fencing (core/node/self_fencing.py), always on: `Timing.step_lease_s` from
  `negotiation.step_lease_s`, else three times the gossip profile's time to a DEAD
  verdict (`step_lease_of`); it reads the same
  membership view as takeover;
- coordinator takeover (core/node/takeover.py), always on: `Timing.takeover_after_s`
  from `negotiation.takeover_after_s` (10 s by default); the grants this agent gives
  signed with its domain key and what others show checked with its trust store
  (evidence.py); and membership's view posted as `MemberViews` whenever it changes
  (`_members_changed`, a hook of membership: each member's state as the
  workflows act on it, only what changed since the Node was last told; the whole view
  at start, since a restored Node knows none);
- the audit log (audit.py, `_audit_log`): `AuditedWrites` under the held Durable and
  `AuditedNode` around what the driver steps turn what node.db committed (and the NO
  votes leaving) into the audit log's records, which one task appends to agent.db's
  chain;
- what an operator sees of those acts (observed.py): `ObservedWrites` and
  `ObservedNode`, beside the audit's, count them in the agent's metrics, log each NO
  vote, and make the workflow's trace spans when tracing is on.

`run(ready)` owns every task of the engine in one TaskGroup: the Agent's run (which
owns membership and the rest of the Agent's loops), the `DriverLoop`, the audit
writer, the peer senders, the step attempts and, while node.db cannot be written,
the task that retries the kept writes. It ends when the Agent stops (SIGTERM, a fatal error of the
Agent); a `DriverStopped` (a broken invariant in the Node, a failed commit) stops the
Agent too, with its message as the reason the daemon exits 1 with, and a restart
recovers from node.db. A commit that fails for the storage (disk full, I/O error)
stops nothing: the driver's Durable, Transport, Executors and StatusSink are the held
ports of write_behind.py, which keep the writes, hold what waits on them, refuse new
work and retry until the disk takes them (past their bound: the one line of
write_faults.py). The daemon checks node.db's identity (identity.py) before this class
opens it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from fedorch.core.membership.swim_profiles import (
    SwimProfile,
    make_profile,
    suspicion_bounds,
    typed_overrides,
)
from fedorch.core.node.inputs import MemberState, MemberViews, Submit
from fedorch.core.node.records import Disk, Timing
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.takeover import DEFAULT_TAKEOVER_AFTER_S
from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.agent import Agent, run_until_stopped
from fedorch.runtime.candidates import placement_candidates
from fedorch.runtime.config import gossip_profile_name
from fedorch.runtime.dataflow_policy import domain_records
from fedorch.runtime.driver import DriverLoop, DriverStopped, NodeDriver
from fedorch.runtime.node_codec import CodecError, node_codec
from fedorch.runtime.node_engine.attestations import Attestations
from fedorch.runtime.node_engine.audit import (
    AuditedNode,
    AuditedWrites,
    NodeAuditLog,
    Records,
    outputs_sha256,
)
from fedorch.runtime.node_engine.boundary import (
    AuthorizedNode,
    TurnBoundary,
    signed_submissions,
)
from fedorch.runtime.node_engine.commit_thread import EngineCommit, Replayed
from fedorch.runtime.node_engine.egress import EgressNode
from fedorch.runtime.node_engine.evidence import NodeEvidence, grant_signer, vote_signer
from fedorch.runtime.node_engine.executors import NodeExecutors
from fedorch.runtime.node_engine.metrics import NodeEngineCollector, bind_reserved_slots
from fedorch.runtime.node_engine.observed import Observed, ObservedNode, ObservedWrites
from fedorch.runtime.node_engine.placing import PlacedNode
from fedorch.runtime.node_engine.reload import (
    ReconfiguringNode,
    copied_policy,
    reconfigure_of,
)
from fedorch.runtime.node_engine.status import StatusView, WriteNotice
from fedorch.runtime.node_engine.step_processes import GROUPS_DIR, StepGroups, stop_leftovers
from fedorch.runtime.node_engine.transport import GrpcTransport
from fedorch.runtime.node_engine.write_behind import (
    HeldDurable,
    HeldExecutors,
    HeldStatus,
    HeldTransport,
    StorageGate,
    WriteFault,
    retry_until_written,
)
from fedorch.runtime.node_engine.write_faults import is_storage_fault, stop_reason
from fedorch.runtime.node_store import NodeStoreError, SqliteDurable
from fedorch.runtime.ports import wall_ms_of

__all__ = ["EngineConfigError", "NodeAgent", "check_node_config"]

log = logging.getLogger("fedorch.node_engine")

NODE_DB = "node.db"
SUBMIT_DURABLE_S = 10.0  # a submission not durable by then is answered UNAVAILABLE
# The step lease, unless the config sets one: this many times the gossip profile's
# longest time to a DEAD verdict (`step_lease_of`).
LEASE_DEAD_TIMES = 3


class EngineConfigError(ValueError):
    """A config the node engine cannot run; one line saying what to change."""


def check_node_config(config: config_pb2.AgentConfig) -> None:
    """EngineConfigError for what `engine: node` cannot honour (checked at start-up,
    before any file is opened). Nothing today: it runs both commit protocols
    (`negotiation.commit: 2pc` as classic rounds, `Timing.classic`)."""


def timing_of(config: config_pb2.AgentConfig) -> Timing:
    """The Node's timings from the agent config (its defaults where a field is unset)."""
    neg = config.negotiation
    base = Timing()
    keep = Retention()
    return Timing(
        lease_s=neg.lease_s or base.lease_s,
        prepare_timeout_s=neg.prepare_timeout_s or base.prepare_timeout_s,
        query_timeout_s=neg.prepare_timeout_s or base.query_timeout_s,
        max_rounds=neg.max_rounds or base.max_rounds,
        max_acceptors=neg.max_acceptors or base.max_acceptors,
        classic=neg.commit == config_pb2.COMMIT_PROTOCOL_2PC,
        # Coordinator takeover (core/node/takeover.py) is always on in the daemon: a
        # committed workflow never waits on a dead coordinator.
        takeover_after_s=neg.takeover_after_s or DEFAULT_TAKEOVER_AFTER_S,
        # Self-fencing (core/node/self_fencing.py) is always on in the daemon, whose
        # driver posts its membership view.
        step_lease_s=step_lease_of(config),
        # The start margin's base (core/node/start_asks.py): the shortest silence after
        # which the gossip profile gives a DEAD verdict (a sign of life within the
        # shortest suspicion postpones one; shortest at ten members or fewer:
        # docs/membership.md).
        dead_after_s=suspicion_bounds(_profile(config), 1)[0],
        # The Node's own retention (core/node/retention.py), on the config's bounds;
        # nothing goes within two replay windows of its last mark (a late message).
        retention=Retention(
            keep_ended_s=config.retention.keep_ended_s or keep.keep_ended_s,
            max_ended_workflows=config.retention.max_ended_workflows
            or keep.max_ended_workflows,
            keep_end_records_s=config.retention.keep_end_records_s or keep.keep_end_records_s,
            max_end_records=config.retention.max_end_records or keep.max_end_records,
            late_message_s=2 * (neg.replay_window_s or keep.late_message_s / 2)),
    )


def step_lease_of(config: config_pb2.AgentConfig) -> float:
    """The step lease (`negotiation.step_lease_s`), else three times the gossip
    profile's longest time to a DEAD verdict, for a federation of every domain this
    agent trusts (the lease is fixed at start; a bigger federation only makes it
    longer, so counting every trusted domain never makes it shorter than one counting
    only the members seen)."""
    neg = config.negotiation
    if neg.step_lease_s > 0:
        return neg.step_lease_s
    profile = _profile(config)
    members = len(config.trust.key_files) + 1
    return LEASE_DEAD_TIMES * (profile.probe_interval
                               + suspicion_bounds(profile, members)[1])


def _profile(config: config_pb2.AgentConfig) -> SwimProfile:
    g = config.gossip
    return make_profile(gossip_profile_name(g.profile), **typed_overrides(dict(g.tuning)))


class NodeAgent:
    def __init__(self, agent: Agent, *, on_idle: Callable[[], object] | None = None) -> None:
        """`on_idle`: the driver loop's idle port (runtime/driver.py, "Idle"): the
        daemon's young garbage collection; None: nothing done when idle."""
        check_node_config(agent.config)
        self.agent = agent
        self.domain = agent.domain
        self.clock = agent.clock
        self.codec = node_codec()
        self.on_idle = on_idle
        path = Path(agent.config.data_dir) / NODE_DB
        try:
            self.store = SqliteDurable(path, codec=self.codec)
        except sqlite3.DatabaseError as e:
            raise NodeStoreError(_unreadable(path, e)) from None
        try:
            disk = self.store.load()
        except (sqlite3.DatabaseError, CodecError) as e:
            self.store.close()
            raise NodeStoreError(_unreadable(path, e)) from None
        try:
            self._stop_leftovers(disk)
            self._build(disk)
        except BaseException:
            self.store.close()
            raise
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = False

    def _build(self, disk: Disk) -> None:
        a, clock = self.agent, self.clock
        evidence = NodeEvidence(a.trust)
        self.node = PlacedNode(
            self.domain, candidates=lambda: placement_candidates(a),
            records=lambda domains: domain_records(a, domains),
            policy=copied_policy(a.config.policy), capacities=dict(a.capacities),
            timing=timing_of(a.config), peers=self.live_peers(), rng=a.rng,
            wall_ms=wall_ms_of(clock),
            admit=signed_submissions(a.trust), labels=dict(a.config.labels),
            evidence=evidence, sign_grant=grant_signer(a.signer),
            sign_vote=vote_signer(a.signer, a.trust), verify_vote=evidence.verify_vote,
            disk=disk, now=clock.monotonic())
        # What the Node was last told of each member's state (MemberState inputs).
        self._told: dict[str, str] = {}
        self.view = StatusView(self.node)
        self.transport = GrpcTransport(
            self.domain, a.signer, clock, self.codec, self.post, a.endpoint_of,
            a.peers.stub, self.spawn)
        self.executors = NodeExecutors(self.domain, self.node, a.executors, self.post,
                                       self.spawn, groups=self.step_groups,
                                       attempts=a.metrics.steps)
        def refused(reason: str) -> None:
            a.metrics.rejected_messages.labels(reason).inc()

        self.gate = AuthorizedNode(self.node, on_refused=refused)
        # A write that fails for the storage: kept and retried, what waits on it held,
        # new work refused (write_behind.py).
        fault = self.write_behind = WriteFault()
        replayed = Replayed(self.store)
        self.audit = self._audit_log()
        # Counters, log lines and spans of the Node's acts (observed.py).
        self.observed = Observed(self.domain, self.node, a.metrics)
        self.durable = HeldDurable(
            ObservedWrites(AuditedWrites(WriteNotice(replayed, self.view), self.audit),
                           self.observed), fault, on_fault=self._write_failed)
        self.reconfiguring = ReconfiguringNode(
            StorageGate(self.gate, self.node, fault, self.domain, self.transport.send,
                        database_fault=lambda: a.store.write_fault),
            self.node, self.executors,
            on_applied=lambda: a.publish_record_if_changed(force=True))
        bind_reserved_slots(a.metrics, self.node.participant, a.capacities)
        self.driver = NodeDriver(
            ObservedNode(
                AuditedNode(EgressNode(self.reconfiguring, self.node, self.domain,
                                       lambda domains: domain_records(a, domains)),
                            self.domain, self.audit),
                self.domain, self.observed),
            clock, self.durable, HeldTransport(self.transport, fault),
            HeldExecutors(self.executors, fault), HeldStatus(self.view, fault),
            loopback=self.domain)
        # Each turn's transaction in a thread of its own (commit_thread.py): the event
        # loop (gRPC) runs while the fsync waits, and what arrives meanwhile forms the
        # next turn.
        self.commits = EngineCommit(self.store, replayed, self.durable, fault)
        self.loop = DriverLoop(self.driver, write=self.commits,
                               on_idle=self.on_idle)
        self.boundary = TurnBoundary(self.domain, a.trust, a.guard, clock, self.codec,
                                     self.post, on_refused=refused)
        a.node_participant = self.node.participant
        a.node_view = self.view
        a.node_reloaded = self._config_reloaded
        a.on_members_change.append(self._members_changed)
        # The Node's counters (metrics.py), served under the agent's registry.
        a.metrics.registry.register(NodeEngineCollector(self))
        # A gauge read from the Node: its end notices still unacknowledged
        # (resent until answered; a successor's are sent again after a restart).
        a.metrics.end_notices_owed.set_function(self._end_notices_owed)

    def _end_notices_owed(self) -> int:
        # Read in the scrape's thread: a copy of the keys, not the live dict's iterator.
        return sum(1 for key in list(self.node.pending) if key[0] == "final")

    def _audit_log(self) -> NodeAuditLog:
        """What the Node decides, appended to agent.db's audit log once node.db holds
        it (audit.py)."""
        a = self.agent
        # Evidence for proofs (attestations.py): signed with the domain key, checked
        # with the trust store as evidence (a key rotated away from still counts).
        evidence = Attestations(
            self.domain, self.node, a.signer.sign,
            lambda domain, data, sig: a.trust.verify(domain, data, sig, evidence=True),
            outputs_sha256)
        records = Records(self.domain, self.node, self.node.state.results,
                          policy_sha256=a.audit.policy_hash(), evidence=evidence)
        return NodeAuditLog(records, a.audit, a.store, now_ms=a.now_ms)

    def _stop_leftovers(self, disk: Disk) -> None:
        """Before the Node is restored from `disk`: kill what the attempts it records as
        started without a result left running (step_processes.py)."""
        self.step_groups = StepGroups(Path(self.agent.config.data_dir) / GROUPS_DIR)
        stop_leftovers(self.domain, disk, self.step_groups)

    def _config_reloaded(self) -> None:
        """SIGHUP: the reloaded policy, capacities and executors go to the driver as an
        input, applied in its turn (reload.py)."""
        self.post(reconfigure_of(self.agent))
        log.info("node engine: reloaded policy, capacities and executors posted to the"
                 " Node")

    # ---- what the services and ports call ----------------------------------------------

    def post(self, event: object) -> None:
        self.loop.post(event)

    def spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None] | None:
        """A task of the engine's TaskGroup; None (the coroutine closed) when stopping."""
        if self._tg is None or self._stopping:
            coro.close()  # type: ignore[attr-defined]
            return None
        return self._tg.create_task(self._guarded(coro, name), name=name)

    async def _guarded(self, coro: Awaitable[None], name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:  # logged and counted; the engine's own loop is not here
            self.agent.task_failed(name, e)

    async def submit(self, taken: Submit) -> None:
        """Post the Submit; return once its workflow row is durable (TimeoutError if
        not within SUBMIT_DURABLE_S)."""
        durable = self.view.submitted(taken.workflow_id)
        self.post(taken)
        try:
            await asyncio.wait_for(durable, SUBMIT_DURABLE_S)
        finally:
            self.view.abandon(taken.workflow_id)

    @property
    def write_fault(self) -> str | None:
        """While node.db cannot be written: what SQLite said (no new work meanwhile)."""
        return self.write_behind.reason

    def _write_failed(self) -> None:
        self.spawn(retry_until_written(self.durable), "node-store-retry")

    def live_peers(self) -> list[str]:
        """This domain and the members membership sees ALIVE or SUSPECT: the Node picks
        acceptors and re-placements among them."""
        membership = self.agent.membership
        names = {self.domain}
        if membership is not None:
            names.update(m.domain for m in membership.members()
                         if m.state in ("ALIVE", "SUSPECT") and m.domain)
        return sorted(names)

    def _members_changed(self) -> None:
        self.node.peers = self.live_peers()
        changes = self.member_changes()
        membership = self.agent.membership  # a doubt of us heard (start_asks.py)
        doubted = membership is not None and membership.take_doubt()
        if changes or doubted:
            self.post(MemberViews(changes, doubted=doubted))

    def member_changes(self) -> tuple[MemberState, ...]:
        """What membership's view shows now that the Node was not told, marked as told:
        each member's state as the workflows act on it (`state_for_work`: a DEAD verdict
        once its grace has passed, SUSPECT until then), one look at a time, so the Node
        applies them together (`MemberViews`). A member no longer in the view reads ""
        (unknown: not ALIVE, so silent to a takeover)."""
        membership = self.agent.membership
        if membership is None:
            return ()
        now = {m.domain: membership.state_for_work(m.domain)
               for m in membership.members() if m.domain and m.domain != self.domain}
        for gone in set(self._told) - set(now):
            now[gone] = ""
        changes = tuple(MemberState(domain, state) for domain, state in sorted(now.items())
                        if self._told.get(domain) != state)
        for change in changes:
            self._told[change.domain] = change.state
        return changes

    # ---- running ------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Run the Agent (membership) and the driver until the Agent stops (see the
        header); a DriverStopped stops the Agent with its reason."""
        agent_ready = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                agent = tg.create_task(run_until_stopped(self.agent, agent_ready),
                                        name="agent")
                waiter = tg.create_task(agent_ready.wait(), name="agent ready")
                await asyncio.wait([agent, waiter], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if agent_ready.is_set():
                    self._members_changed()
                    driver = tg.create_task(self._drive(), name="node-driver")
                    tg.create_task(self.audit.run(), name="node-audit")
                    log.info("node engine running: node.db restored, %d workflows known",
                             len(self.node.state.rows) + len(self.node.state.committed))
                    if ready is not None:
                        ready.set()
                    await asyncio.wait([agent, driver], return_when=asyncio.FIRST_COMPLETED)
                self._stopping = True
                self.agent.stop()
                raise _EngineStop()
        except* _EngineStop:
            pass
        finally:
            self._stopping = True
            self.commits.close()  # a cancelled turn's commit ends before its file closes
            self.store.close()
            await self.audit.close()  # agent.db stays open until the daemon has run

    async def _drive(self) -> None:
        try:
            await self.loop.run()
        except DriverStopped as e:
            cause = e.__cause__  # a commit the split turn's thread failed: its error
            if isinstance(cause, Exception) and is_storage_fault(cause):
                reason = stop_reason(self.store.path, cause)  # one line, as below
                log.critical("%s", reason)
                self.agent.fail(reason)
                return
            log.critical("node driver stopped: %s", e)
            self.agent.fail(f"node driver stopped: {e}")
        except Exception as e:  # a port's failure (a failed commit): the Node is stale
            if is_storage_fault(e):  # disk full, I/O error: one line (write_faults.py)
                reason = stop_reason(self.store.path, e)
                log.critical("%s", reason)
                self.agent.fail(reason)
                return
            log.critical("node driver failed", exc_info=e)
            self.agent.fail(f"node driver failed: {type(e).__name__}: {e}")


def _unreadable(path: Path, error: Exception) -> str:
    return (f"{path}: not a node store this agent can read ({type(error).__name__}:"
            f" {error}); restore it from a backup, or move it aside to start this domain's"
            " node engine with no workflows")


class _EngineStop(Exception):
    """Raised inside the TaskGroup to cancel every task it owns once the Agent stops."""
