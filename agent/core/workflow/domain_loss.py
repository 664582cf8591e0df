"""What becomes of a step whose domain is lost: one table, sans I/O.

Theory of operation
-------------------
When membership says a domain is DEAD or LEFT (never on SUSPECT: a suspect may be
only slow, and nothing is re-placed on suspicion), the coordinator resolves each
step placed there that is not yet terminal (Progress.domain_lost). The state that
made it lost (`state`: DEAD, LEFT, or UNTRUSTED for a domain removed from the trust
list) travels from where the loss is decided into the reason, so an operator reads
whether the domain died or was stopped. Three facts
decide, read from the step and the coordinator's view of the workflow:

- `may_have_started`: the step reported RUNNING or a result, or every step it
  needs may have SUCCEEDED as far as the lost domain could know (a step starts
  without a word for its first 0.2 s, so a ready step counts as started; below);
- `idempotent`: the spec says running it again is harmless;
- `fail_on_loss`: the spec says `on_domain_loss: fail`.

    (fail_on_loss, may_have_started, idempotent) -> action
    (True,  any,   any)                          -> FAIL_BY_SPEC
    (False, True,  False)                        -> FAIL_STARTED  (at most once: never again)
    (False, True,  True)                         -> REPLACE       (run again elsewhere)
    (False, False, any)                          -> REPLACE       (it never ran)

"Not started" is a claim about what the lost domain saw, made by the coordinator
from what it saw. The producer of a need sends its result to the coordinator and to
the domains of the steps that need it in the same turn (Progress.result_recipients,
reliably: resent until acknowledged). A coordinator restarted meanwhile does not have
what was sent while it was down (the resends come later), though the step's domain may
have it and have started the step (takeover soak seeds 3201512 and 3201726: placed
again, a not-idempotent step ran twice, in the lost domain and in its new one). So a
need counts as possibly SUCCEEDED (Progress._may_have_succeeded) unless:
- it ended otherwise (FAILED, SKIPPED, CANCELLED): it never will;
- it is placed on the coordinator's own domain and never was elsewhere: its producer
  is this very agent, whose result is written before it leaves, so a need not
  SUCCEEDED here was reported nowhere, restart or not;
- it cannot have started itself: one of its own needs cannot have succeeded, by the
  same rule (a need placed again after a loss counts its earlier domains);
- it is placed on a third domain and the coordinator missed no report (its progress
  was not rebuilt after a restart: `reports_missed`): its result comes here in the
  same turn as it goes there.
And whatever else is known, a need (not a fan-out instance) counts as SUCCEEDED once a
step that needs it is heard started anywhere (a RUNNING report or a result): its
producer told every domain that needs it in that same turn (Progress._started_after).
A fan-out need is met as its group is (`_need_met`): its outcome if known, else
whether enough instances may have succeeded. The first three hold whatever the
network does. The last does not, strictly: a result delayed on its way to a coordinator
that never stopped (lost, resent, slow) for longer than the lost domain takes to be
DEAD and its loss grace, while it reached the step's domain in time, is missed when
no step after it was heard started (takeover soak seed 89500553 heard one: its
sibling on the lost domain reported RUNNING first; a report of the step itself from
the lost domain, come while it waits to be placed again, counts too:
agent/core/node/replacement_heard.py, seed 92000324; docs/architecture.md, "Not
built"); treating every third-domain need as possibly
SUCCEEDED would close that too, but would fail every not-idempotent step whose
upstream runs elsewhere (it could no longer be placed again when it never started);
the mend that keeps both is to ask the need's producer, which knows whom it told.

REPLACE sends the step back to PENDING, unplaced, with its epoch moved on; the
coordinator then runs a new negotiation round for that step only, the lost domain
excluded (agent/runtime/replacement.py). On COMMIT the step is placed again
(Progress.placed_again, its epoch the round's number); when no domain is eligible
or the round aborts, it FAILS with `not_replaced_reason`. A successor that took
the workflow over runs the same rounds, its PREPAREs carrying its epoch certificate
(agent/core/workflow/epoch_certificate.py); a caller that can run no round passes
`can_replace=False` and the step fails at once, as FAIL_* do. Every reason names
the lost domain and how it was lost: `domain us-east was lost (LEFT) ...`.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

# The membership states that make a domain lost, and the trust list's removal.
DEAD, LEFT, UNTRUSTED = "DEAD", "LEFT", "UNTRUSTED"


class LossAction(enum.StrEnum):
    FAIL_BY_SPEC = "FAIL_BY_SPEC"
    FAIL_STARTED = "FAIL_STARTED"
    REPLACE = "REPLACE"


class LossCase(NamedTuple):
    may_have_started: bool
    idempotent: bool
    fail_on_loss: bool


LOSS_TABLE: dict[LossCase, LossAction] = {
    LossCase(started, idempotent, fail): (
        LossAction.FAIL_BY_SPEC if fail
        else LossAction.FAIL_STARTED if started and not idempotent
        else LossAction.REPLACE)
    for started in (False, True) for idempotent in (False, True) for fail in (False, True)
}


def loss_action(case: LossCase) -> LossAction:
    return LOSS_TABLE[case]


def loss_reason(domain: str, action: LossAction, case: LossCase, can_replace: bool,
                state: str = DEAD) -> str:
    """The error a step FAILED by the loss of `domain` carries (it names the domain and
    the `state` that made it lost)."""
    lost = f"domain {domain} was lost ({state})"
    when = " while the step ran" if case.may_have_started else " before the step started"
    if action is LossAction.FAIL_BY_SPEC:
        return f"{lost}{when}; not placed again: on_domain_loss: fail"
    if action is LossAction.FAIL_STARTED:
        return (f"{lost} while the step ran (or could have started); not run again: the"
                " step is not idempotent (idempotent: false)")
    if can_replace:
        return ""
    return f"{lost}{when}; not placed again: this coordinator cannot run a new round"


def not_replaced_reason(domain: str, started: bool, why: str, state: str = DEAD) -> str:
    """The error of a step that was to be placed again after the loss of `domain` (in
    membership `state`), and could not be (`why`: no eligible domain, or the round's
    refusals)."""
    when = " while the step ran" if started else " before the step started"
    return f"domain {domain} was lost ({state}){when}; could not place the step again: {why}"
