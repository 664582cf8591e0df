"""Placing a step again after its domain was lost: one new negotiation round per step.

A class of its own, built by DomainLoss (agent/runtime/coordination_loss.py) and handed
the coordinator's outcome path. When a loss sends a step back to PENDING, unplaced
(Progress.domain_lost, action REPLACE of agent/core/workflow/domain_loss.py), the
coordinator runs a round for that step only: the negotiation core
(agent/core/negotiation/coordinator.py) with a placer that keeps every other step
where it is and excludes every domain the step was lost on, its rounds numbered after
every round the workflow used before (a round is never reused: decisions, proposal
cells and a participant's memory of decided rounds are keyed by it). The PREPARE is
the ordinary one, carrying the submitter's signed spec; each candidate's policy votes
as usual and its YES holds a reservation with a lease, released by the round's ABORT
or, once committed, when the step ends, exactly as for a first round.

The round uses classic two-phase commit whatever `negotiation.commit` says: its one
participant is the new domain, so Paxos Commit would spare only the wait for a
coordinator that died in the middle of it (the participant then asks at its lease).

On COMMIT the decision, signed, carries a Replacement (the step, the lost domain, the
whole placement, the outputs of the steps it needs that had SUCCEEDED): one write
records it with the step's new placement here (Progress.placed_again: its epoch becomes
the round's number, so reports of any earlier placement are refused). It goes to the
new domain, which sets the workflow up or merges the new placement
(apply_replacement, replacement_merge.py) and runs the step, and to every other live domain of the workflow, which merges it and
sends its own results the step needs again, so that results flow to and from the new
placement. On ABORT (a refusal, a silent voter, no eligible domain after max_rounds) the
step FAILS with a reason naming the lost domain and why, and the workflow goes on as
after any failed step.

Each core is recorded before its first PREPARE leaves (agent/runtime/store/
replacement_rounds.py: its range of round numbers) and closed once it finished. After
a restart, the first round of a workflow aborts the rounds of a core still open that
have no decision (a candidate holding a YES of one is answered at its lease), and
every new round is numbered above the recorded ones: a restart never reuses the
number of a round cut short.

A successor runs the same rounds. A coordinator that took the workflow over (epoch
e >= 1, agent/core/workflow/takeover.py) re-places lost steps exactly as the original
does; its PREPAREs and its decision carry its epoch certificate
(agent/core/workflow/epoch_certificate.py: the signed grants of a majority of the
takeover electorate), which every candidate checks before it votes, a domain that
never saw the workflow included, and its rounds are numbered in its epoch's own range
(epoch_certificate.round_range), so no two coordinators ever use one round number.
Before each round it asks its electorate again (EpochCertificates.fresh_certificate)
and runs the round only on a fresh majority (agent/core/workflow/round_mandate.py): a
member that granted a later epoch since denies, and the successor follows that epoch
instead of running the round; with no fresh majority within one lease (members dead,
or cut off from us and holding a later epoch: from here the two look the same) the
step FAILS naming the lost domain, as when no domain can take it.
The Replacement names the coordinator and its epoch: a domain that merges it follows
that coordinator if the epoch is later than the one it holds.

Why at most one coordinator re-places a step at a time: a round needs a certificate,
and a certificate needs a majority of the electorate, whose members grant an epoch
once; so every PREPARE accepted is from the original coordinator (epoch 0) or from
the one acting coordinator of some epoch e. A domain that holds epoch e refuses a
certificate for a lower one, and the electorate's majority that granted e holds it:
an older coordinator (the original back from the dead, or an earlier successor) is
refused by those. A candidate that never saw the workflow cannot tell an older epoch
from the current one, so the older successor must find out itself: its fresh
majority shares a member with the later epoch's majority, which denies it. What is
left (docs/failures.md, limits): a later epoch won while the round runs.

The original coordinator (epoch 0) asks too (EpochCertificates.origin_mandate: does
each member still hold epoch 0 for it?) and runs the round only on fresh answers that
meet every majority of the electorate; a denial naming a later epoch: it follows that
epoch, placing nothing; too few answers within one lease: the step FAILS, as above.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fedorch.core.identity.submission import attached
from fedorch.core.negotiation.coordinator import (
    Coordinator,
    Finished,
    PersistDecision,
    Phase,
    SendDecision,
    SendPrepare,
    VoteIn,
)
from fedorch.core.negotiation.errors import ProtocolError
from fedorch.core.workflow import values
from fedorch.core.workflow.domain_loss import not_replaced_reason
from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.placement import place
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.candidates import placement_candidates
from fedorch.runtime.context import Active
from fedorch.runtime.convert import end_notice_of, is_over
from fedorch.runtime.prepares import send_prepare
from fedorch.runtime.replacement_merge import apply_replacement
from fedorch.runtime.store import replacement_rounds as recorded
from fedorch.runtime.votes import stored_submission

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.coordinator")

# Put in a driver's vote queue when its workflow ended (AgentContext.on_settled): a round
# in PREPARING is then cancelled at once, its ABORT releasing what the votes held.
ENDED = object()
LOOP = "re-placement driver"  # its label in fedorch_loop_wakeups_total
CUT_SHORT = "the coordinator restarted in the middle of the round"


@dataclass
class _OneStep:
    """The placement a round proposes: one step's domain, or why it has none."""

    assignment: dict[str, str] = field(default_factory=dict)
    unplaceable: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.unplaceable


class Replacements:
    """The re-placement rounds of the workflows coordinated here, one task per workflow
    (its steps one round at a time). `after_progress`: the coordinator's outcome path,
    True when it ended the workflow (and wrote it)."""

    def __init__(self, agent: AgentContext,
                 after_progress: Callable[[Active], Awaitable[bool]]) -> None:
        self.agent = agent
        self._after_progress = after_progress
        self._running: set[str] = set()
        self._last_round: dict[str, int] = {}
        # A successor's epoch certificate, for the round under way (None: epoch 0).
        self._certificates: dict[str, peer_pb2.EpochCertificate | None] = {}
        # The vote queue of each round being driven: the end of its workflow goes in too.
        self._drives: dict[str, asyncio.Queue] = {}
        # Workflow -> the deadline its driver is parked on (None: only news wakes it).
        self.parked: dict[str, float | None] = {}
        self.wakeups = 0
        self._counter = agent.metrics.loop_wakeups.labels(LOOP)
        # Every end here goes through AgentContext.finished, which tells its hooks: a
        # driver waits for its round's news or deadline, and for the end, never on a tick.
        agent.on_settled.append(self._settled)

    def _settled(self, workflow_id: str) -> None:
        """A workflow ended here (or was forgotten): its driver, if one is out, looks."""
        votes = self._drives.get(workflow_id)
        if votes is not None and workflow_id not in self.agent.active:
            votes.put_nowait(ENDED)

    def start(self, active: Active) -> None:
        """Place again the steps of `active` a loss sent back (no-op while a round of
        the workflow is under way: it takes them in turn)."""
        wf = active.row.id
        if wf in self._running:
            return
        self._running.add(wf)
        if self.agent.spawn(self._run(active), name=f"re-place steps of {wf}") is None:
            self._running.discard(wf)

    async def _run(self, active: Active) -> None:
        wf = active.row.id
        try:
            while True:
                # No await between this look and leaving the set: a loss that comes
                # after it starts a new task.
                waiting = active.progress.awaiting_placement() if active.progress else []
                if not waiting or is_over(active.row) or self.agent.active.get(wf) is not active:
                    return
                await self._replace(active, waiting[0])
        finally:
            self._running.discard(wf)
            self._certificates.pop(wf, None)
            if is_over(active.row) or self.agent.active.get(wf) is not active:
                self._last_round.pop(wf, None)  # no round of it will come again here

    async def _first_free_round(self, wf: str, after: int, epoch: int) -> int | None:
        """A round number this workflow never used: in the coordinator epoch's own range,
        above the committed round, above every re-placement round of this life, and with
        no decision on record. None when the epoch's range is used up."""
        rounds = round_range(epoch)
        n = max(after, self._last_round.get(wf, 0), await recorded.last_recorded(
            self.agent.store, wf), rounds.start - 1) + 1
        while n in rounds and await self.agent.store.get_decision(wf, n) is not None:
            n += 1
        return n if n + self.agent.config.negotiation.max_rounds <= rounds.stop else None

    def _placer(self, spec: spec_pb2.WorkflowSpec, active: Active, step_id: str,
                lost: set[str]):
        a = self.agent
        fixed = {s.id: s.domain for s in active.progress.steps.values()
                 if s.domain and s.id != step_id}

        def placer(excluded):
            refused = {k: set(v) for k, v in excluded.items()}
            refused.setdefault(step_id, set()).update(lost)
            full = place(spec, placement_candidates(a), coordinator=a.domain, excluded=refused,
                         fixed=fixed)
            if step_id in full.assignment:
                return _OneStep({step_id: full.assignment[step_id]})
            return _OneStep(unplaceable={step_id: full.unplaceable.get(
                step_id, "no eligible domain")})

        return placer

    async def _replace(self, active: Active, step_id: str) -> None:
        a = self.agent
        row = active.row
        spec = spec_pb2.WorkflowSpec.FromString(row.spec)
        step = active.progress.steps[step_id]
        lost = step.lost_to
        started = active.progress.may_have_started(step_id)
        certificate = None
        if row.epoch > 0:  # a successor: its PREPAREs carry the proof of its epoch
            # A fresh majority only (core/workflow/round_mandate.py): cut off from the holders
            # of a later epoch, we would place a step its coordinator places too.
            certificate, why_not = await a.takeovers.certificates.fresh_certificate(
                row.id, a.config.negotiation.lease_s)
            if is_over(row) or a.active.get(row.id) is not active \
                    or row.coordinator != a.domain:
                return  # ended, or our epoch is over: the later coordinator places it
            if certificate is None or certificate.epoch != row.epoch:
                await self._failed(active, step_id, lost, started, why_not or (
                    f"no certificate of coordinator epoch {row.epoch}"))
                return
        else:  # the original: cut off, a successor elected meanwhile would place it too
            place_now, why_not = await a.takeovers.certificates.origin_mandate(
                row.id, a.config.negotiation.lease_s)
            if is_over(row) or a.active.get(row.id) is not active \
                    or row.coordinator != a.domain:
                return  # ended, or epoch 0 is over: the later coordinator places it
            if not place_now:
                await self._failed(active, step_id, lost, started, why_not)
                return
        if row.id not in self._last_round:  # no round of it yet in this life
            await self._abort_cut_short(active, certificate)
        first = await self._first_free_round(row.id, row.round, row.epoch)
        if first is None:
            await self._failed(active, step_id, lost, started,
                               f"the rounds of coordinator epoch {row.epoch} are used up")
            return
        self._certificates[row.id] = certificate
        neg = a.config.negotiation
        core = Coordinator(row.id, placer=self._placer(spec, active, step_id,
                                                       {*step.replaced_from, lost}),
                           max_rounds=neg.max_rounds, prepare_timeout_s=neg.prepare_timeout_s,
                           first_round=first)
        log.info("%s: placing step %s again (lost with domain %s), from round %d", row.id,
                 step_id, lost, first)
        await a.store.apply([recorded.begun_statement(row.id, first, first + neg.max_rounds - 1,
                                                      step_id)])
        finished = await self._drive(active, spec, core, step_id)
        self._last_round[row.id] = max(core.round, first)
        await a.store.apply([recorded.ended_statement(row.id, first)])  # decided, each round
        if finished is None or finished.cancelled:
            return  # the workflow ended meanwhile: nothing to place
        if finished.committed:
            new = finished.placement[step_id]
            a.metrics.steps_replaced.labels("replaced").inc()
            log.warning("%s: step %s placed again on %s (lost with domain %s), round %d",
                        row.id, step_id, new, lost, finished.round)
            return
        await self._failed(active, step_id, lost, started, finished.reason)

    async def _abort_cut_short(self, active: Active,
                               certificate: peer_pb2.EpochCertificate | None) -> None:
        """The re-placement rounds a restart cut short (recorded open): each with no
        decision is decided ABORT, so a candidate that holds a YES for it and asks is
        answered and releases its slots (the step is placed again in a new round, numbered
        above them). No COMMIT can have left: a decision is on disk before it is sent."""
        a = self.agent
        wf = active.row.id
        for first, last, step_id in await recorded.cut_short(a.store, wf):
            statements = []
            for round_ in range(first, last + 1):
                decision = peer_pb2.Decision(workflow_id=wf, round=round_, coordinator=a.domain,
                                             outcome=peer_pb2.OUTCOME_ABORT, reason=CUT_SHORT)
                if certificate is not None:  # a successor's: the proof of its epoch
                    decision.epoch_certificate.CopyFrom(certificate)
                raw = a.seal("", decision=decision).SerializeToString()
                statements += [a.store.decision_statement(wf, round_, "ABORT", raw),
                               a.audit.decision(wf, round_, "ABORT", raw, CUT_SHORT)]
            changed = await a.store.apply([*statements, recorded.ended_statement(wf, first)])
            log.warning("%s: re-placement rounds %d-%d of step %s were cut short by a restart;"
                        " %d without a decision aborted", wf, first, last, step_id,
                        sum(changed[0:-1:2]))

    async def _failed(self, active: Active, step_id: str, lost: str, started: bool,
                      why: str) -> None:
        a = self.agent
        reason = not_replaced_reason(lost, started, why,
                                     active.progress.steps[step_id].lost_as)
        a.metrics.steps_replaced.labels("failed").inc()
        log.warning("%s: step %s lost with domain %s not placed again: %s", active.row.id,
                    step_id, lost, why)
        if active.progress.replacement_failed(step_id, reason) \
                and not await self._after_progress(active):
            await a.save(active)

    async def _drive(self, active: Active, spec: spec_pb2.WorkflowSpec, core: Coordinator,
                     step_id: str) -> Finished | None:
        """Run one re-placement core to its end: its PREPAREs, votes, decisions."""
        a = self.agent
        row = active.row
        votes: asyncio.Queue[VoteIn | object] = asyncio.Queue()
        envelopes: dict[int, peer_pb2.Envelope] = {}
        calls: list[asyncio.Task] = []
        finished: Finished | None = None
        core.start(a.now())
        self._drives[row.id] = votes
        try:
            async with asyncio.TaskGroup() as tg:
                while finished is None:
                    for action in core.next_actions():
                        if isinstance(action, SendPrepare):
                            calls.append(tg.create_task(
                                self._prepare(active, spec, action, votes)))
                        elif isinstance(action, PersistDecision):
                            envelopes[action.round] = await self._persist(
                                active, spec, step_id, action)
                        elif isinstance(action, SendDecision):
                            self._announce(active, action.domain, envelopes.get(action.round))
                        elif isinstance(action, Finished):
                            finished = action
                    if finished is not None:
                        break
                    if core.phase is Phase.PREPARING and (
                            is_over(row) or a.active.get(row.id) is not active):
                        core.cancel(a.now(), "the workflow ended")
                        continue
                    vote = await self._next(row.id, core.get_timer(), votes)
                    if vote is None:
                        core.handle_timer(a.now())
                        continue
                    if vote is ENDED:
                        continue  # looked at on top: a round in PREPARING is cancelled
                    try:
                        core.receive_vote(a.now(), vote)
                    except ProtocolError as e:
                        log.warning("%s: %s", row.id, e)
                for call in calls:  # late votes can only be for a decided round
                    call.cancel()
        finally:
            self._drives.pop(row.id, None)
            for call in calls:
                call.cancel()
        if finished is not None and finished.committed:
            self._tell_others(active, step_id, finished, envelopes.get(finished.round))
        return finished

    async def _next(self, workflow_id: str, timer: float | None,
                    votes: asyncio.Queue) -> object | None:
        """The next vote (or ENDED) of a round, or None when its core's timer came first
        (None: the core has no deadline, so only news ends the wait). Counted."""
        wait = None if timer is None else max(0.0, timer - self.agent.now())
        self.parked[workflow_id] = timer
        try:
            async with asyncio.timeout(wait):  # no task per wait, unlike wait_for
                return await votes.get()
        except TimeoutError:
            return None
        finally:
            self.parked.pop(workflow_id, None)
            self.wakeups += 1
            self._counter.inc()

    async def _prepare(self, active: Active, spec: spec_pb2.WorkflowSpec,
                       action: SendPrepare, votes: asyncio.Queue) -> None:
        a = self.agent
        row = active.row
        # The coordinator that admitted the workflow has the signed spec in its row; a
        # successor kept it with its YES to the committed round (runtime.votes).
        stored = row.submission or await stored_submission(a, row.id, row.round)
        request = peer_pb2.PrepareRequest(
            workflow_id=row.id, round=action.round, spec=spec, steps=action.steps,
            placement=action.placement, coordinator_endpoint=a.endpoint,
            lease_ms=int(a.config.negotiation.lease_s * 1000),
            submission=attached(stored, row.spec))
        certificate = self._certificates.get(row.id)
        if certificate is not None:
            request.epoch_certificate.CopyFrom(certificate)
        await send_prepare(a, row, action, request, votes)

    async def _persist(self, active: Active, spec: spec_pb2.WorkflowSpec, step_id: str,
                       action: PersistDecision) -> peer_pb2.Envelope:
        """Record the round's decision (write-once). A COMMIT is written with the step's
        new placement here, in one write: a restarted coordinator finds both or neither."""
        a = self.agent
        row = active.row
        decision = peer_pb2.Decision(
            workflow_id=row.id, round=action.round, coordinator=a.domain,
            outcome=peer_pb2.OUTCOME_COMMIT if action.commit else peer_pb2.OUTCOME_ABORT,
            placement=action.placement, spec=spec, reason=action.reason,
            votes=[peer_pb2.Envelope.FromString(v) for v in action.votes],
            endpoints={d: a.endpoint_of(d, row.endpoints) or ""
                       for d in set(action.placement.values())})
        certificate = self._certificates.get(row.id)
        if certificate is not None:
            decision.epoch_certificate.CopyFrom(certificate)
        step = active.progress.steps[step_id]
        if action.commit:
            new = action.placement[step_id]
            rep = decision.replacement
            rep.step_id, rep.lost_domain = step_id, step.lost_to
            rep.coordinator_epoch, rep.coordinator = row.epoch, a.domain
            rep.placement.update({s: d for s, d in row.placement.items() if d})
            rep.placement.update({s.id: s.domain for s in active.progress.steps.values()
                                  if s.domain})
            rep.placement[step_id] = new
            for need in step.needs:
                known = active.progress.steps[need]
                if known.state is StepState.SUCCEEDED:
                    rep.inputs_json[need] = values.dumps(known.outputs)
        raw = a.seal("", decision=decision).SerializeToString()
        outcome = "COMMIT" if action.commit else "ABORT"
        key = (row.id, action.round)
        statements = [a.store.decision_statement(*key, outcome, raw),
                      a.audit.decision(*key, outcome, raw, action.reason)]
        if action.commit and not is_over(row):
            apply_replacement(active, decision.replacement, action.round,
                              dict(decision.endpoints))
            counts = await a.save(active, also=statements)
        else:
            counts = await a.store.apply(statements)
        if not counts[0]:  # pragma: no cover - a fresh round number holds no decision
            log.error("%s round %d: decision cell already held one", row.id, action.round)
        a.metrics.decisions.labels(outcome.lower()).inc()
        return peer_pb2.Envelope.FromString(raw)

    def _announce(self, active: Active, domain: str,
                  envelope: peer_pb2.Envelope | None) -> None:
        if envelope is not None:
            self.agent.spawn(self._deliver(active, domain, envelope),
                             name=f"re-placement decision {active.row.id} to {domain}")

    async def _deliver(self, active: Active, domain: str, envelope: peer_pb2.Envelope) -> None:
        """The signed decision to `domain`, until it acknowledges (or the lease)."""
        a = self.agent
        if domain == a.domain:
            ack = await a.participation.decide(a.domain, envelope)
        else:
            ack = await a.deliver(domain, "Decide", endpoints=active.row.endpoints,
                                  give_up_after=a.config.negotiation.lease_s,
                                  decision_notice=peer_pb2.DecisionNotice(decision=envelope))
        if ack is not None and not ack.ok:
            log.warning("%s refused the re-placement decision of %s: %s", domain,
                        active.row.id, ack.error)

    def _tell_others(self, active: Active, step_id: str, finished: Finished,
                     envelope: peer_pb2.Envelope | None) -> None:
        """The COMMIT to every other domain of the workflow (the new one has it from the
        core): they merge the new placement, and send the results it needs again. If the
        workflow ended while the round was deciding, the new domain hears the end."""
        a = self.agent
        row = active.row
        new = finished.placement[step_id]
        if is_over(row):
            a.spawn(a.deliver(new, "CancelWorkflow", endpoints=row.endpoints,
                              give_up_after=a.config.negotiation.lease_s,
                              cancel=end_notice_of(row)),
                    name=f"end of {row.id} to {new}")
            return
        if envelope is None:
            return
        gone = set(active.progress.steps[step_id].replaced_from)
        for domain in sorted(set(row.placement.values()) - gone - {new, a.domain, ""}):
            self._announce(active, domain, envelope)
