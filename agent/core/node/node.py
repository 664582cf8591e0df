"""One agent's protocol cores and the routing between them, in one pure `Node`.

Theory of operation
-------------------
A Node holds every core of one agent: a Coordinator per workflow it coordinates, the
Participant (reservations), the Acceptor (Paxos Commit acceptor state), Termination
(participants in doubt), a Progress per committed workflow, the workflow lifecycle
table, and the submission guard. It owns what used to be spread over the shells: it
runs the cores' actions in order, checks a COMMIT's certificate, combines the writes
of one decision (a learned COMMIT with its hold's commit), applies decisions to
holds, starts the steps of committed workflows, collects decision records,
acknowledges decisions, resends what must arrive, and ends workflows.

Its interface is raft-rs's RawNode/Ready:

    node.step(now, input)  # Message | Acks | Submit | Cancel | StepEnded | MemberState(s)
                           # | CompensationEnded | Tick
    node.get_timer()       # the earliest deadline of any core inside (None: none)
    ready = node.ready()   # writes (one transaction, in order), send_now,
                           # send_after_write, start_steps, stop_steps, status_changes
    ...the driver persists ready.writes, then sends, starts, stops...
    node.advance(ready)

It imports cores and generated types only: no clock (time comes in as `now`), no
randomness of its own (an injected `random.Random`), no I/O. It reads a view of its
durable tables (`Disk`, records.py) whose every change becomes an op of the Ready
(ready.py); a driver that applies the ops to its own copy and later calls
`Node.restore(disk, now)` gets back the Node a restarted agent must be. What it held
only in memory (reliable resends, termination's queries, timers) is rebuilt from
the tables on restore.

Time on disk. `now` is a monotonic clock, and a monotonic clock starts again when its
host reboots: a restored Node may read its tables on a clock far below or far above
the one they were written on. So no monotonic instant is read back from the tables:
- hold leases (the only instants the tables hold) are counted again from the
  restore's `now` (participant.restarted: never early, a first query within one lease);
- retention's `endings` are wall milliseconds (`wall_ms`, as envelope timestamps
  are); the late-message window runs again from the restore;
- admitted submissions carry the client's wall time;
- every deadline kept in memory (coordinators' timeouts, resends, termination's
  queries, retention's and takeover's timers) is rebuilt from `now` on restore.

Messages come in *authenticated*: the driver has verified who sent them (on the wire,
an envelope's signature) and checked the sender's authority (core/identity/authority)
before `step`. A peer's acknowledgements of one run of an envelope come as one `Acks`
input (checked in one pass: authority.check_acks), a step for all of them. Between
`ready()` and `advance()` the driver does not step the Node.

Drivers. There is one: `NodeDriver` (agent/runtime/driver.py), with its ports
(runtime/ports.py: Clock, Durable, Transport, Executors) and an asyncio adapter,
`DriverLoop`, that drains every queued input into one turn and arms one `call_at` at
`get_timer()`. The negotiation simulator runs it through simulated ports
(agent/sim/negotiation/ports.py: a crash point before each write group and each send,
per-agent wall clocks that step). The daemon's runtime is to map onto the same calls:
a gRPC handler posts `Message` (after the envelope check), the client service posts
`Submit`, an executor's end posts `StepEnded`, the membership shell posts
`MemberState` on each change of its view (and every member's state after a restore);
each turn writes `ready.writes` as one SQLite transaction and sends `send_after_write`
after the commit.

Coordinator takeover is a part of the Node (takeover.py, takeover_claims.py),
composed when `Timing.takeover_after_s` is set (`Node.takeover`; None otherwise, and a
claim is refused). It reads the driver's membership view, which comes in as
`MemberState(domain, state)` inputs, or `MemberViews` for the changes of one look
(member_views.py), all applied before any takeover core is watched (`Node.members`: a restored Node knows no view
until its driver posts it again), and its cores' deadlines are part of `get_timer()`.
Observers read what it did from the Ready's notes (`acting`, `coordinator_ended`) and
from `stats`; what a claim shows (an epoch certificate, a round proof) is checked
through the `evidence` port the Node is built with, and its own grants are signed
through the `sign_grant` port (takeover_grants.py).

Votes are signed (votes.py): a YES the Node sends is sealed as its Ready is handed
out, with the turn's other YES votes, under one signature of their Merkle root made
through the `sign_vote` port; the authority table checks the votes of every
certificate through `verify_vote` (authority.py). Default ports: a stand-in keyed by
the domain's name (votes.py), for tests; the daemon passes its domain key and trust
store (runtime/node_engine/evidence.py).

Membership's DEAD and LEFT act on negotiations whether takeover is on or not
(member_loss.py): a transaction in doubt here whose coordinator is gone starts its
recovery at once instead of after its lease; a round this Node prepares aborts at
once when a participant that has not voted is gone (the refusal names it), and the
placer leaves gone members out. SUSPECT changes nothing. They act on committed
workflows' steps too (domain_loss.py): a workflow's original coordinator fails each
step placed on a gone domain that is not terminal, naming the domain, and the
workflow ends as its lifecycle says (with takeover, once its participants were told);
a step the loss table would place again gets a negotiation round of its own
(replacement.py), and each placement of a step carries an epoch its results carry too
(a fencing token: a result of an older placement is refused).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from fedorch.core.identity.submission_guard import Admission, SubmissionGuard
from fedorch.core.negotiation.acceptor import Acceptor, Stated
from fedorch.core.negotiation.coordinator import ConsensusOptions
from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import Key, TxInfo
from fedorch.core.negotiation.participant import Participant
from fedorch.core.negotiation.termination import Termination
from fedorch.core.node.cancel import Cancels
from fedorch.core.node.commit_acks import CommitAcks
from fedorch.core.node.compensating import Compensating
from fedorch.core.node.coordinator_timers import Coordinators
from fedorch.core.node.domain_loss import DomainLoss
from fedorch.core.node.early_results import EarlyResults
from fedorch.core.node.ended_cores import ended_tx, revive_core
from fedorch.core.node.ended_cores import settle as settle_core
from fedorch.core.node.inputs import (
    Acks,
    Cancel,
    CompensationEnded,
    MemberState,
    MemberViews,
    Message,
    StepEnded,
    Submit,
    Tick,
)
from fedorch.core.node.member_loss import MemberLoss
from fedorch.core.node.member_views import take_views
from fedorch.core.node.message_copy import with_gen
from fedorch.core.node.negotiation import Negotiation
from fedorch.core.node.pending import Pending
from fedorch.core.node.placed_here import PlacedHere
from fedorch.core.node.ready import Outbox, Outgoing, Ready, recorded_view
from fedorch.core.node.records import Disk, PrepareMsg, ResultMsg, Timing, VoteMsg, WfInfo
from fedorch.core.node.replacement import Replacements
from fedorch.core.node.restart_check import RestartCheck
from fedorch.core.node.retention import Retainer
from fedorch.core.node.round_making import RoundMaking
from fedorch.core.node.running import Running
from fedorch.core.node.running_ends import EndNotices
from fedorch.core.node.self_fencing import SelfFencing
from fedorch.core.node.submission_check import check_submission
from fedorch.core.node.submitting import take_submission
from fedorch.core.node.takeover import TakeoverEvidence, Takeovers
from fedorch.core.node.takeover_grants import GrantSigner
from fedorch.core.node.votes import Votes
from fedorch.core.policy.engine import PolicyContext
from fedorch.core.workflow.progress import Progress
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

__all__ = ["Acks", "Cancel", "CompensationEnded", "MemberState", "MemberViews", "Message",
           "Node", "StepEnded", "Submit", "Tick"]

SUBMISSION_WINDOW_MS = 3_600_000


class Node:
    def __init__(self, name: str, *, policy: config_pb2.Policy, capacities: dict[str, int],
                 timing: Timing, peers: list[str], rng: random.Random,
                 stats: Counter[str] | None = None,
                 evidence: TakeoverEvidence | None = None,
                 sign_grant: GrantSigner | None = None,
                 sign_vote: Callable[[bytes], bytes] | None = None,
                 verify_vote: Callable[[str, bytes, bytes], bool] | None = None,
                 wall_ms: Callable[[float], int] = lambda now: int(now * 1000),
                 admit: Callable[[Node, float, TxInfo, WfInfo], Admission | None]
                 | None = None, disk: Disk | None = None, now: float = 0.0,
                 stated: Stated | None = None, labels: dict[str, str] | None = None) -> None:
        """`disk` and `now`: restore from that disk at that time (default: a new, empty
        agent); `stated`: the acceptor's check that a round is one its coordinator
        stated (Acceptor); `evidence`: coordinator takeover's checks of a claim's
        certificate and round proof (takeover.py; default: nothing verifies);
        `sign_grant`: signs this agent's takeover grants (takeover_grants.py; default:
        unsigned, which no evidence that checks signatures believes); `sign_vote` and
        `verify_vote`: the vote port (votes.py: this domain's signer of its votes' roots,
        and the check of a domain's signature; default: the stand-in keyed by name);
        `labels`: this domain's, which a step's constraints are checked against when a
        PREPARE asks for it here (votes.py; default: none)."""
        self.name = name
        self.stated = stated
        self.policy = policy
        self.capacities = capacities
        self.labels = dict(labels or {})
        self.t = timing
        self.peers = list(peers)
        self.rng = rng
        self.round_making = RoundMaking(self)  # consensus options, placer
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self.votes = Votes(name, sign_vote, verify_vote)
        self._unsealed = 0  # YES votes sent this turn whose evidence is not made yet
        self.wall_ms = wall_ms
        self.admit = admit if admit is not None else Node.check_submission
        self.out = Outbox()
        # `point` and `note` are the Outbox's own, bound once: every record of every
        # message passes here, and a Node method forwarding them was a call each.
        # point(what): what follows is written under this name (a driver's crash point).
        self.point: Callable[[str], None] = self.out.point
        self.note: Callable[..., None] = self.out.note
        self.running = Running(self)
        self.early_results = EarlyResults(self)  # results before their COMMIT
        self.end_notices = EndNotices(self)  # end notices told here (running_ends.py)
        self.replacement = Replacements(self)  # steps the loss table places again (replacement.py)
        self.placed_here = PlacedHere(self)  # a participant's side of it (placed_here.py)
        self.restart_check = RestartCheck(self)  # nothing starts after a restart unasked
        self.compensating = Compensating(self)  # sagas (compensating.py)
        self.negotiation = Negotiation(self)
        self.commit_acks = CommitAcks(self)  # DecisionAcks a result stands for
        self.cancels = Cancels(self)
        # Coordinator takeover (takeover.py); None: off, the original coordinator only.
        self.takeover = Takeovers(self, evidence, sign_grant) \
            if timing.takeover_after_s is not None else None
        # The driver's membership view (MemberState inputs): domain -> state.
        self.members: dict[str, str] = {}
        # What the view's DEAD and LEFT do to negotiations (member_loss.py).
        self.member_loss = MemberLoss(self)
        # What they do to committed workflows' steps placed there (domain_loss.py).
        self.domain_loss = DomainLoss(self)
        # Retention of ended workflows (retention.py); None: every one is kept.
        self.retain = Retainer(self, timing.retention) if timing.retention is not None \
            else None
        # Self-fencing of the steps run here (self_fencing.py); None: off.
        self.fencing = SelfFencing(self, timing.step_lease_s) \
            if timing.step_lease_s is not None else None
        self._handed_out = False
        self.restore(disk if disk is not None else Disk(), now)

    # ---- the RawNode interface ---------------------------------------------------

    def step(self, now: float, event: object) -> None:
        """RemoteProtocolError: a peer's input this Node refuses (what it did before
        the refusal stays in the Ready: it was decided on good input)."""
        if self._handed_out:
            raise LocalProtocolError("step between ready() and advance()")
        self.now = now
        try:
            self._step(now, event)
        finally:
            if self.early_results.due:  # results held until a COMMIT learned now
                self.early_results.step_due(now)

    def _step(self, now: float, event: object) -> None:
        kind = type(event)
        if kind is Message:
            if self.fencing is not None:  # any message: contact with its sender
                self.fencing.message_from(now, event.src)
            # Negotiation.deliver inlined (the input of most steps): its handler by type.
            try:  # a subscript, not .get: no call
                handler = self.negotiation.handlers[type(event.msg)]
            except KeyError:
                raise RemoteProtocolError(
                    f"unknown message {type(event.msg).__name__}") from None
            handler(now, event.src, event.msg)
        elif kind is Acks:  # one peer's acknowledgements, in one step (negotiation.py)
            if self.fencing is not None:
                self.fencing.message_from(now, event.src)
            self.negotiation.take_acks(now, event.src, event.acks)
        elif kind is Submit:
            take_submission(self, now, event)
        elif kind is StepEnded:
            self.running.step_ended(now, event)
        elif kind is Tick:
            self._tick(now)
        elif kind is MemberState:
            take_views(self, now, (event,))
        elif kind is MemberViews:
            take_views(self, now, event.changes)
            if event.doubted and self.fencing is not None:  # our own doubt (start_asks.py):
                self.fencing.asks.doubted(now)  # every member, those just told included
        elif kind is Cancel:
            self.cancels.cancel(now, event)
        elif kind is CompensationEnded:
            self.compensating.compensation_ended(now, event)
        else:
            raise LocalProtocolError(f"not an input of a Node: {event!r}")

    def get_timer(self) -> float | None:
        # Called after every turn: no list of every core's deadline, the earliest kept.
        best = self.coordinators.earliest()
        for t in (self.termination.get_timer(), self.participant.expiry_timer(),
                  self.retain.timer() if self.retain is not None else None,
                  self.takeover.timer() if self.takeover is not None else None,
                  self.running.timer(), self.replacement.timer(), self.restart_check.timer(),
                  self.commit_acks.timer(),
                  self.fencing.timer() if self.fencing is not None else None,
                  self.pending.earliest()):  # a heap: no walk of the resends (pending.py)
            if t is not None and (best is None or t < best):
                best = t
        return best

    def ready(self) -> Ready:
        self._handed_out = True
        if self._unsealed:
            self._seal_votes()
        ready = self.out.ready()
        if self.out.moved_ahead:  # what the Outbox sent with the write, not only marked
            self.stats["submission's PREPARE sent with its write"] += self.out.moved_ahead
            self.out.moved_ahead = 0
        return ready

    def advance(self, ready: Ready) -> None:
        self.out.advance(ready)
        self._handed_out = False

    @property
    def awaiting_advance(self) -> bool:
        """A Ready is handed out and not yet advanced: its writes may not be durable,
        and the Node's state is ahead of them (a driver steps and takes the Ready in
        one go, so outside a turn this is the only window)."""
        return self._handed_out

    def has_ready(self) -> bool:
        return not self.out.ready().empty()

    # ---- restore ----------------------------------------------------------------

    def restore(self, disk: Disk, now: float) -> None:
        """Become what a restarted agent is with `disk` on its disk: every core rebuilt
        from the tables; what must happen again (resends, releases) in the next Ready."""
        self.now = now
        self.out.clear()
        self._unsealed = 0
        self._handed_out = False
        self.state = recorded_view(disk, self.out.op, by_workflow=self.retain is not None)
        t = self.t
        self.participant = Participant(self.name, self.policy, self.capacities,
                                       lease_s=t.lease_s, query_interval_s=t.query_interval_s)
        life = t.retention.round_life_s if t.retention is not None else None  # retention.py
        self.acceptor = Acceptor(self.name, stated=self.stated,
                                 round_life_ms=None if life is None else int(life * 1000))
        self.submissions = SubmissionGuard(SUBMISSION_WINDOW_MS)
        self.termination = Termination(
            self.name, rng=self.rng, query_timeout_s=t.query_timeout_s,
            query_interval_s=t.query_interval_s, resend_s=t.resend_s, backoff_s=t.backoff_s,
            stagger_s=t.stagger_s, coordinator_gone=self.member_loss.gone)
        self.coordinators = Coordinators()
        # A core whose workflow's end is settled is kept as a small record (ended_cores.py).
        self.coordinators.settle = lambda wf, core: settle_core(self, wf, core)
        self.coordinators.revive = lambda wf, record: revive_core(self, wf, record)
        self.coordinators.record_tx = lambda wf, record: ended_tx(self, wf, record)
        self.progress: dict[str, Progress] = {}
        self.running.reset()
        self.early_results.reset()
        self.commit_acks.reset()
        self.domain_loss.reset()
        self.replacement.reset()
        if self.fencing is not None:
            self.fencing.reset()
        # Reliable sends: id -> [to, msg, at, backoff]; generations from this restart's
        # wall clock on, none an earlier run of this agent gave (pending.py).
        self.pending = Pending(self.wall_ms(now))
        self.members = {}  # a restarted agent's view is its membership's: told anew
        if self.takeover is not None:
            self.takeover.reset()
        if self.retain is not None:  # first: what restore ends or learns marks it again
            self.retain.restore(now)
        self.restart_check.hold_all(now)  # before the restored progress starts anything
        self.negotiation.restore(now)
        self.cancels.restore(now)  # a cancel on record not carried out before the crash
        self.compensating.restore(now)  # compensations owed, attempts interrupted
        if self.takeover is not None:
            self.takeover.restore(now)
        self.restart_check.restored(now)  # the coordinator asked where the steps are now

    # ---- timers -------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        """Fire every deadline that has come. Once: each core sets its next deadline from
        `now` or later (Termination's lease-based one too), so none is left due."""
        for _, core in list(self.coordinators.due(now)):
            core.handle_timer(now)
            self.negotiation.run(now, core.next_actions(), core)
        t = self.termination.get_timer()
        if t is not None and t <= now:
            self.termination.handle_timer(now)
            self.negotiation.run(now, self.termination.next_actions())
        t = self.participant.expiry_timer()
        if t is not None and t <= now:
            for h in self.participant.expire(now):
                self.stats["reservation expired unvoted"] += 1
                self.point("reservation expired")
                self.state.holds.pop(h.key, None)
                self.mark(h.workflow_id)  # its PREPARE stays on record until retention
        if self.takeover is not None:
            self.takeover.tick(now)
        self.running.tick(now)  # the fan-out waves whose pause_s is over
        self.domain_loss.tick(now)  # before the resends: a void verdict's end goes no more
        self.replacement.tick(now)  # the re-placement rounds' deadlines
        self.restart_check.tick(now)  # restored workflows asked about again
        self.commit_acks.tick(now)  # DecisionAcks no result stood for in time
        if self.fencing is not None:
            self.fencing.tick(now)  # the attempts cut off past their step lease
        for entry in self.pending.resend_due(now, 8.0):  # in the table's order
            self.send(entry[0], entry[1])
        if self.retain is not None:  # last: what this tick ended or acknowledged counts
            self.retain.tick(now)

    # ---- what the parts share -------------------------------------------------------

    def mark(self, wf: str, *, ended: bool = False) -> None:
        """An end (`ended`), decision, acceptor record or acknowledgement of `wf` in the
        write group open now: retention's clock for it starts again (retention.py), and
        its Coordinator core is looked at again (ended_cores.py: settled now?), and so
        are results of it held until its COMMIT (early_results.py: committed now?)."""
        self.coordinators.touch(wf)
        self.early_results.touched(wf)
        if self.retain is not None:
            self.retain.mark(wf, ended=ended)

    def send(self, to: str, msg: object) -> None:
        if type(msg) is PrepareMsg and self.takeover is not None:
            # Its round signed for takeover claims, where it has an acceptor holding no
            # step (takeover_proofs.stated_prepare): the one place every PREPARE passes.
            msg = self.takeover.proof.stated_prepare(msg)
        elif type(msg) is VoteMsg and msg.yes and not msg.evidence:
            self._unsealed += 1  # signed with the turn's others as it is handed out
        elif type(msg) is ResultMsg:
            if self.commit_acks.owed:
                self.commit_acks.reported(to, msg)  # it may stand for our DecisionAck
            if self.running.starts.held:  # it may imply a start tell held (running_starts.py)
                self.running.starts.sending(to, msg)
        self.out.send(to, msg)

    def _seal_votes(self) -> None:
        """Our YES votes of this turn get their evidence: one signature over the root of
        their Merkle tree (votes.py), made as the Ready is handed out."""
        out = self.out
        at = [(q, i) for q in (out.send_now, out.send_after) for i, o in enumerate(q)
              if type(o.msg) is VoteMsg and o.msg.yes and not o.msg.evidence]
        evidence = self.votes.seal([(q[i].msg.key, True) for q, i in at])
        for (q, i), raw in zip(at, evidence, strict=True):  # built directly: every YES
            v = q[i].msg
            q[i] = Outgoing(q[i].to, VoteMsg(v.key, v.domain, v.yes, v.reason, raw))
        self._unsealed = 0
        self.stats["vote roots signed"] += 1

    def reliable(self, to: str, msg_id: tuple, msg: object) -> None:
        """Send until acknowledged (resends are in memory; restore re-reports), as a
        generation of its own: an acknowledgement of an earlier send kept under
        `msg_id` leaves this one (pending.py, "Generations")."""
        msg = with_gen(msg, self.pending.generation())
        self.pending[msg_id] = [to, msg, self.now + self.t.reliable_resend_s,
                                self.t.reliable_resend_s]
        self.send(to, msg)

    def tx_of(self, key: Key) -> TxInfo | None:
        hold = self.participant.hold(key)
        if hold is not None and hold.tx is not None:
            return hold.tx
        rec = self.acceptor.record(key)
        if rec is not None:
            return rec.tx
        tx = self.coordinators.tx(key[0])
        return tx if tx is not None and tx.key == key else None

    def consensus(self) -> ConsensusOptions:
        return self.round_making.consensus()  # round_making.py

    def placer(self, spec: spec_pb2.WorkflowSpec, hint: dict[str, str] | None = None):
        return self.round_making.placer(spec, hint)  # round_making.py

    def vote_context(self, now: float, info: WfInfo, steps: tuple[tuple[str, str], ...],
                     principal: str) -> PolicyContext | None:
        """What a vote on `steps` of `info` checks residency, egress and rules against
        beyond its steps: the labels along the DAG, the destinations of their outputs
        (core/policy/flow.py). None here: this Node knows no domain records (the
        simulator's world); the daemon's Node reads them from membership (placing.py)."""
        return None

    check_submission = staticmethod(check_submission)  # submission_check.py

    # ---- configuration -------------------------------------------------------------

    def reconfigure(self, *, policy: config_pb2.Policy, capacities: dict[str, int],
                    labels: dict[str, str] | None = None) -> None:
        """A new local policy, capacities and labels (None: unchanged) (the daemon's
        config reload), from the next PREPARE on. What is held stays held: a
        reservation granted under the old capacities keeps its slots, and a capacity
        shrunk below what is reserved refuses new reservations (no slot free) until
        enough of them end. A restore rebuilds the Participant from these. Called
        between turns' inputs only, like `step` (the driver applies it in a turn,
        ordered with the inputs around it)."""
        if self._handed_out:
            raise LocalProtocolError("reconfigure between ready() and advance()")
        self.policy = policy
        self.capacities = dict(capacities)
        if labels is not None:
            self.labels = dict(labels)
        self.participant.reconfigure(policy, self.capacities)
