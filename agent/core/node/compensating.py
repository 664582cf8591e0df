"""The Node's sagas: compensations of the SUCCEEDED steps of a workflow that failed.

Theory of operation
-------------------
When a workflow ends FAILED or CANCELLED at the coordinator that drives it (`ended`),
every step that SUCCEEDED and has a `compensate` block owes a compensation
(core/workflow/compensation.plan), run in the domain that ran the step, in reverse
dependency order, `1 + compensate.retries` attempts at most. The order, attempts
and summary are the pure core's (core/workflow/compensation.Compensation); this
part makes them durable and moves them between Nodes, like the steps' own attempts.

Who drives: the workflow's coordinator as known here (`driver`: the epoch holder
this Node follows or acts as, `epochs`, else the original one the id names), and only
it, as it tells ends: the original when it ends the workflow (epoch 0), a successor
when it ends it after a takeover (epoch >= 1: takeover.end_as_successor, its acting
successor's outcome or a claimant's end told on). It plans from the results it holds
(every participant reported to it, again, when it followed the new epoch) and writes
one `compensations` row per owed compensation (records.CompRow) with the end, and
each attempt's start (RUNNING, its number) before it tells the step's domain
(`CompensateMsg`, resent until acknowledged; to itself directly). The domain takes a
tell only from the epoch holder it follows (authority.py: a returning old
coordinator whose epoch is over is refused where the later epoch is known), checks
the step SUCCEEDED here, writes the attempt's start in `comp_runs` (its idempotency
key: workflow, step, attempt) and hands the driver a start entry (workflow, step,
attempt, "compensate") in the same Ready, so the executor starts it only once that
record is durable. Its end (`CompensationEnded`) is written before it is reported
(`CompensatedMsg`, to the epoch holder it follows then, resent until acknowledged);
the driver folds the report into the core, writes the row and starts what became
ready. A duplicate tell (a restarted driver, or a second one while a later epoch
spreads) is answered with what was recorded, never run twice.

A report that reaches a Node before it knows the end (a claimant its domain follows
already, before a grant showed it the end) is not acknowledged: an acknowledgement
means the report was taken, and one given for a report dropped would end its resends
(`on_compensated`). So too one that reaches the driver before the late result that makes
its step owed (saga_results.py, `awaited`).

Late results. The driver plans from the results it holds at the end; a step's
SUCCEEDED still on its way then, or reported again after its domain's restart, joins
the saga later (saga_results.py: when, and why that is safe).

At most one driver: the epoch rule. A coordinator drives only while it holds the
workflow's epoch as its own; one that hears an end of a later epoch after its own
end (`later_end`: it ended the workflow, then a claimant told the end on in its
claimed epoch) follows it and drops its core and its tells, and after a restart it
rebuilds no core for a workflow whose epoch it does not hold. A participant that
ended the workflow on an earlier epoch's notice follows the later one on that
notice too, and reports to it again: the later driver may have planned from results
that lack a step the earlier one planned, which its SUCCEEDED result then adds, and
the attempt the earlier one asked for is judged there. Two claimants of one epoch
that both told the end on: one drives (saga_plans.py, `rival_end`). An original
coordinator that no later epoch's driver told its end (that driver gone for good)
drives its saga on in epoch 0; a domain following the later epoch answers its tell of
an attempt that ended there with the record (authority.py lets that through), so its
saga ends as the later one did, and nothing runs twice. A domain whose view says the
later holder it follows is gone (DEAD or LEFT) takes the original's tell of an
attempt not recorded there too, and reports to the original as well as to that
holder (`reports_to`): that holder will never tell it (it died before its plan
reached the domain: takeover soak seed 4003619), and the original's saga would wait
for ever. Two drivers may then ask one domain (the holder was only cut off): each
attempt number still runs once there, answered from its record to whoever asks, so a
compensation runs at most `1 + retries` times in all, and only where its step
SUCCEEDED.

Steps placed again. A compensation is planned where its step runs now (`placement`:
the committed placement, a step placed again in its new domain): the plan at the end,
a plan adopted, a late result's row (saga_results.py) read it, and the plan is told
to each domain it names (saga_plans.py). The authority table takes the report from
the new domain (and from the lost one, which answers a tell it refuses). The domain
told checks the step runs there *now* before it runs anything, so a compensation
never runs in the lost domain of a step placed again, where the step did not run
(takeover soak seed 8101787: the lost domain, the saga's driver, ran it): a tell
that reaches it ends COMPENSATION_FAILED there ("did not run in"). Planned in the
lost domain, the step that ran in its new domain went uncompensated (seed 8100080).
A domain whose own run of the step SUCCEEDED (`succeeded_here`, saga_runs.py) takes
the tell though the step was placed elsewhere since: its run's effects are there; a
step that SUCCEEDED in its lost domain and its new one owes a compensation in each.
The new domain takes the driver's tells as it follows the driver's epoch: a
successor's round committed there makes it follow the successor (placed_here.py), an
end of an epoch it granted makes it follow the end's teller (takeover_ends.py), and
so does an end of a later epoch than followed taken while it holds a grant of a still
later one (EndNotices.on_final, `later_end`); a first try without those broke tests/sim
takeover seed 198 (refused for ever).

Domains gone for good. A compensation runs only in its step's domain; one owed in a
domain the driver's view says is gone (DEAD past the loss grace, or LEFT) ends
COMPENSATION_FAILED, naming the domain, so the saga ends (saga_loss.py: its verdict,
and why a report from that domain back is acknowledged and the verdict stands).

Restarts. A domain that finds an attempt started without an end counts it failed
("interrupted by a restart") and reports that; the driver, which finds an attempt
RUNNING in its rows, tells it again with the same number, and the domain answers
what it recorded (never running one number twice). A failed attempt with attempts
left is retried under the next number.

Retention (retention.py) keeps a workflow while its driver's core has not ended and
while an attempt run here is running or not acknowledged (saga_retention.py,
`kept_because`), and forgets both tables' rows with it (`forget`); the end of a saga
and an acknowledged report mark it, so a parked workflow is looked at again. A tell of a workflow
forgotten here (or never known) is answered failed at once, nothing written.

The plan outlives its driver: it is told to the participants, kept by them, and a
successor elected while it is open adopts it (saga_plans.py).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.inputs import CompensationEnded
from fedorch.core.node.records import (
    AckMsg,
    CompensatedMsg,
    CompensateMsg,
    CompRow,
    ResultMsg,
)
from fedorch.core.node.saga_loss import SagaLoss
from fedorch.core.node.saga_plans import SagaPlans
from fedorch.core.node.saga_results import SagaResults
from fedorch.core.node.saga_retention import SagaRetention
from fedorch.core.node.saga_runs import SagaRuns
from fedorch.core.node.saga_unproven_holder import drivers_too
from fedorch.core.workflow.compensation import (
    Compensation,
    CompState,
    Summary,
    plan,
    summary,
)
from fedorch.core.workflow.lifecycle import OWING, WorkflowState

COMPENSATE = "compensate"  # the fourth field of a compensation's start entry
INTERRUPTED = "interrupted by a restart"


class Compensating:
    def __init__(self, node: Any) -> None:
        self.n = node
        # As coordinator: the cores of the workflows whose compensations have not ended.
        self.cores: dict[str, Compensation] = {}
        # The saga's plan told to the participants, kept by them, adopted by a successor.
        self.plans = SagaPlans(self)
        # A compensation owed in a domain gone for good: the driver's verdict.
        self.loss = SagaLoss(self)
        # SUCCEEDED results that reach the driver after the end (saga_results.py).
        self.results = SagaResults(self)
        # Each SUCCEEDED run's compensation, in the domain that made it (saga_runs.py).
        self.runs = SagaRuns(self)
        # What keeps a workflow from retention, and what goes with it (saga_retention.py).
        self.retention = SagaRetention(self)

    # ---- coordinator -----------------------------------------------------------------

    def driver(self, wf: str) -> str:
        """Who drives `wf`'s compensations as known here: the coordinator epoch's holder
        followed or acted as, else the original coordinator (epoch 0)."""
        return self.n.state.epochs.get(wf, (0, self.n.running.info(wf).coordinator))[1]

    def ended(self, now: float, wf: str, state: WorkflowState) -> None:
        """This Node, the coordinator of `wf` (the original, or a successor in its
        epoch), ended it in `state`: plan what it owes."""
        n = self.n
        d = n.state
        if state not in OWING or self.driver(wf) != n.name or wf in self.cores:
            return
        if d.plans.get(wf):  # its driver planned it and told it here: this Node's now
            self.plans.adopt(now, wf)
            self.runs.own_extras(now, wf)  # our runs of steps placed elsewhere since
            return
        info = n.running.info(wf)
        states = {s: name_of(r[1]) for s, r in d.results.get(wf, {}).items()}
        owed = plan(info.spec, states, self.results.domain_of(wf))
        # With our own runs of steps placed elsewhere since, in the plan's write group:
        # added after it, a crash in between lost them (a restored driver rebuilds its
        # core from the rows, and reports nothing to itself).
        rows = tuple((c.step_id, c.domain, c.max_attempts) for c in owed)
        own = self.runs.own_owed(wf, rows)
        rows += own
        if rows and (wf, rows[0][0]) not in d.compensations:
            n.point("compensations owed")
            self.count_moved(wf, [(c.step_id, c.domain) for c in owed])
            if own:
                n.stats["own run of a step placed elsewhere owed in a driver's plan"] += \
                    len(own)
            for step, domain, max_attempts in rows:
                self.runs.plan_row(wf, step, domain, max_attempts)
            self.cores[wf] = self.runs.core(wf)
            self.plans.tell(wf)
            self.drive(now, wf)
        self.runs.own_extras(now, wf)  # a plan made before: what it lacks joins it

    def restore(self, now: float) -> None:
        """After a restore: rebuild each unfinished core (RUNNING attempts are told
        again under their number), and resolve the attempts run here that a restart
        interrupted."""
        n = self.n
        d = n.state
        self.cores = {}
        # Forgotten, or its epoch over here (another drives them): not rebuilt.
        by_wf = {wf for wf, _ in d.compensations
                 if self.known(wf) and self.driver(wf) == n.name}
        for wf in sorted(d.plans):  # a plan told here, this Node now its epoch's holder
            self.plans.adopt(now, wf, drive=False)
        # Ended, and a crash came before it planned: as the original coordinator...
        for wf, row in d.rows.items():
            if row.state in OWING and d.epochs.get(wf, (0, ""))[0] == 0 \
                    and wf not in by_wf:
                self.ended(now, wf, row.state)
        # ...or as a successor that ended it in its epoch.
        for wf, (epoch, holder) in d.epochs.items():
            if epoch >= 1 and holder == n.name and d.final.get(wf) in OWING \
                    and wf not in by_wf and self.known(wf):
                self.ended(now, wf, d.final[wf])
        for wf in sorted(by_wf):
            if wf in self.cores:  # a plan adopted above: its rows replaced these
                continue
            core = self.runs.core(wf)  # with the rows of further runs' compensations
            if not core.done():
                self.cores[wf] = core
        for key, (state, _, reported) in list(d.comp_runs.items()):
            if not self.known(key[0]):
                continue
            if state == "running":
                n.point("compensation interrupted")
                d.comp_runs[key] = ("failed", INTERRUPTED, False)
                self.report(*key)
            elif not reported:  # its report was not acknowledged before the restart
                self.report(*key)
        # A SUCCEEDED result of a step run here that owes a compensation, of a workflow
        # ended here FAILED or CANCELLED and driven by another Node: its resend was in
        # memory only, and the driver may never have had it (takeover soak seeds
        # 4000605, 3700970): reported again (`SagaResults.again`).
        self.results.again()
        for wf in self.plans.driven():  # what was told before was resent from memory only
            self.plans.tell(wf, over=wf not in self.cores)
        for wf in list(self.cores):
            self.drive(now, wf)

    def drive(self, now: float, wf: str) -> None:
        n = self.n
        core = self.cores[wf]
        self.loss.judge(wf)  # none is told to a domain the view says is gone
        for a in core.start_ready():
            s = core.entry(a.step_id, a.domain)
            n.point("compensation start")
            self.runs.write(wf, s)
            if a.domain == n.name:
                self.run_here(now, n.name, CompensateMsg(wf, a.step_id, a.attempt))
            else:
                n.reliable(a.domain, (COMPENSATE, wf, a.step_id, a.attempt, a.domain),
                           CompensateMsg(wf, a.step_id, a.attempt))
        if core.done() and self.cores.get(wf) is core:
            # (a report of an attempt here, folded in by the loop above, may have ended
            # it already, in a nested _drive)
            del self.cores[wf]
            n.note("compensation_ended", wf, core.summary().value)
            self.plans.tell(wf, over=True)
            n.mark(wf)  # retention may look at it again: its saga is over
            if wf in n.state.final:  # wakes the watchers: the status changed
                n.out.status.append((wf, n.state.final[wf]))

    def on_compensated(self, now: float, src: str, msg: CompensatedMsg) -> None:
        n = self.n
        wf = msg.workflow_id
        core = self.cores.get(wf)
        if core is None and self.known(wf) and wf not in n.state.final:
            # The end is not known here yet (a claimant its domain follows, before a
            # grant shows it the end): nothing taken, so not acknowledged. Its domain
            # resends it until the saga is planned here or it follows another driver;
            # acknowledged now, the report would be marked done, and the answer to
            # this Node's later tell could be lost for good (a late duplicate of this
            # acknowledgement clearing its resend: takeover soak seed 1401769).
            n.stats["compensation report before the end: not acknowledged"] += 1
            return
        s = core.entry(msg.step_id, src) if core is not None else None
        if s is None and self.results.awaited(wf, msg.step_id):
            # Before its step's late result: nothing taken, so not acknowledged either.
            n.stats["compensation report before its step's result: not acknowledged"] += 1
            return
        if self.loss.fenced(wf, msg, src):
            pass  # its domain back: the loss verdict stands (saga_loss.py)
        elif s is not None:  # else over, or not ours; the entry of src's run (saga_runs)
            before = (s.state, s.attempts)
            core.attempt_ended(msg.step_id, msg.attempt, msg.ok, msg.error, s.domain)
            if (s.state, s.attempts) != before:
                n.point("compensation end")
                self.runs.write(wf, s)
                self.drive(now, wf)
        if src != n.name:  # once the row is written (see on_compensate)
            n.send(src, AckMsg(("compensated", wf, msg.step_id, msg.attempt, n.name),
                               gen=msg.gen))

    def reports_to(self, wf: str) -> list[str]:
        """Where this Node, a step's domain, reports `wf`'s compensations: to its
        driver, and to the original coordinator too while the view says that driver,
        a later epoch's holder, is gone (DEAD or LEFT) and the original is not. The
        original, which no later end reached, drives its own saga in epoch 0, and its
        tells are taken here then (authority.py): its report goes to it (takeover soak
        seed 4003619); so too, and to the driver followed before, while that holder has
        not shown here that it won (saga_unproven_holder.py). The holder still gets its
        own, should it be back (it may have told the attempt itself). An acknowledgement
        from any is the report's."""
        n = self.n
        driver = self.driver(wf)
        if not self.known(wf):
            return [driver]
        original = n.running.info(wf).coordinator
        if driver not in (n.name, original) and not n.member_loss.gone(original) \
                and n.member_loss.gone(driver):
            return [driver, original]
        return [driver, *(x for x in drivers_too(n, wf) if not n.member_loss.gone(x))]

    def placement(self, wf: str) -> dict[str, str]:
        """Where each step of `wf` runs as known here: its committed placement, a step
        placed again (replacement.py, `placements`) in its new domain. A compensation
        runs only where its step runs now (`_refusal`)."""
        moved = self.n.state.placements.get(wf, {})
        return {**self.n.running.info(wf).placement,
                **{step: domain for step, (_, domain, _) in moved.items()}}

    def count_moved(self, wf: str, planned: list[tuple[str, str]]) -> None:
        """Count the compensations `planned` (step, domain) in a step's new domain (a
        step placed again, where the committed placement named its lost domain); not
        one planned where an older placement's run made it (saga_results.domain_of)."""
        moved = self.n.state.placements.get(wf, {})
        new = sum(step in moved and moved[step][1] == domain for step, domain in planned)
        if new:
            self.n.stats["compensation planned in a step's new domain"] += new

    def late_result(self, now: float, msg: ResultMsg, src: str = "") -> None:
        self.results.late(now, msg, src)  # saga_results.py

    def owed_result(self, state: WorkflowState, msg: object) -> bool:
        return self.results.owed(state, msg)  # saga_results.py

    def owes(self, msg: object) -> bool:
        return self.results.owes(msg)  # saga_results.py

    # ---- the step's domain -------------------------------------------------------------

    def on_compensate(self, now: float, src: str, msg: CompensateMsg) -> None:
        self.run_here(now, src, msg)
        # After the attempt's start is written (the acknowledgement waits for that write
        # group): acknowledged before it, a crash in between lost the tell for good, its
        # driver no longer resending it.
        self.n.send(src, AckMsg((COMPENSATE, msg.workflow_id, msg.step_id, msg.attempt,
                                 self.n.name), gen=msg.gen))

    def run_here(self, now: float, src: str, msg: CompensateMsg) -> None:
        n = self.n
        d = n.state
        key = (msg.workflow_id, msg.step_id, msg.attempt)
        known = d.comp_runs.get(key)
        if known is not None:
            if known[0] != "running" and src not in (n.name, self.driver(msg.workflow_id)):
                # An earlier epoch's coordinator that asks (authority.py lets only the
                # original's tell of an ended attempt through): the record, to it.
                n.stats["compensation record told to an earlier coordinator"] += 1
                n.reliable(src, ("compensated", *key, src),
                           CompensatedMsg(*key, known[0] == "succeeded", known[1]))
            elif known[0] != "running":  # told again: the answer it had
                self.report(*key)
            return
        if not self.known(msg.workflow_id):  # forgotten here: nothing to run, nor keep
            n.send(src, CompensatedMsg(*key, False, f"workflow {msg.workflow_id} is not"
                                                    f" known in {n.name}"))
            return
        refusal = self._refusal(msg)
        n.point("compensation run")
        if refusal:
            d.comp_runs[key] = ("failed", refusal, False)
            self.report(*key)
            return
        d.comp_runs[key] = ("running", "", False)
        n.note("compensation_started", key, now)
        n.out.start.append((*key, COMPENSATE))

    def compensation_ended(self, now: float, e: CompensationEnded) -> None:
        n = self.n
        key = (e.workflow_id, e.step_id, e.attempt)
        if n.state.comp_runs.get(key, ("",))[0] != "running":
            return
        n.point("compensation ran")
        n.state.comp_runs[key] = ("succeeded" if e.ok else "failed", e.error, False)
        self.report(*key)

    def report_acked(self, msg_id: tuple) -> None:
        """The coordinator acknowledged a report (`on_ack`): not reported again."""
        key = msg_id[1:4]
        known = self.n.state.comp_runs.get(key)
        if known is not None and not known[2] \
                and msg_id[4] in self.reports_to(key[0]):
            self.n.point("compensation reported")
            self.n.state.comp_runs[key] = (known[0], known[1], True)
            self.n.mark(key[0])  # retention may look at it again: nothing owed here

    def later_end(self, wf: str, epoch: int, src: str) -> None:
        """An end notice of `wf` from `src` in `epoch`, after this Node ended it in an
        earlier epoch: its epoch is over (a claimant told the end on in its claimed
        epoch), and `src` drives the saga now. It follows `src`. Its coordinator of the
        earlier epoch drops its core and its tells (or it would drive them too, now or
        when a late result comes); a participant that ended it on the earlier
        coordinator's notice takes `src`'s tells from now on. Either reports to `src`
        again what it ran and holds: a SUCCEEDED result of a step with a `compensate`
        block joins its saga (`late_result`) even if `src` ended the workflow from
        results that lacked it, and an attempt that ended unreported is judged there.
        Called too as the end is first taken here (EndNotices.on_final), where follow_end
        followed no one: a grant here of a still later epoch to another claimant
        kept it from that (the grant stands: `granted` is never lowered)."""
        n = self.n
        d = n.state
        held = d.epochs.get(wf, (0, ""))[0]
        if wf not in d.final or epoch <= held or src == n.name or not self.known(wf):
            return
        if self.driver(wf) == n.name:
            if self.cores.pop(wf, None) is not None:
                n.stats["compensations left to a later epoch"] += 1
            self.plans.drop_tells(wf)
        else:
            n.stats["saga driver of a later epoch followed"] += 1
        n.point("takeover epoch")
        d.epochs[wf] = (epoch, src)
        if n.takeover is not None:
            if d.granted.get(wf, (0, ""))[0] < epoch:
                d.granted[wf] = (epoch, src)
            n.takeover.forget(wf)  # rebuilt, if its plan is open, following `src`
            n.takeover.resumed(n.now, wf)
        self.plans.report_again(wf)  # what it ran or holds joins the saga of the new driver

    def known(self, wf: str) -> bool:
        d = self.n.state
        return wf in d.rows or (wf in d.committed and (wf, d.committed[wf]) in d.info)

    def _refusal(self, msg: CompensateMsg) -> str:
        wf, step = msg.workflow_id, msg.step_id
        d = self.n.state
        if not self.known(wf):
            return f"workflow {wf} is not known in {self.n.name}"
        info = self.n.running.info(wf)
        own = self.runs.ran_here(wf, step)  # its run here SUCCEEDED, placed here or not
        if not own and self.placement(wf).get(step) != self.n.name:
            return f"step {step} of {wf} did not run in {self.n.name}"
        result = d.results.get(wf, {}).get(step)
        state = name_of(result[1]) if result is not None else "PENDING"
        if not own and state != "SUCCEEDED":
            return f"step {step} is {state} in {self.n.name}, not SUCCEEDED"
        if not any(s.id == step and s.HasField("compensate") for s in info.spec.steps):
            return f"step {step} has no compensate block"
        return ""

    def report(self, wf: str, step: str, attempt: int) -> None:
        n = self.n
        if not self.known(wf):
            return  # forgotten here: no coordinator to report to
        state, error, _ = n.state.comp_runs[(wf, step, attempt)]
        msg = CompensatedMsg(wf, step, attempt, state == "succeeded", error)
        # The epoch holder followed now (it drives them), and the original too while the
        # view says that holder is gone (`reports_to`).
        for coordinator in self.reports_to(wf):
            if coordinator == n.name:
                n.state.comp_runs[(wf, step, attempt)] = (state, error, True)
                self.on_compensated(n.now, n.name, msg)
            else:
                n.reliable(coordinator, ("compensated", wf, step, attempt, coordinator), msg)

    # ---- reads --------------------------------------------------------------------------

    def firsts(self, wf: str) -> dict[str, CompRow]:
        """As coordinator: each compensated step's first row (`compensations`)."""
        d = self.n.state
        return {s.id: d.compensations[(wf, s.id)] for s in self.n.running.info(wf).spec.steps
                if (wf, s.id) in d.compensations}

    def of(self, wf: str) -> tuple[dict[str, CompRow], Summary]:
        """As coordinator: each compensated step's row (its entries together:
        saga_runs.combined), and the summary of every compensation."""
        return self.runs.combined(wf), summary(
            CompState(r.state) for _, r in self.runs.rows(wf))


def name_of(state: Any) -> str:
    return getattr(state, "value", state)
