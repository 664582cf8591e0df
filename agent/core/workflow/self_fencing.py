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
- Once lost, the lease counts from the last moment anything was heard from any contact
  (`last_heard`, monotonic), and never from before the step started here (a step that
  started after the silence began gets its whole lease). The step is fenced at that
  moment plus `lease_s`.
- A domain with no contact at all (it is the workflow's only domain, or it coordinates
  the workflow itself: it cannot lose contact with its own coordinator) never fences.

`deadline` is the whole rule; `next_look` says when the shell should look again, so
that it can arm one timer instead of polling: at the deadline while contact is lost,
and while in contact at the earliest moment the deadline could fall if every contact
were declared DEAD just then (but no sooner than a quarter lease from now, since a DEAD
verdict comes later than the last message heard).

Time comes in as `now` (the agent's monotonic clock); nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def lost_since(contacts: Iterable[Contact], started_at: float) -> float:
    """The moment the silence counts from: the last time any contact was heard, or the
    step's start if later (or if none was ever heard)."""
    heard = [c.last_heard for c in contacts if c.last_heard is not None]
    return max([started_at, *heard])


def deadline(contacts: Iterable[Contact], started_at: float, lease_s: float) -> float | None:
    """When the step must be stopped here: None while in contact."""
    contacts = list(contacts)
    if in_contact(contacts):
        return None
    return lost_since(contacts, started_at) + lease_s


def fenced(contacts: Iterable[Contact], started_at: float, lease_s: float,
           now: float) -> bool:
    """Must the step be stopped now?"""
    due = deadline(contacts, started_at, lease_s)
    return due is not None and now >= due


def next_look(contacts: Iterable[Contact], started_at: float, lease_s: float,
              now: float) -> float:
    """When to evaluate the rule again (for a timer): never earlier than `now`."""
    contacts = list(contacts)
    if not contacts:
        return float("inf")  # nothing can ever fence this step
    due = deadline(contacts, started_at, lease_s)
    if due is not None:
        return max(now, due)
    earliest = lost_since(contacts, started_at) + lease_s
    return max(earliest, now + RECHECK_FRACTION * lease_s)


def reason(lost: Iterable[str], silent_s: float) -> str:
    """The error a fenced step ends with here."""
    names = ", ".join(sorted(lost))
    return (f"fenced: lost contact with {names} for {silent_s:.0f} s (the workflow's"
            " coordinator and every other participant): stopped here so that it never"
            " runs in two domains at once")
