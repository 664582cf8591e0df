"""The Paxos Commit shell: this agent's acceptor, its in-doubt termination, the wire.

The I/O shell around agent.negotiation.acceptor.Acceptor and
agent.negotiation.termination.Termination, driven the way
agent.negotiation.sim_agent drives them:

* every core action runs in the order given: PersistAcceptor, PersistBallot and
  Learned are durable (the store's synchronous=FULL group commit) before any
  Send that follows them leaves this agent;
* a message from a peer arrives on the Paxos RPC (or as the reply to one we
  sent), is opened and checked at the input boundary, converted by
  runtime.paxos_wire, and routed: PaxosPrepare/Accept to the acceptor, whose
  reply to the sender goes back as the RPC's reply; Promise/Accepted/Reject to
  the coordinator core of that workflow when this agent coordinates it (via
  Coordination.route), else to Termination; a Decision is learned;
* a decision is learned once: written (write-once) before it is applied, so a
  crash in between is finished on restart.

Every agent runs an acceptor whatever its own `negotiation.commit`: a PREPARE
that carries acceptors makes the participant's reservation a Paxos Commit one.

Composed of: runtime.consensus_outbox (messages out and their replies),
runtime.acceptor_memory (which acceptor records are in memory, read back from disk)
and runtime.decision_proofs (what a signed Decision proves, the one this agent signs).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.identity.envelope import AuthError, open_evidence
from fedorch.core.negotiation.acceptor import Acceptor, PersistAcceptor
from fedorch.core.negotiation.errors import ProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    Decision,
    DecisionAck,
    Key,
    Learned,
    PaxosPrepare,
    PersistBallot,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
)
from fedorch.core.negotiation.termination import DoubtState, Termination
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.acceptor_memory import AcceptorMemory
from fedorch.runtime.consensus_outbox import PAXOS_RPC_TIMEOUT_S as PAXOS_RPC_TIMEOUT_S
from fedorch.runtime.consensus_outbox import ConsensusOutbox
from fedorch.runtime.decision_proofs import decision_message, proven
from fedorch.runtime.peer_service import count_refusal
from fedorch.runtime.record_writes import RecordWrites
from fedorch.runtime.round_proofs import stated
from fedorch.runtime.store.store import Statement, Store

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.consensus")

RESEND_S = 1.0            # a proposer resends to silent acceptors this often
BACKOFF_S = 0.5           # base of a rejected proposer's random backoff
DECISION_RESEND_S = 4.0   # the coordinator resends an unacknowledged COMMIT this often
_KINDS = {Promise: "paxos_promise", Accepted: "paxos_accepted", Reject: "paxos_reject"}
LEARNED_MEMORY = 10_000   # decisions remembered in memory (all are on disk)
ACCEPTOR_MEMORY = 4_096   # acceptor records kept in memory (all are on disk)


class Consensus:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        neg = agent.config.negotiation
        # How long an in-doubt participant waits for the coordinator's answer before it
        # starts a recovery ballot, and how often it asks again.
        patience = max(0.5, min(neg.prepare_timeout_s, neg.lease_s / 2))
        # A record only of a round its coordinator stated (its signed round, verified).
        self.acceptor = Acceptor(agent.domain, stated=self._stated)
        self.termination = Termination(
            agent.domain, rng=agent.rng, query_timeout_s=patience, query_interval_s=patience,
            resend_s=RESEND_S, backoff_s=BACKOFF_S)
        # In doubt past the lease, or with a DEAD coordinator: asking, recovering.
        self._past_lease: set[Key] = set()
        # Decisions lately learned and on disk: a participant usually learns each twice
        # (from a majority of Accepted, then from the coordinator's notice), and the
        # second needs no write.
        self._learned: OrderedDict[Key, str] = OrderedDict()
        # Which acceptor records are in memory (ACCEPTOR_MEMORY at most; read when made),
        # and the writes of records still on their way to disk.
        self._writes = RecordWrites()
        self.records = AcceptorMemory(agent, self.acceptor, ACCEPTOR_MEMORY, self._writes)
        self.outbox = ConsensusOutbox(agent, self)

    # ---- state ----------------------------------------------------------------------

    async def recover(self) -> dict[Key, Value]:
        """Returns the decisions learned before. The acceptor's records stay on disk,
        read back one at a time when an input needs one."""
        a = self.agent
        await self.records.recover()
        return {(wf, r): wire.value_from_bytes(raw, (wf, r))
                for wf, r, _, raw in await a.store.list_learned()}

    def tx_known(self, key: Key) -> TxInfo | None:
        """The transaction as this agent knows it in memory (participant, acceptor,
        coordinator), or None."""
        hold = self.agent.participant.hold(key)
        if hold is not None and hold.tx is not None:
            return hold.tx
        rec = self.acceptor.record(key)
        if rec is not None:
            return rec.tx
        return self.agent.coordination.tx_of(key)

    async def tx_of(self, key: Key) -> TxInfo | None:
        """As tx_known, then from disk (a finished hold, a coordinator's last round)."""
        tx = self.tx_known(key)
        if tx is not None:
            return tx
        a = self.agent
        info = await a.store.get_hold_tx(*key)
        if info is not None:
            return wire.held_tx(info)
        if self.records.on_disk_only:
            row = await a.store.get_acceptor_record(*key)
            if row is not None:
                return wire.tx_from_bytes(row.tx)
        if wire.coordinator_of(key[0]) == a.domain:
            row = await a.store.get_workflow(key[0])
            if row is not None and row.round == key[1] and row.acceptors:
                return TxInfo(key[0], key[1], a.domain,
                              tuple(sorted(set(row.placement.values()))), tuple(row.acceptors))
        return None

    # ---- proofs (runtime.decision_proofs) --------------------------------------------

    def proven(self, body: peer_pb2.Body, tx: TxInfo) -> Value:
        """The value of an opened, signed Decision about `tx`, if it proves itself
        (decision_proofs.proven); Refused / RemoteProtocolError / AuthError otherwise."""
        return proven(body, tx, self.agent.trust)

    async def open_decision(self, envelope: peer_pb2.Envelope,
                            key: Key | None = None) -> tuple[str, Value, TxInfo] | None:
        """Open a relayed Decision envelope about a Paxos Commit transaction: (signer,
        value, tx), or None when this agent knows no such transaction (classic 2PC)."""
        body = open_evidence(envelope, self.agent.trust, expect="decision")
        found = (body.decision.workflow_id, body.decision.round)
        if key is not None and found != key:
            raise RemoteProtocolError(f"a decision about {found}, not {key}")
        tx = await self.tx_of(found)
        if tx is None:
            return None
        return body.sender, self.proven(body, tx), tx

    def decision_envelope(self, key: Key, value: Value) -> peer_pb2.Envelope:
        """A decision as this agent announces it: signed by us, proven by its contents."""
        return self.agent.seal("", decision=decision_message(key, value))

    # ---- inputs ------------------------------------------------------------------------

    async def on_rpc(self, body: peer_pb2.Body) -> tuple[str, object]:
        """The Paxos RPC: one message in, the acceptor's answer (or an Ack) out."""
        try:
            msg = wire.decode(body, self.agent.trust)
            reply = await self.receive(body.sender, msg, rpc=True)
        except Refused as e:
            count_refusal(self.agent, body.sender, body.WhichOneof("payload"), e)
            return "ack", peer_pb2.Ack(ok=False, error=e.detail)
        except (AuthError, ProtocolError) as e:
            log.warning("refused %s from %s: %s", body.WhichOneof("payload"), body.sender, e)
            return "ack", peer_pb2.Ack(ok=False, error=str(e))
        if reply is None:
            return "ack", peer_pb2.Ack(ok=True)
        if isinstance(reply, Decision):
            return "decision_notice", peer_pb2.DecisionNotice(
                decision=self.decision_envelope(reply.key, reply.value))
        return wire.encode(reply)

    async def receive(self, sender: str, msg: object, *, rpc: bool = False) -> object | None:
        """One consensus message from `sender` (authenticated). With `rpc`, the message
        for the sender that handling it produces is returned (the RPC's reply)."""
        a = self.agent
        if isinstance(msg, PaxosPrepare | Accept):
            self._check_proposer(sender, msg.tx)
            await self.records.bring_back(msg.tx.key)
            self.acceptor.receive(sender, msg)
            actions = self.acceptor.next_actions()
            if not any(isinstance(x, PersistAcceptor) for x in actions):
                # A repeat (the same promise, the same ballot and value) is answered from
                # memory, and the first copy's record may still be on its way to disk:
                # an answer leaving now could count a promise or an acceptance that a
                # crash right after would forget. It waits for that write.
                await self.records.until_durable(msg.tx.key)
            reply_to = sender if rpc else None
            if isinstance(msg, Accept) and msg.value.commit:
                return await self._accept_commit(msg, actions, reply_to)
            # No await before the record's write is queued: records reach the disk in
            # the order the acceptor made them.
            return await self.run(actions, reply_to=reply_to)
        if isinstance(msg, Promise | Accepted | Reject):
            # Only the round's acceptors answer in it: an Accepted(ABORT) counted from
            # an outsider could make a participant learn an ABORT nobody chose.
            tx = await self.tx_of(msg.key)
            if tx is not None:
                authorize(_KINDS[type(msg)], sender,
                          Facts(workflow_id=msg.key[0], acceptors=tx.acceptors))
            if not a.coordination.route(msg.key[0], msg):
                self.termination.receive(a.now(), msg)
                a.participation.wake()  # its timer may have moved (the in-doubt loop)
                await self.run(self.termination.next_actions())
            return None
        if isinstance(msg, Decision):
            tx = await self.tx_of(msg.key)
            if tx is None:
                return None
            a.coordination.route(msg.key[0], msg)
            await self.learn(msg.key, msg.value, tx)
            return None
        if isinstance(msg, DecisionAck):
            tx = self.tx_known(msg.key)
            authorize("decision_ack", sender, Facts(
                workflow_id=msg.key[0], participants=tx.participants if tx else None))
            a.coordination.ack(sender, msg.key)
            return None
        raise RemoteProtocolError(f"{type(msg).__name__} is not a consensus message")

    async def _accept_commit(self, msg: Accept, actions: list,
                             reply_to: str | None) -> object | None:
        """The acceptor's answer to an Accept of COMMIT. A participant in doubt whose own
        acceptance and the proposer's word make a majority has learned the COMMIT right
        here: its acceptor record then goes in the write that applies the decision (the
        learned log and the set-up of its steps), not in one of its own before it. One
        write instead of two, and its steps start one write sooner; every Send still
        leaves after the record is on disk."""
        a = self.agent
        key = msg.tx.key
        records = [x for x in actions if isinstance(x, PersistAcceptor)]
        local = [x for x in actions if isinstance(x, Send) and x.to == a.domain
                 and isinstance(x.msg, Accepted)]
        if len(records) != 1 or not local or self.termination.state(key) is None \
                or a.participant.status(key) != "prepared":
            return await self.run(actions, reply_to=reply_to)
        for x in local:  # what the tasks of these Sends would do, at once
            self.termination.receive(a.now(), x.msg)
        a.participation.wake()  # the termination core's timer may have moved
        after = self.termination.next_actions()
        rest = [x for x in actions if all(x is not y for y in local)]
        learned = next((x for x in after if isinstance(x, Learned)), None)
        if learned is None or learned.key != key or not learned.value.commit:
            return await self.run([*rest, *after], reply_to=reply_to)
        with self.records.writing(records):
            await self.learn(key, learned.value, learned.tx, record=Store.acceptor_statement(
                wire.acceptor_row(records[0].record)), heard=learned.by_coordinator)
        return await self.run([x for x in [*rest, *after] if x is not records[0]
                               and x is not learned], reply_to=reply_to)

    def _stated(self, sender: str, tx: TxInfo) -> None:
        """The acceptor's check before it makes a record (round_proofs.stated). A
        message carrying no signed round may still state a round this agent was given
        by its coordinator's own PREPARE (an older coordinator signs none):
        _check_proposer compared it already."""
        if not tx.round_tx:
            hold = self.agent.participant.hold(tx.key)
            if hold is not None and hold.tx is not None and hold.tx == tx:
                return
        stated(self.agent.trust, sender, tx)

    def _check_proposer(self, sender: str, tx: TxInfo) -> None:
        """Only a transaction's coordinator and participants propose in it, and the
        transaction must be the one this agent was given at PREPARE (if it was)."""
        authorize("paxos_prepare", sender, Facts(
            workflow_id=tx.workflow_id, coordinator=tx.coordinator,
            participants=tx.participants))
        hold = self.agent.participant.hold(tx.key)
        own = hold.tx if hold is not None and hold.tx is not None \
            else self.agent.coordination.tx_of(tx.key)
        if own is not None and own != tx:
            raise RemoteProtocolError(f"{tx.key}: not the transaction of its PREPARE")

    async def on_decision(self, signer: str, value: Value, tx: TxInfo, *,
                          from_coordinator: bool) -> None:
        """A proven decision notice (Decide RPC, or an answer to a query)."""
        self.agent.coordination.route(tx.workflow_id, Decision(tx.key, value, signer))
        await self.learn(tx.key, value, tx, from_coordinator=from_coordinator)

    async def answer(self, key: Key) -> peer_pb2.DecisionAnswer:
        """A DecisionQuery about another agent's workflow: what we learned, if anything."""
        learned = await self.agent.store.get_learned(*key)
        if learned is None:
            return peer_pb2.DecisionAnswer(workflow_id=key[0], known=False)
        value = wire.value_from_bytes(learned[1], key)
        return peer_pb2.DecisionAnswer(workflow_id=key[0], known=True,
                                       decision=self.decision_envelope(key, value))

    # ---- termination -----------------------------------------------------------------

    def track(self, tx: TxInfo, lease_expires: float, floor=None) -> None:
        """A YES vote in another coordinator's transaction is durable: it is in doubt
        until it learns the decision."""
        self.termination.track(self.agent.now(), tx, lease_expires, floor)
        membership = self.agent.membership
        if membership is not None and membership.lost(tx.coordinator):
            # It went before our YES was durable (a DEAD verdict past its loss grace).
            self.coordinator_dead(tx.coordinator)
        self.agent.participation.wake()

    def coordinator_dead(self, domain: str) -> None:
        """Membership: `domain` is DEAD (or LEFT). Transactions it coordinates that are in doubt
        here start recovery now (Termination.coordinator_lost) rather than after the
        lease; the in-doubt loop (Participation.timer_loop) sends the queries."""
        moved = self.termination.coordinator_lost(self.agent.now(), domain)
        if moved:
            self._past_lease.update(moved)
            log.info("coordinator %s is gone (DEAD or LEFT): %d transaction(s) in doubt"
                     " here recover now", domain, len(moved))
            self.agent.participation.wake()

    async def on_timer(self) -> None:
        a = self.agent
        timer = self.termination.get_timer()
        if timer is not None and timer <= a.now():
            self.termination.handle_timer(a.now())
            self._past_lease.update(k for k in self.termination.in_doubt()
                                    if self.termination.state(k) is not DoubtState.WAITING)
        # Also what an input other than the timer left (coordinator_dead's queries).
        await self.run(self.termination.next_actions())

    # ---- running the cores' actions, in order ------------------------------------------

    async def run(self, actions: list, reply_to: str | None = None) -> object | None:
        """Run core actions in order; `reply_to`: the first Send to it is returned (the
        RPC's reply), not sent."""
        with self.records.writing(actions):
            return await self._run(actions, reply_to)

    async def accept_own(self, msg: Accept, cell: Statement) -> bool:
        """This coordinator's Accept to its own acceptor, right after its COMMIT proposal
        cell: one transaction writes the cell and the acceptor's record, the record only
        where the cell holds COMMIT, so the acceptor never takes a COMMIT that its
        coordinator could still abort. One forced write on the path, not two. The
        acceptor's answers then go as usual. True if the cell was empty; otherwise the
        caller reads what it holds."""
        await self.records.bring_back(msg.tx.key)
        msg = self.stating(msg)
        try:
            self.acceptor.receive(self.agent.domain, msg)
        except ProtocolError as e:  # never for our own core's Accept; the cell still goes
            log.error("our own Accept of %s refused: %s", msg.tx.key, e)
        actions = self.acceptor.next_actions()
        records = [x for x in actions if isinstance(x, PersistAcceptor)]
        with self.records.writing(records):
            changed = await self.agent.store.apply([cell, *(
                Store.acceptor_statement(wire.acceptor_row(x.record), if_proposed_commit=True)
                for x in records)])
        await self.run([x for x in actions if not isinstance(x, PersistAcceptor)])
        return bool(changed[0])

    async def _run(self, actions: list, reply_to: str | None) -> object | None:
        a = self.agent
        reply = None
        for action in actions:
            if isinstance(action, PersistAcceptor):
                await a.store.save_acceptor(wire.acceptor_row(action.record))
            elif isinstance(action, PersistBallot):
                await a.store.save_ballot(action.key[0], action.key[1], action.ballot.n,
                                          action.ballot.proposer)
            elif isinstance(action, Learned):
                late = action.key in self._past_lease
                self._past_lease.discard(action.key)
                log.log(logging.INFO if late else logging.DEBUG,
                        "learned %s of %s round %d %s",
                        "COMMIT" if action.value.commit else "ABORT", *action.key,
                        "without the coordinator (its lease passed, or it is DEAD)" if late
                        else "from the acceptors")
                await self.learn(action.key, action.value, action.tx,
                                 heard=action.by_coordinator and not late)
            elif isinstance(action, Send):
                if reply_to is not None and action.to == reply_to and reply is None:
                    reply = action.msg
                else:
                    self.send(action.to, action.msg)
            else:  # pragma: no cover - every action of these cores is listed
                raise TypeError(f"no shell for {action!r}")
        return reply

    # ---- decisions -------------------------------------------------------------------

    def learned_here(self, key: Key, outcome: str) -> None:
        """`outcome` of `key` is in the learned log on disk (written by learn, or by this
        agent's coordinator with its decision record): learning it again needs no write."""
        self._learned[key] = outcome
        while len(self._learned) > LEARNED_MEMORY:
            self._learned.popitem(last=False)

    async def learn(self, key: Key, value: Value, tx: TxInfo, *,
                    from_coordinator: bool = False, record: Statement | None = None,
                    heard: bool = False) -> None:
        """A decision known to be chosen: on disk first (write-once), then applied.
        `record`: this agent's acceptor record that made it known (see _accept_commit),
        written with the decision, before anything else of it. `heard`: learned by the
        coordinator's own ballot within the lease (Learned.by_coordinator); with
        `from_coordinator`, its own notice. Otherwise the COMMIT was learned without the
        coordinator (a recovery ballot, an acceptor's or a participant's Decision, an
        answer): it sets the workflow up here but starts nothing of it until the
        coordinator answers with its steps' placement epochs (self-fencing,
        agent/core/workflow/self_fencing.py, A COMMIT learned without the coordinator)."""
        a = self.agent
        outcome = "COMMIT" if value.commit else "ABORT"
        held = self._learned.get(key)
        learning: list[Statement] = [record] if record is not None else []
        if held is None and value.commit and a.domain in tx.participants \
                and a.participant.status(key) == "prepared":
            # Our YES committed: the learned record goes in the write that sets our steps
            # up (one write, not two; nothing of it is acted on before that write).
            learning.append(a.store.learn_statement(key[0], key[1], outcome,
                                                    wire.value_bytes(value)))
            learning.append(a.audit.learned(key[0], key[1], outcome))
            held = outcome
        elif learning:  # the acceptor record, before the rest
            await a.store.apply(learning)
            learning = []
        if held is None:
            held, _ = await a.store.learn(key[0], key[1], outcome, wire.value_bytes(value),
                                          also=[a.audit.learned(key[0], key[1], outcome)])
            self.learned_here(key, held)
        if held != outcome:
            log.error("%s round %d: %s contradicts the %s learned before", key[0], key[1],
                      outcome, held)
            return
        self.termination.forget(key)
        self._past_lease.discard(key)
        if a.domain in tx.acceptors:
            await self.records.bring_back(key)
            try:
                self.acceptor.learn(tx, value)
            except RemoteProtocolError as e:
                log.error("%s", e)
            # Counted in memory even if it was never written here (an acceptor that missed
            # the Accept): evicted, it is blank again, which is safe for one that never
            # promised nor accepted anything; the decision stays in the learned log.
            self.records.touched(key)
            await self.run(self.acceptor.next_actions())
        if a.domain not in tx.participants:
            # An acceptor only: its records are retention's to compact in time.
            a.settled(key[0])
            return
        written = await a.participation.apply_decision(key, value, tx, also=learning,
                                                       heard=heard or from_coordinator)
        if learning:
            if not written:
                await a.store.apply(learning)
            self.learned_here(key, outcome)
        if value.commit:
            if tx.coordinator == a.domain:
                a.coordination.ack(a.domain, key)
            elif not from_coordinator:  # the coordinator's notice was answered already
                a.participation.acknowledge_later(tx.coordinator, key)

    # ---- output ----------------------------------------------------------------------

    def stating(self, msg: object) -> object:
        """A PaxosPrepare or Accept of a round we coordinate, carrying our signed round
        (signed once per round, runtime.round_proofs); anything else as it is. A
        recovery proposer's carry the one it kept with its YES already."""
        if isinstance(msg, PaxosPrepare | Accept) and not msg.tx.round_tx \
                and msg.tx.coordinator == self.agent.domain:
            return replace(msg, tx=self.agent.takeovers.proofs.stating(msg.tx))
        return msg

    def send(self, to: str, msg: object) -> None:
        """One message to `to`, on a task the agent owns (runtime.consensus_outbox)."""
        msg = self.stating(msg)
        self.agent.spawn(self.outbox.deliver(to, msg), name=f"{type(msg).__name__} to {to}")
