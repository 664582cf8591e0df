"""The Node's negotiation part: messages to the cores, the cores' actions to records.

Theory of operation
-------------------
Each peer message goes to the core that has it (a vote to the workflow's Coordinator,
a Paxos Prepare or Accept to the Acceptor, a Promise / Accepted / Reject to the
Coordinator of that workflow or else to Termination, a decision to whoever holds the
transaction; a client's submission starts its Coordinator in submitting.py). The
cores' actions are run in order (`run`): a Send is sent, a Persist* becomes a record
of the Node's view (so a driver writes it before the messages that follow it leave),
a Learned decision is applied. A restart rebuilds these cores from the tables and lets
each finish what its log says (negotiation_restore.py).

Rules the Node enforces here rather than leaving to a shell:
- a PREPARE is voted on by the local policy with its submitter: the principal of the
  signed spec it carries, qualified by its coordinator (`principal_of`: the shells'
  `alice@COORDINATOR`, or `domain:COORDINATOR` when the coordinator signed or sent
  none), so `accept_from`'s principals and the rules see who asked; a step asked
  here against its own spec's constraints gets a NO saying why (votes.py);
- a COMMIT is believed only with its certificate (`check_value` against the
  transaction known here: a YES of every participant, each one's signed evidence
  checked at the boundary, authority.py); a COMMIT of a transaction unknown here is
  refused;
- our YES votes are signed once per turn, as the Ready is handed out (Node.ready,
  votes.py);
- write combining: a learned COMMIT of our own prepared hold is written in the same
  group as the hold's commit; every other decision is written on its own first. The
  hold's row is not written at its commit: a PREPARED hold with a COMMIT learned is a
  committed one (negotiation_restore.py decides it so again), so a hold is written
  when it is reserved and prepared (its YES waits for that), and again only when its
  steps change or it goes;
- a workflow's own COMMIT learned without its coordinator (a recovery ballot, an
  answer not the coordinator's, a relayed decision) starts nothing, with takeover
  composed, until the coordinator it follows confirms the placements
  (learned_elsewhere.py);
- a decision applied to a hold releases it (ABORT) or commits it and starts the
  workflow's steps (COMMIT), then acknowledges the COMMIT to its coordinator: for a
  workflow's own round, first learned here, the DecisionAck waits for a start or
  result of ours that stands for it (commit_acks.py);
- a peer's acknowledgements of one envelope come as one `Acks` input (`take_acks`):
  each applied in its order as its own message would be, one refused leaving the
  others applied;
- the coordinator's decision records are collected once `collectable()` says so
  (a participant's start or result counts as its acknowledgement: commit_acks.py);
- a NO of ours in a classic 2PC round is kept as the round's ABORT, answered to a
  peer in doubt (no_votes.py: when, and why safe);
- a DecisionQuery about a classic round of our own range of a workflow retention
  forgot is answered ABORT, presumed, nothing written (retention.py: why safe); about
  any other round of a forgotten workflow of ours, UNKNOWN;
- the workflow lifecycle (core/workflow/lifecycle) moves on the coordinator's
  Finished, with an explicit cancelled flag (also when a cancel waited on record
  while a COMMIT was proposed and ABORT was chosen: cancel.py; a Coordinator's
  actions become records in coordinator_records.py); after each run of a
  Coordinator's actions a cancel waiting for its phase is carried out. A Paxos
  Commit round's RUNNING is told with the turn that learns its COMMIT chosen, before
  the decision record is durable (ready.py, `chosen`: the acceptors hold it); a
  classic round's, after that record.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.identity.submission import principal_of
from fedorch.core.negotiation.acceptor import PersistAcceptor
from fedorch.core.negotiation.coordinator import (
    Coordinator,
)
from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    Accept,
    Accepted,
    AnswerStatus,
    Decision,
    DecisionAck,
    DecisionAnswer,
    DecisionQuery,
    Key,
    Learned,
    PaxosPrepare,
    PersistBallot,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
    VoteIn,
    check_value,
)
from fedorch.core.negotiation.participant import DecisionEffect, restarted
from fedorch.core.negotiation.termination import DoubtState, answer_query
from fedorch.core.node.coordinator_doubt import answered, asking, own_answer
from fedorch.core.node.coordinator_records import coordinator_action
from fedorch.core.node.ended_cores import answering, ended_ack, ended_query, ended_vote
from fedorch.core.node.learned_elsewhere import ask_first
from fedorch.core.node.negotiation_restore import restore_negotiation
from fedorch.core.node.no_votes import answered_from_no, record_no
from fedorch.core.node.records import (
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    CompensatedMsg,
    CompensateMsg,
    FinalMsg,
    PlacedMsg,
    PrepareMsg,
    ResultMsg,
    VoteMsg,
    copy_hold,
)
from fedorch.core.node.votes import constraints_refusal
from fedorch.core.workflow.epoch_certificate import epoch_of_round


class Negotiation:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts,
        # never the reverse, so the import graph has no cycle).
        self.n = node
        # The key whose DecisionAnswer the round's coordinator gave, while it is run.
        self._answered_by_coordinator: Key | None = None
        # The workflow whose submission is being taken, while its core's first actions
        # run: its first PREPAREs may leave with its row's write (prepares_ahead.py).
        self.submitting: str | None = None
        # Per message type, its handler (read by Node._step too: one lookup per message).
        self.handlers = {
            PrepareMsg: self._on_prepare,
            VoteMsg: self._on_vote,
            PaxosPrepare: self._on_acceptor_input,
            Accept: self._on_acceptor_input,
            Promise: self._on_proposer_input,
            Accepted: self._on_proposer_input,
            Reject: self._on_proposer_input,
            Decision: self._on_decision,
            DecisionQuery: self._on_query,
            DecisionAnswer: self._on_answer,
            DecisionAck: self._on_ack_decision,
            ResultMsg: node.running.on_result,
            FinalMsg: node.end_notices.on_final,
            AckMsg: node.running.on_ack,
            CompensateMsg: node.compensating.on_compensate,
            CompensatedMsg: node.compensating.on_compensated,
            ClaimMsg: self._on_claim, ClaimAnswerMsg: self._on_claim,
            PlacedMsg: node.placed_here.on_placed,
            **node.restart_check.handlers(),  # PlacementQuery, PlacementAnswer
        }

    # ---- inputs ----------------------------------------------------------------------

    def deliver(self, now: float, src: str, msg: object) -> None:
        handler = self.handlers.get(type(msg))
        if handler is None:
            raise RemoteProtocolError(f"unknown message {type(msg).__name__}")
        handler(now, src, msg)

    # ---- restore -----------------------------------------------------------------------

    def restore(self, now: float) -> None:
        """The cores and their actions as the tables say (negotiation_restore.py), each
        hold's lease counted again from `now` by participant.restarted."""
        restore_negotiation(self, now, restarted)

    # ---- message handlers ----------------------------------------------------------

    def _on_prepare(self, now: float, src: str, msg: PrepareMsg) -> None:
        n = self.n
        tx = msg.tx
        key = tx.key  # read once here (messages.py keeps it once worked out)
        if src != tx.coordinator:
            raise RemoteProtocolError("a PREPARE comes from its coordinator")
        if msg.info.lost and (tx.workflow_id in n.state.final or (
                n.retain is not None and n.retain.ends.of(tx.workflow_id) is not None)):
            # A step placed again in a workflow that ended here (a coordinator back from
            # a crash, not yet told of the later epoch's end): nothing to run. Ended and
            # forgotten since, its end record says as much (retention.py): voted on as
            # new, the step would run again for a workflow over everywhere.
            n.stats["re-placement PREPARE refused: the workflow ended here"] += 1
            n.send(src, VoteMsg(key, n.name, False, "the workflow ended here"))
            return
        if n.placed_here.refused_older(src, msg):
            return  # a step placed again past a grant of a later epoch: NO (placed_here.py)
        admission = n.admit(n, now, tx, msg.info)
        # The policy weighs the submitter (accept_from's principals, rules), as `admit`
        # checked its signed spec (the node engine: boundary.py), and the data flow.
        principal = principal_of(msg.info.submission, tx.coordinator)
        out = n.participant.reserve(
            now, workflow_id=tx.workflow_id, round=tx.round, coordinator=tx.coordinator,
            data_labels=dict(msg.info.spec.data), steps=list(msg.steps), tx=tx,
            context=n.vote_context(now, msg.info, msg.steps, principal),
            principal=principal,  # and the steps' own constraints here (votes.py):
            refusal=constraints_refusal(n.name, n.labels, msg.info.spec, msg.steps))
        yes = out.yes
        if yes and out.hold is not None:  # RESERVED: the reservation, then the prepare record
            n.point("reservation")
            if admission is not None and admission.new:  # in the reservation's write
                n.submissions.record(admission)
                n.state.admitted[admission.key] = (tx.workflow_id, admission.issued_at_ms)
            n.state.info[key] = msg.info
            n.state.holds[key] = copy_hold(out.hold)
            hold = n.participant.confirm_yes(now, key)
            n.point("prepare record")
            if hold is None:
                n.state.holds.pop(key, None)
                yes = False
            else:
                n.state.holds[key] = copy_hold(hold)
                n.note("yes_voted", tx, hold.lease_expires, now)
                if tx.coordinator != n.name:
                    n.termination.track(now, tx, hold.lease_expires)
        reason = "" if yes else out.reason or "lease expired before the vote"
        if reason == "round already decided":
            n.stats["late PREPARE refused"] += 1
        n.send(src, VoteMsg(key, n.name, yes, reason))
        record_no(self, now, msg, yes)  # a classic NO: the round's ABORT (no_votes.py)

    def _on_vote(self, now: float, src: str, msg: VoteMsg) -> None:
        if src == msg.domain and self.n.replacement.owns(msg.key):
            # A step placed again (replacement.py), by the original or a successor,
            # which has no coordinator core of the workflow.
            self.n.replacement.on_vote(now, src, msg)
            return
        if src != msg.domain:
            raise RemoteProtocolError("a vote for no workflow of ours, or relayed")
        record = answering(self.n, msg.key[0])
        if record is not None:  # an ended core's answer, from its record (ended_cores.py)
            ended_vote(self.n, record, src, msg.key, msg.yes)
            return
        core = self.n.coordinators.get(msg.key[0])
        if core is None:
            raise RemoteProtocolError("a vote for no workflow of ours, or relayed")
        # A YES's evidence, as received (the boundary checked it: authority.py), goes
        # into the certificate.
        core.receive_vote(now, VoteIn(msg.key[1], src, msg.yes, msg.reason, msg.evidence))
        self.run(now, core.next_actions(), core)

    def _on_acceptor_input(self, now: float, src: str, msg: PaxosPrepare | Accept) -> None:
        if self.n.replacement.refuses_paxos(msg.tx.key):
            raise RemoteProtocolError("a re-placement round is decided by its coordinator")
        self.n.acceptor.receive(src, msg, self.n.wall_ms(now), now)  # refused past its life
        self.run(now, self.n.acceptor.next_actions())

    def _on_proposer_input(self, now: float, src: str, msg: Promise | Accepted | Reject) -> None:
        # As on the wire (paxos_wire.decode), a reply is signed by the acceptor it names;
        # our own acceptor hands us a proposer's vouched acceptance too (never the wire).
        n = self.n
        if src != n.name and getattr(msg, "acceptor", src) != src:
            raise RemoteProtocolError("a reply signed by another acceptor")
        if answering(n, msg.key[0]) is not None:
            return  # an ended core ignores it (ended_cores.py)
        core = n.coordinators.get(msg.key[0])
        if core is not None:
            core.receive_paxos(now, msg)
            self.run(now, core.next_actions(), core)
        else:
            n.termination.receive(now, msg)
            self.run(now, n.termination.next_actions())

    def _on_decision(self, now: float, src: str, msg: Decision) -> None:
        if self.n.replacement.handover.commit_released(src, msg):
            return  # a re-placement round released here: answered void, never learned
        tx = self.n.tx_of(msg.key)
        if tx is not None:
            check_value(tx, msg.value)  # a COMMIT is believed only with its certificate
        elif msg.value.commit:
            if self.n.retain is not None and src == coordinator_of(msg.key[0]):
                # Forgotten here (our acknowledgement was lost): acknowledged again so
                # that its coordinator can collect it; nothing kept, nothing asked.
                self.n.stats["COMMIT of a forgotten workflow acknowledged"] += 1
                self.n.send(src, DecisionAck(msg.key, self.n.name))
                return
            raise RemoteProtocolError(f"a COMMIT of {msg.key}, a transaction unknown here")
        core = None if answering(self.n, msg.key[0]) is not None \
            else self.n.coordinators.get(msg.key[0])  # an ended core ignores it
        if core is not None and not self.n.replacement.owns(msg.key):
            core.receive_paxos(now, msg)
            self.run(now, core.next_actions(), core)
        self.n.placed_here.take_moved(now, src, msg)  # before the progress is built
        if tx is not None and src != tx.coordinator:  # relayed: placements asked first
            ask_first(self.n, msg.key, msg.value, tx)
        self.learn(now, msg.key, msg.value, tx)

    def _on_query(self, now: float, src: str, msg: DecisionQuery) -> None:
        n = self.n
        # A successor's round (its epoch's range) is not ours: our core's log has no
        # word on it, and would presume ABORT for a round it never ran.
        ours = epoch_of_round(msg.key[1]) == 0
        if src == n.name and ours and asking(n, msg.key) is not None:
            answer = own_answer(n, now, msg.key)  # as our acceptor (coordinator_doubt.py)
        elif n.replacement.owns(msg.key):
            answer = n.replacement.answer(msg.key, src)
        elif ours and (answer := ended_query(n, msg.key)) is not None:
            pass  # from an ended core's record (ended_cores.py): never a COMMIT
        elif ours and (core := n.coordinators.get(msg.key[0])) is not None:
            answer = core.answer_query(now, msg.key[1])
            self.run(now, core.next_actions(), core)
            if answer.value is not None and answer.value.commit:
                moved = n.placed_here.moved_away(msg.key[0], src) \
                    if n.replacement.may_send_commit(msg.key[0], src) else None
                if moved is None:
                    answer = DecisionAnswer(msg.key, n.name, AnswerStatus.UNKNOWN)
                elif moved:  # answered as the notice is, naming the steps moved away
                    n.send(src, Decision(msg.key, answer.value, n.name, moved=moved))
                    return
        elif n.replacement.handover.answered(msg.key, src):
            return  # its end, or its COMMIT handed out (replacement_handover.py)
        elif n.retain is not None and n.retain.presumes_abort(msg.key):
            # A classic round of our own range, and the workflow forgotten: presumed
            # ABORT, nothing written (retention.py says why no COMMIT can be meant).
            n.stats["query about a forgotten round: ABORT presumed"] += 1
            answer = DecisionAnswer(msg.key, n.name, AnswerStatus.DECIDED, ABORT)
        elif n.retain is not None and n.retain.forgotten_here(msg.key[0]):
            # Ours, and forgotten, under Paxos Commit (or a successor's round): nothing
            # is presumed and nothing written; the asker goes to a recovery ballot.
            n.stats["query about a forgotten workflow"] += 1
            answer = DecisionAnswer(msg.key, n.name, AnswerStatus.UNKNOWN)
        else:
            decided = n.state.learned.get(msg.key)
            answer = answer_query(n.name, msg.key, decided, n.participant.status(msg.key),
                                  n.acceptor.past_life(msg.key, n.wall_ms(now), now,
                                                       msg.coordinator, msg.created_ms))
            answered_from_no(n, msg.key, decided)  # from our NO (no_votes.py)?
        n.send(src, answer)

    def _on_answer(self, now: float, src: str, msg: DecisionAnswer) -> None:
        n = self.n
        core = asking(n, msg.key)
        if core is not None:  # our coordinator's question (coordinator_doubt.py)
            self.run(now, answered(n, now, src, msg, core), core)
            return
        before = n.termination.state(msg.key)
        tx = n.tx_of(msg.key)
        # The coordinator's own answer is as fresh as its notice (`_on_query`: one
        # naming steps moved away comes as a notice): what it teaches is not held.
        self._answered_by_coordinator = msg.key if tx is not None \
            and src == tx.coordinator else None
        n.termination.receive(now, msg)
        if before is not None and before is not DoubtState.PAST_LIFE \
                and n.termination.state(msg.key) is DoubtState.PAST_LIFE:
            # Refused by the acceptors for good: in doubt, its reservation held.
            n.stats["in doubt past the round's life"] += 1
            n.note("in_doubt_past_life", msg.key)
        try:
            self.run(now, n.termination.next_actions())
        finally:
            self._answered_by_coordinator = None

    def _on_claim(self, now: float, src: str, msg: ClaimMsg | ClaimAnswerMsg) -> None:
        takeover = self.n.takeover
        if takeover is None:
            raise RemoteProtocolError("coordinator takeover is off here")
        if type(msg) is ClaimMsg:
            takeover.claims.on_claim(now, src, msg)
        else:
            takeover.claims.on_claim_answer(now, src, msg)

    def take_acks(self, now: float, src: str, acks: tuple[object, ...]) -> None:
        """An `Acks` input: each acknowledgement applied in its order, as its own
        message would be; one refused (RemoteProtocolError) leaves the others applied,
        and the refusals are raised together at the end."""
        refused: list[str] = []
        on_ack = self.n.running.on_ack
        for ack in acks:
            try:
                if type(ack) is AckMsg:
                    on_ack(now, src, ack)
                elif type(ack) is DecisionAck:
                    self._on_ack_decision(now, src, ack)
                else:
                    raise RemoteProtocolError(f"{type(ack).__name__} is no acknowledgement")
            except RemoteProtocolError as e:
                refused.append(str(e))
        if refused:
            raise RemoteProtocolError(f"{len(refused)} of {len(acks)} acknowledgements"
                                      f" refused: {'; '.join(refused)}")

    def _on_ack_decision(self, now: float, src: str, msg: DecisionAck) -> None:
        if self.n.replacement.owns(msg.key):
            self.n.replacement.on_decision_ack(now, src, msg.key)
            return
        record = answering(self.n, msg.key[0])
        if record is not None and ended_ack(self.n, record, src, msg.key):
            return  # answered from an ended core's record (ended_cores.py)
        core = self.n.coordinators.get(msg.key[0])
        if core is None:
            return
        core.receive_ack(now, src, msg.key[1])
        self.collect(core)

    # ---- running the cores' actions, in order ----------------------------------------

    def run(self, now: float, actions: list, core: Coordinator | None = None) -> None:
        n = self.n
        for a in actions:
            kind = type(a)
            if kind is Send:
                n.send(a.to, a.msg)
                if type(a.msg) is DecisionQuery:
                    n.stats["in-doubt query"] += 1  # fedorch_in_doubt_queries_total
                    n.replacement.handover.asked(a.msg.key, a.to)  # a re-placement round?
            elif kind is PersistAcceptor:
                n.point("PersistAcceptor")
                n.state.acceptor[a.key] = a.record
                n.note("acceptor_state", a.record)
                n.mark(a.key[0])
            elif kind is PersistBallot:
                n.point("PersistBallot")
                n.state.ballots[a.key] = a.ballot
            elif kind is Learned:
                n.stats[f"termination learned {'COMMIT' if a.value.commit else 'ABORT'}"] += 1
                if not a.by_coordinator and a.key != self._answered_by_coordinator:
                    ask_first(n, a.key, a.value, a.tx)  # learned_elsewhere.py
                self.learn(now, a.key, a.value, a.tx)
            elif core is not None:
                coordinator_action(self, now, core, a)  # coordinator_records.py
            else:  # pragma: no cover - every core action is listed above
                raise LocalProtocolError(f"no route for {a!r}")
        if core is not None:  # a cancel waiting for this core's phase (cancel.py)
            n.cancels.after_run(now, core.workflow_id)

    def collect(self, core: Coordinator) -> None:
        n = self.n
        for key in core.collectable():
            if key in n.state.records:
                n.point("collect record")
                del n.state.records[key]
                core.collected(key)
                n.mark(key[0])
                n.stats["decision record collected"] += 1

    # ---- decisions -------------------------------------------------------------------

    def learn(self, now: float, key: Key, value: Value, tx: TxInfo | None) -> None:
        n = self.n
        known = n.state.learned.get(key)
        if known is not None and known.commit != value.commit:
            n.note("learned", key, value, now)
            raise RemoteProtocolError(f"{key}: a decision contradicting the one on record")
        # Write combining: a COMMIT of our prepared hold is learned in the write that
        # commits the hold (one write); anything else is learned on its own first.
        with_hold = known is None and value.commit and tx is not None \
            and n.name in tx.participants and n.participant.status(key) == "prepared"
        if known is None and not with_hold:
            n.point("learned")
            self.write_learned(now, key, value)
        n.termination.forget(key)
        self.apply_decision(now, key, value, tx, learning=with_hold)

    def write_learned(self, now: float, key: Key, value: Value) -> None:
        self.n.state.learned[key] = value
        self.n.note("learned", key, value, now)
        self.n.mark(key[0])

    def apply_decision(self, now: float, key: Key, value: Value, tx: TxInfo | None, *,
               learning: bool = False) -> None:
        """`learning`: the decision is not written yet; it goes with the hold's commit."""
        n = self.n
        d = n.state
        if tx is not None and n.name in tx.acceptors:
            n.acceptor.learn(tx, value)
            self.run(now, n.acceptor.next_actions())
        if tx is not None and n.name not in tx.participants:
            return  # an acceptor only
        if not value.commit:
            n.early_results.aborted(key[0])  # held for this round: its sender resends
        status = n.participant.status(key)
        if status is None:
            if not value.commit:
                n.participant.decide(now, key[0], key[1], False)  # closed: no late reserve
            return  # an acceptor only, a NO voter, or the PREPARE never came
        effect = n.participant.decide(now, key[0], key[1], value.commit)
        deferred = False  # our DecisionAck waits for a result to stand for it (commit_acks.py)
        assert not learning or effect is DecisionEffect.COMMITTED  # a prepared hold commits
        if effect is DecisionEffect.RELEASED:
            n.point("hold released")
            d.holds.pop(key, None)
        elif effect is DecisionEffect.COMMITTED:
            hold = n.participant.hold(key)
            assert hold is not None
            n.point("hold committed")
            if learning:
                self.write_learned(now, key, value)
            # The hold's row stays PREPARED: the COMMIT on record beside it (learned,
            # in this write or before it) says it committed, and a restore decides it
            # again from the two (negotiation_restore.py), so its state is not written.
            n.early_results.committed(key[0])  # stepped again at this step's end
            if n.placed_here.committed_here(now, key, hold.steps):
                pass  # a step placed again here (replacement.py)
            else:
                d.committed[key[0]] = key[1]
                d.electorates[key[0]] = hold.tx.acceptors if hold.tx is not None else ()
                if key[0] in d.final:
                    n.running.end_here(key[0], d.final[key[0]])
                else:
                    # Owed before the steps start: a start told may stand for it.
                    deferred = tx is not None and tx.coordinator != n.name \
                        and n.commit_acks.defer(now, key, tx)
                    n.running.resume(now, key[0])
        if value.commit and tx is not None and tx.coordinator != n.name and not deferred:
            n.send(tx.coordinator, DecisionAck(key, n.name))
        elif value.commit and n.replacement.owns(key):
            n.replacement.on_decision_ack(now, n.name, key)
        elif value.commit and key[0] in n.coordinators:
            core = n.coordinators[key[0]]
            core.receive_ack(now, n.name, key[1])
            self.collect(core)  # our own acknowledgement may be the last one
