"""Self-fencing, the shell: a domain cut off from its workflow stops the step it runs.

The I/O around agent/core/workflow/self_fencing.py. StepRuns tells it when an attempt
starts and ends here, and when a message of a workflow arrives and is acted on (a
result it needed; Participation: a COMMIT, a re-placement), which is contact with the
workflow (`rule.WorkflowHeard`: the lease counts from the last contact, never from an
attempt's start); while any runs, one timer is armed at the earliest moment the
rule says to look again (`next_look`), never a polling loop. When it fires, each
running attempt's contacts (the coordinator this agent follows, and the other
participants) are read from this agent's own membership view as the workflows act on it
(`state_for_work`: a member DEAD within its loss grace is SUSPECT), with the clock of the
membership core (the agent's monotonic clock, `ctx.now()`), and an attempt the rule
fences is stopped: its task is cancelled (the executor kills its process group), and
the step ends FAILED here with the reason, through the same path as any attempt's end.
An attempt about to start when the rule already fences its workflow here (a retry or
the next step of a chain, started by a local end while cut off, past the lease since
the last contact) is never run: StepRuns asks `refusal` first, and its attempt ends
FAILED with the reason the same way.
Its result then goes to the coordinator like any other, until acknowledged: when
contact returns it arrives, and the coordinator refuses it if the step was re-placed
meanwhile (placement fencing). A fenced step is not retried here: whatever attempts
it has left belong to a replacement, away from this cut-off domain.

After a restart (the rule's "After a restart"): each workflow read back at start-up is
`restored` here, and StepRuns takes none of its ready steps (`may_start`) until a
message of it has been heard in this life; the first step held back calls `on_held`
(InDoubt asks the workflow's coordinator until it answers, which is such a message).
A workflow set up from a COMMIT learned without its coordinator (the rule's "A COMMIT
learned without the coordinator": Participation passes `not_heard`) is held back the
same way, by the same asking.
A workflow that ends here is forgotten at once (`forget`, from the agent's end hook).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from fedorch.core.membership.swim_profiles import suspicion_bounds
from fedorch.core.membership.swim_types import MemberView
from fedorch.core.workflow import self_fencing as rule
from fedorch.core.workflow.progress import StepState
from fedorch.runtime.context import Active

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.fencing")
# The default lease, in times the gossip profile's longest time to a DEAD verdict.
LEASE_DEAD_TIMES = 3.0


class StepEnds(Protocol):
    """What the watcher uses of StepRuns: a step's end, applied and reported."""

    async def after_step(self, active: Active, step_id: str, state: StepState, *,
                         ended_run: tuple[int, str] | None = None) -> None: ...


@dataclass
class _Running:
    active: Active
    step_id: str
    attempt: int


def coordinator_followed(active: Active) -> str:
    """The coordinator this agent follows (or is, acting). Not one it granted an epoch
    to without following it yet: its own claim is no contact, and while it only claims
    (a majority not granted) it must still fence."""
    return active.row.coordinator


class SelfFencing:
    def __init__(self, agent: AgentContext, steps: StepEnds) -> None:
        self.agent = agent
        self._steps = steps
        self._running: dict[tuple[str, str], _Running] = {}  # (workflow, step)
        self._heard = rule.WorkflowHeard()  # by workflow: its last contact outside the view
        # Told of a restored workflow whose step is held back until it is heard from
        # (InDoubt sets it: it asks the coordinator); each workflow once.
        self.on_held: Callable[[Active], None] | None = None
        self._held: set[str] = set()
        agent.on_settled.append(self._settled)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def _views(self) -> dict[str, MemberView] | None:
        """This agent's membership view by domain; None before membership runs (no view:
        nothing is known lost)."""
        a = self.agent
        if a.membership is None:
            return None
        return {v.name: v for v in a.membership.swim.members()}

    def lease_s(self, members: int) -> float:
        """The step lease: configured, else three times the time to a DEAD verdict in a
        federation of `members`."""
        a = self.agent
        configured = a.config.negotiation.step_lease_s
        if configured > 0:
            return configured
        profile = a.membership.profile if a.membership is not None else None
        if profile is None:
            return 30.0
        return LEASE_DEAD_TIMES * (profile.probe_interval
                                   + suspicion_bounds(profile, max(1, members))[1])

    # ---- what StepRuns tells ----------------------------------------------------------

    def heard(self, workflow_id: str) -> None:
        """A message of the workflow arrived and is acted on here: contact with it."""
        if workflow_id in self.agent.active:  # an ended one is forgotten, not noted again
            self._heard.heard(workflow_id, self.agent.now())

    def restored(self, workflow_id: str) -> None:
        """Read back from disk at start-up: none of its steps starts here until a message
        of it has been heard in this life."""
        self._heard.restored(workflow_id)

    def not_heard(self, workflow_id: str) -> None:
        """Set up from a COMMIT learned without its coordinator: none of its steps starts
        here until the coordinator answers with their placement epochs (as restored)."""
        self._heard.not_heard(workflow_id)

    def may_start(self, active: Active) -> bool:
        """May a ready step of `active` be taken to start here? Not while it is a restored
        workflow not heard from in this life (then `on_held` is told, once). The
        workflow's acting coordinator never fences, so it is never held."""
        wf = active.row.id
        if self._heard.may_start(wf) or coordinator_followed(active) == self.agent.domain:
            return True
        if wf not in self._held and self.on_held is not None:
            self._held.add(wf)
            self.on_held(active)
        return False

    def asked(self, workflow_id: str) -> None:
        """The asking for `workflow_id` is over (heard, ended or given up): a step held
        back again may ask again."""
        self._held.discard(workflow_id)

    def heard_in_this_life(self, workflow_id: str) -> bool:
        return self._heard.may_start(workflow_id)

    def refusal(self, active: Active) -> str | None:
        """Why an attempt of `active` about to start here must not run (the rule fences
        the workflow here already, or nothing of it was heard since a restart), or None."""
        now = self.agent.now()
        heard_at = self._heard.starting(active.row.id, now)
        if heard_at is None and coordinator_followed(active) != self.agent.domain:
            return ("fenced: its coordinator has not said in this life that the step is"
                    " still placed here (a restart, or a COMMIT learned without it): not"
                    " started, so that it never runs in two domains at once")
        heard_at = now if heard_at is None else heard_at
        views = self._views()
        contacts = self.contacts(active, views)
        lease = self.lease_s(len(views or ()))
        if not rule.fenced(contacts, heard_at, lease, now):
            return None
        return rule.reason([c.domain for c in contacts],
                           now - rule.lost_since(contacts, heard_at))

    def started(self, active: Active, step_id: str, attempt: int) -> None:
        running = _Running(active, step_id, attempt)
        self._running[(active.row.id, step_id)] = running
        self._arm([running])  # the others' looks are armed already

    def ended(self, workflow_id: str, step_id: str, attempt: int) -> None:
        running = self._running.get((workflow_id, step_id))
        if running is not None and running.attempt == attempt:
            del self._running[(workflow_id, step_id)]
        if workflow_id not in self.agent.active:  # ended here: the end hook forgot it
            self._heard.forget(workflow_id)  # (its tasks end after it)
        if not self._running and self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    # ---- the rule --------------------------------------------------------------------

    def contacts(self, active: Active,
                 views: dict[str, MemberView] | None) -> list[rule.Contact]:
        """The domains whose contact keeps this agent's steps of `active` running, as
        this agent's membership `views` see them."""
        a = self.agent
        others = set(active.row.placement.values()) | {coordinator_followed(active)}
        others.discard(a.domain)
        others.discard("")
        if views is None or coordinator_followed(active) == a.domain:
            return []  # it coordinates: it cannot lose its coordinator (see the rule)
        membership = a.membership
        out = []
        for domain in sorted(others):
            view = views.get(domain)
            # The state the workflows act on (Membership.state_for_work), not SWIM's: a
            # member DEAD within its loss grace reads SUSPECT, still contact. The other
            # side acts on this domain's loss only past its own grace, so nothing is
            # placed elsewhere sooner for a verdict here; and a verdict here may be false
            # (the contact stalled, and refutes within the grace). The lease, counted
            # from the last message heard, still bounds a step cut off for real: once the
            # grace has passed the deadline is that moment plus the lease, as before.
            state = membership.state_for_work(domain) \
                if view is not None and membership is not None else ""
            out.append(rule.Contact(domain, state,
                                    view.last_heard if view is not None else None))
        return out

    def _arm(self, running: list[_Running] | None = None) -> None:
        """One timer, at the earliest moment the rule says to look again at any attempt
        running here (or at `running`, when the others' looks are armed already)."""
        running = list(self._running.values()) if running is None else running
        if not running:
            return
        views = self._views()
        now, lease = self.agent.now(), self.lease_s(len(views or ()))
        at = min(rule.next_look(self.contacts(r.active, views), self._heard_at(r), lease, now)
                 for r in running)
        if at == math.inf or at >= self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(max(0.0, at - now), self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self.agent.spawn(self.look(), name="self-fencing look")

    async def look(self) -> list[tuple[str, str]]:
        """Apply the rule to every attempt running here; returns the (workflow, step)
        pairs fenced. Re-arms the timer for the rest."""
        views = self._views()
        now, lease = self.agent.now(), self.lease_s(len(views or ()))
        fenced = []
        for key, running in list(self._running.items()):
            contacts = self.contacts(running.active, views)
            heard_at = self._heard_at(running)
            if rule.fenced(contacts, heard_at, lease, now):
                silent = now - rule.lost_since(contacts, heard_at)
                await self._fence(running, rule.reason([c.domain for c in contacts], silent))
                fenced.append(key)
        self._arm()
        return fenced

    def _heard_at(self, running: _Running) -> float:
        heard_at = self._heard.starting(running.active.row.id, self.agent.now())
        # (None only for one started before its workflow was restored: never in the
        # agent, whose restore comes before any start; then from now.)
        return self.agent.now() if heard_at is None else heard_at

    def _settled(self, workflow_id: str) -> None:
        """The agent's end hook (also told of a decision learned here): a workflow no
        longer active here ended, and its contact moment goes with it."""
        if workflow_id not in self.agent.active:
            self._heard.forget(workflow_id)
            self._held.discard(workflow_id)

    async def _fence(self, running: _Running, why: str) -> None:
        active, step_id, attempt = running.active, running.step_id, running.attempt
        self._running.pop((active.row.id, step_id), None)
        task = active.running.get(step_id)
        if task is None or active.progress is None:
            return  # it ended meanwhile
        log.warning("%s/%s#%d: %s", active.row.id, step_id, attempt, why)
        task.cancel()  # the executor kills the step's process group on the way out
        await asyncio.wait({task})
        await self.end_fenced(active, step_id, attempt, why)

    async def end_fenced(self, active: Active, step_id: str, attempt: int, why: str) -> None:
        """The attempt ends FAILED here with `why` and is not retried here (stopped, or
        refused before it ran)."""
        a = self.agent
        if active.progress is None:
            return
        step = active.progress.steps[step_id]
        if step.state is not StepState.RUNNING or step.attempts != attempt \
                or a.active.get(active.row.id) is not active:
            return  # the workflow ended meanwhile: its end already stopped the step
        step.max_attempts = attempt  # not retried here: see the module's docstring
        state = active.progress.attempt_ended(step_id, attempt, False, {}, why)
        a.metrics.steps_self_fenced.inc()
        a.metrics.steps.labels("failed").inc()
        await self._steps.after_step(active, step_id, state, ended_run=(attempt, "failed"))
