"""Each SUCCEEDED run of a step owes its compensation, in the domain that made it.

Theory of operation
-------------------
A step placed again (replacement.py: its first domain lost) may have run in two
domains: its lost domain, cut off or down, ran it (an idempotent step re-placed while
the old run went on, or a run that ended just before the verdict), and its new domain
ran it again. What a user of sagas expects, and what this part keeps:

1. each SUCCEEDED run's side effects are compensated once, in the domain that made
   them (a run in the lost domain and one in the new domain: two compensations);
2. a compensation is never run where the step never SUCCEEDED.

The step's domain (2). A domain records each run of a step with a `compensate` block
that SUCCEEDED here (`succeeded_here`: workflow -> {step: (attempt, placement
epoch)}), in the write that records its result (`succeeded`, from running.py). A
compensation told here is run when that record shows the step SUCCEEDED here, even if
this domain learned since that the step was placed elsewhere (`ran_here`; before, a
lost domain that had learned the new placement refused it, "did not run in", though
its own run's effects were there); else, as before, only for a step placed here now
whose result here is SUCCEEDED (Compensating._refusal). The record is the domain's
own: a result held here may be another domain's (a coordinator, or a consumer,
holds every result it is told), so it alone never proves a run here.

The driver (1). A compensation is an entry of the saga's core per (step, domain)
(core/workflow/compensation.py: `steps`, the first planned of each step, and
`others`); the first is a row of `compensations`, keyed (workflow, step) as ever, the
others rows of `extra_compensations`, keyed (workflow, step, domain). The driver
learns of a run in the lost domain from that domain's SUCCEEDED result of its older
placement (saga_results.late: `src` is a domain the step was placed on before, and
the result's epoch is older than the placement's): if the step's compensation is planned already
in another domain, the result adds an entry (`extra`) instead of being dropped. The
lost domain reports such a run to the driver when it takes a FAILED or CANCELLED end
(`report_elsewhere`), when it follows another driver and after a restart
(saga_results.report): before the end the driver refused that result as of an older
placement (fencing: it must not count for the workflow's progress), so it is reported
again once it owes a compensation; nor did it acknowledge it (running.py), so a lost
domain never told of the move resends it until the end. A driver that is the lost
domain itself adds its own run when it plans, and when it adopts the plan of an
earlier epoch's driver (`own_owed`: that driver may never have had its report), in
the plan's write group (written after it, a crash in between kept the plan alone,
and a restored driver rebuilds its saga from its rows only); to a plan it made
before, as a late result (`own_extras`). Each domain runs its own attempt numbers
(its `comp_runs` are keyed per domain), so the two entries never share an
idempotency key; the reports are told apart by their source (`entry(step, src)`).

Why it is safe. A report only makes the saga *owe*; the domain told checks its own
record before it runs anything (2). The driver's tells and reports go by (step,
domain), so one entry's answer never ends the other. A repeated report of a run finds
its entry and adds nothing. Loss verdicts (saga_loss.py) judge each entry by its own
domain.

Status. A step's state in the status (COMPENSATED, COMPENSATION_FAILED) is that of all
its entries (`combined`): ended only once every one ended, FAILED if any failed, the
error naming that domain; the summary counts every entry.

A step placed again twice or more (domain A lost, placed on B; B lost, placed on C;
C lost, placed on D...) may have SUCCEEDED in every one. The placement on record
carries the list of every domain the step was placed on before it, oldest first
(`earlier_domains`, written with the placement; replacement.py appends the lost domain
at each re-placement; told with it, PlacedMsg.before, and carried by grants and
placement answers; a new domain has it from its round's PREPARE, WfInfo.before), so
a driver that restarted, a successor and a driver that is a new domain all know A, B
and C (authority_steps.placed_before, which the authority table and `late` both read:
a SUCCEEDED result of an older placement from any domain the step was placed on
before is taken for the saga, never for the progress, which refuses it by its epoch:
running.py). Each of those domains is one of the workflow's (Replacements.domains_of),
so it is told the end and reports its run. So A's report adds an entry in A, B's in B
and C's in C, beside D's first. A placement written before the list was kept reads as
before: its lost domain and the committed placement's.

Limits. The outputs on a lost domain's compensation's stdin are those its results hold
for the step.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import CompRow, ResultMsg
from fedorch.core.workflow.compensation import (
    ENDED,
    Compensation,
    CompState,
    CompStep,
)
from fedorch.core.workflow.lifecycle import OWING, WorkflowState
from fedorch.core.workflow.progress import StepState


class SagaRuns:
    def __init__(self, compensating: Any) -> None:
        # The Node's saga part that owns this one (typed loosely: it imports this).
        self.c = compensating
        self.n = compensating.n

    # ---- the step's domain ----------------------------------------------------------

    def succeeded(self, wf: str, step: str, attempt: int, epoch: int,
                  with_result: bool = True) -> None:
        """A run of `step` here SUCCEEDED: recorded if the step has a `compensate`
        block, in the write group of its result (`with_result`: one is written; a
        crash never keeps one without the other), else in a group of its own."""
        d = self.n.state
        spec = self.c.results.spec(wf)  # a new domain may hold its own round only
        if spec is None or not any(s.id == step and s.HasField("compensate")
                                   for s in spec.steps):
            return
        if not with_result:
            self.n.point("step end")
        d.succeeded_here[wf] = {**d.succeeded_here.get(wf, {}), step: (attempt, epoch)}

    def ran_here(self, wf: str, step: str) -> bool:
        """Did a run of `step` here SUCCEEDED, as this domain recorded it?"""
        return step in self.n.state.succeeded_here.get(wf, {})

    def elsewhere(self, wf: str) -> list[tuple[str, int, int]]:
        """(step, attempt, epoch) of each run here that SUCCEEDED of a step placed
        elsewhere since (replacement.py's placements name another domain)."""
        moved = self.n.state.placements.get(wf, {})
        # Told in an epoch older than the placement on record: ours was an older one
        # (the progress here may have taken the new placement's epoch by the end).
        return [(step, attempt, min(epoch, moved[step][0] - 1))
                for step, (attempt, epoch) in self.n.state.succeeded_here.get(wf, {}).items()
                if step in moved and moved[step][1] != self.n.name]

    def result(self, wf: str, step: str, attempt: int, epoch: int) -> ResultMsg:
        """The SUCCEEDED result of our run of `step`, told in its placement's epoch."""
        held = self.n.state.results.get(wf, {}).get(step)
        outputs = dict(held[2]) if held is not None else {}
        return ResultMsg(wf, step, attempt, StepState.SUCCEEDED, outputs, "", epoch)

    def report_elsewhere(self, wf: str, state: WorkflowState) -> None:
        """The workflow ended here in `state`: our SUCCEEDED runs of steps placed
        elsewhere go to the saga's driver (another Node), resent until acknowledged;
        this Node, the driver, adds them itself (`own_extras`)."""
        n = self.n
        if state not in OWING or not self.c.known(wf):
            return
        driver = self.c.driver(wf)
        for step, attempt, epoch in self.elsewhere(wf):
            if driver == n.name:
                continue  # its own plan adds them (Compensating.ended)
            n.stats["run of a step placed elsewhere reported to the saga"] += 1
            n.reliable(driver, ("result", wf, step, driver),
                       self.result(wf, step, attempt, epoch))

    def own_extras(self, now: float, wf: str) -> None:
        """As the driver that just planned: our own SUCCEEDED runs of steps placed
        elsewhere owe their compensations here too (saga_results.late, from us)."""
        for step, attempt, epoch in self.elsewhere(wf):
            self.c.results.late(now, self.result(wf, step, attempt, epoch), self.n.name)

    def own_owed(self, wf: str, owed: tuple) -> tuple[tuple[str, str, int], ...]:
        """As the driver that adopts a plan (saga_plans.adopt): the compensations our
        own SUCCEEDED runs of steps placed elsewhere since owe here, (step, this
        domain, max attempts) of each that `owed` lacks. The plan told here is another
        driver's, made without them when our report never reached it (takeover
        soak seed 98501711, classic 2PC: this domain, the step's lost one, reported
        its run to the claimant of epoch 1, which died before the report reached it;
        elected for epoch 2, it adopted that claimant's plan and its run's effects
        stayed). Written with the plan's rows, in one write group; so does a driver's
        fresh plan (Compensating.ended), where `owed` is what it planned."""
        n = self.n
        spec = self.c.results.spec(wf)
        retries = {s.id: s.compensate.retries for s in spec.steps
                   if s.HasField("compensate")} if spec is not None else {}
        have = {(o[0], o[1]) for o in owed}
        return tuple((step, n.name, 1 + retries[step])
                     for step, _, _ in self.elsewhere(wf)
                     if step in retries and (step, n.name) not in have)

    # ---- the driver ---------------------------------------------------------------------

    def extra(self, now: float, wf: str, step: str, domain: str, max_attempts: int) -> None:
        """A SUCCEEDED run of `step` in `domain`, while its compensation is planned in
        another domain: an entry of its own, written, told, driven."""
        n = self.n
        d = n.state
        if (wf, step, domain) in d.extra_compensations \
                or d.compensations[(wf, step)].domain == domain:
            return
        n.point("compensation owed late")
        n.stats["compensation owed by a run in a second domain"] += 1
        d.extra_compensations[(wf, step, domain)] = CompRow(domain, max_attempts)
        self.c.cores[wf] = self.core(wf)  # RUNNING ones told again
        self.c.plans.tell(wf)  # the plan grew (or a saga over starts again)
        self.c.drive(now, wf)

    def plan_row(self, wf: str, step: str, domain: str, max_attempts: int) -> None:
        """A plan's row (step, domain, max attempts), PENDING: its step's first, or,
        the step planned in another domain already, a further run's."""
        d = self.n.state
        if (wf, step) in d.compensations:
            d.extra_compensations[(wf, step, domain)] = CompRow(domain, max_attempts)
        else:
            d.compensations[(wf, step)] = CompRow(domain, max_attempts)

    def extra_keys(self, wf: str) -> list[tuple[str, str, str]]:
        """The keys of `wf`'s rows in `extra_compensations`, in order (indexed by
        workflow when retention is on: ready.SAGA_TABLES; few rows else)."""
        table = self.n.state.extra_compensations
        if not table:
            return []
        if hasattr(table, "of"):
            return sorted(table.of(wf))
        return sorted(k for k in table if k[0] == wf)

    def rows(self, wf: str) -> list[tuple[str, CompRow]]:
        """Every compensation row of `wf` here, (step, row): the first of each step in
        spec order, then the others."""
        d = self.n.state
        first = self.c.firsts(wf)
        others = [(key[1], d.extra_compensations[key])
                  for key in self.extra_keys(wf)]
        return [*first.items(), *others]

    def core(self, wf: str) -> Compensation:
        """A core over the rows of `wf` written here."""
        d = self.n.state
        firsts = [_step(s, r) for s, r in self.c.firsts(wf).items()]
        others = [_step(key[1], d.extra_compensations[key])
                  for key in self.extra_keys(wf)]
        return Compensation(self.n.running.info(wf).spec, firsts, others)

    def write(self, wf: str, s: CompStep) -> None:
        """The row of entry `s` of `wf`'s core: its step's first, or another."""
        d = self.n.state
        row = CompRow(s.domain, s.max_attempts, s.state.value, s.attempts, s.error)
        first = d.compensations.get((wf, s.step_id))
        if first is None or first.domain == s.domain:
            d.compensations[(wf, s.step_id)] = row
        else:
            d.extra_compensations[(wf, s.step_id, s.domain)] = row

    def combined(self, wf: str) -> dict[str, CompRow]:
        """For the status: each compensated step's row, its entries taken together
        (see the header)."""
        d = self.n.state
        out = dict(self.c.firsts(wf))
        for key in self.extra_keys(wf):
            step, other = key[1], d.extra_compensations[key]
            first = out[step]
            if CompState(first.state) not in ENDED:
                continue
            if CompState(other.state) not in ENDED:
                out[step] = other
            elif other.state == CompState.COMPENSATION_FAILED.value \
                    and first.state != CompState.COMPENSATION_FAILED.value:
                out[step] = other
        return out


def _step(step: str, r: CompRow) -> CompStep:
    return CompStep(step, r.domain, r.max_attempts, CompState(r.state), r.attempts, r.error)
