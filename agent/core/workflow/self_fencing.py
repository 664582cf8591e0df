"""Self-fencing: when a domain stops a step it runs because it lost its workflow.

Theory of operation
-------------------
A domain that runs a step of a committed workflow keeps it running only while it is in
contact with someone who could otherwise replace it: the workflow's coordinator (of the
epoch it follows) or another participant. If the domain is cut off from all of them (a
partition, or all of them died), the other side may declare it DEAD and re-place its
step; the two copies must not both keep running. So the cut-off domain stops its step
itself once it has been out of contact for the step lease.

The rule reads this domain's own membership view, one `Contact` per such domain:

- A contact is *reachable* while its state is ALIVE or SUSPECT. SUSPECT is not DEAD: a
  suspect may only be slow, and nothing is fenced on suspicion alone.
- Contact is *lost* only when every contact is DEAD, LEFT or unknown here.
- Once lost, the lease counts from the last moment anything was heard from the
  WORKFLOW: the latest `last_heard` of any contact (monotonic), or `heard_at`, the last
  message of the workflow itself that this domain acted on outside the membership view
  (the COMMIT that placed its steps here, a re-placement, a result it needed), whichever
  is later. The step is fenced at that moment plus `lease_s`.
- When the step started does not count. A step this domain starts while cut off (a
  retry, the next step of a chain here, the next wave of a fan-out) only gets what is
  left of the lease since the last contact: the other side may have seen this domain
  DEAD and re-placed the step since that contact, not since the start. A step whose
  lease since the last contact is already over when it would start is not started at
  all (the shell ends its attempt FAILED with the rule's reason, never running it):
  started, it would run, however briefly, outside any lease and beside a replacement
  that may exist, and a step that is not idempotent cannot be taken back. A domain
  whose workflow's first step starts here has just learned its COMMIT (or the result it
  needed) from the workflow: that is contact, and the shell passes it as `heard_at`.
- So a domain that regains contact after a silence longer than the lease runs nothing
  of the workflow: whatever ran was fenced at the lease, and nothing started since.
  One that regains it sooner may have been placed again meanwhile, but then within a
  lease of its last contact, so within a lease of the re-placement, while the
  re-placement's notice to it is still being delivered: it learns its placement is over.
- A domain with no contact at all (it is the workflow's only domain, or it coordinates
  the workflow itself: it cannot lose contact with its own coordinator) never fences.

`WorkflowHeard` keeps `heard_at` per workflow for the shells (the agent's watcher and
the fencing simulator alike): set when the workflow's first attempt starts here if
nothing was noted before (that start follows the COMMIT or a result just received),
moved on by each message of the workflow the shell notes, and never moved by a later
start, which is the point. It is kept in memory only: a disk write per message would
cost the hot path.

After a restart
---------------
A restart loses `heard_at` and blanks the membership view, so a start could no longer
tell how long the domain has been cut off: it may have been silent since long before
the restart, declared DEAD and its step placed again meanwhile, and an attempt started
then (an idempotent retry of one its earlier life left open) would get a whole lease
beside the replacement. So the rule for a workflow read back from disk at start-up
(`restored`) is stricter: **no attempt of it starts until a message of that workflow
has been heard in this life** (`may_start`; `starting` returns None until then). A
message of the workflow is what the shell notes with `heard`: the coordinator's answer
to the query the restarted domain sends about it, its COMMIT, a re-placement, a result
a step here needs. A membership message (gossip) says nothing about the workflow and
does not count; neither does the start itself. From that message on the ordinary rule
holds, the lease counting from it.

- Safe: nothing of the workflow runs here before this life has heard from it, so no
  step runs on the strength of contact older than the restart. What the restarted
  domain starts afterwards gets a lease from a message of this life, exactly as a
  domain that never restarted gets one from its last message.
- Live: the shell asks the workflow's coordinator until it answers (the query a
  restarted participant sends for each restored workflow with a step held back,
  again with a backoff while unreachable); meanwhile a result a step here needs, a
  re-placement or the workflow's end notice also count, and an end stops the asking.
  A domain that never regains contact starts nothing, which is what a cut-off domain
  must do; the other side resolves the step by the loss table.
- Contact is not placement: a coordinator reached again may have placed the steps
  elsewhere while this domain was cut off (and its notice of that was not kept). So
  the coordinator's answer carries each step's placement epoch, and an answer that
  shows a step here at a higher epoch than held here is no contact: nothing of the
  workflow starts here (the shell checks; the fencing simulator's seed 1219 fails
  without it).

A COMMIT learned without the coordinator
----------------------------------------
A COMMIT learned from the coordinator (its notice, or its own ballot 0 within this
domain's lease) is contact. One learned without it is not: from the acceptors (Paxos
Commit's recovery ballot, when the coordinator cannot be reached but acceptors can), a
Decision relayed by another participant, an answer to a query, or a coordinator's
answer without placement epochs (an agent of an older version). The acceptors know the
COMMIT, not the placements made since: while this domain was cut off, its steps may
have been placed elsewhere. So the workflow is set up here but marked `not_heard`,
exactly as a restored one: nothing of it starts until the workflow's current
coordinator (the row's coordinator: the original, or the successor this domain follows
after a takeover) answers with each step's placement epoch, and the answer shows no
step here at a higher epoch than held here. An honest coordinator always answers with
them while the workflow runs, from memory or read from its store. Any other answer
(none, an older agent's, or one whose epochs show the steps placed elsewhere) is no
contact, and the asking goes on with a backoff.

- Safe: no step of such a COMMIT starts on its strength alone; what starts, starts on
  a message of the coordinator of this life that says it is still placed here, with a
  lease from that message.
- Live: the held-back workflow either starts or ends. The coordinator answers while it
  lives. If it is DEAD for good, the takeover electorate (this domain's own takeover
  watch among them when it is an acceptor) chooses a successor; a domain that grants
  or hears the successor's claim or end notice follows it (its row's coordinator
  changes), or, its coordinator DEAD, asks the other participants and follows the one
  that proves it acts (its epoch certificate); the asking goes to the successor, which
  answers with epochs the same way, or with the end. If this domain's steps were placed elsewhere, the answer says
  so and the workflow's end comes (the end notice, or the answer's end), and stops the
  asking. A domain that never reaches the coordinator it follows starts nothing, which
  is what a cut-off domain must do; the other side resolves its steps by the loss
  table once it is DEAD there.

`deadline` is the whole rule; `next_look` says when the shell should look again, so
that it can arm one timer instead of polling: at the deadline while contact is lost,
and while in contact at the earliest moment the deadline could fall if every contact
were declared DEAD just then (but no sooner than a quarter lease from now, since a DEAD
verdict comes later than the last message heard).

Time comes in as `now` (the agent's monotonic clock); nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

REACHABLE = frozenset({"ALIVE", "SUSPECT"})
# While in contact, look again no sooner than this fraction of the lease from now.
RECHECK_FRACTION = 0.25


@dataclass(frozen=True, slots=True)
class Contact:
    domain: str
    state: str  # the membership state here: ALIVE, SUSPECT, DEAD, LEFT, "" (unknown)
    last_heard: float | None  # monotonic; None: never heard from directly


def in_contact(contacts: Iterable[Contact]) -> bool:
    """Is any contact reachable? (No contact at all counts as in contact: never fenced.)"""
    contacts = list(contacts)
    return not contacts or any(c.state in REACHABLE for c in contacts)


def lost_since(contacts: Iterable[Contact], heard_at: float) -> float:
    """The moment the silence counts from: the last time any contact was heard, or the
    last message of the workflow acted on here (`heard_at`) if later."""
    heard = [c.last_heard for c in contacts if c.last_heard is not None]
    return max([heard_at, *heard])


def deadline(contacts: Iterable[Contact], heard_at: float, lease_s: float) -> float | None:
    """When the step must be stopped here: None while in contact."""
    contacts = list(contacts)
    if in_contact(contacts):
        return None
    return lost_since(contacts, heard_at) + lease_s


def fenced(contacts: Iterable[Contact], heard_at: float, lease_s: float,
           now: float) -> bool:
    """Must the step be stopped now (or, about to start, not started)?"""
    due = deadline(contacts, heard_at, lease_s)
    return due is not None and now >= due


def next_look(contacts: Iterable[Contact], heard_at: float, lease_s: float,
              now: float) -> float:
    """When to evaluate the rule again (for a timer): never earlier than `now`."""
    contacts = list(contacts)
    if not contacts:
        return float("inf")  # nothing can ever fence this step
    due = deadline(contacts, heard_at, lease_s)
    if due is not None:
        return max(now, due)
    earliest = lost_since(contacts, heard_at) + lease_s
    return max(earliest, now + RECHECK_FRACTION * lease_s)


class WorkflowHeard:
    """`heard_at` per workflow (see the theory of operation): when this domain last heard
    from each workflow it runs steps of, outside its membership view, in this life."""

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        # Read back from disk at start-up and not heard from in this life yet.
        self._unheard: set[str] = set()

    def restored(self, workflow: str) -> None:
        """`workflow` was read back from disk at start-up: nothing of it was heard in this
        life, and none of its attempts may start here until something is."""
        self.not_heard(workflow)

    def not_heard(self, workflow: str) -> None:
        """`workflow` was set up from something that is no contact with it (read back at
        start-up, or a COMMIT learned without the coordinator): none of its attempts may
        start here until it is heard from. One heard from already keeps its moment."""
        if workflow not in self._at:
            self._unheard.add(workflow)

    def heard(self, workflow: str, now: float) -> None:
        """A message of the workflow arrived and was acted on here (a COMMIT, a
        re-placement, a result it needed, the coordinator's answer to a query)."""
        self._at[workflow] = max(now, self._at.get(workflow, now))
        self._unheard.discard(workflow)

    def may_start(self, workflow: str) -> bool:
        """May an attempt of `workflow` start here? Not one restored at start-up and not
        heard from in this life (see After a restart)."""
        return workflow not in self._unheard

    def starting(self, workflow: str, now: float) -> float | None:
        """An attempt of `workflow` starts here now: its `heard_at`. Only the workflow's
        first start here with nothing noted counts as contact; any later start keeps
        the moment noted before. None for a restored workflow not heard from in this
        life: it must not start."""
        if workflow in self._unheard:
            return None
        return self._at.setdefault(workflow, now)

    def at(self, workflow: str) -> float | None:
        return self._at.get(workflow)

    def forget(self, workflow: str) -> None:
        """`workflow` ended here: nothing of it is needed any more."""
        self._at.pop(workflow, None)
        self._unheard.discard(workflow)

    def __len__(self) -> int:
        return len(self._at) + len(self._unheard)


def taken_steps(held: Mapping[str, int], answered: Mapping[str, int]) -> list[str] | None:
    """What a coordinator's answer says of this domain's unfinished steps, `held` (step ->
    its placement epoch here) against `answered` (the epochs at the acting coordinator):
    None when the answer carries no epochs (it says nothing of placements: no contact);
    else the steps at a higher epoch there, which a loss of this domain placed elsewhere
    (or failed). An empty list: every step is still placed here, and the answer is
    contact with the workflow."""
    if not answered:
        return None
    return [step for step, epoch in held.items() if answered.get(step, epoch) > epoch]


def reason(lost: Iterable[str], silent_s: float) -> str:
    """The error a fenced step ends with here."""
    names = ", ".join(sorted(lost))
    return (f"fenced: lost contact with {names} for {silent_s:.0f} s (the workflow's"
            " coordinator and every other participant): stopped here so that it never"
            " runs in two domains at once")
