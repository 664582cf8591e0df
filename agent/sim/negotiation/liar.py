"""A trusted domain that lies: it overhears the federation and forges what it can sign.

The liar holds a trusted domain's identity (its messages arrive with `src` = its
name, as a verified envelope's sender would) but takes part in no workflow: it is
never placed, never an acceptor. It overhears every message (a stronger attacker
than a partner who sees only its own traffic) and, at random (its own seeded
Random, so runs replay), answers with a forgery:

* acceptor messages for rounds it is no acceptor of (Accepted/Promise/Reject,
  in its own name and in an acceptor's), ABORT decisions and decision answers;
* votes in a participant's name and its own, PREPAREs of other coordinators'
  workflows (replayed to other domains), end notices and acknowledgements for others;
* step results for steps it never ran (attempt 999, FAILED or SUCCEEDED);
* replays across workflows: a COMMIT value (its certificate) of one transaction
  offered as another's decision and in an Accept;
* a client's signed submission, overheard in a PREPARE, replayed as a new workflow of
  its own (coordinated by the liar, to the same participants);
* key records: rotations and revocations of other domains' keys made with its own
  keys, and stale genuine records relayed again (keyring.py);
* takeover answers (core/node/takeover_grants.py): grants in an elector's name and
  epoch certificates of the electors' grants, all signed with its own (fake) key, the
  only one it has: a denial relaying such a certificate, a grant to a participant's
  claim it never made, an end notice carrying one;
* COMMIT certificates (core/node/votes.py): a YES of every participant of a
  transaction it overheard, each vote signed with its own key in the participant's
  name, or carrying the old unsigned stand-in, or nothing, in decisions, Accepts,
  Promises and answers; YES votes with such evidence to the coordinator; and claims
  with a round proof (the coordinator's genuine signed round, overheard in a PREPARE,
  shown COMMIT with such a certificate) to the acceptors that hold no step. Counted
  in the run's stats ("liar forged COMMIT certificate", "liar forged round proof");
  tests/sim/negotiation/test_liar.py asks that no honest domain holds a COMMIT whose
  votes are not every participant's own.

The invariant checker must hold for every honest domain all the same.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING

from fedorch.core.negotiation.messages import (
    ABORT,
    Accept,
    Accepted,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAck,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
    Promise,
    Reject,
    TxInfo,
    Value,
    VoteIn,
)
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg
from fedorch.core.node.takeover_grants import sign_grant
from fedorch.core.node.votes import seal_votes, vote_statement
from fedorch.core.workflow.acceptor_grant import COMMIT, Round
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.sim.negotiation.disk import AckMsg, FinalMsg, PrepareMsg, ResultMsg, VoteMsg
from fedorch.sim.negotiation.keyring import KeyRecordsMsg
from fedorch.sim.negotiation.takeover import sim_signer

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World

LIES_PER_RUN = 400  # bounded, so a run's length stays that of an honest one


class Liar:
    def __init__(self, sim: World, name: str, rng: random.Random,
                 rate: float = 0.3) -> None:
        self.sim = sim
        self.name = name
        self.rng = rng
        self.rate = rate
        self.lies = 0
        self.txs: dict[str, TxInfo] = {}           # workflow -> its latest transaction seen
        self.prepares: list[PrepareMsg] = []
        self.commits: list[tuple[TxInfo, Value]] = []
        self.results: list[ResultMsg] = []
        self.replays = 0
        self.sign = sim_signer(name)  # its own key: all it can sign with

    # ---- what it hears --------------------------------------------------------------

    def overhear(self, src: str, dst: str, msg: object) -> None:
        self._learn(msg)
        if self.lies >= LIES_PER_RUN or not self.txs or self.rng.random() >= self.rate:
            return
        self.lies += 1
        forge = self.rng.choice(_FORGERIES)
        forge(self)

    def receive(self, src: str, msg: object) -> None:
        """Whatever is sent to it (answers to its queries, refusals): it just learns."""
        self._learn(msg)

    def _learn(self, msg: object) -> None:
        tx = getattr(msg, "tx", None)
        if isinstance(tx, TxInfo):
            self.txs[tx.workflow_id] = tx
        if isinstance(msg, PrepareMsg):
            self.prepares.append(msg)
            del self.prepares[:-50]
        value = getattr(msg, "value", None)
        if isinstance(value, Value) and value.commit:
            key = getattr(msg, "key", None) or (tx.key if isinstance(tx, TxInfo) else None)
            known = self.txs.get(key[0]) if key else None
            if known is not None and known.key == key:
                self.commits.append((known, value))
                del self.commits[:-20]
        if isinstance(msg, ResultMsg):
            self.results.append(msg)
            del self.results[:-50]

    # ---- forgeries ----------------------------------------------------------------

    def _tx(self) -> TxInfo:
        return self.txs[self.rng.choice(sorted(self.txs))]

    def _to(self, dst: str, msg: object) -> None:
        if dst != self.name and dst in self.sim.agents:
            self.sim.send(self.name, dst, msg)

    def _to_all(self, tx: TxInfo, msg: object) -> None:
        for dst in sorted({tx.coordinator, *tx.participants, *tx.acceptors}):
            self._to(dst, msg)

    def _accepted_abort(self) -> None:
        tx = self._tx()
        ballot = Ballot(self.rng.randint(0, 5), self.name)
        self._to_all(tx, Accepted(tx.key, ballot, self.name, ABORT))
        # In an acceptor's name (a classic 2PC round has none: a participant's).
        victim = self.rng.choice(tx.acceptors or tx.participants)
        self._to_all(tx, Accepted(tx.key, Ballot(ballot.n, victim), victim, ABORT))

    def _promise_and_reject(self) -> None:
        tx = self._tx()
        for proposer in (tx.coordinator, *tx.participants):
            b = Ballot(self.rng.randint(0, 5), proposer)
            self._to(proposer, Promise(tx.key, b, self.name, b, ABORT))
            self._to(proposer, Reject(tx.key, b, self.name, Ballot(10**6, self.name)))

    def _decide_abort(self) -> None:
        tx = self._tx()
        self._to_all(tx, Decision(tx.key, ABORT, self.name))
        for p in tx.participants:
            self._to(p, DecisionAnswer(tx.key, self.name, AnswerStatus.DECIDED, ABORT))

    def _votes(self) -> None:
        tx = self._tx()
        victim = self.rng.choice(tx.participants)
        self._to(tx.coordinator, VoteMsg(tx.key, victim, False, f"forged by {self.name}"))
        self._to(tx.coordinator, VoteMsg(tx.key, self.name, False, "not asked"))

    def _replay_prepare(self) -> None:
        if not self.prepares:
            return
        msg = self.rng.choice(self.prepares)
        self._to(self.rng.choice(sorted(self.sim.agents)), msg)

    def _results(self) -> None:
        tx = self._tx()
        spec = self.sim.config_spec(tx.workflow_id)
        if spec is None:
            return
        step = self.rng.choice(spec.steps).id
        state = self.rng.choice((StepState.FAILED, StepState.SUCCEEDED))
        self._to_all(tx, ResultMsg(tx.workflow_id, step, 999, state,
                                   {"forged by": self.name}, "forged"))
        if self.results:  # an honest result replayed into another workflow
            r = self.rng.choice(self.results)
            self._to_all(tx, ResultMsg(tx.workflow_id, r.step_id, r.attempt, r.state,
                                       r.outputs, r.error))

    def _end_and_acks(self) -> None:
        tx = self._tx()
        for p in tx.participants:
            self._to(p, FinalMsg(tx.workflow_id, self.rng.choice(("FAILED", "SUCCEEDED"))))
            self._to(tx.coordinator, AckMsg(("final", tx.workflow_id, p)))
            self._to(tx.coordinator, DecisionAck(tx.key, p))
        self._to(tx.coordinator, DecisionAck(tx.key, self.name))
        self._to(tx.coordinator, DecisionQuery(tx.key, self.name))

    def _replay_commit(self) -> None:
        if not self.commits:
            return
        _, value = self.rng.choice(self.commits)
        tx = self._tx()
        self._to_all(tx, Decision(tx.key, value, self.name))
        for a in tx.acceptors:
            self._to(a, Accept(tx, Ballot(self.rng.randint(1, 5), self.name), value))
        self._to_all(tx, PaxosPrepare(tx, Ballot(self.rng.randint(1, 5), self.name)))

    def _replay_submission(self) -> None:
        """Start an overheard signed submission again, as a new workflow of its own: the
        signed fields (its coordinator among them) are the client's and stay as they
        are; the checker fails any honest YES in a workflow the liar coordinates."""
        prepares = [m for m in self.prepares if m.info.submission is not None]
        if not prepares:
            return
        msg = self.rng.choice(prepares)
        self.replays += 1
        workflow_id = f"{self.name}.replay{self.replays}"
        tx = TxInfo(workflow_id, 1, self.name, msg.tx.participants, msg.tx.acceptors)
        info = replace(msg.info, coordinator=self.name)
        for dst in msg.tx.participants:
            self._to(dst, PrepareMsg(tx, msg.steps, info))

    def _key_records(self) -> None:
        honest = sorted(self.sim.agents)
        victim = self.rng.choice(honest)
        records = (*self.sim.keyring.forgeries(self.name, victim, self.rng),
                   *self.sim.keyring.stale)
        for dst in honest:
            self._to(dst, KeyRecordsMsg(records))

    def _takeover_answers(self) -> None:
        tx = self._tx()
        wf, electorate = tx.workflow_id, tx.acceptors
        if not electorate or not tx.participants:
            return
        for epoch in (1, 2):
            holder = self.rng.choice(tx.participants)
            forged = tuple(sign_grant(self.sign, g, wf, epoch, holder, electorate)
                           for g in sorted(electorate))
            for dst in sorted({tx.coordinator, *tx.participants}):
                victim = self.rng.choice(electorate)  # a grant in an elector's name
                self._to(dst, ClaimAnswerMsg(wf, epoch, True, epoch, dst, grant=sign_grant(
                    self.sign, victim, wf, epoch, dst, electorate)))
                self._to(dst, ClaimAnswerMsg(wf, epoch, False, epoch + 1, holder,
                                             won=forged))
                self._to(dst, FinalMsg(wf, WorkflowState.FAILED, epoch, won=forged))

    def _forged_votes(self, tx: TxInfo) -> tuple[VoteIn, ...]:
        """A YES of every participant of `tx`, none of them its own (see the header)."""
        kind = self.rng.randrange(3)
        statements = [vote_statement(tx.key, p, True) for p in tx.participants]
        if kind == 0:  # signed, with the only key it has
            raws = seal_votes(self.sign, statements)
        elif kind == 1:  # what stood for a vote before votes were signed
            raws = [f"{tx.workflow_id}/{tx.round}/{p}/yes".encode() for p in tx.participants]
        else:
            raws = [b""] * len(statements)
        return tuple(VoteIn(tx.round, p, True, "", raw)
                     for p, raw in zip(tx.participants, raws, strict=True))

    def _forged_commits(self) -> None:
        tx = self._tx()
        votes = self._forged_votes(tx)
        value = Value(True, votes)
        self.sim.stats["liar forged COMMIT certificate"] += 1
        ballot = Ballot(self.rng.randint(1, 5), self.name)
        self._to_all(tx, Decision(tx.key, value, self.name))
        for a in tx.acceptors:
            self._to(a, Accept(tx, ballot, value))
        for p in tx.participants:
            self._to(p, DecisionAnswer(tx.key, self.name, AnswerStatus.DECIDED, value))
            self._to(p, Promise(tx.key, ballot, self.name, ballot, value))
        victim = votes[0]
        self._to(tx.coordinator, VoteMsg(tx.key, victim.domain, True, "", victim.raw))
        self._to(tx.coordinator, VoteMsg(tx.key, self.name, True, "", victim.raw))

    def _forged_round_proof(self) -> None:
        """A claim to each acceptor holding no step of an overheard round, proving it
        committed with the coordinator's genuine signed round and forged votes."""
        stated = [m for m in self.prepares if m.info.stated is not None]
        if not stated:
            return
        msg = self.rng.choice(stated)
        tx = msg.tx
        proof = Round(tx.round, frozenset(tx.participants), frozenset(tx.acceptors), COMMIT)
        self.sim.stats["liar forged round proof"] += 1
        for a in sorted(set(tx.acceptors) - set(tx.participants)):
            self._to(a, ClaimMsg(tx.workflow_id, 1, proof, stated=msg.info.stated,
                                 commit=self._forged_votes(tx)))


_FORGERIES = (Liar._accepted_abort, Liar._promise_and_reject, Liar._decide_abort,
              Liar._votes, Liar._replay_prepare, Liar._results, Liar._end_and_acks,
              Liar._replay_commit, Liar._replay_submission, Liar._key_records,
              Liar._takeover_answers, Liar._forged_commits, Liar._forged_round_proof)
