"""What an operator sees of the node engine's acts: counters, log lines and trace spans.

Theory of operation
-------------------
The agent counts, logs and traces each act it makes. The node engine's acts are made in the Node, which has no I/O, so
they are read here from what leaves it, as the audit log reads them (audit.py):

- `ObservedWrites` wraps the Durable port beside the audit's: once a turn's groups
  are committed, `Observed.written` reads their ops and notes: a new workflow row
  (submitted: the root span), a row whose round changed (a round began), a decision
  record (`fedorch_decisions_total{outcome}`, the round's span ended), a `yes_voted`
  note (`fedorch_votes_total{vote="yes"}`, the vote's span), a row made final by its
  outcome (`fedorch_workflows_finished_total{state}`), and, with tracing on, a result
  of another domain's step newly taken here (the hand-off span). Acts follow ops, and
  the Node writes each of those once, so each is counted and traced once, and only
  once durable.
- `ObservedNode`, a layer around what the driver steps, sees the PREPAREs going in
  and the Ready's NO votes coming out: a NO changes no table (presumed abort), so no
  group tells of it. Each NO is logged ("refused WF round R from
  COORDINATOR: REASON", naming the workflow, so its JSON line carries the workflow
  and trace id: logs.py), counted, and traced; a NO sent again for the same round (a
  PREPARE repeated) is not counted again.
- The step and compensation attempts are traced and counted where they run
  (executors.py).

Spans. No trace context travels in the node engine's messages: each span's id is
derived from what it is (telemetry_sdk.span_id_of: the workflow and, e.g., ("vote",
domain, round)), so the domain that makes a span names its parent without being told
(the vote's parent is ("round", round), the attempt's the vote of its domain in the
committed round, a hand-off's the attempt that produced the result). The layout is
telemetry.py's; a parent span a domain did not export (tracing off there) is missing
from the trace. No span is made twice: each comes from
an act made once (a duplicate id would make two spans one). Nothing here costs
anything but a counter while tracing is off.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from fedorch.core.negotiation.abort_reasons import refusals_text
from fedorch.core.node.inputs import Message
from fedorch.core.node.ready import DELETE, PUT, Ready, Write
from fedorch.core.node.records import PrepareMsg, VoteMsg
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.runtime import telemetry
from fedorch.runtime.node_engine.layer import NodeLayer, Refuse
from fedorch.runtime.ports import Durable

__all__ = ["Observed", "ObservedNode", "ObservedWrites", "step_domain"]

log = logging.getLogger("fedorch.node_engine")

_END_POINTS = frozenset({"workflow outcome", "Finished"})  # as audit.py's
_RAN = frozenset({StepState.SUCCEEDED, StepState.FAILED})  # results an attempt made
REMEMBERED_NOES = 16_384  # (workflow, round) NO votes remembered against repeats


def step_domain(node: Any, wf: str, step: str) -> str:
    """The domain `step` of `wf` is placed on now, as this Node knows it."""
    d = node.state
    moved = d.placements.get(wf, {}).get(step)
    if moved is not None:
        return moved[1]
    row = d.rows.get(wf)
    if row is not None:
        return row.info.placement.get(step, "")
    info = d.info.get((wf, d.committed.get(wf)))
    return info.placement.get(step, "") if info is not None else ""


class Observed:
    """The counters, log lines and spans of the node engine's acts (see the header).
    `metrics`: the Agent's AgentMetrics (their children resolved once here)."""

    def __init__(self, domain: str, node: Any, metrics: Any) -> None:
        self.domain = domain
        self.node = node
        self._votes = {True: metrics.votes.labels("yes"), False: metrics.votes.labels("no")}
        self._decisions = {True: metrics.decisions.labels("commit"),
                           False: metrics.decisions.labels("abort")}
        self._finished = metrics.workflows
        self._noes: OrderedDict[tuple[str, int], None] = OrderedDict()
        # Tracing only: each round open here (workflow -> (round, start ns)), a round
        # aborted whose next move is not known yet (-> (round, start, end, reason)), and
        # the results this Node holds (to tell the ones newly taken).
        self._rounds: dict[str, tuple[int, int]] = {}
        self._seen: dict[str, int] = {}  # the last round of each row written
        self._aborted: dict[str, tuple[int, int, int, str]] = {}
        self._results: dict[tuple[str, str], tuple] = {}  # (workflow, step) -> result

    # ---- durable groups ---------------------------------------------------------------

    def written(self, writes: Sequence[Write]) -> None:
        tracing = telemetry.tracing()
        for w in writes:
            for op in w.ops:
                table = op.table
                if table == "rows" and op.kind == PUT:
                    self._row(w.point, op.key, op.value, tracing)
                elif table == "records" and op.kind == PUT:
                    self._decision(op.key, op.value, tracing)
                elif tracing is not None and table == "results":
                    if op.kind == PUT:
                        self._result(w.point, op.key, op.value, tracing)
                    elif op.kind == DELETE:
                        self._results.pop(op.key, None)
            for note in w.notes:
                if note[0] == "yes_voted":
                    tx = note[1]
                    self._votes[True].inc()
                    if tracing is not None:
                        self._vote_span(tracing, tx.workflow_id, tx.round, True, "")

    def _row(self, point: str, wf: str, row: Any, tracing: Any) -> None:
        if row.state in TERMINAL and point in _END_POINTS:
            self._finished.labels(row.state.name).inc()
            if tracing is not None:
                self._round_over(tracing, wf, "aborted" if row.state is
                                 WorkflowState.ABORTED else "ended")
                self._rounds.pop(wf, None)
                self._seen.pop(wf, None)
            return
        if tracing is None:
            return
        if row.round == 0 and row.state is WorkflowState.NEGOTIATING and not row.finished:
            tracing.derived("fedorch.submit", wf, ("submit",), None,
                            {"fedorch.workflow_name": row.info.spec.name})
        elif row.round > self._seen.get(wf, 0) and not row.finished and not row.committed:
            self._seen[wf] = row.round
            self._round_over(tracing, wf, "redone")
            self._rounds[wf] = (row.round, time.time_ns())

    def _decision(self, key: tuple, value: Any, tracing: Any) -> None:
        self._decisions[bool(value.commit)].inc()
        if tracing is None:
            return
        wf, round_ = key
        opened = self._rounds.get(wf)
        if opened is None or opened[0] != round_:
            return  # decided before a restart: its start is not known here
        del self._rounds[wf]
        if value.commit:
            self._round_span(tracing, wf, round_, opened[1], time.time_ns(), "committed", "")
            return
        core = self.node.coordinators.get(wf)
        refused = [r for r in getattr(core, "refusals", ()) if r.round == round_]
        self._aborted[wf] = (round_, opened[1], time.time_ns(),
                             refusals_text(refused) if refused else "")

    def _round_over(self, tracing: Any, wf: str, outcome: str) -> None:
        """The aborted round of `wf` is known redone (a next round) or final; a round
        still open when the workflow ends (a cancel) ends with it."""
        aborted = self._aborted.pop(wf, None)
        if aborted is not None:
            round_, start, end, reason = aborted
            self._round_span(tracing, wf, round_, start, end, outcome, reason)
        elif outcome != "redone" and wf in self._rounds:
            round_, start = self._rounds.pop(wf)
            self._round_span(tracing, wf, round_, start, time.time_ns(), outcome, "")

    def _round_span(self, tracing: Any, wf: str, round_: int, start: int, end: int,
                    outcome: str, reason: str) -> None:
        row = self.node.state.rows.get(wf)
        attributes: dict[str, object] = {
            "fedorch.round": round_, "fedorch.outcome": outcome,
            "fedorch.participants": sorted(set(row.info.placement.values()))
            if row is not None else []}
        if reason:
            attributes["fedorch.reason"] = reason
        tracing.derived("fedorch.negotiation.round", wf, ("round", round_), ("submit",),
                        attributes, start_ns=start, end_ns=end)

    def _vote_span(self, tracing: Any, wf: str, round_: int, yes: bool,
                   reason: str) -> None:
        tracing.derived("fedorch.negotiation.vote", wf, ("vote", self.domain, round_),
                        ("round", round_),
                        {"fedorch.round": round_, "fedorch.verdict": "yes" if yes else "no",
                         "fedorch.reason": reason})

    def _result(self, point: str, key: tuple[str, str], result: tuple,
                tracing: Any) -> None:
        """One results row, (workflow, step) (core/node/ready.py, RecordedResults)."""
        before = self._results.get(key)
        self._results[key] = result
        if point == "step end":
            return  # a step run here: its attempt's span is its record
        if before == result or result[1] not in _RAN:
            return
        wf, step = key
        producer = step_domain(self.node, wf, step)
        if producer and producer != self.domain:
            attempt, state = result[0], result[1]
            tracing.derived("fedorch.step.result", wf, ("result", self.domain, step, attempt),
                            ("attempt", producer, step, attempt),
                            {"fedorch.step": step, "fedorch.attempt": attempt,
                             "fedorch.from": producer, "fedorch.state": str(state)})

    # ---- NO votes ---------------------------------------------------------------------

    def no_vote(self, coordinator: str, vote: VoteMsg) -> None:
        wf, round_ = vote.key
        if (wf, round_) in self._noes:
            return  # the same NO again (a repeated PREPARE)
        self._noes[(wf, round_)] = None
        if len(self._noes) > REMEMBERED_NOES:
            self._noes.popitem(last=False)
        self._votes[False].inc()
        log.info("refused %s round %d from %s: %s", wf, round_, coordinator, vote.reason)
        tracing = telemetry.tracing()
        if tracing is not None:
            self._vote_span(tracing, wf, round_, False, vote.reason)


class ObservedWrites:
    """A Durable port that hands each committed turn's groups to `Observed`."""

    def __init__(self, durable: Durable, observed: Observed) -> None:
        self.durable = durable
        self.observed = observed

    def write(self, writes: Sequence[Write]) -> None:
        self.durable.write(writes)  # raises unless committed: then nothing is shown
        self.observed.written(writes)


class ObservedNode(NodeLayer):
    """What the driver steps: the NO votes each Ready sends are shown (see the header)."""

    def __init__(self, inner: Any, domain: str, observed: Observed) -> None:
        super().__init__(inner)
        self.domain = domain
        self.observed = observed
        self._prepared = False  # a PREPARE went in this turn (else no NO can come out)

    def step(self, now: float, event: object) -> None:
        if type(event) is Message and type(event.msg) is PrepareMsg:
            self._prepared = True
        self.inner.step(now, event)

    def step_batch(self, now: float, events: Sequence[object], refuse: Refuse) -> None:
        # Whether a PREPARE went in is all this layer keeps: looked for once a turn.
        if not self._prepared:
            for event in events:
                if type(event) is Message and type(event.msg) is PrepareMsg:
                    self._prepared = True
                    break
        self.pass_batch(now, events, refuse)

    def ready(self) -> Ready:
        ready = self.inner.ready()
        if self._prepared:
            self._prepared = False
            for outs in (ready.send_now, ready.send_after_write):
                for out in outs:
                    msg = out.msg
                    if type(msg) is VoteMsg and not msg.yes and msg.domain == self.domain:
                        self.observed.no_vote(out.to, msg)
        return ready
