"""A simulated agent: the real negotiation cores inside a minimal shell with a disk.

Theory of operation
-------------------
A SimAgent is an agent daemon minus gRPC, SQLite and signatures. It holds the
real cores (Coordinator per workflow it coordinates, Participant, Acceptor,
Termination, and a workflow Progress per committed workflow) and runs their
actions in order, exactly as agent.server does: every durable write happens on
its `Disk` (a plain object that survives crashes) before anything that follows
it leaves. Everything else is lost on a crash; `boot()` rebuilds every core from
the disk alone, the way a restarted daemon would.

Before every disk write and every send the agent passes a *crash point*
(`Simulation.crash_point`): the simulation may stop the agent right there, so
crashes happen at every point of every protocol path (between the reservation
and the prepare record, between the proposal cell and the Accepts, between the
decision and its announcement, between a step's start record and its run...).

Steps run on instant fake executors: an attempt's start is recorded (the
idempotency key (workflow, step, attempt)) and its end arrives as a simulation
event a little later, unless the agent crashed meanwhile (then the attempt
counts as failed on restart and is never run again).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING

from fedorch.core.identity.submission_guard import SubmissionGuard
from fedorch.core.negotiation.acceptor import Acceptor, PersistAcceptor
from fedorch.core.negotiation.coordinator import (
    ConsensusOptions,
    Coordinator,
    Finished,
    PersistDecision,
    RoundRecord,
    SendDecision,
    SendPrepare,
)
from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    Decision,
    DecisionAck,
    DecisionAnswer,
    DecisionQuery,
    Key,
    Learned,
    PaxosPrepare,
    PersistBallot,
    PersistProposal,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
    VoteIn,
    check_value,
)
from fedorch.core.negotiation.participant import DecisionEffect, HoldState, Participant
from fedorch.core.negotiation.termination import Termination, answer_query
from fedorch.core.workflow import lifecycle
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.placement import Placement
from fedorch.core.workflow.progress import Progress
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation.boundary import (
    SUBMISSION_WINDOW_MS,
    check_input,
    check_submission,
    sim_ms,
    vote_raw,
)
from fedorch.sim.negotiation.disk import (
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    CoordRow,
    Disk,
    FinalMsg,
    PrepareMsg,
    ResultMsg,
    Timing,
    VoteMsg,
    WfInfo,
    copy_hold,
)
from fedorch.sim.negotiation.keyring import KeyRecordsMsg
from fedorch.sim.negotiation.steps import StepRunner

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


class SimAgent(StepRunner):
    def __init__(self, sim: World, name: str, policy: config_pb2.Policy,
                 capacities: dict[str, int], timing: Timing) -> None:
        self.sim = sim
        self.name = name
        self.policy = policy
        self.capacities = capacities
        self.t = timing
        self.disk = Disk()
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
        self.alive = False
        self.incarnation += 1
        self.wake_at = None
        self.coordinators: dict[str, Coordinator] = {}
        self.progress: dict[str, Progress] = {}
        self.pending: dict[tuple, list] = {}
        self.tk_reset()

    def boot(self, now: float) -> None:
        """Rebuild every core from the disk, as a restarted daemon does."""
        d, t = self.disk, self.t
        self.alive = True
        self.rng = random.Random(self.sim.agent_seed(self.name, self.incarnation))
        self.participant = Participant(self.name, self.policy, self.capacities,
                                       lease_s=t.lease_s, query_interval_s=t.query_interval_s)
        holds = [copy_hold(h) for h in d.holds.values()]
        self.participant.restore(holds, {k: v.commit for k, v in d.learned.items()})
        self.acceptor = Acceptor(self.name)
        self.acceptor.restore(d.acceptor.values(), d.learned)
        self.submissions = SubmissionGuard(SUBMISSION_WINDOW_MS)
        self.submissions.restore((k, wf, at) for k, (wf, at) in d.admitted.items())
        self.termination = Termination(
            self.name, rng=self.rng, query_timeout_s=t.query_timeout_s,
            query_interval_s=t.query_interval_s, resend_s=t.resend_s, backoff_s=t.backoff_s,
            stagger_s=t.stagger_s)
        self.coordinators = {}
        self.progress = {}
        self.pending = {}
        self.tk_reset()
        for h in holds:
            value = d.learned.get(h.key)
            if value is not None:  # learned, crashed before the hold followed
                self._apply(now, h.key, value, h.tx)
            elif h.state is HoldState.PREPARED and h.tx is not None \
                    and h.tx.coordinator != self.name:
                self.termination.track(h.tx, h.lease_expires, d.ballots.get(h.key))
        for wf, row in list(d.rows.items()):
            record = RoundRecord(
                row.round, dict(row.info.placement), row.acceptors,
                d.cells.get((wf, row.round)), d.records.get((wf, row.round)),
                row.committed, row.finished, ballot=d.ballots.get((wf, row.round)))
            core = Coordinator.restore(wf, record, now=now, placer=self._placer(row.info.spec),
                                       max_rounds=t.max_rounds,
                                       prepare_timeout_s=t.prepare_timeout_s,
                                       consensus=self._consensus())
            self.coordinators[wf] = core
            self.sim.stats[f"coordinator restored {core.phase.value}"] += 1
            self._run(now, core.next_actions(), core)
            if row.state in (WorkflowState.SUCCEEDED, WorkflowState.FAILED) \
                    and d.epochs.get(wf, (0, ""))[0] == 0:  # else a successor ended it
                if wf not in d.final:  # crashed between the outcome and its release
                    self._end_here(wf, row.state)
                acked = d.final_acked.get(wf, set())
                for p in sorted(set(row.info.placement.values()) - {self.name} - acked):
                    self._reliable(p, ("final", wf, p), FinalMsg(wf, row.state))
        for h in holds:  # our own reservations in rounds we coordinate: our log decides
            core = self.coordinators.get(h.workflow_id)
            if core is not None and h.key not in d.learned and h.round <= core.round:
                answer = core.answer_query(now, h.round)
                self._run(now, core.next_actions(), core)
                if answer.value is not None:
                    self._learn(now, h.key, answer.value, h.tx)
        for wf in {h.workflow_id for h in self.participant.holds()} & set(d.final):
            self._end_here(wf, d.final[wf])  # crashed between its end and the release
        for wf in list(d.committed):
            if wf not in d.final:
                self._resume(now, wf)
        self.tk_boot()

    # ---- inputs ------------------------------------------------------------------

    def submit(self, now: float, workflow_id: str, spec: spec_pb2.WorkflowSpec,
               placement: dict[str, str] | None = None) -> None:
        self._point("workflow row")
        self.disk.rows[workflow_id] = CoordRow(
            workflow_id, WfInfo(spec, {}, self.name, submission=spec_pb2.SignedSpec(
                principal=f"client@{self.name}", public_key=b"c" * 32,
                request_id=f"request-{workflow_id}", issued_at_ms=sim_ms(now),
                coordinator=self.name)),
            state=lifecycle.step(WorkflowState.PENDING, lifecycle.Submitted()))
        core = Coordinator(workflow_id, placer=self._placer(spec, placement),
                           max_rounds=self.t.max_rounds,
                           prepare_timeout_s=self.t.prepare_timeout_s,
                           consensus=self._consensus())
        self.coordinators[workflow_id] = core
        core.start(now)
        self._run(now, core.next_actions(), core)

    def deliver(self, now: float, src: str, msg: object) -> None:
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            raise RemoteProtocolError(f"unknown message {type(msg).__name__}")
        check_input(self, src, msg)  # the authority table, before any core sees it
        handler(self, now, src, msg)

    def wake(self, now: float) -> None:
        for core in list(self.coordinators.values()):
            t = core.get_timer()
            if t is not None and t <= now:
                core.handle_timer(now)
                self._run(now, core.next_actions(), core)
        t = self.termination.get_timer()
        if t is not None and t <= now:
            self.termination.handle_timer(now)
            self._run(now, self.termination.next_actions())
        t = self.participant.expiry_timer()
        if t is not None and t <= now:
            for h in self.participant.expire(now):
                self.sim.stats["reservation expired unvoted"] += 1
                self._point("reservation expired")
                self.disk.holds.pop(h.key, None)
        self.tk_wake(now)
        for entry in list(self.pending.values()):
            if entry[2] <= now:
                entry[3] = min(entry[3] * 2, 8.0)
                entry[2] = now + entry[3]
                self._send(entry[0], entry[1])

    def next_timer(self) -> float | None:
        times = [c.get_timer() for c in self.coordinators.values()]
        times += [self.termination.get_timer(), self.participant.expiry_timer(),
                  self.tk_timer()]
        times += [e[2] for e in self.pending.values()]
        live = [x for x in times if x is not None]
        return min(live) if live else None

    # ---- message handlers ----------------------------------------------------------

    def _on_prepare(self, now: float, src: str, msg: PrepareMsg) -> None:
        tx = msg.tx
        if src != tx.coordinator:
            raise RemoteProtocolError("a PREPARE comes from its coordinator")
        admission = check_submission(self, now, tx, msg.info)
        out = self.participant.reserve(
            now, workflow_id=tx.workflow_id, round=tx.round, coordinator=tx.coordinator,
            data_labels=dict(msg.info.spec.data), steps=list(msg.steps), tx=tx)
        yes = out.yes
        if yes and out.hold is not None:  # RESERVED: the reservation, then the prepare record
            self._point("reservation")
            if admission is not None and admission.new:  # in the reservation's write
                self.submissions.record(admission)
                self.disk.admitted[admission.key] = (tx.workflow_id, admission.issued_at_ms)
            self.disk.info[tx.key] = msg.info
            self.disk.holds[tx.key] = copy_hold(out.hold)
            hold = self.participant.confirm_yes(now, tx.key)
            self._point("prepare record")
            if hold is None:
                self.disk.holds.pop(tx.key, None)
                yes = False
            else:
                self.disk.holds[tx.key] = copy_hold(hold)
                self.sim.checker.yes_voted(self.name, tx, hold.lease_expires, now)
                if tx.coordinator != self.name:
                    self.termination.track(tx, hold.lease_expires)
        reason = "" if yes else out.reason or "lease expired before the vote"
        if reason == "round already decided":
            self.sim.stats["late PREPARE refused"] += 1
        self._send(src, VoteMsg(tx.key, self.name, yes, reason))

    def _on_key_records(self, now: float, src: str, msg: KeyRecordsMsg) -> None:
        """Relayed by anyone: each record is checked by its own signers (the trust store
        takes none signed by another domain's keys, nor one off the domain's chain)."""
        changed, refused = self.trust.learn(msg.records)
        self.sim.stats["key records refused"] += refused
        self.sim.stats["key records changed"] += len(changed)

    def _on_vote(self, now: float, src: str, msg: VoteMsg) -> None:
        core = self.coordinators.get(msg.key[0])
        if core is None or src != msg.domain:
            raise RemoteProtocolError("a vote for no workflow of ours, or relayed")
        raw = vote_raw(msg.key, src, msg.yes)
        core.receive_vote(now, VoteIn(msg.key[1], src, msg.yes, msg.reason, raw))
        self._run(now, core.next_actions(), core)

    def _on_acceptor_input(self, now: float, src: str, msg: PaxosPrepare | Accept) -> None:
        self.acceptor.receive(src, msg)
        self._run(now, self.acceptor.next_actions())

    def _on_proposer_input(self, now: float, src: str, msg: Promise | Accepted | Reject) -> None:
        # As on the wire (paxos_wire.decode), a reply is signed by the acceptor it names;
        # our own acceptor hands us a proposer's vouched acceptance too (never the wire).
        if src != self.name and getattr(msg, "acceptor", src) != src:
            raise RemoteProtocolError("a reply signed by another acceptor")
        core = self.coordinators.get(msg.key[0])
        if core is not None:
            core.receive_paxos(now, msg)
            self._run(now, core.next_actions(), core)
        else:
            self.termination.receive(now, msg)
            self._run(now, self.termination.next_actions())

    def _on_decision(self, now: float, src: str, msg: Decision) -> None:
        tx = self._tx_of(msg.key)
        if tx is not None:
            check_value(tx, msg.value)  # a COMMIT is believed only with its certificate
        elif msg.value.commit:
            raise RemoteProtocolError(f"a COMMIT of {msg.key}, a transaction unknown here")
        core = self.coordinators.get(msg.key[0])
        if core is not None:
            core.receive_paxos(now, msg)
            self._run(now, core.next_actions(), core)
        self._learn(now, msg.key, msg.value, tx)

    def _on_query(self, now: float, src: str, msg: DecisionQuery) -> None:
        wf, round_ = msg.key
        core = self.coordinators.get(wf)
        if core is not None:
            answer = core.answer_query(now, round_)
            self._run(now, core.next_actions(), core)
        else:
            answer = answer_query(self.name, msg.key, self.disk.learned.get(msg.key),
                                  self.participant.status(msg.key))
        self._send(src, answer)

    def _on_answer(self, now: float, src: str, msg: DecisionAnswer) -> None:
        self.termination.receive(now, msg)
        self._run(now, self.termination.next_actions())

    def _on_ack_decision(self, now: float, src: str, msg: DecisionAck) -> None:
        core = self.coordinators.get(msg.key[0])
        if core is None:
            return
        core.receive_ack(now, src, msg.key[1])
        self._collect(core)

    # ---- running the cores' actions, in order ----------------------------------------

    def _run(self, now: float, actions: list, core: Coordinator | None = None) -> None:
        for a in actions:
            kind = type(a)
            if kind is Send:
                self._send(a.to, a.msg)
            elif kind is PersistAcceptor:
                self._point("PersistAcceptor")
                self.disk.acceptor[a.key] = a.record
                self.sim.checker.acceptor_state(self.name, a.record)
            elif kind is PersistBallot:
                self._point("PersistBallot")
                self.disk.ballots[a.key] = a.ballot
            elif kind is Learned:
                self.sim.stats[f"termination learned {'COMMIT' if a.value.commit else 'ABORT'}"] += 1
                self._learn(now, a.key, a.value, a.tx)
            elif core is not None:
                self._coordinator_action(now, core, a)
            else:  # pragma: no cover - every core action is listed above
                raise LocalProtocolError(f"no shell for {a!r}")

    def _coordinator_action(self, now: float, core: Coordinator, a: object) -> None:
        d = self.disk
        wf = core.workflow_id
        row = d.rows[wf]
        if isinstance(a, SendPrepare):
            if row.round != a.round:  # the round record, before any PREPARE of it
                self._point("round record")
                row = replace(row, round=a.round, acceptors=a.acceptors,
                              info=replace(row.info, placement=dict(a.placement),
                                           coordinator=self.name))
                d.rows[wf] = row
            tx = core.tx()
            assert tx is not None and tx.round == a.round
            caps = {s.id: s.capability for s in row.info.spec.steps}
            self._send(a.domain, PrepareMsg(tx, tuple((s, caps[s]) for s in a.steps), row.info))
        elif isinstance(a, PersistProposal):
            self._point("PersistProposal")
            held = d.cells.setdefault((wf, a.round), a.value)
            if held != a.value:
                raise LocalProtocolError(f"{wf} round {a.round}: the proposal cell changed")
        elif isinstance(a, PersistDecision):
            value = core.decision(a.round)
            assert value is not None
            self._point("PersistDecision")
            if d.records.setdefault((wf, a.round), value) != value:
                raise LocalProtocolError(f"{wf} round {a.round}: the decision record changed")
            if value.commit:
                d.rows[wf] = replace(d.rows[wf], committed=True)
                d.committed[wf] = a.round
            elif d.cells.get((wf, a.round), value).commit:
                self.sim.stats["coordinator proposed commit, abort chosen"] += 1
            self.sim.checker.decided(self.name, (wf, a.round), value, now)
        elif isinstance(a, SendDecision):
            value = core.decision(a.round)
            if value is not None:
                self._send(a.domain, Decision((wf, a.round), value, self.name))
        elif isinstance(a, Finished):
            self._point("Finished")
            event = lifecycle.Committed() if a.committed else lifecycle.Cancelled(a.reason) \
                if a.cancelled else lifecycle.Aborted(a.reason)
            d.rows[wf] = replace(row, state=lifecycle.step(row.state, event), finished=True,
                                 reason=a.reason)
            if a.committed:
                self._resume(now, wf)
            self._collect(core)
        else:  # pragma: no cover
            raise LocalProtocolError(f"no shell for {a!r}")

    def _collect(self, core: Coordinator) -> None:
        for key in core.collectable():
            if key in self.disk.records:
                self._point("collect record")
                del self.disk.records[key]
                core.collected(key)
                self.sim.stats["decision record collected"] += 1

    # ---- decisions -------------------------------------------------------------------

    def _learn(self, now: float, key: Key, value: Value, tx: TxInfo | None) -> None:
        d = self.disk
        known = d.learned.get(key)
        if known is not None and known.commit != value.commit:
            self.sim.checker.learned(self.name, key, value, now)
            raise RemoteProtocolError(f"{key}: a decision contradicting the one on record")
        # As the shell does: a COMMIT of our prepared hold is learned in the write that
        # commits the hold (one write); anything else is learned on its own first.
        with_hold = known is None and value.commit and tx is not None \
            and self.name in tx.participants and self.participant.status(key) == "prepared"
        if known is None and not with_hold:
            self._point("learned")
            self._write_learned(now, key, value)
        self.termination.forget(key)
        self._apply(now, key, value, tx, learning=with_hold)

    def _write_learned(self, now: float, key: Key, value: Value) -> None:
        self.disk.learned[key] = value
        self.sim.checker.learned(self.name, key, value, now)

    def _apply(self, now: float, key: Key, value: Value, tx: TxInfo | None, *,
               learning: bool = False) -> None:
        """`learning`: the decision is not on disk yet; it goes with the hold's commit."""
        d = self.disk
        if tx is not None and self.name in tx.acceptors:
            self.acceptor.learn(tx, value)
            self._run(now, self.acceptor.next_actions())
        if tx is not None and self.name not in tx.participants:
            return  # an acceptor only
        status = self.participant.status(key)
        if status is None:
            if not value.commit:
                self.participant.decide(now, key[0], key[1], False)  # closed: no late reserve
            return  # an acceptor only, a NO voter, or the PREPARE never came
        effect = self.participant.decide(now, key[0], key[1], value.commit)
        assert not learning or effect is DecisionEffect.COMMITTED  # a prepared hold commits
        if effect is DecisionEffect.RELEASED:
            self._point("hold released")
            d.holds.pop(key, None)
        elif effect is DecisionEffect.COMMITTED:
            hold = self.participant.hold(key)
            assert hold is not None
            self._point("hold committed")
            if learning:
                self._write_learned(now, key, value)
            d.holds[key] = copy_hold(hold)
            d.committed[key[0]] = key[1]
            d.electorates[key[0]] = hold.tx.acceptors if hold.tx is not None else ()
            if key[0] in d.final:
                self._end_here(key[0], d.final[key[0]])
            else:
                self._resume(now, key[0])
        if value.commit and tx is not None and tx.coordinator != self.name:
            self._send(tx.coordinator, DecisionAck(key, self.name))
        elif value.commit and key[0] in self.coordinators:
            self.coordinators[key[0]].receive_ack(now, self.name, key[1])

    def _tx_of(self, key: Key) -> TxInfo | None:
        hold = self.participant.hold(key)
        if hold is not None and hold.tx is not None:
            return hold.tx
        rec = self.acceptor.record(key)
        if rec is not None:
            return rec.tx
        core = self.coordinators.get(key[0])
        tx = core.tx() if core is not None else None
        return tx if tx is not None and tx.key == key else None

    # ---- plumbing --------------------------------------------------------------------

    def _point(self, what: str) -> None:
        """A crash point: `what` is about to be written or sent."""
        self.sim.crash_point(self, what)

    def _send(self, dst: str, msg: object) -> None:
        self._point(f"send {type(msg).__name__}")
        self.sim.send(self.name, dst, msg)

    def _consensus(self) -> ConsensusOptions:
        others = [n for n in self.sim.names if n != self.name]

        def extras() -> list[str]:
            return self.rng.sample(others, len(others))

        t = self.t
        return ConsensusOptions(self.name, self.rng, extras, resend_s=t.resend_s,
                                backoff_s=t.backoff_s, decision_resend_s=t.decision_resend_s)

    def _placer(self, spec: spec_pb2.WorkflowSpec, hint: dict[str, str] | None = None):
        def place(excluded) -> Placement:
            assignment, unplaceable = {}, {}
            for s in spec.steps:
                left = [n for n in self.sim.names if n not in excluded.get(s.id, ())]
                if hint and hint.get(s.id) in left:
                    assignment[s.id] = hint[s.id]
                elif left:
                    assignment[s.id] = self.rng.choice(left)
                else:
                    unplaceable[s.id] = "every domain refused"
            return Placement(assignment, unplaceable)
        return place


_HANDLERS = {
    PrepareMsg: SimAgent._on_prepare,
    VoteMsg: SimAgent._on_vote,
    PaxosPrepare: SimAgent._on_acceptor_input,
    Accept: SimAgent._on_acceptor_input,
    Promise: SimAgent._on_proposer_input,
    Accepted: SimAgent._on_proposer_input,
    Reject: SimAgent._on_proposer_input,
    Decision: SimAgent._on_decision,
    DecisionQuery: SimAgent._on_query,
    DecisionAnswer: SimAgent._on_answer,
    DecisionAck: SimAgent._on_ack_decision,
    ResultMsg: SimAgent._on_result,
    FinalMsg: SimAgent._on_final,
    AckMsg: SimAgent._on_ack,
    ClaimMsg: SimAgent._on_claim,
    ClaimAnswerMsg: SimAgent._on_claim_answer,
    KeyRecordsMsg: SimAgent._on_key_records,
}
