"""Loss grace: a DEAD verdict is acted on only once it has stood for a grace.

Theory of operation
-------------------
SWIM declares a member DEAD when it stayed silent to probes past its suspicion; on a
starved host a live member can be that silent (the coordinator of a 50-domain fan-out
answers probes seconds late), and it refutes the verdict once it runs again. Acting
on a verdict is not free: the workflows a lost member coordinates are taken over, the
steps it runs are placed again or FAIL (a step that is not idempotent is never run
twice), its in-doubt transactions recover without it. So the workflow side of an agent
acts on a DEAD verdict only once it has *stood* for `grace` seconds:

- the member stayed DEAD at the incarnation it was judged at (a refutation, ALIVE at a
  higher incarnation, withdraws the verdict: nothing is acted on), and
- this agent did not hear from it meanwhile (any authenticated call or answer it signed:
  each one starts the grace again from that moment, since it was alive then).

A member that crashed sends nothing and refutes nothing: its loss is acted on `grace`
after the verdict reached this agent. A LEFT claim (a signed graceful leave) is acted on
at once: its agent stops its steps as it leaves, there is nothing to wait for.

Halfway through a silent grace the core asks for one direct check (`Check`): the shell
sends the accused our verdict about it, so a live one learns it must refute and its
answer (a sign of life, with the refutation in it) comes straight back, rather than at
its next probe of a member that holds it DEAD.

What SWIM shows (the console, `members`) and where placement puts new work is not this
core's concern: both take SWIM's state as it is (a member under a verdict is no
placement candidate; placing new work away from a doubtful member harms nothing).

Inputs (`step(now, input)`, one member each) and standings (`Standing`), one table
(`TABLE`); a pair not in it changes nothing:

    NONE  --Verdict(i)-->            HELD(i)   (Held: log; Check due at grace/2)
    HELD  --Verdict(j > i)-->        HELD(j)   (judged again at a newer incarnation)
    HEARD --Verdict(j > i)-->        HELD(j)
    LOST  --Verdict(j > i)-->        HELD(j)   (back in a life we did not see, judged again)
    HELD  --Heard-->                 HEARD     (Heard: log; the grace starts again)
    HEARD --Heard-->                 HEARD     (the grace starts again, nothing output)
    HELD  --Alive(j > i)-->          NONE      (Withdrawn: refuted within the grace)
    HEARD --Alive(j > i)-->          NONE      (Withdrawn)
    LOST  --Alive(j > i)-->          NONE      (back: a new verdict is needed again)
    NONE, HELD, HEARD --Left-->      LOST      (Acted LEFT: at once)
    HELD  --Timer: check due-->      HELD      (Check, once per verdict)
    HELD, HEARD --Timer: grace past--> LOST    (Acted DEAD)
    any   --Forget-->                NONE      (reaped from the member list, untrusted)

`get_timer()` is the earliest deadline (a check or the end of a grace) of any member
held; `Timer` runs whatever is due. `lost()` is what the workflow side acts on.

Pure: no I/O, no clock; time comes in as `now`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# How far into a silent grace the direct check goes (a fraction of the grace): late
# enough that a member only briefly stalled has refuted by itself, early enough that
# its answer has the other half to arrive.
CHECK_AT = 0.5


class Standing(enum.Enum):
    NONE = "none"    # no verdict held: ALIVE, SUSPECT, unknown, or a verdict withdrawn
    HELD = "held"    # DEAD, silent since the verdict: the grace runs
    HEARD = "heard"  # DEAD, but heard from since the verdict: the grace runs from then
    LOST = "lost"    # acted on: DEAD past the grace, or LEFT


# ---- inputs ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Verdict:
    """SWIM holds `name` DEAD at `incarnation` (the verdict reached this agent)."""
    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Alive:
    """SWIM holds `name` ALIVE at `incarnation` (joined, refuted, came back)."""
    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Left:
    """SWIM holds `name` LEFT at `incarnation` (its signed graceful leave)."""
    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Heard:
    """`name` signed a call or an answer that reached this agent just now."""
    name: str


@dataclass(frozen=True, slots=True)
class Forget:
    """`name` is no member any more (reaped after its retention, or untrusted)."""
    name: str


@dataclass(frozen=True, slots=True)
class Timer:
    """`now` reached `get_timer()`."""


Input = Verdict | Alive | Left | Heard | Forget | Timer


# ---- outputs ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Held:
    """A verdict is held for the grace (until `until`, unless it is heard from)."""
    name: str
    incarnation: int
    until: float


@dataclass(frozen=True, slots=True)
class HeardDuring:
    """The first sign of life from a member held DEAD: its grace starts again."""
    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """Refuted within the grace: nothing is acted on. `stood`: seconds it was held."""
    name: str
    incarnation: int
    stood: float
    heard: bool  # heard from during the grace


@dataclass(frozen=True, slots=True)
class Check:
    """Send the accused our verdict about it once, directly (see the docstring)."""
    name: str


@dataclass(frozen=True, slots=True)
class Acted:
    """The loss of `name` is to be acted on now; `state` DEAD or LEFT."""
    name: str
    incarnation: int
    state: str


Output = Held | HeardDuring | Withdrawn | Check | Acted


class _Entry:
    __slots__ = ("standing", "incarnation", "since", "heard_at", "checked", "state")

    def __init__(self, standing: Standing, incarnation: int, since: float,
                 state: str = "DEAD") -> None:
        self.standing = standing
        self.incarnation = incarnation
        self.since = since          # when the verdict reached us
        self.heard_at = since       # the latest sign of life since (or the verdict)
        self.checked = False        # the direct check was asked for
        self.state = state          # for LOST: DEAD or LEFT

    def deadline(self, grace: float) -> float:
        return self.heard_at + grace

    def check_at(self, grace: float) -> float | None:
        if self.standing is not Standing.HELD or self.checked:
            return None
        return self.since + CHECK_AT * grace


class LossGrace:
    """The verdicts this agent holds, and which losses are acted on. See the docstring."""

    def __init__(self, grace: float) -> None:
        if grace < 0:
            raise ValueError("the loss grace must be >= 0 seconds")
        self.grace = grace
        self._entries: dict[str, _Entry] = {}
        self._held: set[str] = set()  # names HELD or HEARD: the hot path's one lookup
        self.stats = {"held": 0, "withdrawn": 0, "acted": 0, "heard": 0, "checks": 0}

    # ---- queries -------------------------------------------------------------------------

    def standing(self, name: str) -> Standing:
        entry = self._entries.get(name)
        return entry.standing if entry is not None else Standing.NONE

    def incarnation(self, name: str) -> int | None:
        """The incarnation of the verdict (or leave) held about `name`, if any."""
        entry = self._entries.get(name)
        return entry.incarnation if entry is not None else None

    def holds(self, name: str) -> bool:
        """Is a verdict about `name` held in its grace (cheap: for every call heard)?"""
        return name in self._held

    def lost(self, name: str) -> str | None:
        """DEAD or LEFT when the loss of `name` is acted on, else None."""
        entry = self._entries.get(name)
        return entry.state if entry is not None and entry.standing is Standing.LOST else None

    def losses(self) -> dict[str, str]:
        """Every member whose loss is acted on -> DEAD or LEFT."""
        return {n: e.state for n, e in self._entries.items() if e.standing is Standing.LOST}

    def get_timer(self) -> float | None:
        deadlines = []
        for name in self._held:
            entry = self._entries[name]
            deadlines.append(entry.deadline(self.grace))
            check = entry.check_at(self.grace)
            if check is not None:
                deadlines.append(check)
        return min(deadlines) if deadlines else None

    # ---- inputs --------------------------------------------------------------------------

    def step(self, now: float, event: Input) -> list[Output]:
        if isinstance(event, Timer):
            return self._timer(now)
        entry = self._entries.get(event.name)
        standing = entry.standing if entry is not None else Standing.NONE
        handler = TABLE.get((standing, type(event)))
        if handler is None:
            return []
        return handler(self, now, entry, event)

    def heard(self, now: float, name: str) -> list[Output]:
        """`step(now, Heard(name))`, without the event built when nothing is held (the
        shell calls it for every authenticated call)."""
        if name not in self._held:
            return []
        return self.step(now, Heard(name))

    # ---- handlers ------------------------------------------------------------------------

    def _verdict(self, now: float, entry: _Entry | None, ev: Verdict) -> list[Output]:
        if entry is not None and ev.incarnation <= entry.incarnation:
            return []  # the verdict held, or an older one
        self._entries[ev.name] = _Entry(Standing.HELD, ev.incarnation, now)
        self._held.add(ev.name)
        self.stats["held"] += 1
        return [Held(ev.name, ev.incarnation, now + self.grace)]

    def _heard(self, now: float, entry: _Entry, ev: Heard) -> list[Output]:
        entry.heard_at = max(entry.heard_at, now)
        if entry.standing is Standing.HEARD:
            return []
        entry.standing = Standing.HEARD
        self.stats["heard"] += 1
        return [HeardDuring(ev.name, entry.incarnation)]

    def _alive(self, now: float, entry: _Entry, ev: Alive) -> list[Output]:
        if ev.incarnation <= entry.incarnation:
            return []  # SWIM moves on only at a higher incarnation
        del self._entries[ev.name]
        self._held.discard(ev.name)
        if entry.standing is Standing.LOST:
            return []  # back after its loss was acted on
        self.stats["withdrawn"] += 1
        return [Withdrawn(ev.name, entry.incarnation, now - entry.since,
                          entry.standing is Standing.HEARD)]

    def _left(self, now: float, entry: _Entry | None, ev: Left) -> list[Output]:
        self._entries[ev.name] = _Entry(Standing.LOST, ev.incarnation, now, "LEFT")
        self._held.discard(ev.name)
        self.stats["acted"] += 1
        return [Acted(ev.name, ev.incarnation, "LEFT")]

    def _forget(self, now: float, entry: _Entry, ev: Forget) -> list[Output]:
        del self._entries[ev.name]
        self._held.discard(ev.name)
        return []

    def _timer(self, now: float) -> list[Output]:
        out: list[Output] = []
        for name in sorted(self._held):
            entry = self._entries[name]
            if now >= entry.deadline(self.grace):
                entry.standing = Standing.LOST
                self._held.discard(name)
                self.stats["acted"] += 1
                out.append(Acted(name, entry.incarnation, "DEAD"))
                continue
            check = entry.check_at(self.grace)
            if check is not None and now >= check:
                entry.checked = True
                self.stats["checks"] += 1
                out.append(Check(name))
        return out


_Handler = Callable[[LossGrace, float, "_Entry | None", Input], list[Output]]

# (standing, input) -> handler; a pair not here changes nothing. Timer is not per
# member (see _timer): HELD and HEARD entries whose grace passed become LOST, a HELD
# one whose check is due gets its Check.
TABLE: Mapping[tuple[Standing, type], _Handler] = {
    (Standing.NONE, Verdict): LossGrace._verdict,
    (Standing.HELD, Verdict): LossGrace._verdict,
    (Standing.HEARD, Verdict): LossGrace._verdict,
    (Standing.LOST, Verdict): LossGrace._verdict,
    (Standing.HELD, Heard): LossGrace._heard,
    (Standing.HEARD, Heard): LossGrace._heard,
    (Standing.HELD, Alive): LossGrace._alive,
    (Standing.HEARD, Alive): LossGrace._alive,
    (Standing.LOST, Alive): LossGrace._alive,
    (Standing.NONE, Left): LossGrace._left,
    (Standing.HELD, Left): LossGrace._left,
    (Standing.HEARD, Left): LossGrace._left,
    (Standing.HELD, Forget): LossGrace._forget,
    (Standing.HEARD, Forget): LossGrace._forget,
    (Standing.LOST, Forget): LossGrace._forget,
}  # type: ignore[dict-item]
