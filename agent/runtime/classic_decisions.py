"""A participant's classic 2PC decisions: a decision notice checked, then applied.

A class of its own, built by Participation (agent/runtime/participation.py), which
hands it how to set a committed workflow up here (its `_committed`) and its lock of
COMMIT applications; Participation.decide delegates here for a notice that is no
Paxos Commit decision. Only the coordinator the workflow id names decides it, or a
successor by its epoch certificate (a re-placement round, runtime.votes), and only
from the coordinator that signed it; a COMMIT carries a certificate, a signed YES
from every domain in the placement, each checked. Nothing changes before the check
passes. A COMMIT that places a step of a workflow running here on another domain
(a re-placement) is merged into the workflow (`_placed_elsewhere`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.identity.envelope import AuthError, open_evidence
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.participant import DecisionEffect
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.convert import is_over
from fedorch.runtime.keyed_locks import KeyedLocks
from fedorch.runtime.peer_service import count_refusal
from fedorch.runtime.replacement_merge import apply_replacement
from fedorch.runtime.step_runs import StepRuns, reservation_row
from fedorch.runtime.store.store import Store
from fedorch.runtime.votes import Voting

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.participant")

# What a decision notice that fails its checks raises (Paxos Commit's and classic alike).
DECISION_REFUSALS = (Refused, AuthError, RemoteProtocolError)


def refused_decision(a: AgentContext, sender: str, e: Exception) -> peer_pb2.Ack:
    """The answer to a decision notice refused with `e` (one of DECISION_REFUSALS): an
    authority refusal counted, a bad message logged; nothing else changes."""
    if isinstance(e, Refused):
        count_refusal(a, sender, "decision_notice", e)
        return peer_pb2.Ack(ok=False, error=e.detail)
    log.warning("refused decision from %s: %s", sender, e)
    return peer_pb2.Ack(ok=False, error=str(e))


class ClassicDecisions:
    """Classic decision notices. `committed`: Participation._committed, which sets a
    committed workflow up here; `committing`: its lock, one COMMIT application at a
    time per workflow."""

    def __init__(self, agent: AgentContext, votes: Voting, runs: StepRuns,
                 committing: KeyedLocks, committed: Callable[..., Awaitable[None]]) -> None:
        self.agent = agent
        self.votes = votes
        self.runs = runs
        self._committing = committing
        self._committed = committed

    async def decide(self, sender: str, envelope: peer_pb2.Envelope,
                     from_coordinator: bool = True) -> peer_pb2.Ack:
        """Apply a classic 2PC decision notice after checking it (see the module doc)."""
        a = self.agent
        try:
            decision = self._verified_decision(envelope)
            if sender != decision.coordinator:
                raise RemoteProtocolError(f"{sender} relayed a decision of {decision.coordinator}")
            commit = decision.outcome == peer_pb2.OUTCOME_COMMIT
            replaced = decision.replacement if decision.HasField("replacement") else None
            if replaced is not None and a.domain not in decision.placement.values():
                # A step of a workflow we take part in was placed again elsewhere.
                return await self._placed_elsewhere(decision)
            effect = a.participant.decide(a.now(), decision.workflow_id, decision.round, commit)
        except DECISION_REFUSALS as e:
            return refused_decision(a, sender, e)
        key = (decision.workflow_id, decision.round)
        if effect is DecisionEffect.RELEASED:
            await a.store.apply([Store.delete_reservation_statement(*key),
                                 a.audit.decided(*key, "ABORT")])
        elif effect is DecisionEffect.COMMITTED or commit:
            # A repeated COMMIT (no reservation to write) is harmless, and it re-establishes
            # the workflow should an earlier one have been cut short (the steps it sets up
            # are idempotent).
            hold = a.participant.hold(key) if effect is DecisionEffect.COMMITTED else None
            await self._committed(
                decision.workflow_id, decision.round, decision.coordinator, decision.spec,
                dict(decision.placement), dict(decision.endpoints),
                reservation_row(hold, a.clock) if hold is not None else None,
                [a.audit.decided(*key, "COMMIT")] if hold is not None else (),
                replaced=replaced, heard=from_coordinator)
        return peer_pb2.Ack(ok=True)

    async def _placed_elsewhere(self, decision: peer_pb2.Decision) -> peer_pb2.Ack:
        """A committed re-placement of a step of a workflow running here, on another
        domain (runtime/replacement.py): merge it, and send the results of our steps it
        needs again, now to its new domain too. Not set up here yet (our COMMIT is on
        its way): the coordinator is asked to send it again later."""
        a = self.agent
        async with self._committing.hold(decision.workflow_id):
            active = a.active.get(decision.workflow_id)
            if active is None or active.progress is None:
                if decision.workflow_id in a.recently_finished \
                        or await a.store.get_workflow(decision.workflow_id) is not None:
                    return peer_pb2.Ack(ok=True)  # ended here: nothing to redirect
                return peer_pb2.Ack(ok=False, retry_later=True,
                                    error="the workflow is not committed here yet")
            if is_over(active.row) or not apply_replacement(
                    active, decision.replacement, decision.round, dict(decision.endpoints)):
                return peer_pb2.Ack(ok=True)
            self.runs.fencing.heard(active.row.id)  # contact with the workflow
            await self.runs.save_starting(active)
            step = active.progress.steps[decision.replacement.step_id]
            for need in step.needs:
                done = active.progress.steps[need]
                if done.domain == a.domain and done.state is StepState.SUCCEEDED:
                    self.runs.report(active, need)
        return peer_pb2.Ack(ok=True)

    def _verified_decision(self, envelope: peer_pb2.Envelope) -> peer_pb2.Decision:
        a = self.agent
        body = open_evidence(envelope, a.trust, expect="decision")
        decision = body.decision
        # Classic 2PC: only the coordinator the workflow id names decides it, or a
        # successor by its epoch certificate (a re-placement round, runtime.votes).
        if not self.votes.check_certified_decision(body.sender, decision):
            authorize("decision_notice", body.sender, Facts(
                workflow_id=decision.workflow_id, coordinator=decision.coordinator,
                participants=()))
        if body.sender != decision.coordinator:
            raise RemoteProtocolError("decision not signed by its coordinator")
        if decision.outcome != peer_pb2.OUTCOME_COMMIT:
            return decision
        # A commit certificate: a signed YES from every domain in the placement.
        voters = set()
        for raw in decision.votes:
            vote_body = open_evidence(raw, a.trust, expect="vote")
            v = vote_body.vote
            if vote_body.sender != v.domain or not v.yes or v.workflow_id != decision.workflow_id \
                    or v.round != decision.round:
                raise RemoteProtocolError(f"certificate holds a bad vote from {vote_body.sender}")
            voters.add(v.domain)
        missing = set(decision.placement.values()) - voters
        if missing:
            raise RemoteProtocolError(f"commit certificate lacks votes of {sorted(missing)}")
        return decision
