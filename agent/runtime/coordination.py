"""The coordinator half of an agent: submissions, admission rounds, outcomes.

This is the I/O shell around agent.negotiation.coordinator.Coordinator: it
runs the core's actions in order (persist before announce), turns RPC replies
into votes, and keeps one task per workflow whose core still has work: its
admission, then (Paxos Commit) resending COMMIT until every participant has it.

With `negotiation.commit: paxos` the core runs in consensus mode: each round's
PREPARE carries its acceptors (this agent and participants up to
`negotiation.max_acceptors`, and ALIVE members up to three); on all YES the proposal cell is compare-and-set to COMMIT before
Accept(ballot 0) goes to the acceptors (ours directly, the others through the
Paxos RPC, runtime.consensus); COMMIT is announced only once the core says
a majority accepted it. An ABORT is set in the cell and announced at once.

Each workflow's core is driven by a CoreDriver (runtime.coordination_driver), which
sleeps until the core's timer or an event, never on a tick: the end of a workflow
reaches it as an event (`_settled`, from AgentContext's on_settled hooks).
Recording and announcing decisions is in runtime.coordination_decisions
(Decisions); answers to in-doubt participants and recovery after a restart are
in runtime.coordination_log (DecisionLog); what a lost domain's steps become, in
runtime.coordination_loss (DomainLoss); when a workflow is over and its end, in
runtime.coordination_outcomes (Outcomes). Each is a class of its own built here and
given what it uses; the entry points other shells call stay here, delegating.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING

from fedorch.core.identity.clients import DOMAIN_PRINCIPAL_PREFIX
from fedorch.core.identity.submission import attached, detached, sign_spec
from fedorch.core.negotiation.coordinator import (
    ConsensusOptions,
    Coordinator,
    Finished,
    PersistBallot,
    PersistDecision,
    PersistProposal,
    Phase,
    RoundRecord,
    Send,
    SendDecision,
    SendPrepare,
)
from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.core.negotiation.messages import Key, TxInfo
from fedorch.core.workflow import fanout
from fedorch.core.workflow.lifecycle import (
    Aborted,
    Cancelled,
    Event,
    Submitted,
    WorkflowState,
)
from fedorch.core.workflow.placement import place
from fedorch.core.workflow.spec import check_no_expansion_fields, validate_spec
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2, spec_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime import telemetry
from fedorch.runtime.candidates import placement_candidates
from fedorch.runtime.consensus import BACKOFF_S, DECISION_RESEND_S, RESEND_S
from fedorch.runtime.context import Active
from fedorch.runtime.convert import advance, is_over
from fedorch.runtime.coordination_decisions import Decisions, refusal_rows
from fedorch.runtime.coordination_driver import (
    CANCEL,
    ENDED,
    CoreDriver,
    ProposeAndAccept,
)
from fedorch.runtime.coordination_log import DecisionLog
from fedorch.runtime.coordination_loss import DomainLoss
from fedorch.runtime.coordination_outcomes import Outcomes
from fedorch.runtime.prepares import send_prepare
from fedorch.runtime.store.store import Statement, Store, WorkflowRow

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.coordinator")


class Coordination:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        # Workflows whose core is being driven (admission, then COMMIT resends): each
        # with the core's event queue, and its driver.
        self._cores: dict[str, tuple[Coordinator, asyncio.Queue]] = {}
        self.drivers: dict[str, CoreDriver] = {}
        self._decisions: dict[tuple[str, int], peer_pb2.Envelope] = {}
        self.decisions = Decisions(agent, self._decisions)  # recorded, then announced
        self.outcomes = Outcomes(agent, self._decisions)  # over yet? and the end
        # Answers to in-doubt participants, collection, recovery after a restart.
        self.decision_log = DecisionLog(agent, self, self._cores, self._decisions,
                                        self.decisions)
        self._started: dict[str, float] = {}
        # What a lost domain's steps become, and the fence against its late reports.
        self.loss = DomainLoss(agent, self.outcomes.after_progress)
        # Every end here goes through AgentContext.finished, which tells these hooks: the
        # driver of a committed workflow waits for its end instead of looking for it.
        agent.on_settled.append(self._settled)

    def _consensus(self) -> ConsensusOptions:
        """Paxos Commit options: at most negotiation.max_acceptors acceptors; extra ones
        (when the participants and this agent are fewer than three) are ALIVE members,
        in random order."""
        a = self.agent

        def extras() -> list[str]:
            alive = [m.domain for m in a.membership.members()
                     if m.state == "ALIVE" and m.domain and m.domain != a.domain]
            a.rng.shuffle(alive)
            return alive

        return ConsensusOptions(a.domain, a.rng, extras, resend_s=RESEND_S,
                                backoff_s=BACKOFF_S, decision_resend_s=DECISION_RESEND_S,
                                max_acceptors=a.config.negotiation.max_acceptors or 5)

    # ---- the log (runtime.coordination_log) -------------------------------------------

    async def answer_query(self, workflow_id: str, round_: int) -> peer_pb2.DecisionAnswer:
        """An in-doubt participant's question (see DecisionLog.answer_query)."""
        return await self.decision_log.answer_query(workflow_id, round_)

    async def sweep_certificates(self) -> int:
        """Offer kept COMMITs again (see DecisionLog.sweep_certificates)."""
        return await self.decision_log.sweep_certificates()

    async def sweep_loop(self) -> None:
        await self.decision_log.sweep_loop()

    async def recover(self) -> None:
        """Finish what the log says after a restart (see DecisionLog.recover)."""
        await self.decision_log.recover()

    def restored_core(self, record: RoundRecord, row: WorkflowRow,
                      spec: spec_pb2.WorkflowSpec) -> Coordinator:
        """A Paxos Commit core rebuilt from its round record (for DecisionLog)."""
        neg = self.agent.config.negotiation
        return Coordinator.restore(row.id, record, now=self.agent.now(),
                                   placer=self._placer(spec), max_rounds=neg.max_rounds,
                                   prepare_timeout_s=neg.prepare_timeout_s,
                                   consensus=self._consensus())

    def drive_restored(self, active: Active, spec: spec_pb2.WorkflowSpec,
                       core: Coordinator) -> None:
        """Drive a restored core again, as any other (for DecisionLog)."""
        driver = self._driver(active, spec, core, paxos=True)
        self.agent.spawn(self._drive(driver), name=f"restored {active.row.id}")

    # ---- a lost domain (runtime.coordination_loss) --------------------------------------

    def domain_dead(self, domain: str, state: str) -> None:
        """Membership: `domain` is DEAD or LEFT, `state` says which (see
        DomainLoss.domain_dead)."""
        self.loss.domains_dead({domain: state})

    def domains_dead(self, domains: Mapping[str, str]) -> None:
        """Membership's sweep: every member that is DEAD or LEFT, by domain, with that
        state (see DomainLoss.domains_dead)."""
        self.loss.domains_dead(domains)

    def refuse_fenced(self, sender: str, result: peer_pb2.StepResult) -> str | None:
        """Why a step report comes from a placement that is over, or None."""
        return self.loss.refuse_fenced(sender, result)

    # ---- routing from fedorch.runtime.consensus -----------------------------------------

    def route(self, workflow_id: str, msg: object) -> bool:
        """A Promise/Accepted/Reject/Decision for a workflow coordinated here: to its core."""
        entry = self._cores.get(workflow_id)
        if entry is None:
            return False
        entry[1].put_nowait(("paxos", msg))
        return True

    def ack(self, domain: str, key: Key) -> None:
        """`domain` holds the COMMIT of `key`."""
        entry = self._cores.get(key[0])
        if entry is not None:
            entry[1].put_nowait(("ack", domain, key[1]))

    def result_from(self, domain: str, workflow_id: str) -> None:
        """`domain` reported a step of a workflow coordinated here (to its core, which
        counts it as an acknowledgement of the COMMIT)."""
        entry = self._cores.get(workflow_id)
        if entry is not None:
            entry[1].put_nowait(("result", domain))

    def tx_of(self, key: Key) -> TxInfo | None:
        entry = self._cores.get(key[0])
        tx = entry[0].tx() if entry is not None else None
        return tx if tx is not None and tx.key == key else None

    # ---- submit --------------------------------------------------------------------

    async def submit(self, spec: spec_pb2.WorkflowSpec, request_id: str = "",
                     signed: spec_pb2.SignedSpec | None = None) -> str:
        """Validate (SpecError on bad input, nothing stored) and start admission.

        `signed`: the submitter's signed spec, checked by the caller, `spec` parsed from
        its bytes; kept exactly so, since every PREPARE carries it. None (no submitter
        identity): this domain signs the spec as its own principal."""
        a = self.agent
        check_no_expansion_fields(spec, "request")
        validate_spec(spec, "request")
        if signed is None:
            signed = sign_spec(DOMAIN_PRINCIPAL_PREFIX + a.domain, a.signer.sign, spec)
        # Fan-out steps become one instance per eligible domain, once, here: the row keeps
        # the expanded spec and every PREPARE carries it (core/workflow/fanout.py), with
        # the signed spec it was expanded from (kept whole then: its bytes differ).
        expanded = fanout.expand(spec, placement_candidates(self.agent), coordinator=a.domain)
        if expanded is not spec:
            validate_spec(expanded, "request (fan-out steps expanded)")
        spec_bytes = signed.spec if expanded is spec else expanded.SerializeToString(
            deterministic=True)
        submission = detached(signed) if expanded is spec else signed.SerializeToString()
        spec = expanded
        if request_id:
            existing = await a.store.find_by_request_id(request_id)
            if existing is not None:
                return existing.id
        # The id names its coordinator, so any agent can route a status query.
        workflow_id = f"{a.domain}.{a.now_ms():012x}{secrets.token_hex(4)}"
        telemetry.submitted(workflow_id, spec.name)  # the root of the workflow's trace
        now_ms = a.now_ms()
        row = WorkflowRow(
            id=workflow_id, name=spec.name, coordinator=a.domain,
            state=WorkflowState.PENDING.name,
            spec=spec_bytes, request_id=request_id or None,
            created_ms=now_ms, updated_ms=now_ms, submission=submission,
        )
        advance(row, Submitted())
        active = Active(row, fresh=True)
        core = self._new_core(workflow_id, spec)
        core.start(a.now())
        first = core.next_actions()
        # Round 1 is placed before the first write, so that one forced write holds
        # both the submission and the round (its placement and acceptors) that must
        # be on disk before any PREPARE leaves; _act then finds the round saved.
        prepare = next((x for x in first if isinstance(x, SendPrepare)), None)
        if prepare is not None:
            self._note_round(row, core, prepare)
        # Active before its first save, so that the save leaves its status in memory
        # for the watcher the client opens next.
        a.active[workflow_id] = active
        try:
            await a.save(active, also=[a.audit.submitted(workflow_id, signed, request_id)])
        except sqlite3.IntegrityError:
            # A concurrent submit with the same request id won the race: same answer.
            del a.active[workflow_id]  # never saved, never seen
            winner = await a.store.find_by_request_id(request_id)
            if winner is None:
                raise
            return winner.id
        except BaseException:
            del a.active[workflow_id]
            raise
        a.spawn(self._negotiate(active, spec, core, first), name=f"negotiate {workflow_id}")
        return workflow_id

    def _new_core(self, workflow_id: str, spec: spec_pb2.WorkflowSpec) -> Coordinator:
        neg = self.agent.config.negotiation
        membership = self.agent.membership  # patience grows with the fan-out and load
        return Coordinator(
            workflow_id, placer=self._placer(spec), max_rounds=neg.max_rounds,
            prepare_timeout_s=neg.prepare_timeout_s if membership is None else
            membership.prepare_timeout(neg.prepare_timeout_s, len(spec.steps)),
            consensus=self._consensus() if neg.commit != config_pb2.COMMIT_PROTOCOL_2PC else None,
        )

    def _note_round(self, row: WorkflowRow, core: Coordinator, action: SendPrepare) -> None:
        """Put the round a PREPARE belongs to into the row (the caller saves it)."""
        a = self.agent
        row.round, row.placement = action.round, dict(action.placement)
        row.acceptors = list(action.acceptors)
        row.endpoints = {d: a.endpoint_of(d) or "" for d in set(action.placement.values())}
        row.refusals = refusal_rows(core)  # watchers see why a round was redone
        telemetry.round_started(row.id, action.round, action.placement)

    def _placer(self, spec: spec_pb2.WorkflowSpec):
        a = self.agent

        def placer(excluded):
            return place(spec, placement_candidates(self.agent), coordinator=a.domain, excluded=excluded)

        return placer

    # ---- the drivers (runtime.coordination_driver) --------------------------------------

    async def _negotiate(self, active: Active, spec: spec_pb2.WorkflowSpec,
                         core: Coordinator, first: list) -> None:
        """Drive a started core; `first`: the actions its start produced."""
        self._started[active.row.id] = self.agent.now()
        paxos = self.agent.config.negotiation.commit != config_pb2.COMMIT_PROTOCOL_2PC
        await self._drive(self._driver(active, spec, core, paxos=paxos), first)

    def _driver(self, active: Active, spec: spec_pb2.WorkflowSpec, core: Coordinator, *,
                paxos: bool) -> CoreDriver:
        """A driver for `core`, its events routed to it from now on."""
        wf = core.workflow_id
        entry: tuple[Coordinator, asyncio.Queue] = (core, asyncio.Queue())

        def act(action: object, tg: asyncio.TaskGroup, calls: dict) -> Awaitable[None]:
            return self._act(active, spec, core, action, tg, entry[1], calls, paxos)

        def detach() -> None:
            if self._cores.get(wf) is entry:
                del self._cores[wf]
            for round_ in range(1, core.round + 1):  # the log answers from now on
                self._decisions.pop((wf, round_), None)

        driver = CoreDriver(self.agent, self.decision_log, active, core, entry[1], act=act,
                            detach=detach)
        self._cores[wf] = entry
        self.drivers[wf] = driver
        return driver

    async def _drive(self, driver: CoreDriver, first: list | None = None) -> None:
        wf = driver.core.workflow_id
        try:
            await driver.run(first)
        finally:
            if self.drivers.get(wf) is driver:
                del self.drivers[wf]

    def _settled(self, workflow_id: str) -> None:
        """A workflow ended here (or its decision was learned here): its driver, if it
        has one, looks at the end."""
        entry = self._cores.get(workflow_id)
        if entry is not None and workflow_id not in self.agent.active:
            entry[1].put_nowait(ENDED)

    async def _act(self, active, spec, core, action, tg, events, calls, paxos) -> None:
        a = self.agent
        row = active.row
        if isinstance(action, SendPrepare):
            if action.round != row.round:
                # On disk before any PREPARE of the round leaves: a restarted
                # coordinator knows which round (and whom) to presume aborted.
                self._note_round(row, core, action)
                await a.save(active)
            in_flight = calls.get((action.domain, action.round))
            if in_flight is None or in_flight.done():  # a resend waits for the first call
                calls[(action.domain, action.round)] = tg.create_task(
                    self._prepare(active, spec, action, events))
        elif isinstance(action, ProposeAndAccept):
            p = action.proposal
            if not await a.consensus.accept_own(action.accept, Store.proposal_statement(
                    row.id, p.round, "COMMIT", wire.value_bytes(p.value))):
                held = await a.store.get_proposal(row.id, p.round)
                if held is None or held[0] != "COMMIT":  # the core never asks that
                    raise LocalProtocolError(
                        f"{row.id} round {p.round}: proposal cell holds {held and held[0]},"
                        " not COMMIT")
        elif isinstance(action, PersistProposal):
            outcome = "COMMIT" if action.value.commit else "ABORT"
            held, _ = await a.store.propose(row.id, action.round, outcome,
                                            wire.value_bytes(action.value))
            if held != outcome:  # the core never asks twice with different values
                raise LocalProtocolError(
                    f"{row.id} round {action.round}: proposal cell holds {held}, not {outcome}")
        elif isinstance(action, PersistBallot):
            await a.store.save_ballot(row.id, action.key[1], action.ballot.n,
                                      action.ballot.proposer)
        elif isinstance(action, Send):
            a.consensus.send(action.to, action.msg)
        elif isinstance(action, PersistDecision):
            await self.decisions.persist(active, spec, core, action, paxos=paxos)
        elif isinstance(action, SendDecision):
            envelope = self._decisions.get((row.id, action.round))
            if paxos and core.phase is Phase.COMMITTED and envelope is not None:
                # One attempt; the core resends until this participant acknowledges.
                a.spawn(self.decisions.notify_commit(row, action.domain, action.round, envelope,
                                            events, core),
                        name=f"commit {row.id}/{action.round} to {action.domain}")
            else:
                self.decisions.send(row, action.domain, action.round, events)
        elif isinstance(action, Finished):
            await self._finished(active, spec, core, action)

    async def _prepare(self, active: Active, spec, action: SendPrepare, votes) -> None:
        a = self.agent
        row = active.row
        request = peer_pb2.PrepareRequest(
            workflow_id=row.id, round=action.round, spec=spec, steps=action.steps,
            placement=action.placement, coordinator_endpoint=a.endpoint,
            lease_ms=int(a.config.negotiation.lease_s * 1000), acceptors=action.acceptors,
            trace_parent=telemetry.round_parent(row.id), submission=attached(row.submission, row.spec),
        )
        # Paxos Commit: the round signed once, for its PREPAREs, PaxosPrepares and Accepts
        # (acceptors record only rounds their coordinator stated) and for a takeover
        # claimant to show an acceptor that missed it (runtime.round_proofs).
        signed = a.takeovers.proofs.for_prepare(row.id, action.round, action.placement,
                                                action.acceptors)
        if signed is not None:
            request.round_tx.CopyFrom(signed)
        await send_prepare(a, row, action, request, votes)

    async def _finished(self, active: Active, spec, core: Coordinator, fin: Finished) -> None:
        a = self.agent
        row = active.row
        row.refusals = refusal_rows(core)
        telemetry.admission_ended(row.id, "committed" if fin.committed else
                                  "cancelled" if fin.cancelled else "aborted", fin.reason)
        started = self._started.pop(row.id, None)
        if started is not None:
            a.metrics.admission_seconds.observe(a.now() - started)
        if fin.committed:
            if is_over(row):
                return  # every step reported before the core heard its COMMIT was chosen
            # Still NEGOTIATING here: restored from a COMMIT on record.
            if self.decisions.enter_running(active, spec, core, fin.placement):
                await a.participation.fold_in_results(active)
                await a.save(active)
            await self.after_progress(active)
            return
        advance(row, Cancelled(fin.reason) if fin.cancelled else Aborted(fin.reason))
        await a.save(active, also=[a.audit.ended(active)])
        a.metrics.workflows.labels(row.state).inc()
        a.finished(row.id)

    # ---- outcomes (runtime.coordination_outcomes) ---------------------------------------

    async def after_progress(self, active: Active, also: Sequence[Statement] = (),
                             told: str | None = None) -> bool:
        """Is the workflow over now? If so it ends (see Outcomes.after_progress)."""
        return await self.outcomes.after_progress(active, also, told)

    async def end_notice(self, workflow_id: str) -> peer_pb2.CancelNotice | None:
        """The end of a workflow ended here, as its end notice (Outcomes.end_notice)."""
        return await self.outcomes.end_notice(workflow_id)

    async def end_with(self, active: Active, event: Event) -> bool:
        """End a running workflow this agent now coordinates by `event` (a takeover's
        successor that learned the end from a participant), as any end: notices, sagas."""
        return await self.outcomes.end(active, event)

    async def cancel(self, workflow_id: str, reason: str) -> bool:
        """Cancel a workflow coordinated here; False if it is not known here."""
        a = self.agent
        driver = self.drivers.get(workflow_id)
        negotiating = driver is not None and not driver.admitted.is_set()
        if negotiating:
            # The core takes it in order with the votes; its driver says when admission
            # is over (aborted, cancelled, or a COMMIT that could not be taken back).
            driver.events.put_nowait(CANCEL)
            await driver.admitted.wait()
        # Committed (before the cancel, or while a COMMIT being decided could not be
        # taken back): end it like any running workflow.
        active = a.active.get(workflow_id)
        if active is not None and active.row.coordinator == a.domain \
                and await self.outcomes.end(active, Cancelled(f"cancelled: {reason}")):
            return True
        return negotiating or await a.store.get_workflow(workflow_id) is not None
