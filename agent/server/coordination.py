"""The coordinator half of an agent: submissions, admission rounds, outcomes.

This is the I/O shell around agent.negotiation.coordinator.Coordinator: it
runs the core's actions in order (persist before announce), turns RPC replies
into votes, and keeps one task per workflow under negotiation.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from typing import TYPE_CHECKING

from agent.gen.fedorch.v1 import peer_pb2, spec_pb2, status_pb2
from agent.negotiation.coordinator import (
    Coordinator,
    Finished,
    PersistDecision,
    Phase,
    SendDecision,
    SendPrepare,
    VoteIn,
)
from agent.negotiation.errors import ProtocolError
from agent.server.agent import TERMINAL_WORKFLOW_STATES, Active
from agent.server.peers import PeerCallError
from agent.store.store import WorkflowRow
from agent.workflow.placement import Candidate, place
from agent.workflow.progress import Outcome
from agent.workflow.spec import validate_spec

if TYPE_CHECKING:
    from agent.server.agent import Agent

log = logging.getLogger("fedorch.coordinator")

_CANCEL = object()
END_NOTICE_PATIENCE_S = 24 * 3600.0


def _refusal_rows(core: Coordinator) -> list[dict]:
    return [
        {"round": r.round, "domain": r.domain, "steps": list(r.steps), "reason": r.reason}
        for r in core.refusals
    ]


class Coordination:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._negotiating: dict[str, tuple[Coordinator, asyncio.Queue]] = {}
        self._decisions: dict[tuple[str, int], peer_pb2.Envelope] = {}

    # ---- submit --------------------------------------------------------------------

    async def submit(self, spec: spec_pb2.WorkflowSpec, request_id: str = "") -> str:
        """Validate (SpecError on bad input, nothing stored) and start admission."""
        a = self.agent
        validate_spec(spec, "request")
        if request_id:
            existing = await a.store.find_by_request_id(request_id)
            if existing is not None:
                return existing.id
        # The id names its coordinator, so any agent can route a status query.
        workflow_id = f"{a.domain}.{a.now_ms():012x}{secrets.token_hex(4)}"
        now_ms = a.now_ms()
        row = WorkflowRow(
            id=workflow_id, name=spec.name, coordinator=a.domain, state="NEGOTIATING",
            spec=spec.SerializeToString(deterministic=True), request_id=request_id or None,
            created_ms=now_ms, updated_ms=now_ms,
        )
        active = Active(row)
        try:
            await a.save(active)
        except sqlite3.IntegrityError:
            # A concurrent submit with the same request id won the race: same answer.
            winner = await a.store.find_by_request_id(request_id)
            if winner is None:
                raise
            return winner.id
        a.active[workflow_id] = active
        a.spawn(self._negotiate(active, spec), name=f"negotiate {workflow_id}")
        return workflow_id

    def _placer(self, spec: spec_pb2.WorkflowSpec):
        a = self.agent

        def placer(excluded):
            candidates = [Candidate(m.record, m.state == "ALIVE")
                          for m in a.membership.members() if m.record.domain]
            return place(spec, candidates, coordinator=a.domain, excluded=excluded)

        return placer

    # ---- the admission driver ----------------------------------------------------

    async def _negotiate(self, active: Active, spec: spec_pb2.WorkflowSpec) -> None:
        a = self.agent
        neg = a.config.negotiation
        core = Coordinator(
            active.row.id, placer=self._placer(spec), max_rounds=neg.max_rounds,
            prepare_timeout_s=neg.prepare_timeout_s,
        )
        votes: asyncio.Queue = asyncio.Queue()
        self._negotiating[active.row.id] = (core, votes)
        started = a.now()
        calls: list[asyncio.Task] = []
        try:
            async with asyncio.TaskGroup() as tg:
                core.start(a.now())
                done = False
                while not done:
                    for action in core.next_actions():
                        done = await self._act(active, spec, core, action, tg, votes, calls) \
                            or done
                    if done:
                        break
                    timer = core.get_timer()
                    wait = max(0.0, timer - a.now()) if timer is not None else None
                    try:
                        event = await asyncio.wait_for(votes.get(), wait)
                    except TimeoutError:
                        core.handle_timer(a.now())
                        continue
                    try:
                        if event is _CANCEL:
                            core.cancel(a.now(), "by request")
                        else:
                            core.receive_vote(a.now(), event)
                    except ProtocolError as e:
                        log.warning("%s: %s", active.row.id, e)
                for call in calls:  # late replies can only be for a decided round
                    call.cancel()
        finally:
            self._negotiating.pop(active.row.id, None)
        a.metrics.admission_seconds.observe(a.now() - started)

    async def _act(self, active, spec, core, action, tg, votes, calls) -> bool:
        a = self.agent
        row = active.row
        if isinstance(action, SendPrepare):
            if action.round != row.round:
                # On disk before any PREPARE of the round leaves: a restarted
                # coordinator knows which round (and whom) to presume aborted.
                row.round, row.placement = action.round, dict(action.placement)
                row.endpoints = {
                    d: a.endpoint_of(d) or "" for d in set(action.placement.values())
                }
                row.refusals = _refusal_rows(core)  # watchers see why a round was redone
                await a.save(active)
            calls.append(tg.create_task(self._prepare(active, spec, action, votes)))
        elif isinstance(action, PersistDecision):
            await self._persist_decision(active, spec, action)
        elif isinstance(action, SendDecision):
            self._send_decision(row, action.domain, action.round)
        elif isinstance(action, Finished):
            await self._finished(active, spec, core, action)
            return True
        return False

    async def _prepare(self, active: Active, spec, action: SendPrepare, votes) -> None:
        a = self.agent
        row = active.row
        request = peer_pb2.PrepareRequest(
            workflow_id=row.id, round=action.round, spec=spec, steps=action.steps,
            placement=action.placement, coordinator_endpoint=a.endpoint,
            lease_ms=int(a.config.negotiation.lease_s * 1000),
        )
        if action.domain == a.domain:
            envelope = await a.participation.prepare(a.domain, request)
            body = peer_pb2.Body.FromString(envelope.body)
        else:
            endpoint = a.endpoint_of(action.domain, row.endpoints)
            try:
                if endpoint is None:
                    raise PeerCallError("UNKNOWN", "no endpoint known")
                body, envelope = await a.peers.call(
                    endpoint, "Prepare", recipient=action.domain, expect="vote",
                    timeout=a.config.negotiation.prepare_timeout_s, prepare=request,
                )
            except PeerCallError as e:
                await votes.put(VoteIn(action.round, action.domain, False,
                                       f"unreachable ({e.code})", b""))
                return
        vote = body.vote
        if vote.workflow_id != row.id or vote.round != action.round \
                or vote.domain != action.domain:
            await votes.put(VoteIn(action.round, action.domain, False,
                                   "vote does not match the PREPARE", b""))
            return
        await votes.put(VoteIn(vote.round, vote.domain, vote.yes, vote.reason,
                               envelope.SerializeToString()))

    async def _persist_decision(self, active: Active, spec, action: PersistDecision) -> None:
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
        envelope = a.seal("", decision=decision)
        outcome = "COMMIT" if action.commit else "ABORT"
        held, raw = await a.store.record_decision(
            row.id, action.round, outcome, envelope.SerializeToString()
        )
        if held != outcome:  # the write-once cell already held the other outcome
            log.error("%s round %d: decision cell holds %s, not %s", row.id, action.round,
                      held, outcome)
        self._decisions[(row.id, action.round)] = peer_pb2.Envelope.FromString(raw)
        a.metrics.decisions.labels(held.lower()).inc()

    def _send_decision(self, row: WorkflowRow, domain: str, round_: int) -> None:
        envelope = self._decisions[(row.id, round_)]
        self.agent.spawn(self._deliver_decision(row, domain, envelope),
                         name=f"decision {row.id}/{round_} to {domain}")

    async def _deliver_decision(self, row: WorkflowRow, domain: str, envelope) -> None:
        a = self.agent
        if domain == a.domain:
            await a.participation.decide(a.domain, envelope)
            return
        await a.deliver(
            domain, "Decide", endpoints=row.endpoints, give_up_after=a.config.negotiation.lease_s,
            decision_notice=peer_pb2.DecisionNotice(decision=envelope),
        )

    async def _finished(self, active: Active, spec, core: Coordinator, fin: Finished) -> None:
        a = self.agent
        row = active.row
        row.refusals = _refusal_rows(core)
        if fin.committed:
            row.state, row.placement = "RUNNING", dict(fin.placement)
            a.participation.ensure_progress(active, spec)
            await a.save(active)
            return
        row.state = "CANCELLED" if fin.reason.startswith("cancelled") else "ABORTED"
        row.reason = fin.reason
        await a.save(active)
        a.metrics.workflows.labels(row.state).inc()
        a.finished(row.id)

    # ---- outcomes -----------------------------------------------------------------

    async def after_progress(self, active: Active) -> None:
        """Called whenever the coordinator's progress changed: is the workflow over?"""
        row = active.row
        progress = active.progress
        if progress is None or row.state in TERMINAL_WORKFLOW_STATES:
            return
        outcome = progress.outcome()
        if outcome is None:
            return
        if outcome is Outcome.FAILED:
            failed = [s for s in progress.steps.values() if s.state.value == "FAILED"]
            reason = "; ".join(f"step {s.id} failed: {s.error}" for s in failed)
            await self._end(active, "FAILED", reason)
        else:
            await self._end(active, "SUCCEEDED", "")

    async def _end(self, active: Active, state: str, reason: str) -> None:
        """End a running workflow: stop what still runs anywhere, tell every participant."""
        a = self.agent
        row = active.row
        row.state, row.reason = state, reason
        if active.progress is not None:
            for step_id in active.progress.cancel(reason):
                task = active.running.get(step_id)
                if task is not None:
                    task.cancel()
        for hold in a.participant.release_workflow(row.id):
            await a.store.delete_reservation(hold.workflow_id, hold.round)
        await a.save(active)
        a.metrics.workflows.labels(state).inc()
        notice = peer_pb2.CancelNotice(
            workflow_id=row.id, reason=reason,
            final_state=status_pb2.WorkflowState.Value(f"WORKFLOW_STATE_{state}"),
        )
        for domain in sorted(set(row.placement.values()) - {a.domain}):
            # Until acknowledged: a participant that misses it keeps its slots (it also
            # asks, see Participation.timer_loop, in case this agent stops first).
            a.spawn(a.deliver(domain, "CancelWorkflow", endpoints=row.endpoints,
                              give_up_after=END_NOTICE_PATIENCE_S, cancel=notice),
                    name=f"cancel {row.id} at {domain}")
        a.finished(row.id)

    async def cancel(self, workflow_id: str, reason: str) -> bool:
        """Cancel a workflow coordinated here; False if it is not known here."""
        a = self.agent
        negotiating = self._negotiating.get(workflow_id)
        if negotiating is not None:
            seen = a.changes.version(workflow_id)
            await negotiating[1].put(_CANCEL)
            while workflow_id in self._negotiating:
                seen = await a.changes.wait_past(workflow_id, seen, 1.0)
            return True
        active = a.active.get(workflow_id)
        if active is not None and active.row.coordinator == a.domain \
                and active.row.state not in TERMINAL_WORKFLOW_STATES:
            await self._end(active, "CANCELLED", f"cancelled: {reason}")
            return True
        return await a.store.get_workflow(workflow_id) is not None

    # ---- decision queries (in-doubt participants) ---------------------------------

    async def answer_query(self, workflow_id: str, round_: int) -> peer_pb2.DecisionAnswer:
        a = self.agent
        held = self._decisions.get((workflow_id, round_))
        if held is None:
            stored = await a.store.get_decision(workflow_id, round_)
            if stored is not None:
                held = peer_pb2.Envelope.FromString(stored[1])
        if held is not None:
            answer = peer_pb2.DecisionAnswer(workflow_id=workflow_id, known=True, decision=held)
            row = await a.store.get_workflow(workflow_id)
            if row is not None and row.state in TERMINAL_WORKFLOW_STATES:
                answer.final_state = status_pb2.WorkflowState.Value(
                    f"WORKFLOW_STATE_{row.state}")
            return answer
        negotiating = self._negotiating.get(workflow_id)
        if negotiating is not None and negotiating[0].phase is Phase.PREPARING \
                and negotiating[0].round == round_:
            return peer_pb2.DecisionAnswer(workflow_id=workflow_id, known=False)
        # Presumed abort: no decision on record means abort, and writing it
        # first (write-once) makes sure no later COMMIT can contradict it.
        envelope = await self._presume_abort(workflow_id, round_, {}, "no decision on record")
        return peer_pb2.DecisionAnswer(workflow_id=workflow_id, known=True, decision=envelope)

    async def _presume_abort(self, workflow_id: str, round_: int, placement: dict,
                             reason: str) -> peer_pb2.Envelope:
        a = self.agent
        decision = peer_pb2.Decision(
            workflow_id=workflow_id, round=round_, coordinator=a.domain,
            outcome=peer_pb2.OUTCOME_ABORT, placement=placement, reason=reason,
        )
        _, raw = await a.store.record_decision(
            workflow_id, round_, "ABORT", a.seal("", decision=decision).SerializeToString()
        )
        envelope = peer_pb2.Envelope.FromString(raw)
        self._decisions[(workflow_id, round_)] = envelope
        return envelope

    # ---- recovery -------------------------------------------------------------------

    async def recover(self) -> None:
        """Finish what the log says: resend commits, presume abort for undecided rounds."""
        a = self.agent
        for row in await a.store.list_workflows():
            if row.coordinator != a.domain or row.state in TERMINAL_WORKFLOW_STATES:
                continue
            commit = await a.store.get_commit(row.id)
            if commit is not None:
                round_, raw = commit
                self._decisions[(row.id, round_)] = peer_pb2.Envelope.FromString(raw)
                active = a.active.get(row.id)
                if active is None:  # crashed between the decision and the state change
                    row.state = "RUNNING"
                    active = Active(row)
                    a.active[row.id] = active
                    a.participation.ensure_progress(
                        active, spec_pb2.WorkflowSpec.FromString(row.spec))
                    await a.participation.restore_steps(active)
                    await a.save(active)
                for domain in sorted(set(row.placement.values())):
                    self._send_decision(row, domain, round_)
                await self.after_progress(active)
                continue
            if row.round > 0:
                envelope = await self._presume_abort(
                    row.id, row.round, row.placement, "coordinator restarted before deciding")
                for domain in sorted(set(row.placement.values())):
                    if domain == a.domain:
                        await a.participation.decide(a.domain, envelope)
                    else:
                        a.spawn(a.deliver(
                            domain, "Decide", endpoints=row.endpoints,
                            give_up_after=a.config.negotiation.lease_s,
                            decision_notice=peer_pb2.DecisionNotice(decision=envelope)),
                            name=f"abort {row.id} at {domain}")
            row.state = "ABORTED"
            row.reason = "coordinator restarted before a decision: presumed abort"
            await a.store.save_workflow(row)
            a.metrics.workflows.labels("ABORTED").inc()
