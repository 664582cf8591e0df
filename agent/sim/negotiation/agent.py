"""A simulated agent: the production driver (runtime/driver.py) around one pure Node
(agent/core/node), with simulated ports and a disk.

Theory of operation
-------------------
A SimAgent is an agent daemon minus gRPC, SQLite and signatures. Everything the
protocol decides is the Node's, and everything done with it is the daemon's own
`NodeDriver`: each input (a delivered message, a submission, a step's end, a timer)
is one `driver.turn([input])`, which steps the Node at the clock's monotonic time,
does the Ready in the Node's order (messages that may leave at once, the write
groups as one transaction, the messages that wait for them, step attempts, status
changes) and advances (`ToldBeforeWrite`, status_check.py: that driver, telling the
invariant checker a Ready's status changes told before its write as it is handed out,
as a daemon's driver may tell them). What is the simulation's is only its ports (ports.py): the
clock (simulation time, and a wall clock per agent that a fault may step), the
disk (`SimDisk`: a crash point before each write group, the group applied to a
`Disk` that survives crashes, its notes to the invariant checker), the network
(`SimTransport`: a crash point before each send) and the executors (an attempt ends
a seeded while later, 90 % of them successfully).

Before every write group and every send the agent passes a *crash point*
(`Simulation.crash_point`): the simulation may stop the agent right there, so
crashes happen at every point of every protocol path (between the reservation
and the prepare record, between the proposal cell and the Accepts, between the
decision and its announcement, between a step's start record and its run...).
Everything but the disk (and the host's wall clock) is lost on a crash; `boot()`
builds a new Node from the disk alone (`Node.restore`) and a new driver around it,
the way a restarted daemon would. Half of the restarts are reboots: the monotonic
clock the new Node reads is another (ports.SimClock.reboot), near zero or far above
the one its disk was written on, drawn from the restart's own seed.

What is the simulated agent's, outside the driver: the authority table
(boundary.check_input, the envelope check's stand-in) before an input is posted (an
acknowledgement is posted as the node engine's boundary posts a run of them, an
`Acks` input, here of one: the simulated network delivers each message alone), the
trust store and its key records (keyring.py), and what coordinator takeover needs
from a driver (takeover.py): its membership view posted as `MemberState` inputs
(`members_changed`, called by the run after every event), and its takeover grants'
fake signatures and their check (`sim_signer`, `SimEvidence`).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.node import (
    Acks,
    Cancel,
    MemberState,
    MemberViews,
    Message,
    Node,
    StepEnded,
    Submit,
    Tick,
    authority,
)
from fedorch.core.node.inputs import CompensationEnded
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation.boundary import (
    check_acks,
    check_input,
    check_submission,
    sim_ms,
)
from fedorch.sim.negotiation.disk import Disk, Timing
from fedorch.sim.negotiation.keyring import KeyRecordsMsg
from fedorch.sim.negotiation.ports import SimClock, SimDisk, SimExecutors, SimTransport
from fedorch.sim.negotiation.status_check import StatusTold, ToldBeforeWrite
from fedorch.sim.negotiation.takeover import SimEvidence, sim_signer, sim_verify

if TYPE_CHECKING:
    from fedorch.core.negotiation.messages import Key, TxInfo
    from fedorch.sim.negotiation.world import World


class SimAgent:
    # The host's clock (ports.SimClock); a test swaps in a broken one (leases on wall time).
    clock_type: type[SimClock] = SimClock

    def __init__(self, sim: World, name: str, policy: config_pb2.Policy,
                 capacities: dict[str, int], timing: Timing) -> None:
        self.sim = sim
        sim.checker.attach(sim)  # retention's compactions are checked against the agents
        self.name = name
        self.policy = policy
        self.capacities = capacities
        self.t = timing
        self.durable = Disk()
        # The host's clock: its wall reading survives a crash (and may be stepped).
        self.clock = self.clock_type(sim)
        # Like the key_records table, what it learned survives crashes (keyring.py).
        self.trust = sim.keyring.honest_trust()
        self.alive = True
        self.incarnation = 0
        self.wake_token = 0
        self.wake_at: float | None = None
        self.paused_until = 0.0
        self.boot(0.0)

    # ---- life cycle --------------------------------------------------------------

    def crash(self) -> None:
        self.sim.fences.crashed(self.name)  # its step processes die with it
        self.alive = False
        self.incarnation += 1
        self.wake_at = None

    def boot(self, now: float) -> None:
        """A new Node from the disk, as a restarted daemon builds it; then its Ready.
        (`now` is the simulation's; the Node reads the clock of this boot.)"""
        self.alive = True
        self.sim.fences.booted(self.name)
        seed = self.sim.agent_seed(self.name, self.incarnation)
        self.rng = random.Random(seed)
        if self.incarnation:  # a stream of its own: the Node's draws stay as they were
            self.clock.reboot(random.Random(f"boot clock {seed}"))
        self.sim.membership.booted(self.name)  # its view is told anew (simulation.py)
        self.node = Node(
            self.name, policy=self.policy, capacities=self.capacities, timing=self.t,
            peers=self.sim.names, rng=self.rng, stats=self.sim.stats,
            evidence=SimEvidence(self.sim), sign_grant=sim_signer(self.name),
            sign_vote=sim_signer(self.name), verify_vote=sim_verify,
            wall_ms=self.clock.wall_ms_at,
            admit=lambda node, at, tx, info: check_submission(self, at, tx, info),
            disk=self.durable, now=self.clock.monotonic(), stated=self._stated_round)
        self.driver = ToldBeforeWrite(self, self.node, self.clock, SimDisk(self),
                                      SimTransport(self), SimExecutors(self),
                                      status=StatusTold(self), on_refused=self._refused)
        self.driver.flush()

    def _stated_round(self, sender: str, tx: TxInfo) -> None:
        """The acceptor's check before a record (runtime.round_proofs.stated): the round
        is one its coordinator stated. The simulator signs nothing: a round stands as
        signed when its coordinator sent a PREPARE of it, and its own messages need none."""
        if sender != tx.coordinator and tx not in self.sim.stated_rounds:
            raise RemoteProtocolError(f"{tx.key}: {sender} stated a round its coordinator"
                                      " did not: no record is made of it")

    # ---- inputs ------------------------------------------------------------------

    def submit(self, now: float, workflow_id: str, spec: spec_pb2.WorkflowSpec,
               placement: dict[str, str] | None = None) -> None:
        # The client signs with its own clock (true time here): a step of this agent's
        # clock is not its client's.
        signed = spec_pb2.SignedSpec(
            principal=f"client@{self.name}", public_key=b"c" * 32,
            request_id=f"request-{workflow_id}", issued_at_ms=sim_ms(now),
            coordinator=self.name)
        self._step(now, Submit(workflow_id, spec, signed, placement))

    def cancel(self, now: float, workflow_id: str) -> None:
        """Its client cancels a workflow it coordinates (simulation.py draws which and when)."""
        self._step(now, Cancel(workflow_id, "by its client"))

    def deliver(self, now: float, src: str, msg: object) -> None:
        if type(msg) in authority.ACK_TYPES:  # as the node engine's boundary posts them
            self._step(now, Acks(src, check_acks(self, src, (msg,))))
            return
        own = _HANDLERS.get(type(msg))
        check_input(self, src, msg)  # the authority table, before the Node sees it
        if own is not None:
            own(self, now, src, msg)
        else:
            self._step(now, Message(src, msg))

    def step_done(self, now: float, wf: str, step: str, attempt: int) -> None:
        self.sim.fences.ended(self.name, (wf, step, attempt))
        if wf not in self.node.progress:
            return  # stopped: its workflow ended
        ok = self.rng.random() < 0.9
        self._step(now, StepEnded(wf, step, attempt, ok, {"by": self.name} if ok else {},
                                  "" if ok else "executor failed"))

    def compensation_done(self, now: float, wf: str, step: str, attempt: int) -> None:
        """A compensation attempt ends: it fails as often as a step does."""
        ok = self.rng.random() < 0.9
        self._step(now, CompensationEnded(wf, step, attempt, ok,
                                          "" if ok else "compensation failed"))

    def wake(self, now: float) -> None:
        self._step(now, Tick())

    def members_changed(self, now: float, changes: tuple[MemberState, ...]) -> None:
        """Its membership view changed (takeover.MembershipFeed): one turn, one input
        (every change of the look applied before anything acts on it)."""
        self.driver.turn((MemberViews(changes),))

    def next_timer(self) -> float | None:
        """The Node's next deadline, in the simulation's time (the scheduler's)."""
        t = self.node.get_timer()
        return None if t is None else self.clock.sim_time(t)

    def _on_key_records(self, now: float, src: str, msg: KeyRecordsMsg) -> None:
        """Relayed by anyone: each record is checked by its own signers (the trust store
        takes none signed by another domain's keys, nor one off the domain's chain)."""
        changed, refused = self.trust.learn(msg.records)
        self.sim.stats["key records refused"] += refused
        self.sim.stats["key records changed"] += len(changed)

    # ---- the driver ----------------------------------------------------------------

    def _step(self, now: float, event: object) -> None:
        """One turn of the driver with this input (`now` is the driver's clock's, the
        simulation's time: the same instant)."""
        self.driver.turn((event,))

    def _refused(self, event: object, error: Exception) -> None:
        self.sim.checker.refused(self.name, error)

    # ---- views: what the checker and the boundary read ------------------------------

    @property
    def disk(self) -> Disk:
        """The Node's view while up (its changes are records); the disk when down."""
        return self.node.state if self.alive else self.durable

    @property
    def participant(self):
        return self.node.participant

    @property
    def coordinators(self):
        return self.node.coordinators

    @property
    def progress(self):
        return self.node.progress

    @property
    def submissions(self):
        return self.node.submissions

    def _tx_of(self, key: Key) -> TxInfo | None:
        return self.node.tx_of(key)


# The driver's own messages (the Node never sees them); tests swap these handlers.
_HANDLERS = {
    KeyRecordsMsg: SimAgent._on_key_records,
}
