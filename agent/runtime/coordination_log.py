"""The coordinator's log: answers to in-doubt participants, its collection, and
recovery after a restart.

A class of its own, built by Coordination (agent/runtime/coordination.py), which
hands it the live cores, the decision envelopes and itself as the Driver that
drives a restored core: a
participant whose lease ran out asks the coordinator; the answer comes from the
live core when there is one, else from the log — a decision on record, or
presumed abort, written first. A COMMIT's certificate leaves the log once every
participant has it; retention then compacts ended workflows no peer may still ask
about (compact_ended). After a restart, `recover` finishes what the log says: Paxos
Commit rounds get their core rebuilt and driven again; classic rounds get their
COMMIT re-sent or, undecided, presumed aborted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from fedorch.core.negotiation.coordinator import Coordinator, Refusal, RoundRecord
from fedorch.core.negotiation.log_answer import LogAnswer, after_presumed_cell, answer_from_log
from fedorch.core.negotiation.messages import ABORT, AnswerStatus, Ballot
from fedorch.core.workflow.lifecycle import TERMINAL_NAMES, Aborted, Committed, WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.core.workflow.retention import (
    compactable,
    forgotten_here,
    leftovers_compactable,
)
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.context import Active
from fedorch.runtime.convert import advance, is_over, state_of
from fedorch.runtime.store import compaction
from fedorch.runtime.store.store import Statement, WorkflowRow
from fedorch.runtime.wakeups import Sleep

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext
    from fedorch.runtime.coordination_decisions import Decisions

log = logging.getLogger("fedorch.coordinator")

NO_ANSWER = object()  # a query the live core refused (e.g. a round it never had)
SWEEP_BATCH = 100  # kept certificates offered again per pass, oldest workflows first
COMPACT_BATCH = 200  # ended workflows deleted per transaction (a pass runs a few)
COMPACT_BATCHES_PER_PASS = 10  # so one pass never holds the store for long
LEFTOVER_SCAN = 2000  # workflows with leftover records looked at per pass


def ran_a_step(active: Active) -> set[str]:
    """The participants with a step that succeeded: each learned the COMMIT to run it."""
    if active.progress is None:
        return set()
    return {s.domain for s in active.progress.steps.values() if s.state is StepState.SUCCEEDED}


class Driver(Protocol):
    """What the log uses of Coordination: a core rebuilt from its round record, driven
    again; and the outcome path."""

    def restored_core(self, record: RoundRecord, row: WorkflowRow,
                      spec: spec_pb2.WorkflowSpec) -> Coordinator: ...

    def drive_restored(self, active: Active, spec: spec_pb2.WorkflowSpec,
                       core: Coordinator) -> None: ...

    async def after_progress(self, active: Active,
                             also: Sequence[Statement] = ()) -> bool: ...


class DecisionLog:
    """The coordinator's log. `cores`: the live cores by workflow (Coordination's; a
    query goes to one first), `envelopes`: the decisions of rounds still driven."""

    def __init__(self, agent: AgentContext, driver: Driver,
                 cores: dict[str, tuple[Coordinator, asyncio.Queue]],
                 envelopes: dict[tuple[str, int], peer_pb2.Envelope],
                 decisions: Decisions) -> None:
        self.agent = agent
        self._driver = driver
        self._cores = cores
        self._decisions = envelopes
        self.decisions = decisions
        self.sweep_sleep = Sleep("certificate sweep", agent.metrics.loop_wakeups, agent.now)
        # Workflows that ended or were learned here so far: one since the last look at
        # the store means work for the sweep.
        self._settlements = 0
        agent.on_settled.append(self._settled)
        # Where the last retention pass stopped paging (None: start from the oldest): the
        # next pass goes on from there, so candidates kept for another reason never hide
        # newer due ones, however many they are.
        self._ended_cursor: compaction.Cursor | None = None
        self._leftover_cursor = ""

    # ---- decision queries (in-doubt participants) ---------------------------------

    async def answer_query(self, workflow_id: str, round_: int) -> peer_pb2.DecisionAnswer:
        """Answer from the live core when there is one (after what it says is on disk),
        else from the log: a decision on record, or presumed abort, written first."""
        entry = self._cores.get(workflow_id)
        if entry is not None:
            future = asyncio.get_running_loop().create_future()
            entry[1].put_nowait(("query", round_, future))
            answer = await future
            if answer is NO_ANSWER:
                return peer_pb2.DecisionAnswer(workflow_id=workflow_id, known=False)
            if answer is not None and answer.status in (AnswerStatus.UNKNOWN,
                                                        AnswerStatus.NOT_PREPARED):
                return peer_pb2.DecisionAnswer(workflow_id=workflow_id, known=False)
            # DECIDED: its record is on disk now; the log has it.
        return await self._answer_from_log(workflow_id, round_)

    async def _answer_from_log(self, workflow_id: str,
                               round_: int) -> peer_pb2.DecisionAnswer:
        """The log's answer (agent.negotiation.log_answer has the rules)."""
        a = self.agent
        held = self._decisions.get((workflow_id, round_))
        collected = False
        if held is None:
            stored = await a.store.get_decision(workflow_id, round_)
            if stored is not None and stored[1]:
                held = peer_pb2.Envelope.FromString(stored[1])
            collected = stored is not None and not stored[1]
        row = await a.store.get_workflow(workflow_id)
        if row is None and held is None and not collected and forgotten_here(
                workflow_id, a.domain, await compaction.horizon_ms(a.store)):
            # Retention removed it: it may have committed, so nothing is presumed; the
            # asker was silent past retention (docs/retention.md).
            log.warning("%s round %d: asked about a workflow retention removed; not"
                        " presumed aborted", workflow_id, round_)
            return peer_pb2.DecisionAnswer(workflow_id=workflow_id, known=False)
        over = row is not None and is_over(row)
        verdict = answer_from_log(held is not None, collected, round_,
                                  row.round if row is not None else None, over)
        if verdict is LogAnswer.PRESUME_ABORT:
            cell, _ = await a.store.propose(workflow_id, round_, "ABORT",
                                            wire.value_bytes(ABORT))
            verdict = after_presumed_cell(cell)
            if verdict is LogAnswer.DECIDED:
                held = await self._presume_abort(workflow_id, round_, {},
                                                  "no decision on record")
        answer = peer_pb2.DecisionAnswer(workflow_id=workflow_id,
                                         known=verdict is LogAnswer.DECIDED)
        if verdict is LogAnswer.DECIDED:
            answer.decision.CopyFrom(held)
        if over and verdict in (LogAnswer.DECIDED, LogAnswer.FORGOTTEN):
            answer.final_state, answer.final_reason = state_of(row), row.reason or ""
        return answer

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
        # Not kept in memory: no live core drops it, and the log reads it from disk.
        return peer_pb2.Envelope.FromString(raw)

    # ---- collecting the log ----------------------------------------------------------

    def acks_from_results(self, active: Active, core: Coordinator) -> None:
        """A participant whose step succeeded learned the COMMIT first: count it."""
        now = self.agent.now()
        for domain in sorted(ran_a_step(active)):
            core.receive_ack(now, domain, core.round)

    async def collect(self, active: Active, core: Coordinator) -> None:
        """Presumed abort's rule for the log: a COMMIT record is kept until every
        participant has acknowledged it; then its certificate is dropped, with the
        workflow's next save (or at once if it has ended). ABORT records are kept:
        with no record the answer would be ABORT anyway, so dropping one saves little."""
        a = self.agent
        for key in core.collectable():
            value = core.decision(key[1])
            if value is None or not value.commit:
                continue
            core.collected(key)
            self._decisions.pop(key, None)
            if key in active.collected:  # its end took it (everyone ran a step)
                continue
            # With the next save of a running workflow; an ended one has made its last
            # save (its end may still be on its way to disk, without this key).
            if a.active.get(key[0]) is active and not is_over(active.row):
                active.collect.append(key)
            else:
                await a.store.collect_commit(*key)
                a.metrics.collected_decisions.inc()

    async def sweep_certificates(self) -> int:
        """Offer the COMMIT again to the participants of ended workflows whose record
        outlived the core (a participant was silent past ACK_GRACE_S, or the agent
        restarted): each answers with an Ack, and once all have, the certificate goes.
        One notice per participant and pass; a participant still silent is asked again
        next pass, so a domain gone for good costs one call per pass, and its record is
        kept (keeping is what presumed abort asks). Returns how many were collected."""
        a = self.agent
        collected = 0
        for key in await a.store.kept_certificates(TERMINAL_NAMES, SWEEP_BATCH):
            if key[0] in self._cores or key[0] in a.active:
                continue  # its core still collects it
            row = await a.store.get_workflow(key[0])
            stored = await a.store.get_decision(*key)
            if row is None or stored is None or not stored[1]:
                continue
            envelope = peer_pb2.Envelope.FromString(stored[1])
            placement = peer_pb2.Body.FromString(envelope.body).decision.placement
            acks = await asyncio.gather(*(self._offer_commit(row, domain, envelope)
                                          for domain in sorted(set(placement.values()))))
            if all(acks):
                await a.store.collect_commit(*key)
                a.metrics.collected_decisions.inc()
                collected += 1
                log.info("%s round %d: every participant has the COMMIT; certificate"
                         " collected", *key)
        a.metrics.kept_certificates.set(await a.store.count_kept_certificates())
        return collected

    async def _offer_commit(self, row: WorkflowRow, domain: str,
                            envelope: peer_pb2.Envelope) -> bool:
        """The COMMIT of an ended workflow, offered again to `domain`, after its end. A
        participant that never learned the COMMIT (cut off after its YES, its steps
        placed elsewhere meanwhile) would set the workflow up from it and start its
        steps: the COMMIT is contact with the coordinator, but says nothing of whether
        the steps are still placed there, and their placement epoch fences only what
        they report, not their start. With the end answered first, the workflow is over
        there, and a COMMIT of a workflow over starts nothing (Participation._set_up).
        Unanswered: no COMMIT this pass (the next pass asks again)."""
        if domain != self.agent.domain \
                and await self.decisions.end_notice(row, domain) is None:
            self.agent.metrics.commit_offers.labels("unanswered").inc()
            return False
        ack = await self.decisions.commit_notice(row, domain, envelope)
        answer = "unanswered" if ack is None else "acknowledged" if ack.ok else "refused"
        self.agent.metrics.commit_offers.labels(answer).inc()
        return answer == "acknowledged"

    async def compact_ended(self) -> int:
        """Retention: delete ended workflows beyond `retention` that no peer may still ask
        about (fedorch.core.workflow.retention decides; docs/retention.md says why), in
        transactions of COMPACT_BATCH. Runs after the certificate sweep, which is what
        lets a COMMIT's workflow become compactable. Returns how many workflows went."""
        a = self.agent
        keep = a.config.retention
        removed: dict[str, int] = {}
        cursor = self._ended_cursor
        for _ in range(COMPACT_BATCHES_PER_PASS):
            now_ms = a.now_ms()
            candidates, cursor = await compaction.ended_candidates(
                a.store, TERMINAL_NAMES, cutoff_ms=now_ms - int(keep.keep_ended_s * 1000),
                keep_newest=keep.max_ended_workflows, limit=COMPACT_BATCH, after=cursor)
            live = set(self._cores) | set(a.active)  # held in memory: still acted on
            chosen = compactable(
                [c for c in candidates if c.workflow_id not in live], now=now_ms / 1000.0,
                keep_ended_s=keep.keep_ended_s, max_ended_workflows=keep.max_ended_workflows,
                limit=COMPACT_BATCH, settle_s=2 * a.config.negotiation.replay_window_s)
            if chosen:
                a.forget(chosen)
                for table, count in (await compaction.compact(
                        a.store, chosen, TERMINAL_NAMES, a.domain)).items():
                    removed[table] = removed.get(table, 0) + count
                    a.metrics.compacted.labels(table).inc(count)
            if cursor is None:  # no due candidate past this page: from the oldest next time
                break
        self._ended_cursor = cursor
        # Records of workflows this agent has no row of (e.g. as an extra acceptor).
        found, self._leftover_cursor = await compaction.leftovers(
            a.store, LEFTOVER_SCAN, after=self._leftover_cursor)
        chosen = leftovers_compactable(
            found, now_ms=a.now_ms(),
            keep_ended_s=keep.keep_ended_s, settle_s=2 * a.config.negotiation.replay_window_s,
            limit=COMPACT_BATCH)
        for table, count in (await compaction.compact_leftovers(a.store, chosen)).items():
            removed[table] = removed.get(table, 0) + count
            a.metrics.compacted.labels(table).inc(count)
        if removed:
            log.info("retention: compacted %d ended workflows (%s)", removed.get("workflows", 0),
                     ", ".join(f"{n} {table}" for table, n in sorted(removed.items())))
        return removed.get("workflows", 0)

    def _settled(self, workflow_id: str) -> None:
        """A workflow ended (or its decision was learned) here: the sweep has work again,
        a pass certificate_sweep_s from now if it was asleep with none."""
        self._settlements += 1
        if self.sweep_sleep.parked and self.sweep_sleep.deadline is None:
            self.sweep_sleep.wake()

    async def _sweep_has_work(self) -> bool:
        """Is anything on disk that a later pass may act on: a kept COMMIT certificate,
        an ended workflow (retention), or records of a workflow without a row?"""
        a = self.agent
        if await a.store.count_kept_certificates():
            return True
        states = tuple(sorted(TERMINAL_NAMES))
        if await a.store.select(
                f"SELECT 1 FROM workflows WHERE state IN ({', '.join('?' * len(states))})"
                " LIMIT 1", states):
            return True
        found, _ = await compaction.leftovers(a.store, 1)
        return bool(found)

    async def sweep_loop(self) -> None:
        """Run sweep_certificates, then compact_ended, every
        negotiation.certificate_sweep_s while there is something they may act on; with
        nothing, asleep until a workflow ends or a decision is learned here (no tick)."""
        a = self.agent
        period = a.config.negotiation.certificate_sweep_s
        seen = self._settlements
        work = await self._sweep_has_work()
        next_pass = a.now() + period
        while not a.stopping:
            if a.now() >= next_pass:
                seen = self._settlements
                try:
                    await self.sweep_certificates()
                    await self.compact_ended()
                    work = await self._sweep_has_work()
                except Exception as e:  # a failed pass is retried by the next one
                    work = True
                    a.task_failed("certificate sweep", e)  # logged, counted (or fatal)
                next_pass = a.now() + period
            resting = not work and self._settlements == seen
            await self.sweep_sleep.until(None if resting else next_pass)
            if resting:  # woken by work after a rest: its first pass a whole period on
                next_pass = a.now() + period
            work = work or self._settlements != seen

    # ---- recovery -------------------------------------------------------------------

    async def recover(self) -> None:
        """Finish what the log says. Paxos Commit rounds: the core is rebuilt from its
        round record (Coordinator.restore) and driven again. Classic rounds: resend
        commits, presume abort for undecided rounds."""
        a = self.agent
        for row in await a.store.list_workflows():
            if row.coordinator != a.domain or is_over(row) \
                    or wire.coordinator_of(row.id) != a.domain:  # a takeover's: nothing to decide
                continue
            if row.acceptors:
                await self._restore(row)
                continue
            commit = await a.store.get_commit(row.id)
            if commit is not None:
                round_, raw = commit
                if raw:  # else collected: every participant has it
                    self._decisions[(row.id, round_)] = peer_pb2.Envelope.FromString(raw)
                active = a.active.get(row.id)
                if active is None:  # crashed between the decision and the state change
                    advance(row, Committed())
                    active = Active(row)
                    a.active[row.id] = active
                    a.participation.ensure_progress(
                        active, spec_pb2.WorkflowSpec.FromString(row.spec))
                    await a.participation.fold_in_results(active)
                    await a.save(active)
                if raw:
                    for domain in sorted(set(row.placement.values())):
                        self.decisions.send(row, domain, round_)
                await self._driver.after_progress(active)
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
            advance(row, Aborted("coordinator restarted before a decision: presumed abort"))
            await a.store.save_workflow(row)
            a.metrics.workflows.labels("ABORTED").inc()

    async def _restore(self, row: WorkflowRow) -> None:
        """A Paxos Commit round on record: rebuild its core and drive it again."""
        a = self.agent
        key = (row.id, row.round)
        proposal = await a.store.get_proposal(*key)
        stored = await a.store.get_decision(*key)
        decision = None
        collected = stored is not None and stored[0] == "COMMIT" and not stored[1]
        if stored is not None and not collected:
            envelope = peer_pb2.Envelope.FromString(stored[1])
            self._decisions[key] = envelope
            decision = ABORT
            if stored[0] == "COMMIT":
                body = peer_pb2.Body.FromString(envelope.body)  # our own, signed by us
                decision = wire.value_of(peer_pb2.PaxosValue(
                    outcome=peer_pb2.OUTCOME_COMMIT, votes=body.decision.votes), key, None)
        ballot = await a.store.get_ballot(*key)
        record = RoundRecord(
            row.round, dict(row.placement), tuple(row.acceptors),
            proposal=wire.value_from_bytes(proposal[1], key) if proposal else None,
            decision=decision,
            committed=state_of(row) is WorkflowState.RUNNING or collected
            or (decision is not None and decision.commit),
            finished=state_of(row) is not WorkflowState.NEGOTIATING,
            refusals=tuple(Refusal(r["round"], r["domain"], tuple(r["steps"]), r["reason"])
                           for r in row.refusals),
            ballot=Ballot(*ballot) if ballot else None)
        spec = spec_pb2.WorkflowSpec.FromString(row.spec)
        core = self._driver.restored_core(record, row, spec)
        active = a.active.get(row.id)
        if active is None:
            active = a.active[row.id] = Active(row)
        log.info("%s round %d restored: %s", row.id, row.round, core.phase.value)
        self._driver.drive_restored(active, spec, core)
        if active.progress is not None:
            await self._driver.after_progress(active)
