"""The saga's plan, told to every participant, and its adoption by a successor.

Theory of operation
-------------------
The plan outlives its driver. Once it wrote the plan, the driver tells it to every
other participant, each domain a compensation is owed in (a step placed again owes it
in its new domain, which the committed placement does not name) and the original
coordinator (`tell`: a FinalMsg with
`owed`, (step, domain, max attempts) of each compensation, under the resend key
("saga", wf, dst); again when a late result makes it grow), and when the saga is
over it tells that (`saga_over`, under the same key: it replaces a plan not yet
acknowledged). A participant writes the plan (`plans`, merged with one it holds)
and, at the end, an empty plan (closed: a copy of the plan late on the way opens
nothing). Retention keeps a workflow while its plan is open here, and, at the
driver, while a notice is not acknowledged. A restarted driver tells every saga it
drives again (plan or end: what it had sent was resent from memory only).
A Node that holds a later epoch of the workflow with a plan open (`adopt`, on its
end, on a restore) writes the plan as its own rows (PENDING, no attempt; rows of its
own from a saga it drove in an earlier epoch are replaced) and drives it from
attempt 1: each domain answers an attempt number it recorded with what it
recorded (one still running: when it ends), so the saga goes on from where it was and
no attempt runs twice. A participant told a plan by the holder of a later epoch than
the one it follows follows it (`on_plan`: its tells taken, its reports sent there,
the unacknowledged ones again); the old coordinator, back, follows it on that notice
(`later_end`) and drives nothing.

Election. A participant keeps its takeover core while its plan is open
(takeover.py, `live`): its coordinator, the driver, silent or DEAD past
takeover_after_s, it claims the next epoch as for a running workflow, and a member
whose plan is open grants it, its grant carrying the end (takeover_claims.py: a
claimant that never learned the end makes it its own and drives the saga, never
ending the workflow on its own results; one whose plan is closed, or the driver,
answers with the end alone, which counts for nothing there). The winner's Act adopts
the plan (`adopt`, with what the results it holds owe besides: a SUCCEEDED result that
never reached the driver, and its own SUCCEEDED runs of steps placed elsewhere since,
whose report may have died with the driver: saga_runs.own_owed); a member that follows
the new epoch (its grant, or the winner's notice) reports to it again its SUCCEEDED
results that owe a compensation (they join its saga: `late_result`) and its
unacknowledged compensation reports.

Two claimants of one epoch. Claimants of one epoch that both learned the end before
either won each tell it on in that epoch and plan a saga (a claimant's end writes
the epoch as its own: takeover.end_as_successor), each followed by the members its
notice reached first. Left so, the members following one refuse the other's tells,
and its saga never ends. So the authority table lets a rival claimant's end of the
epoch held through to a member that ended the workflow alike, and `rival_end`
judges it, as everyone judges it, by one order: a certified end (the epoch won with
a majority's signed grants) before a claimant's end (there is at most one winner
of an epoch), then the better-ranked (lower-named) claimant, as a split claim
settles (core/workflow/takeover_split.py). The better end is followed
(`yield_to`): a claimant whose end is the worse drops its core and its tells, and
members change driver; each reports to the better one again (its SUCCEEDED results
that owe a compensation join that saga: `late_result`; its unacknowledged reports).
Nothing runs twice: each domain answers an attempt number it recorded with what it
recorded, whoever asks. The worse end is acknowledged, so nobody resends for ever.
Before the order, liveness: of the two, one the member's view says is gone (DEAD or
LEFT) never drives, so the live one is followed, whatever the order says (takeover
soak seed 8901582: the certified holder died for good after telling its end, and
the members that followed it refused the live claimant's tells for ever). Views
differ, so members may follow different holders for a while; as with the original
of a gone holder (compensating.py), each attempt number still runs once at its
domain, answered from its record to whoever asks.
Every claimant tells its end to every member, resent until acknowledged, and every
member judges each rival's notice when it comes, so all end up following the best
end told (a certified holder that hears a rival's tells its end again, with its
certificate: its followers may have forgotten it was certified). It tells it to every
domain of the workflow it knows (`members`), a step's new domain too, which the
committed placement does not name: the rival may be that domain, and, never shown the
certificate, it ranked itself better and drove the epoch's saga for ever beside the
winner's (simulator seed 165200424 with `--commit 2pc`: d0, s0's new domain, restarted,
claimed epoch 1, which d1 had won, was denied with the end and told it on in epoch 1).

Limits. A compensation owed in the dead driver's own domain ends COMPENSATION_FAILED
at its successor once the view says that domain is gone (saga_loss.py). No successor
is elected without a majority of the electorate alive, its plan open (or an acceptor
holding no step): the plans stay open, and retention keeps the workflow, until then.
A claimant that told the end on in its own epoch before the plan reached it plans
from the results it holds; the results the participants report to it again, when
they follow it, join that saga.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import AckMsg, FinalMsg
from fedorch.core.workflow.compensation import plan

SAGA = "saga"  # the resend key (and acknowledgement) of a saga's plan or its end


class SagaPlans:
    def __init__(self, compensating: Any) -> None:
        # The Node's saga part that owns this one (typed loosely: it imports this).
        self.c = compensating
        self.n = compensating.n

    def adopt(self, now: float, wf: str, drive: bool = True) -> None:
        """This Node holds a later epoch of `wf`, ended here with a saga plan open (its
        driver's end notice told it, `plans`): it drives that saga from attempt 1 of
        each owed compensation. Each domain answers an attempt number it recorded with
        what it recorded (`run_here`), so the saga goes on from where it was without
        running an attempt twice: a compensation that ended is folded in at once, one
        still running is answered when it ends, a failed one is retried under the next
        number (which its domain may have recorded too)."""
        n = self.n
        d = n.state
        told = d.plans.get(wf)
        if not told or wf in self.c.cores or not self.c.known(wf) \
                or self.c.driver(wf) != n.name or d.epochs.get(wf, (0, ""))[0] < 1:
            return
        n.point("compensations adopted")
        n.stats["saga plan adopted by a successor"] += 1
        # With what the results held here owe (a SUCCEEDED result that reached this
        # Node but not the driver before it planned, or before it told the plan again).
        info = n.running.info(wf)
        states = {st: name_of(r[1]) for st, r in d.results.get(wf, {}).items()}
        steps = {step for step, _, _ in told}
        more = [c for c in plan(info.spec, states, self.c.results.domain_of(wf))
                if c.step_id not in steps]
        extra = self.c.runs.extra_keys(wf)
        self.c.count_moved(wf, [(c.step_id, c.domain) for c in more])
        owed = told + tuple((c.step_id, c.domain, c.max_attempts) for c in more)
        # And our own SUCCEEDED runs of steps placed elsewhere since, which the plan's
        # driver never had (its report to it lost, or it never planned them): in this
        # write group, as `ended` adds them to a plan of its own (saga_runs.own_owed).
        own = self.c.runs.own_owed(wf, owed)
        if own:
            n.stats["own run of a step placed elsewhere owed in an adopted plan"] += len(own)
        owed += own
        # Rows of its own from an earlier epoch it drove (then followed a later one,
        # whose plan it now adopts) are that saga's, driven no more: the plan replaces
        # them (left, they would keep the plan from being adopted, and its saga stalled).
        stale = [(wf, st.id) for st in info.spec.steps if (wf, st.id) in d.compensations]
        if stale:
            n.stats["saga rows of an earlier epoch replaced by an adopted plan"] += 1
        for key in stale:
            del d.compensations[key]
        for key in extra:
            del d.extra_compensations[key]
        for step, domain, max_attempts in owed:
            self.c.runs.plan_row(wf, step, domain, max_attempts)
        del d.plans[wf]  # the driver's rows are the plan now
        if n.takeover is not None:
            n.takeover.forget(wf)  # acting: its core has nothing left to do
        self.c.cores[wf] = self.c.runs.core(wf)
        self.tell(wf)  # the participants learn the plan again, and who drives it
        if drive:
            self.c.drive(now, wf)

    def tell(self, wf: str, over: bool = False) -> None:
        """As its driver: tell every other participant of `wf` (and its original
        coordinator) the saga's plan, the compensations owed (`FinalMsg.owed`), or that
        the saga is over (`FinalMsg.saga_over`), resent until acknowledged under one key
        per participant (the end replaces a plan not yet acknowledged). Sent after the
        rows are written (the same Ready: its writes before its messages)."""
        n = self.n
        d = n.state
        state = d.final.get(wf)
        if state is None:
            return
        epoch = d.epochs.get(wf, (0, ""))[0]
        rows = self.c.runs.rows(wf)  # every compensation, a step's runs in two domains too
        owed = () if over else tuple(
            (step, r.domain, r.max_attempts) for step, r in rows)
        msg = FinalMsg(wf, state, epoch, owed=owed, saga_over=over)
        info = n.running.info(wf)
        # And each domain a compensation is owed in: a step placed again owes it in its
        # new domain, which the committed placement does not name (it keeps the
        # workflow while the plan is open, as every participant does).
        owing = {r.domain for _, r in rows}
        for dst in sorted((set(info.placement.values()) | owing | {info.coordinator})
                          - {n.name}):
            n.reliable(dst, (SAGA, wf, dst), msg)

    def on_plan(self, src: str, msg: FinalMsg) -> None:
        """A participant told the saga's plan, or its end, by its driver (after
        EndNotices.on_final took the end): the plan is written until the saga is over;
        the end is kept as an empty plan (a plan sent before it and late on the way
        opens nothing then); a plan that grew (a late result joined) is merged."""
        n = self.n
        d = n.state
        wf = msg.workflow_id
        if self.c.known(wf) and msg.epoch > d.epochs.get(wf, (0, ""))[0] \
                and src != n.name and self.c.driver(wf) != n.name:
            # A later epoch's holder drives the saga now (the boundary let its notice
            # through, as an end notice of a later epoch): followed, so its tells are
            # taken and the reports go to it.
            n.point("takeover epoch")
            d.epochs[wf] = (msg.epoch, src)
            if n.takeover is not None and d.granted.get(wf, (0, ""))[0] < msg.epoch:
                d.granted[wf] = (msg.epoch, src)
            self.report_again(wf)
        if self.c.known(wf) and self.c.driver(wf) == src:
            known = d.plans.get(wf)
            if msg.saga_over:
                if known != ():
                    n.point("saga plan")
                    d.plans[wf] = ()
                    n.mark(wf)  # retention may look at it again: its plan is closed
                    if n.takeover is not None:
                        n.takeover.late.plan_closed(wf)  # our claim's granters: the end
                        n.takeover.forget(wf)  # no successor is needed any more
            elif known != ():
                # By (step, domain): a step's runs in two domains owe one each.
                merged = {o[:2]: o for o in known or ()} | {o[:2]: o for o in msg.owed}
                plan = tuple(merged[k] for k in sorted(merged))
                if plan != known:
                    n.point("saga plan")
                    d.plans[wf] = plan
                    if n.takeover is not None:  # watched: a dead driver is taken over
                        n.takeover.resumed(n.now, wf)
        n.send(src, AckMsg((SAGA, wf, n.name), gen=msg.gen))

    def plan_open(self, wf: str) -> bool:
        """A participant's saga plan of `wf` is open here (its driver another Node)."""
        return bool(self.n.state.plans.get(wf)) and self.c.driver(wf) != self.n.name

    def open_plans(self) -> list[str]:
        return sorted(wf for wf in self.n.state.plans if self.plan_open(wf))

    def report_again(self, wf: str) -> None:
        """The driver changed: the reports not acknowledged go to it now (and no
        longer to the one before)."""
        n = self.n
        n.pending.drop(wf, lambda k, v: k[0] == "compensated")
        for key in [k for k in n.state.comp_runs if k[0] == wf]:
            state, _, reported = n.state.comp_runs[key]
            if state != "running" and not reported:
                self.c.report(*key)
        # And the SUCCEEDED results of its steps here that owe a compensation: the new
        # driver may have planned without them (they join its saga: saga_results.py).
        self.c.results.report(wf)

    def rival_end(self, now: float, wf: str, epoch: int, src: str, state: object,
                  won: tuple) -> None:
        """An end notice of `wf` from `src` in the epoch held here for another holder,
        the workflow ended here alike (the authority table let it through: two
        claimants of one epoch that both told on the end they learned). One of them
        drives the saga: a certified end beats a claimant's end, and of two claimants'
        ends the better-ranked (lower-named) claimant's. The better end is followed
        (a holder yields its saga: `yield_to`); the other is only acknowledged, and a
        certified holder tells its end again, so the rival and its followers follow
        it."""
        n = self.n
        d = n.state
        held = d.epochs.get(wf)
        if held is None or epoch < 1 or held[0] != epoch or src in (held[1], n.name) \
                or d.final.get(wf) != state or not self.c.known(wf):
            return
        holder = held[1]
        tk = n.takeover
        if holder == n.name and tk is not None and src not in self.members(wf):
            # A rival unknown here as a member (authority_ends.py let its end through
            # only so): never followed, told our end, which it judges where we are one.
            tk.ends.tell_rival(wf, epoch, src, state)
            return
        gone = n.member_loss.gone
        if gone(holder) != gone(src):
            # One of the two is gone (DEAD or LEFT) in this Node's view: the live one
            # drives, whatever the order says. Following a gone holder, this Node
            # refused the live rival's tells for ever and the saga never ended
            # (takeover soak seed 8901582: the holder, certified, died for good after
            # its end). Nothing runs twice: each domain answers an attempt number it
            # recorded with its record, whoever asks.
            if gone(holder):
                n.stats["saga driver gone: a live claimant of its epoch followed"] += 1
                self.yield_to(now, wf, epoch, src)
            return
        rival_proven = bool(won) and tk is not None and tk.proven(wf, epoch, src, won)
        if holder == n.name:
            ours_proven = d.certificates.get(wf, (0, ()))[0] == epoch
        else:  # a certificate of the holder shown here and still kept (in memory)
            kept = tk.proofs.get(wf) if tk is not None else None
            ours_proven = kept is not None and kept[:2] == (epoch, holder)
        if rival_proven == ours_proven and src > holder or ours_proven and not rival_proven:
            if ours_proven and holder == n.name:
                self.tell_end_again(wf, epoch)
            return
        self.yield_to(now, wf, epoch, src)

    def members(self, wf: str) -> set[str]:
        """The domains of `wf` and its original coordinator, as known here."""
        return self.n.replacement.domains_of(wf) | {self.n.running.info(wf).coordinator}

    def yield_to(self, now: float, wf: str, epoch: int, src: str) -> None:
        """Follow `src`, the better holder of `epoch`: its saga is the one. A holder
        that drove one drops its core and its plan's tells (its rows stay: they are
        no longer driven); a member drops the plan it held of the other (void), and
        learns the better one's from its tells. Both report to `src` again what they
        ran and hold (the results that owe a compensation join its saga:
        `late_result`; an attempt it tells again is answered with what was recorded,
        never run twice)."""
        n = self.n
        d = n.state
        n.point("takeover epoch")
        if d.epochs[wf][1] == n.name:
            n.stats["saga yielded to a better claimant of its epoch"] += 1
            self.c.cores.pop(wf, None)
            self.drop_tells(wf)
        else:
            n.stats["saga driver changed to a better claimant of its epoch"] += 1
        d.epochs[wf] = (epoch, src)
        d.plans.pop(wf, None)
        n.mark(wf)  # retention may look at it again: it drives nothing here
        if n.takeover is not None:
            n.takeover.forget(wf)
        self.report_again(wf)

    def drop_tells(self, wf: str) -> None:
        """This Node drives `wf`'s saga no more: its plan's and its attempts' tells are
        void (the members refuse them, following the driver now), not resent."""
        self.n.pending.drop(wf, lambda k, v: k[0] in (SAGA, "compensate"))

    def tell_end_again(self, wf: str, epoch: int) -> None:
        """As a certified holder of `epoch` that heard a rival claimant's end: its end,
        with its certificate, and its saga, to every member again (`members`: a step's
        new domain too, which may be that rival)."""
        n = self.n
        d = n.state
        info = n.running.info(wf)
        won = n.takeover.proof.own_certificate(wf, epoch)
        for dst in sorted((set(info.placement.values()) | self.members(wf)) - {n.name}):
            n.reliable(dst, ("final", wf, dst), FinalMsg(wf, d.final[wf], epoch, won=won))
        if any(k[0] == wf for k in d.compensations):
            self.tell(wf, over=wf not in self.c.cores)

    def driven(self) -> list[str]:
        """The workflows whose saga this Node drives (its rows, its epoch)."""
        wfs = {wf for wf, _ in self.n.state.compensations}
        return sorted(wf for wf in wfs if self.c.known(wf) and self.c.driver(wf) == self.n.name)


def name_of(state: Any) -> str:
    return getattr(state, "value", state)
