"""The Node's self-fencing: a participant cut off from its workflow stops its own steps.

Theory of operation
-------------------
A domain that runs a step of a committed workflow may be cut off from everyone who
could replace it (a partition, or every one of them died). The other side may then
declare it DEAD and place its step elsewhere; the two copies must not both keep
running. So the cut-off domain stops the step itself once it has been out of contact
for the step lease (`Timing.step_lease_s`; None: self-fencing off, as in a Node whose
driver posts no membership view). The rule is the shells', reused as it is
(agent/core/workflow/self_fencing.py): this part only feeds it what the Node knows.

Contacts. Per workflow with an attempt running here: the coordinator this Node follows
(the original one, or the successor it follows after a takeover: `Disk.epochs`; a
claimant it only granted an epoch to is not followed, and its own claim is no contact)
and every other participant of the committed placement. A Node that coordinates the
workflow itself (originally or as an acting successor) has no contact to lose and
never fences. Each contact's state is the driver's membership view (`Node.members`,
the state the workflows act on: in the daemon a DEAD verdict within its loss grace
reads SUSPECT). ALIVE and SUSPECT are contact (SUSPECT is not DEAD: nothing is fenced
on suspicion alone); DEAD, LEFT and unknown are not.

Last heard. The rule counts the lease from the last moment anything was heard from a
contact. The Node sees every message's sender (any message from a contact counts,
whatever workflow it is about), but not membership's own probes and acks. The view
stands in for them as the shells' `last_heard` did: a contact the view says
is ALIVE is heard from up to the moment the view stops saying so (a change away from
ALIVE, or to it, is a moment heard). That moment is at most a probe period or so
after membership last heard it, so the lease here runs at most that much longer than
the shells'. The workflow's own moment (`heard_at`, `WorkflowHeard`) is
its first attempt's start here, which follows the COMMIT or the result it needed.

When. `deadline` is kept per workflow whose contacts are all lost (`due`); while any
is reachable there is none, and a view change is an input, so no periodic look is
needed. The earliest is part of `Node.get_timer()`. A message only moves a deadline
later, so it is not recomputed on every message: when the timer fires the deadline is
computed again, and only an attempt the rule still fences is stopped (the rest get
their new deadline). Each change of the view recomputes every running workflow's.

Fencing. Each attempt of the workflow running here is stopped (`stop_steps`) and ends
FAILED with the rule's reason, not retried here (whatever attempts it has left belong
to a replacement, away from this cut-off domain): its result is written in the same
Ready, before it is sent, and goes to the coordinator, resent until acknowledged like
any result, so it arrives when contact returns (and a coordinator that placed the step
elsewhere meanwhile refuses it by its placement epoch). An attempt about to start
while the rule already fences its workflow here (a retry, the next step of a chain
here, a fan-out's next wave) is never started: it ends FAILED the same way.

A restart blanks all of it: `heard_from` and `heard_at` are in memory only (a write
per message would cost the hot path), and an attempt found started at a restore ends
as interrupted. A workflow restored here gets a lease from its first start in the new
life. Nothing of a restored workflow starts before its coordinator says the step
is still placed here: that rule is restart_check.py's.

Asking before a start. The lease stops attempts only once every contact was lost for
all of it, far later than the coordinator needs to judge this Node DEAD and place its
step elsewhere. So an attempt about to start while this Node is out of touch with its
coordinator is held and the coordinator asked first (start_asks.py, `asks`: a part of
this one, on when self-fencing is, as it reads the same view and the same messages).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.deadlines import DeadlineTable
from fedorch.core.node.start_asks import StartAsks, start_margin
from fedorch.core.workflow import self_fencing as rule
from fedorch.core.workflow.progress import StepState


class SelfFencing:
    def __init__(self, node: Any, lease_s: float) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node
        self.lease_s = lease_s
        # Attempts held until the coordinator says go (start_asks.py).
        self.asks = StartAsks(node, start_margin(node.t.dead_after_s))
        self.reset()

    def reset(self) -> None:
        """A restore: nothing heard in this life yet, nothing running."""
        self.heard_from: dict[str, float] = {}  # domain -> the last moment heard
        self.heard = rule.WorkflowHeard()  # workflow -> its first start here
        self.running: set[str] = set()  # workflows with an attempt started here
        # Workflow -> when the rule fences it; its earliest and due ones from a heap
        # (deadlines.py), not a walk of every watched workflow per turn.
        self.due = DeadlineTable()
        self.asks.reset()

    # ---- what the Node tells ---------------------------------------------------------

    def message_from(self, now: float, src: str) -> None:
        """Any message from `src` (verified by the driver): contact with it now."""
        self.heard_from[src] = now
        self.asks.message_from(now, src)

    def views_changed(self, now: float, before: dict[str, str | None]) -> None:
        """The view of the domains in `before` (their states before) changed: a change
        to or from ALIVE is a moment heard; every running workflow's deadline anew."""
        members = self.n.members
        for domain, old in before.items():
            if old == "ALIVE" or members.get(domain) == "ALIVE":
                self.heard_from[domain] = now
        for wf in list(self.running):
            self._look(now, wf)

    def starting(self, now: float, wf: str) -> str | None:
        """An attempt of `wf` is about to start here: the rule's reason if it must not
        (its workflow is fenced here already), else None and it is watched."""
        heard_at = self.heard.starting(wf, now)
        contacts = self.contacts(wf)
        if heard_at is not None and rule.fenced(contacts, heard_at, self.lease_s, now):
            self.n.stats["step not started: fenced"] += 1
            return self._reason(now, contacts, heard_at)
        self.running.add(wf)
        self._look(now, wf)
        return None

    def would_fence(self, now: float, wf: str) -> bool:
        """Would `starting` refuse an attempt of `wf` now (nothing changed by asking)?"""
        heard_at = self.heard.at(wf)
        return heard_at is not None \
            and rule.fenced(self.contacts(wf), heard_at, self.lease_s, now)

    def forget(self, wf: str) -> None:
        """`wf` ended here."""
        self.asks.forget(wf)
        self.heard.forget(wf)
        self.running.discard(wf)
        self.due.pop(wf, None)

    # ---- the timer -------------------------------------------------------------------

    def timer(self) -> float | None:
        fence, ask = self.due.earliest(), self.asks.timer()
        return ask if fence is None else fence if ask is None else min(fence, ask)

    def tick(self, now: float) -> None:
        """Fence every workflow whose deadline has come (computed again first), in the
        order they were first given one; ask again about the starts held."""
        self.asks.tick(now)
        for wf in self.due.due(now):
            self._look(now, wf, fence=True)

    # ---- the rule --------------------------------------------------------------------

    def contacts(self, wf: str) -> list[rule.Contact]:
        """The domains whose contact keeps this Node's attempts of `wf` running."""
        n = self.n
        info = n.running.info(wf)
        followed = n.state.epochs.get(wf, (0, info.coordinator))[1]
        if followed == n.name:
            return []  # it coordinates: it cannot lose its coordinator (see the rule)
        others = set(info.placement.values()) | {followed}
        others.discard(n.name)
        others.discard("")
        return [rule.Contact(d, n.members.get(d, ""), self.heard_from.get(d))
                for d in sorted(others)]

    def _look(self, now: float, wf: str, *, fence: bool = False) -> None:
        """`wf`'s deadline now (dropped when nothing of it runs here any more); with
        `fence`, its attempts are stopped if the deadline has come."""
        p = self.n.progress.get(wf)
        heard_at = self.heard.at(wf)
        if p is None or heard_at is None or not any(
                s.state is StepState.RUNNING for s in p.local_steps()):
            self.running.discard(wf)
            self.due.pop(wf, None)
            return
        contacts = self.contacts(wf)
        due = rule.deadline(contacts, heard_at, self.lease_s)
        if due is None:
            self.due.pop(wf, None)
        elif fence and now >= due:
            self._fence(now, wf, self._reason(now, contacts, heard_at))
        else:
            self.due[wf] = due

    def _fence(self, now: float, wf: str, why: str) -> None:
        n = self.n
        p = n.progress[wf]
        for s in [s for s in p.local_steps() if s.state is StepState.RUNNING]:
            n.stats["step self-fenced"] += 1
            n.out.stop.append((wf, s.id, s.attempts))
            n.running.fenced(now, wf, s.id, s.attempts, why)
        self.running.discard(wf)
        self.due.pop(wf, None)

    def _reason(self, now: float, contacts: list[rule.Contact], heard_at: float) -> str:
        return rule.reason([c.domain for c in contacts],
                           now - rule.lost_since(contacts, heard_at))
