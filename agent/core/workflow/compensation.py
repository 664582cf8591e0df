"""Sagas core: which compensations may run, their attempts, and how they stand.

Theory of operation
-------------------
When a committed workflow ends FAILED or CANCELLED, each of its steps that had
SUCCEEDED and whose spec has a `compensate` block is undone by its compensation
(`plan`). The coordinator keeps one Compensation per such workflow; it is pure (the
shell, agent/runtime/compensation.py, persists every change before it acts on it and
sends the attempts to the domains that ran the steps).

Order. Compensations run in reverse dependency order: a step's compensation starts
only once the compensation of every compensated step downstream of it (transitively:
through steps that have none) has ended, whether it succeeded or failed. A step that
ran before another may have produced what the other consumed; undoing the producer
first could leave the consumer's compensation without what it needs. Independent
branches compensate concurrently.

Attempts. `start_ready` moves each ready PENDING compensation to RUNNING with its
next attempt number (the shell records it durably before it is sent: the attempt
number is part of its idempotency key). `attempt_ended` folds in the answer: success
makes it COMPENSATED; a failure with attempts left (`compensate.retries`) sends it
back to PENDING, else it is COMPENSATION_FAILED with the error. A late or duplicated
answer to an older attempt changes nothing.

Summary. NONE when there was nothing to compensate, RUNNING while any compensation
has not ended, FAILED when all have and one failed, DONE when all succeeded.

Runs in more than one domain. A step placed again (its first domain lost) may have
SUCCEEDED in both its domains (an idempotent step whose old run finished while its
new one ran): each run's side effects happened where it ran, so each owes its own
compensation there. `steps` holds one compensation per step (the first planned);
`others` the compensations of the same step's runs in other domains, keyed (step,
domain). Each is its own entry with its own attempts (its domain's attempt numbers
are its own idempotency keys); all of a step's entries share its place in the
order: each waits for every entry of the compensated steps downstream of it, and the
entries of one step, independent, run at the same time. `entry(step, domain)` finds
the one a domain's report is about.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fedorch.gen.fedorch.v1 import spec_pb2


class CompState(enum.StrEnum):
    PENDING = "PENDING"  # not started, or its last attempt failed with attempts left
    RUNNING = "RUNNING"  # an attempt is out
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"


ENDED = frozenset({CompState.COMPENSATED, CompState.COMPENSATION_FAILED})


class Summary(enum.StrEnum):
    NONE = "NONE"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


@dataclass
class CompStep:
    """One step's compensation, as the coordinator tracks (and stores) it."""

    step_id: str
    domain: str       # the domain that ran the step: its compensation runs there
    max_attempts: int
    state: CompState = CompState.PENDING
    attempts: int = 0
    error: str = ""


@dataclass(frozen=True)
class CompAttempt:
    step_id: str
    domain: str
    attempt: int


def compensable(spec: spec_pb2.WorkflowSpec) -> set[str]:
    """The ids of steps whose spec has a `compensate` block."""
    return {s.id for s in spec.steps if s.HasField("compensate")}


def plan(spec: spec_pb2.WorkflowSpec, step_states: Mapping[str, str],
         domains: Mapping[str, str]) -> list[CompStep]:
    """The compensations a workflow that ended FAILED or CANCELLED owes: one for each
    step that SUCCEEDED (`step_states`, by name) and has a `compensate` block, to run
    in the domain that ran it (`domains`)."""
    out = []
    for s in spec.steps:
        if s.HasField("compensate") and step_states.get(s.id) == "SUCCEEDED" \
                and domains.get(s.id):
            out.append(CompStep(s.id, domains[s.id], 1 + s.compensate.retries))
    return out


def summary(states: Iterable[CompState]) -> Summary:
    states = list(states)
    if not states:
        return Summary.NONE
    if any(s not in ENDED for s in states):
        return Summary.RUNNING
    if any(s is CompState.COMPENSATION_FAILED for s in states):
        return Summary.FAILED
    return Summary.DONE


class Compensation:
    """The compensations of one workflow: `steps` as planned (or restored), and
    `others`: those of a step's runs in further domains (see the header)."""

    def __init__(self, spec: spec_pb2.WorkflowSpec, steps: Iterable[CompStep],
                 others: Iterable[CompStep] = ()) -> None:
        self.steps: dict[str, CompStep] = {s.step_id: s for s in steps}
        self.others: dict[tuple[str, str], CompStep] = {
            (s.step_id, s.domain): s for s in others
            if s.step_id in self.steps and self.steps[s.step_id].domain != s.domain}
        needs = {s.id: tuple(s.needs) for s in spec.steps}
        downstream: dict[str, set[str]] = {sid: set() for sid in needs}
        for sid, ns in needs.items():
            for n in ns:
                downstream.setdefault(n, set()).add(sid)
        # For each compensated step, the compensated steps downstream of it (transitively).
        self._after: dict[str, frozenset[str]] = {
            sid: frozenset(d for d in _reachable(sid, downstream) if d in self.steps)
            for sid in self.steps
        }
        # An attempt that was out when a restarted coordinator stopped is sent again
        # with the same number (its idempotency key): the domain answers what it did.
        self._resend = [CompAttempt(s.step_id, s.domain, s.attempts)
                        for s in self.entries() if s.state is CompState.RUNNING]

    def entries(self) -> list[CompStep]:
        """Every compensation: each step's first, then those of its other runs."""
        return [*self.steps.values(), *self.others.values()]

    def entry(self, step_id: str, domain: str) -> CompStep | None:
        """The compensation of `step_id`'s run in `domain`; else its first one (a
        report from a domain the step's entries do not name: the first one's, as
        before there were others), None if the step owes none."""
        return self.others.get((step_id, domain)) or self.steps.get(step_id)

    def add(self, s: CompStep) -> bool:
        """A further run of a planned step owes its compensation too (its domain is
        not one of the step's entries yet): an entry of its own. False if it is."""
        first = self.steps.get(s.step_id)
        if first is None or first.domain == s.domain or (s.step_id, s.domain) in self.others:
            return False
        self.others[(s.step_id, s.domain)] = s
        return True

    def waits_for(self, step_id: str) -> frozenset[str]:
        """The compensations that must end before this one may start."""
        return self._after[step_id]

    def start_ready(self) -> list[CompAttempt]:
        """Attempts to send now: those a restart left out first, then each PENDING
        compensation whose downstream compensations have all ended (now RUNNING)."""
        out, self._resend = self._resend, []
        for s in self.entries():
            if s.state is not CompState.PENDING:
                continue
            if any(o.state not in ENDED for o in self.entries()
                   if o.step_id in self._after[s.step_id]):
                continue
            s.state = CompState.RUNNING
            s.attempts += 1
            s.error = ""
            out.append(CompAttempt(s.step_id, s.domain, s.attempts))
        return out

    def attempt_ended(self, step_id: str, attempt: int, ok: bool, error: str,
                      domain: str = "") -> CompState:
        """Fold in an attempt's answer (from `domain`: `entry`); returns the
        compensation's state afterwards."""
        s = self.entry(step_id, domain)
        assert s is not None, step_id
        if s.state is not CompState.RUNNING or attempt != s.attempts:
            return s.state  # late or duplicated
        if ok:
            s.state, s.error = CompState.COMPENSATED, ""
        elif attempt < s.max_attempts:
            s.state, s.error = CompState.PENDING, error
        else:
            s.state, s.error = CompState.COMPENSATION_FAILED, error
        return s.state

    def lost(self, step_id: str, error: str, domain: str = "") -> bool:
        """The domain of this compensation (`entry`) is gone for good as far as its
        driver can tell: it ends COMPENSATION_FAILED with `error`, whatever attempt was
        out (not told again after a restart either). An answer that comes later
        changes nothing (`attempt_ended` folds in a RUNNING one only). False if it had
        ended already."""
        s = self.entry(step_id, domain)
        if s is None or s.state in ENDED:
            return False
        s.state, s.error = CompState.COMPENSATION_FAILED, error
        self._resend = [a for a in self._resend
                        if (a.step_id, a.domain) != (step_id, s.domain)]
        return True

    def done(self) -> bool:
        return all(s.state in ENDED for s in self.entries())

    def summary(self) -> Summary:
        return summary(s.state for s in self.entries())


def _reachable(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(edges.get(n, ()))
    return seen

