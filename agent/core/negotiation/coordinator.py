"""Coordinator core: one workflow's admission, a commit protocol per round, sans I/O.

Theory of operation
-------------------
The agent that takes a submission coordinates it. Admission runs in numbered
rounds; each round is its own transaction, identified by (workflow, round) and
never reused (a step placed again after its domain was lost is negotiated by a
core of its own whose rounds start after the committed one: `first_round`). A round places every step (through the injected Placer), sends
PREPARE to each participant domain with the steps asked of it, and collects
signed votes until all are in or the prepare timeout passes.

Classic mode (no ConsensusOptions): all YES makes the round's decision COMMIT;
the core emits PersistDecision first and only then SendDecision to each
participant (the shell runs actions in order). The COMMIT carries the votes: a
commit certificate. Any NO, or a missing vote at the timeout, makes it ABORT
(persisted, then sent to the participants that may hold a reservation); the
refusers are excluded for the steps they were asked and the workflow is placed
again (coordinator_placing), up to `max_rounds`; then the workflow is ABORTED,
its reason listing every refusal. This blocks while the coordinator is down
after all YES votes.
Given `resend_s`, a PREPARE goes again to the silent and a COMMIT to the
unacknowledged (coordinator_resends). Given `me`, `tx()` names a classic round.

Consensus mode (Paxos Commit, non-blocking): each PREPARE carries the round's
acceptors: the coordinator and participants up to `max_acceptors` (in an order the
workflow id fixes), and extra live members up to `min_acceptors`; a participant
beyond the bound is a learner only (see messages). On all YES the coordinator
compare-and-sets its write-once proposal cell to COMMIT (PersistProposal), then
sends Accept(ballot 0, COMMIT with the YES votes) to its own acceptor and, once that
accepted, to every other (phase DECIDING), and announces only once a majority
accepted: the value is chosen (PersistDecision, Finished; the participants learn it
from their Accept, which says that the coordinator accepted, or from the acceptors'
Accepted, and acknowledge it; one still silent after `commit_notice_s` is sent the
COMMIT: coordinator_resends). A Reject (a participant's recovery got there first)
turns it into an ordinary proposer with a higher ballot, still preferring its
COMMIT; if ABORT was chosen instead, the round is aborted and the workflow placed
again. On a NO, a timeout or a cancel the cell is set to ABORT first; since only the
coordinator ever proposes COMMIT, and only with that cell holding COMMIT, an ABORT
in the cell can never be contradicted, so it is announced at once without a ballot.
The way from all YES to a chosen value (the cell, the ballot, settling what it
chose, announcing a COMMIT) is coordinator_deciding's, in either mode.
The cells, the decisions on record, presumed abort's answers and which records
`collectable()` lets go are the log's (coordinator_log). A restarted coordinator is
rebuilt with `restore()` from its round record and finishes what its log says (see
coordinator_recovery).

Transitions (one table, `_TRANSITIONS`, built in coordinator_table; any pair missing from it is a protocol
error: RemoteProtocolError for a peer's input, LocalProtocolError for ours):

    (phase,     input)  -> phase       effect
    (IDLE,      start)  -> PREPARING   place, PREPARE to every participant
    (PREPARING, vote)   -> PREPARING   count; NO -> ABORT, next round or ABORTED
                        -> COMMITTED   classic: all YES
                        -> DECIDING    consensus: all YES, Accept(0, COMMIT)
    (PREPARING, timer)  -> PREPARING   deadline: silent domains refused; resend
                                       (consensus mode, or classic with resend_s)
    (PREPARING, cancel) -> ABORTED     ABORT the round
    (PREPARING, lost)   -> PREPARING   a silent participant DEAD (or LEFT): refused
                                       now, not at the deadline; ABORT, next round
    (DECIDING,  paxos)  -> COMMITTED   COMMIT chosen: persist, announce
                        -> PREPARING   ABORT chosen: next round (or ABORTED)
    (DECIDING,  timer)  -> DECIDING    resend / back off / next ballot; questions
    (DECIDING,  answer) -> as paxos    decided; past the round's life: no ballot any more
                                       (questions: coordinator_doubt)
    (DECIDING,  ack)    -> DECIDING    a participant learned COMMIT first: count it
                                       (a step result it reports is one, too)
    (COMMITTED, ack)    -> COMMITTED   count; every participant: collectable
    (COMMITTED, timer)  -> COMMITTED   send COMMIT to the unacknowledged (consensus
                                       mode: first after commit_notice_s, since each
                                       learns it from the acceptors; classic with
                                       resend_s: after decision_resend_s), then resend
    (any,       query)  -> same        answer from the log (presumed abort)
    (later,     vote)   -> same        late YES of an aborted round: its ABORT again
    (other,     lost)   -> same        a YES given stands: COMMIT only from every YES
                                       (a wrong DEAD costs a round, never atomicity)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet

from fedorch.core.negotiation import coordinator_deciding as deciding
from fedorch.core.negotiation.abort_reasons import refusals_text
from fedorch.core.negotiation.coordinator_doubt import QUERY_INTERVAL_S, CoordinatorDoubt
from fedorch.core.negotiation.coordinator_log import CoordinatorLog
from fedorch.core.negotiation.coordinator_placing import Placing
from fedorch.core.negotiation.coordinator_recovery import restore as restore_from_log
from fedorch.core.negotiation.coordinator_resends import Resends
from fedorch.core.negotiation.coordinator_table import transitions
from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Decision,
    DecisionAnswer,
    Key,
    PersistBallot,
    PersistProposal,
    Send,
    TxInfo,
    Value,
    VoteIn,
)
from fedorch.core.negotiation.rounds import (
    Action,
    ConsensusOptions,
    Finished,
    PersistDecision,
    Phase,
    PlacementResult,
    Placer,
    Refusal,
    RoundRecord,
    RoundState,
    SendDecision,
    SendPrepare,
)
from fedorch.core.negotiation.termination import Proposer

__all__ = [
    "Action", "ConsensusOptions", "Coordinator", "Finished", "PersistBallot", "PersistDecision",
    "PersistProposal", "Phase", "PlacementResult", "Placer", "Refusal", "RoundRecord",
    "Send", "SendDecision", "SendPrepare", "VoteIn",
]


class Coordinator:
    def __init__(
        self,
        workflow_id: str,
        *,
        placer: Placer | Callable[[Mapping[str, AbstractSet[str]]], PlacementResult],
        max_rounds: int,
        prepare_timeout_s: float,
        consensus: ConsensusOptions | None = None,
        first_round: int = 1,
        me: str = "",
        resend_s: float | None = None,
        decision_resend_s: float | None = None,
        query_interval_s: float | None = None,
    ) -> None:
        """`me`: this coordinator's domain in classic mode (consensus mode takes it from
        ConsensusOptions); with it, `tx()` names a classic round too (no acceptors) and
        the answers to queries name their sender. Without it (the shells), neither.
        `resend_s`, `decision_resend_s`: classic mode's resends (coordinator_resends);
        None: never (the shells' calls retry). `query_interval_s`: coordinator_doubt's."""
        if max_rounds < 1 or first_round < 1:
            raise LocalProtocolError("max_rounds must be at least 1")
        self.workflow_id = workflow_id
        self.phase = Phase.IDLE
        self.refusals: list[Refusal] = []
        # Each round placed away from the domains that refused its steps before.
        self._placing = Placing(workflow_id, placer, prepare_timeout_s, consensus)
        # Round numbers are never reused within a workflow: a step placed again after its
        # domain was lost is negotiated in rounds after the committed one.
        self._first_round = first_round
        self._max_rounds = first_round - 1 + max_rounds
        self._consensus = consensus
        self._me = consensus.me if consensus is not None else me
        self._resends = Resends(consensus, resend_s, decision_resend_s)
        self._round: RoundState | None = None
        self.log = CoordinatorLog(workflow_id, self._me, cells=consensus is not None)
        self._proposer: Proposer | None = None
        self._doubt: CoordinatorDoubt | None = None  # from its first recovery ballot
        self._query_interval_s = query_interval_s or QUERY_INTERVAL_S
        self._restored = False
        self._outbox: list[Action] = []

    # ---- outputs -------------------------------------------------------------

    def next_actions(self) -> list[Action]:
        actions, self._outbox = self._outbox, []
        return actions

    def get_timer(self) -> float | None:
        rnd = self._round
        if rnd is None:
            return None
        if self.phase is Phase.PREPARING:
            return self._resends.prepare_timer(rnd)
        if self.phase is Phase.DECIDING:  # the ballot's, or the questions' (coordinator_doubt)
            return min((t for t in (self._proposer and self._proposer.get_timer(),
                                    self._doubt and self._doubt.next_at) if t is not None),
                       default=None)
        if self.phase is Phase.COMMITTED:
            return self._resends.commit_timer(rnd, self._unacked)
        return None

    @property
    def round(self) -> int:
        return self._round.number if self._round else 0

    @property
    def placement(self) -> dict[str, str]:
        return dict(self._round.placement) if self._round else {}

    def decision(self, round: int) -> Value | None:
        """The decision on record for `round` (what SendDecision announces)."""
        return self.log.decided.get(round)

    def tx(self) -> TxInfo | None:
        """The current round as a transaction: consensus mode, or classic mode given `me`
        (then with no acceptors: its decision is this coordinator's alone)."""
        rnd = self._round
        if rnd is None or not self._me:
            return None
        # Round.participants' cache read directly here and in _unacked (asked per turn).
        return TxInfo(self.workflow_id, rnd.number, self._me,
                      tuple(rnd._participants or rnd.participants()), rnd.acceptors,
                      created_ms=rnd.created_ms)

    def created_ms(self) -> int:
        """The current round's creation time as stated (TxInfo.created_ms; 0: none)."""
        return self._round.created_ms if self._round is not None else 0

    def in_doubt_past_life(self) -> bool:
        """No ballot any more, only questions: past the round's life (coordinator_doubt)."""
        return self.asking(self.round) and self._doubt is not None and self._doubt.past_life

    def asking(self, round: int) -> bool:
        """Are `round`'s parties asked about it (is a DecisionAnswer of it ours)?"""
        return self.phase is Phase.DECIDING and self._doubt is not None and round == self.round

    def collectable(self) -> list[Key]:
        """Decision records the shell may drop: an ABORT (unless COMMIT was proposed in
        its round: the record spares a recovery ballot after a restart); a COMMIT once
        every participant acknowledged it."""
        keys = self.log.abort_records()
        rnd = self._round
        if self.phase is Phase.COMMITTED and rnd is not None and rnd.number in self.log.decided \
                and not self._unacked():
            keys.append((self.workflow_id, rnd.number))
        return keys

    def awaiting_acks(self) -> bool:
        """COMMITTED, with a participant that has not acknowledged the COMMIT yet."""
        return self.phase is Phase.COMMITTED and bool(self._unacked())

    def collected(self, key: Key) -> None:
        """The shell dropped this COMMIT record (the fact that it committed stays)."""
        rnd = self._round
        if rnd is not None and key == (self.workflow_id, rnd.number) \
                and self.phase is Phase.COMMITTED:
            self.log.collect(rnd.number)

    # ---- inputs: one table of transitions ------------------------------------

    def start(self, now: float) -> None:
        self._dispatch("start", now, None)

    def receive_vote(self, now: float, vote: VoteIn) -> None:
        self._dispatch("vote", now, vote)

    def handle_timer(self, now: float) -> None:
        self._dispatch("timer", now, None)

    def cancel(self, now: float, reason: str) -> None:
        self._dispatch("cancel", now, reason)

    def domain_lost(self, now: float, domain: str, state: str = "DEAD") -> None:
        """Membership says `domain` is `state` (DEAD or LEFT; never on SUSPECT)."""
        self._dispatch("lost", now, (domain, state))

    def receive_paxos(self, now: float, msg: object) -> None:
        """Promise / Accepted / Reject / Decision for one of this workflow's rounds."""
        self._dispatch("paxos", now, msg)

    def receive_answer(self, now: float, msg: DecisionAnswer) -> None:  # see `asking`
        self._dispatch("answer", now, msg)

    def receive_ack(self, now: float, domain: str, round: int) -> None:
        self._dispatch("ack", now, (domain, round))

    def receive_result(self, now: float, domain: str) -> None:
        """`domain` reported one of its steps. Only a committed round runs steps, so it
        holds the COMMIT: its acknowledgement, while one is of use (else ignored)."""
        if self.phase in (Phase.DECIDING, Phase.COMMITTED) and self._round is not None:
            self._dispatch("ack", now, (domain, self._round.number))

    def answer_query(self, now: float, round: int) -> DecisionAnswer:
        """A decision query: answered from the log; no decision on record means abort."""
        return self._dispatch("query", now, round)

    def _dispatch(self, event: str, now: float, arg: object):
        try:  # a subscript, not .get: no call (every input of the core passes here)
            handler = _TRANSITIONS[(self.phase, event)]
        except KeyError:
            handler = None
        if handler is None:
            if event in ("vote", "paxos", "ack", "query", "answer"):
                raise RemoteProtocolError(f"{event} not expected while {self.phase.value}")
            raise LocalProtocolError(f"{event} not allowed while {self.phase.value}")
        return handler(self, now, arg)

    # ---- handlers ------------------------------------------------------------

    def _on_start(self, now: float, _: object) -> None:
        self._begin_round(now, self._first_round)

    def _on_vote(self, now: float, vote: VoteIn) -> None:
        current = self._round
        assert current is not None
        if vote.round != current.number:
            self._late_vote(vote)
            return
        asked = current.participants()
        if vote.domain not in asked:
            raise RemoteProtocolError(
                f"{vote.domain} voted in round {vote.round} but was not asked"
            )
        if vote.domain in current.votes:
            return  # duplicate
        current.votes[vote.domain] = vote
        if not vote.yes:
            self._fail_round(now, current, timed_out=False)
        elif len(current.votes) == len(asked):
            deciding.commit(self, now, current)

    def _on_late_vote(self, now: float, vote: VoteIn) -> None:
        self._late_vote(vote)

    def _on_timer(self, now: float, _: object) -> None:
        current = self._round
        assert current is not None
        if now >= current.deadline:
            self._fail_round(now, current, timed_out=True)
        else:  # to the silent, if resending is on (coordinator_resends)
            self._outbox.extend(self._resends.prepares_due(now, current))

    def _on_cancel_preparing(self, now: float, reason: object) -> None:
        current = self._round
        assert current is not None
        self._abort_round(current, f"cancelled: {reason}")
        self.phase = Phase.ABORTED
        self._outbox.append(Finished(False, current.number, {}, f"cancelled: {reason}",
                                     cancelled=True))

    def _on_lost_preparing(self, now: float, arg: object) -> None:
        domain, state = arg  # type: ignore[misc]
        current = self._round
        assert current is not None
        steps = current.participants().get(domain)
        if steps is None or domain in current.votes:
            return  # not asked in this round, or its vote stands
        # Only the lost one refused (the others still silent are not); the proposal cell
        # is not COMMIT while PREPARING, so the ABORT needs no one's agreement.
        self.refusals.append(Refusal(current.number, domain, steps, f"{domain} is {state}"))
        self._placing.exclude(domain, steps)
        self._abort_round(current, f"participant {domain} is {state}")
        self._next_round(now, current)

    def _on_paxos_deciding(self, now: float, msg: object) -> None:
        if getattr(msg, "key", None) != (self.workflow_id, self.round):
            return
        if self._proposer is not None:
            self._proposer.receive(now, msg)
            deciding.after_proposer(self, now)
        elif isinstance(msg, Decision):  # past the round's life: no ballot, still a learner
            deciding.settle(self, now, msg.value)

    def _on_timer_deciding(self, now: float, _: object) -> None:
        if self._doubt is not None:
            self._outbox.extend(self._doubt.due(now))
        if self._proposer is not None:
            self._proposer.handle_timer(now)
            deciding.after_proposer(self, now)

    def _on_answer_deciding(self, now: float, msg: object) -> None:
        if self._doubt is not None and isinstance(msg, DecisionAnswer):
            value = self._doubt.answer(now, msg)
            if value is not None:
                deciding.settle(self, now, value)
            elif self._doubt.past_life:
                self._proposer = None  # refused by a majority: no ballot, no resend

    def _on_ack(self, now: float, arg: object) -> None:
        domain, round_ = arg  # type: ignore[misc]
        rnd = self._round
        assert rnd is not None
        if round_ != rnd.number:
            return
        if domain not in rnd.participants():
            raise RemoteProtocolError(f"{domain} acknowledged round {round_} but was not asked")
        rnd.acked.add(domain)

    def _on_timer_committed(self, now: float, _: object) -> None:
        rnd = self._round
        if rnd is not None:  # to the unacknowledged, if resending is on (coordinator_resends)
            self._outbox.extend(self._resends.commits_due(now, rnd, self._unacked))

    def _on_query(self, now: float, round_: object) -> DecisionAnswer:
        assert isinstance(round_, int)
        answer, writes = self.log.answer(
            round_, self.round, self.phase in (Phase.PREPARING, Phase.DECIDING))
        self._outbox.extend(writes)  # a presumed ABORT, on record before it is told
        return answer

    def _ignore(self, now: float, arg: object) -> None:
        pass

    # ---- helpers -------------------------------------------------------------

    def _late_vote(self, vote: VoteIn) -> None:
        told = self.log.told_abort.get(vote.round)
        if vote.yes and told is not None:
            # It may have missed the ABORT: tell it again so it releases.
            self._outbox.append(SendDecision(vote.domain, vote.round))

    def _begin_round(self, now: float, number: int) -> None:
        rnd = self._placing.place(now, number)  # coordinator_placing
        if isinstance(rnd, str):  # no placement: why
            self._finish_aborted(number - 1, rnd)
            return
        self._resends.round_begun(now, rnd)
        self._round = rnd
        self.phase = Phase.PREPARING
        for domain, steps in rnd.participants().items():
            self._outbox.append(
                SendPrepare(domain, number, steps, dict(rnd.placement), rnd.acceptors))

    def _fail_round(self, now: float, rnd: RoundState, *, timed_out: bool) -> None:
        # The refusers (a NO; at the deadline, the silent too) are not asked again.
        self.refusals.extend(self._placing.refused(rnd, timed_out=timed_out))
        self._abort_round(rnd, "a participant refused or did not vote")
        self._next_round(now, rnd)

    def _next_round(self, now: float, rnd: RoundState) -> None:
        if rnd.number >= self._max_rounds:
            # Counted from this core's first round (a re-placement's start after the
            # committed one, a successor's in its epoch's range).
            self._finish_aborted(
                rnd.number,
                f"no placement agreed after {rnd.number - self._first_round + 1} round(s)",
            )
        else:
            self._begin_round(now, rnd.number + 1)

    def _abort_round(self, rnd: RoundState, reason: str, *, everyone: bool = False) -> None:
        # NO voters hold nothing; everyone else may hold a reservation.
        holders = [
            d for d in rnd.participants()
            if everyone or d not in rnd.votes or rnd.votes[d].yes
        ]
        self._outbox.extend(self.log.abort(rnd.number, holders))  # the cell first
        self._outbox.append(PersistDecision(rnd.number, False, dict(rnd.placement), (), reason))
        self._outbox.extend(SendDecision(d, rnd.number) for d in holders)

    def _unacked(self) -> list[str]:
        rnd = self._round
        if rnd is None or rnd.number in self.log.collected:
            return []
        acked = rnd.acked
        return [d for d in rnd._participants or rnd.participants() if d not in acked]

    def _finish_aborted(self, last_round: int, reason: str) -> None:
        self.phase = Phase.ABORTED
        if self.refusals:
            reason += "; refusals: " + refusals_text(self.refusals)
        self._outbox.append(Finished(False, last_round, {}, reason))

    # ---- recovery ------------------------------------------------------------

    # A second constructor: the core a restarted coordinator's round record implies.
    restore = classmethod(restore_from_log)


_TRANSITIONS = transitions(Coordinator)
