"""The coordinator's decisions: recorded, then announced.

A class of its own, built by Coordination (agent/runtime/coordination.py), which
hands it the map of decision envelopes it shares with the log. A
decision is recorded in its write-once cell before anyone hears of it. A COMMIT
takes with it, in that one forced write, the workflow's move to RUNNING, the
proposal cell it spends and, when this agent runs steps of it, the decision in
its own learned log. Announcing: classic 2PC sends the decision until each
participant acknowledges it; with Paxos Commit the participants learn a COMMIT
from the acceptors, so it goes at once only to this agent's own steps (as the
core's value, not as our envelope opened again), and to the others only when
they stay silent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fedorch.core.negotiation.coordinator import Coordinator, PersistDecision
from fedorch.core.workflow.lifecycle import Committed
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.consensus import PAXOS_RPC_TIMEOUT_S
from fedorch.runtime.context import Active
from fedorch.runtime.convert import advance, end_notice_of
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.store import WorkflowRow

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.coordinator")


def refusal_rows(core: Coordinator) -> list[dict]:
    return [
        {"round": r.round, "domain": r.domain, "steps": list(r.steps), "reason": r.reason}
        for r in core.refusals
    ]


class Decisions:
    """Records the coordinator's decisions and announces them. `envelopes`: the signed
    decision of each round whose core is still driven, shared with Coordination and its
    log (which answer from it before reading the store)."""

    def __init__(self, agent: AgentContext,
                 envelopes: dict[tuple[str, int], peer_pb2.Envelope]) -> None:
        self.agent = agent
        self._decisions = envelopes

    async def persist(self, active: Active, spec, core: Coordinator,
                                action: PersistDecision, *, paxos: bool) -> None:
        """Record the round's decision (write-once). A COMMIT takes with it, in the same
        forced write: the workflow's move to RUNNING (so watchers see it the moment it is
        true, at the cost of no second write), the proposal cell it spends (Paxos Commit),
        and, when this agent runs steps of it, the decision in its learned log, its own
        reservation committed and the starts of its steps now ready."""
        a = self.agent
        row = active.row
        decision = peer_pb2.Decision(
            workflow_id=row.id, round=action.round, coordinator=a.domain,
            outcome=peer_pb2.OUTCOME_COMMIT if action.commit else peer_pb2.OUTCOME_ABORT,
            placement=action.placement, spec=spec, reason=action.reason,
            votes=[peer_pb2.Envelope.FromString(v) for v in action.votes],
            endpoints={d: a.endpoint_of(d, row.endpoints) or ""
                       for d in set(action.placement.values())},
        )
        raw = a.seal("", decision=decision).SerializeToString()
        outcome = "COMMIT" if action.commit else "ABORT"
        key = (row.id, action.round)
        statements = [a.store.decision_statement(*key, outcome, raw),
                      a.audit.decision(*key, outcome, raw, action.reason)]
        learned = None
        if action.commit and paxos:
            statements += a.store.spent_proposal_statements(*key)
            tx, value = core.tx(), core.decision(action.round)
            if tx is not None and tx.key == key and value is not None \
                    and a.domain in tx.participants:
                learned = len(statements)
                statements.append(a.store.learn_statement(*key, outcome, wire.value_bytes(value)))
                statements.append(a.audit.learned(*key, outcome))
        if action.commit and self.enter_running(active, spec, core, action.placement):
            await a.participation.fold_in_results(active)
            if learned is not None:  # and our own steps set up in the same write
                counts = await a.participation.commit_own_steps(active, key, statements)
            else:
                counts = await a.save(active, also=statements)
        else:
            counts = await a.store.apply(statements)
        held = outcome
        if not counts[0]:  # the write-once cell already held a decision
            stored = await a.store.get_decision(*key)
            assert stored is not None
            held, raw = stored
            if held != outcome:
                log.error("%s round %d: decision cell holds %s, not %s", row.id, action.round,
                          held, outcome)
        if learned is not None and counts[learned]:
            a.consensus.learned_here(key, outcome)
        self._decisions[key] = peer_pb2.Envelope.FromString(raw)
        a.metrics.decisions.labels(held.lower()).inc()

    def enter_running(self, active: Active, spec, core: Coordinator,
                       placement: dict[str, str]) -> bool:
        """The COMMIT is on record: the workflow runs (True), unless it already did or
        has ended (False, nothing changed)."""
        row = active.row
        if not advance(row, Committed()):
            return False
        row.refusals = refusal_rows(core)
        row.placement = dict(placement)
        self.agent.participation.ensure_progress(active, spec)
        return True

    def send(self, row: WorkflowRow, domain: str, round_: int,
                       acks: asyncio.Queue | None = None) -> None:
        """Announce a decision until the participant acknowledges it (or the lease);
        an acknowledgement goes to the core's queue `acks`, if given."""
        self.agent.spawn(self._deliver(row, domain, round_, acks),
                         name=f"decision {row.id}/{round_} to {domain}")

    async def _deliver(self, row: WorkflowRow, domain: str, round_: int,
                                acks: asyncio.Queue | None) -> None:
        a = self.agent
        envelope = self._decisions.get((row.id, round_))
        if envelope is None:  # the core is done with it, or from before a restart
            stored = await a.store.get_decision(row.id, round_)
            if stored is None or not stored[1]:  # none, or collected: everyone has it
                return
            envelope = peer_pb2.Envelope.FromString(stored[1])
        if domain == a.domain:
            ack = await a.participation.decide(a.domain, envelope)
        else:
            ack = await a.deliver(
                domain, "Decide", endpoints=row.endpoints,
                give_up_after=a.config.negotiation.lease_s,
                decision_notice=peer_pb2.DecisionNotice(decision=envelope),
            )
        if acks is not None and ack is not None and ack.ok:
            acks.put_nowait(("ack", domain, round_))

    async def notify_commit(self, row: WorkflowRow, domain: str, round_: int,
                             envelope: peer_pb2.Envelope, events: asyncio.Queue,
                             core: Coordinator) -> None:
        a = self.agent
        value, tx = core.decision(round_), core.tx()
        if domain == a.domain and value is not None and tx is not None \
                and tx.round == round_:
            # Our own steps: the core's decision as it stands, not our envelope opened
            # and its signatures checked again.
            await a.consensus.on_decision(a.domain, value, tx, from_coordinator=True)
            events.put_nowait(("ack", domain, round_))
            return
        ack = await self.commit_notice(row, domain, envelope)
        if ack is not None and ack.ok:
            events.put_nowait(("ack", domain, round_))

    async def commit_notice(self, row: WorkflowRow, domain: str,
                             envelope: peer_pb2.Envelope) -> peer_pb2.Ack | None:
        """One COMMIT notice to a participant (this agent's own, directly), answered by
        its Ack (None: no answer). A participant that holds the COMMIT already just says
        so; a refusal is logged here."""
        a = self.agent
        if domain == a.domain:
            ack = await a.participation.decide(a.domain, envelope)
        else:
            ack = await self._ask(row, domain, "Decide", "COMMIT",
                                  decision_notice=peer_pb2.DecisionNotice(decision=envelope))
            if ack is None:
                return None
        if not ack.ok:
            log.warning("%s refused the COMMIT of %s: %s", domain, row.id, ack.error)
        return ack

    async def end_notice(self, row: WorkflowRow, domain: str) -> peer_pb2.Ack | None:
        """One end notice of the ended workflow `row` to `domain`, answered by its Ack
        (None: no answer). The certificate sweep sends it before it offers the COMMIT
        again (DecisionLog._offer_commit)."""
        return await self._ask(row, domain, "CancelWorkflow", "end", cancel=end_notice_of(row))

    async def _ask(self, row: WorkflowRow, domain: str, rpc: str, what: str,
                   **payload) -> peer_pb2.Ack | None:
        """One notice about `row` to another domain, answered by its Ack (None: not
        reachable, or no answer: the caller tries again later)."""
        a = self.agent
        endpoint = a.endpoint_of(domain, row.endpoints)
        if endpoint is None:
            return None
        try:
            body, _ = await a.peers.call(
                endpoint, rpc, recipient=domain, expect="ack",
                timeout=PAXOS_RPC_TIMEOUT_S, wait_for_ready=False, **payload)
        except PeerCallError as e:
            log.debug("%s of %s to %s: %s", what, row.id, domain, e)
            return None
        return body.ack
