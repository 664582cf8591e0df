"""What membership's DEAD and LEFT do to a saga's compensations, at its driver.

Theory of operation
-------------------
A compensation runs in the domain that ran its step, and nowhere else (the step's
effects are there). A domain gone for good never answers a tell: the saga that owes
a compensation there would stay RUNNING for ever, its driver telling the attempt
again and again (takeover soak seeds 1401967 and 1600691: the owing domain was the
dead original coordinator's own, and the successor elected for the open plan waited
on it). So, as domain_loss.py does for a step, the saga's driver gives a verdict:
when its membership view says the owing domain is gone (DEAD past the loss grace, or
LEFT: `MemberLoss.gone`, the inputs domain_loss.py acts on; SUSPECT is not DEAD),
every compensation there that has not ended ends COMPENSATION_FAILED, the reason
naming the domain and saying whether an attempt was out (`reason`). The saga then
ends as the core says (its summary FAILED), is told over, and retention may forget it.

Who judges: only the current driver of the saga, the Node whose `Compensating` core
of the workflow exists here (it holds the workflow's epoch as its own: compensating.py's
epoch rule). A driver whose epoch is over has dropped its core, so it judges nothing;
one that adopts a plan later judges again from its own view.

When: on a change of the view that makes a member gone (`lost`, from the Node), and
each time the driver is about to start attempts (`judge`, from Compensating.drive:
a new saga, an adopted plan, a restore, a late result, a report folded in), so an
attempt is never told to a domain the view already says is gone.

Durable first: the verdict is the compensation's row (COMPENSATION_FAILED, the
reason), written in the Ready of the input that caused it, before the saga's end
is told (the tells of the Ready leave after its writes). The tells still resent to
that domain are dropped.

When the domain comes back. Its report of an attempt (it ran before the domain was
lost, or a tell still on the way reached it after) is *fenced*: the verdict stands,
the report is acknowledged (so it is not resent for ever) and counted
(`fenced`: "compensation report after its loss verdict: the verdict stands"); the
record of what ran stays in that domain's `comp_runs`. Why not take it: the saga may
have ended on the verdict, its end told to every participant (who closed the plan)
and shown by status; a report taken afterwards would reopen an end already told, and
a reader (an operator undoing by hand what a COMPENSATION_FAILED names) could act on
a state that then changes under it. The verdict says what the driver could know; the
reason names the domain where the truth is. Nothing runs twice: the driver tells
nothing more there, and each attempt is idempotent at its domain anyway.

Not done here: a successor that adopts the plan while the domain is back tells the
attempt again and may get it COMPENSATED, where the previous driver's rows said
COMPENSATION_FAILED: each driver's rows are its own view, and only the current one's
status answers for the saga.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import CompensatedMsg
from fedorch.core.workflow.compensation import CompState


def reason(domain: str, state: str, attempt: int, running: bool) -> str:
    """The verdict's error, naming the lost domain as a step's loss verdict does."""
    if running:
        return (f"domain {domain} was lost ({state}) while attempt {attempt} of its"
                " compensation was out: its outcome is unknown, not told again")
    return f"domain {domain} was lost ({state}) before its compensation could run"


def was_lost(domain: str, error: str) -> bool:
    """Is this error a saga loss verdict on a compensation owed in `domain`?"""
    return error.startswith(f"domain {domain} was lost (")


class SagaLoss:
    def __init__(self, compensating: Any) -> None:
        # The Node's saga part that owns this one (typed loosely: it imports this).
        self.c = compensating
        self.n = compensating.n

    def lost(self, now: float, domains: list[str]) -> None:
        """The view now says each of `domains` is DEAD or LEFT (it did not before): the
        sagas driven here that owe a compensation there are judged and driven on."""
        for wf in sorted(self.c.cores):
            core = self.c.cores[wf]
            if any(s.domain in domains for s in core.entries()):
                self.c.drive(now, wf)  # judges first (`judge`)

    def judge(self, wf: str) -> None:
        """Before the driver starts attempts of `wf`: each compensation not ended whose
        domain the view says is gone ends COMPENSATION_FAILED (its row written now),
        and what is still resent to that domain for it is told no more."""
        n = self.n
        core = self.c.cores.get(wf)
        if core is None or self.c.driver(wf) != n.name:
            return
        # Each entry by its own domain (a step's runs in two domains: saga_runs.py).
        for s in sorted(core.entries(), key=lambda s: (s.step_id, s.domain)):
            if not n.member_loss.gone(s.domain):
                continue
            running = s.state is CompState.RUNNING
            if not core.lost(s.step_id, reason(s.domain, n.members[s.domain], s.attempts,
                                               running), s.domain):
                continue
            n.point("compensation lost")
            n.stats["compensation failed: its domain was lost"] += 1
            self.c.runs.write(wf, s)
            n.pending.drop(wf, lambda k, v, s=s: k[0] == "compensate"
                           and k[2] == s.step_id and k[4] == s.domain)

    def fenced(self, wf: str, msg: CompensatedMsg, src: str = "") -> bool:
        """Is `msg` (from `src`) a report of a compensation this Node ended on a loss
        verdict (its domain back)? Counted; the caller acknowledges it and takes
        nothing."""
        d = self.n.state
        row = d.extra_compensations.get((wf, msg.step_id, src)) \
            or d.compensations.get((wf, msg.step_id))
        if row is None or row.state != CompState.COMPENSATION_FAILED.value \
                or not was_lost(row.domain, row.error):
            return False
        self.n.stats["compensation report after its loss verdict: the verdict stands"] += 1
        return True
