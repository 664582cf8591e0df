"""SUCCEEDED results that reach a saga's driver after the end: they join the saga.

Theory of operation
-------------------
The driver plans a saga from the results it holds when it ends the workflow FAILED
or CANCELLED (compensating.py). A step's SUCCEEDED may not be there yet: still on its
way (another step failed first), refused before the end was made (a loss verdict
failed the step while its domain was down, and it had run), or held only by its
domain when a later epoch's driver planned. Such a result owes its compensation all
the same: when it reaches the driver it joins the saga (`late`: its row, a new core
over the rows, the plan told again; a saga already over starts again for it).

Getting there. The step's domain resends it until acknowledged, after the end too
(`owed`: the end drops the other resends of results, not these); when it follows a
new driver it reports it to that one (saga_plans.report_again); and after its own
restart it reports it again (`again`), since every resend was in memory only: a
restart between the end and the driver's acknowledgement lost it, and the step stayed
uncompensated for good (takeover soak seeds 4000605: the original coordinator back
from a restart ran its step, learned its successor's end FAILED and crashed as it
reported; 3700970: the successor refused the result while its loss verdict's end was
not made, made it, and the step's domain restarted). Not reported again: those the
plan told the domain names (its driver planned them; but to a later epoch's
holder followed since, which may not have that plan: takeover soak seed 60000176, a
claimant told the end bare planned without the step), and the result held of a step
placed again elsewhere since (an older placement's, or another domain's); the
domain's own SUCCEEDED run of such a step is reported instead, from its own record
(saga_runs.py: it owes a compensation there too). No
record says which results a driver acknowledged, so each restart reports the rest
once more: one message each, acknowledged at once.

A Node that does not drive the saga (yet) and is sent such a result (its domain
follows it: a claimant it granted, before the claimant won) acknowledges it, so the
domain resends it no more; it keeps the result in its results (`keep`), so the saga
it drives if it wins (a claimant's end plans from its results, an adopted plan adds
what they owe) owes it (takeover soak seed 8202446: dropped, the winner's saga
never compensated the step). Kept with the domain its run was made in (`ran_in`,
as `late` works it out), and so planned there (`domain_of`): a results row says no
domain, and an older placement's run and the new domain's look alike.

A domain that follows a new driver reports it both its SUCCEEDED result and the
report of a compensation it ran for an earlier driver (saga_plans.report_again), and
the report may come first. It is not acknowledged while the step may still join the
saga (`awaited`: no row of it and no SUCCEEDED result of it held here): the late
result makes the driver tell that attempt, the domain answers from its record under
the same message id, and an acknowledgement of the first report, late, ended the
resends of that answer, lost on the way; the driver's saga waited for ever, and the
domain's retention forgot the workflow (takeover soak seed 178300800 with
`--keep-ended-s 5`). Unacknowledged, the report is resent until the late result has
made its row, and then folded in. A result that never joins (its limits, below)
leaves that report resent, and its workflow kept in the domain, for ever.

Why it is safe. Only the driver of the epoch held takes a late result into a saga
(`late`: a Node whose epoch is over, or that does not drive yet, only keeps it); a
result kept changes what a later saga of this Node owes, never what runs: a domain
runs a compensation only for a step its own record says SUCCEEDED there. A result
it holds or planned already changes
nothing (its row exists), so a repeated report neither plans twice nor runs
anything twice. A report only makes the saga *owe* a compensation: the domain runs
one only for a step its own record says SUCCEEDED there (Compensating._refusal), so
a late result can never make a compensation run where nothing succeeded. A step the
driver's loss verdict failed with "its outcome is unknown" that SUCCEEDED after all
has its effects at its domain: compensating it is what the saga owes.

Limits. A late result's upstream steps' compensations may have run already (the
one order it cannot keep: nothing told the driver to wait). A result that never
reaches the driver (its domain gone for good; the driver's retention having
forgotten the workflow; a driver followed that is gone for good, to which it is
resent for ever) is not compensated.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.authority_steps import ran_before
from fedorch.core.node.records import CompRow, ResultMsg
from fedorch.core.workflow.lifecycle import OWING, WorkflowState


class SagaResults:
    def __init__(self, compensating: Any) -> None:
        # The Node's saga part that owns this one (typed loosely: it imports this).
        self.c = compensating
        self.n = compensating.n

    def late(self, now: float, msg: ResultMsg, src: str = "") -> None:
        """A step's result that reached this Node, the driver, after it ended the
        workflow. A SUCCEEDED step with a `compensate` block owes its compensation
        all the same: it joins the saga (a new core over the rows). Its downstream
        steps' compensations, if any, were planned and wait for nothing of it, so it
        runs after them, in order."""
        n = self.n
        d = n.state
        wf, step = msg.workflow_id, msg.step_id
        if name_of(msg.state) != "SUCCEEDED" or d.final.get(wf) not in OWING \
                or not self.c.known(wf):
            return
        info = n.running.info(wf)
        spec = next((s for s in info.spec.steps if s.id == step), None)
        domain = self.c.placement(wf).get(step)
        moved = d.placements.get(wf, {}).get(step)
        if moved is not None and ran_before(n, src, msg, moved[0]):
            # Told by a domain the step was placed on before (its lost domain, or an
            # earlier one: a step placed again twice), of its older placement: the step
            # ran there, so it is compensated there, not in its new domain, which may
            # never have run it (takeover soak seed 21200275).
            domain = src
        elif moved is None and src not in ("", n.name, domain) \
                and src != d.epochs.get(wf, (0, info.coordinator))[1]:
            # Told by a party the step was placed again on in an epoch this Node never
            # learned of (authority_steps.saga_run_elsewhere: its driver's end planned
            # from the placement it held): the run there owes its compensation there,
            # beside the placement's (takeover soak seed 109463).
            domain = src
        if spec is None or not spec.HasField("compensate") or not domain:
            return
        if self.c.driver(wf) != n.name:
            self.keep(msg, domain)
            return
        first = d.compensations.get((wf, step))
        if first is not None:
            if first.domain != domain:  # a run in a second domain: its own compensation
                self.c.runs.extra(now, wf, step, domain, 1 + spec.compensate.retries)
            return
        n.point("compensation owed late")
        self.c.count_moved(wf, [(step, domain)])
        n.stats["compensation owed by a late result"] += 1
        d.results[wf] = {**d.results.get(wf, {}), step: (
            msg.attempt, msg.state, msg.outputs, msg.error)}
        self.ran_in(wf, step, msg.state, domain)
        d.compensations[(wf, step)] = CompRow(domain, 1 + spec.compensate.retries)
        self.c.cores[wf] = self.c.runs.core(wf)  # RUNNING ones told again
        self.c.plans.tell(wf)  # the plan grew (or a saga over starts again)
        self.c.drive(now, wf)

    def awaited(self, wf: str, step: str) -> bool:
        """May a compensation report of `step` reaching this Node, the driver of `wf`'s
        saga (ended here FAILED or CANCELLED), come before the late result that makes it
        owed (`late`): no row of it, and no SUCCEEDED result of it held here?"""
        d = self.n.state
        held = d.results.get(wf, {}).get(step)
        return self.c.known(wf) and self.c.driver(wf) == self.n.name \
            and d.final.get(wf) in OWING and (wf, step) not in d.compensations \
            and (held is None or name_of(held[1]) != "SUCCEEDED")

    def keep(self, msg: ResultMsg, domain: str = "") -> None:
        """An owed SUCCEEDED result that reached this Node while another drives the
        saga (a claimant its domain follows already, before it won): acknowledged (its
        domain stops resending it), so it is kept, and the saga this Node may drive
        later (a claimant's end, an adopted plan) plans it (takeover soak seed
        8202446: dropped, the winner's saga never owed it)."""
        d = self.n.state
        wf, step = msg.workflow_id, msg.step_id
        held = d.results.get(wf, {}).get(step)
        if held is not None and name_of(held[1]) == "SUCCEEDED":
            return
        self.n.point("step result")
        self.n.stats["owed result kept for a later saga"] += 1
        d.results[wf] = {**d.results.get(wf, {}), step: (
            msg.attempt, msg.state, msg.outputs, msg.error)}
        if domain:
            self.ran_in(wf, step, msg.state, domain)

    def ran_in(self, wf: str, step: str, state: Any, domain: str | None) -> None:
        """The result of `step` just written to `results` came of a run in `domain`
        (None: the step's placement as known now, `placed_now`, as a result told that
        the fencing let through is, whoever relayed it, or a need's result a
        placement's tell carries: placed_here.py): a SUCCEEDED one of a step with a
        `compensate` block is recorded so (in its write group), for the plan
        (`domain_of`); any other (a loss verdict: domain_loss_verdict.py,
        replacement.py `failed`) drops the record. Every path that writes a result
        calls this, so a step that moves after it ran is planned where it ran."""
        d = self.n.state
        if domain is None:
            domain = self.placed_now(wf, step)
        held = d.result_domains.get(wf, {})
        if name_of(state) == "SUCCEEDED" and domain and self.owes(
                ResultMsg(wf, step, 0, state, {}, "")):
            if held.get(step) != domain:
                d.result_domains[wf] = {**held, step: domain}
        elif step in held:
            d.result_domains[wf] = {k: v for k, v in held.items() if k != step}

    def placed_now(self, wf: str, step: str) -> str:
        """The domain `step` is placed on as known here: placed again, its new domain;
        else the committed placement's; "" where this Node holds neither (a new domain
        told a placement before its round's COMMIT: its plan falls back as below)."""
        moved = self.n.state.placements.get(wf, {}).get(step)
        if moved is not None:
            return moved[1]
        return self.c.placement(wf).get(step, "") if self.c.known(wf) else ""

    def domain_of(self, wf: str) -> dict[str, str]:
        """Where a plan owes the compensation of each step's SUCCEEDED result held
        here: the domain whose run made it, as recorded with it (`ran_in`), else the
        step's placement now (a result written by an older build). A step placed
        again may hold its lost domain's own run (a lost domain that took the end, or
        a result a claimant kept): planned in the new domain, which never ran it, it
        was refused there and the saga's summary ended FAILED, while the run's effects
        were left where it ran. Attempt numbers restart at a new placement, so the
        row alone never tells the two runs apart."""
        return {**self.c.placement(wf), **self.n.state.result_domains.get(wf, {})}

    def again(self) -> None:
        """After a restore: the SUCCEEDED results of steps run here that owe a
        compensation, of each workflow ended here FAILED or CANCELLED whose saga
        another Node drives, go to that driver again (`report`, but for those the
        plan told here names)."""
        d = self.n.state
        sent = 0
        for wf in sorted(d.final):
            if d.final[wf] in OWING and self.c.known(wf):
                sent += self.report(wf, skip_planned=True)
        if sent:
            self.n.stats["owed results reported again after a restart"] += sent

    def report(self, wf: str, skip_planned: bool = False) -> int:
        """The SUCCEEDED results of `wf`'s steps run here that owe a compensation, to
        its driver (another Node), resent until acknowledged. A step placed again
        elsewhere since is not ours to report (its result here is an older
        placement's). `skip_planned`: not those the plan told here names (its driver
        has them), unless this Node follows a later epoch's holder, which may not have
        that plan. How many were sent."""
        n = self.n
        d = n.state
        driver = self.c.driver(wf)
        if driver == n.name or not self.c.known(wf):
            return 0
        placement = n.running.info(wf).placement
        moved = d.placements.get(wf, {})
        if skip_planned and d.epochs.get(wf, (0, ""))[0] >= 1:
            # Following a later epoch's holder, this Node may hold the plan of the
            # driver before it: the holder may have planned without it (a claimant
            # told the end bare, planning from its own results), so it gets them all;
            # one it has changes nothing (takeover soak seed 60000176).
            skip_planned = False
        planned = {o[0] for o in d.plans.get(wf) or ()} if skip_planned else set()
        sent = 0
        for step, (attempt, state, outputs, error) in d.results.get(wf, {}).items():
            msg = ResultMsg(wf, step, attempt, state, dict(outputs), error)
            here = moved[step][1] if step in moved else placement.get(step)
            if here == n.name and step not in planned and self.owes(msg):
                n.reliable(driver, ("result", wf, step, driver), msg)
                sent += 1
        # Our own SUCCEEDED runs of steps placed elsewhere since, each in the epoch of
        # its older placement (saga_runs.py), but those the plan told here names here.
        ours = {o[0] for o in d.plans.get(wf) or () if o[1] == n.name} \
            if skip_planned else set()
        for step, attempt, epoch in self.c.runs.elsewhere(wf):
            if step not in ours:
                n.reliable(driver, ("result", wf, step, driver),
                           self.c.runs.result(wf, step, attempt, epoch))
                sent += 1
        return sent

    def owed(self, state: WorkflowState, msg: object) -> bool:
        """The workflow ended here in `state`: is `msg`, a result still resent, one its
        driver needs to plan a compensation (a SUCCEEDED step with a `compensate`
        block)? Then it is resent until acknowledged, as before the end (lost on the
        way, it would leave that step uncompensated for good)."""
        return state in OWING and self.owes(msg)

    def owes(self, msg: object) -> bool:
        """Is `msg` a SUCCEEDED result of a step with a `compensate` block?"""
        if not isinstance(msg, ResultMsg) or name_of(msg.state) != "SUCCEEDED":
            return False
        spec = self.spec(msg.workflow_id)
        return spec is not None \
            and any(s.id == msg.step_id and s.HasField("compensate") for s in spec.steps)

    def spec(self, wf: str) -> Any:
        """The workflow's spec, from any round of it held here: a re-placement's new
        domain that took a later epoch's end never held the committed round (its own
        round only), and stopped on a KeyError when the original reported to it
        (takeover soak seed 8300333); a Node that ended it without committing it holds
        no spec either (seed 8910240). None if no round of it is held here."""
        d = self.n.state
        if wf in d.rows or wf in d.committed:
            return self.n.running.info(wf).spec
        return next((info.spec for (w, _), info in d.info.items() if w == wf), None)


def name_of(state: Any) -> str:
    return getattr(state, "value", state)
