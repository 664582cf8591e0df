"""Clock steps in the negotiation simulation, and the invariant they must not break.

Theory of operation
-------------------
Each simulated agent has its own wall clock (ports.SimClock): the simulation's time
plus an offset. A clock-step fault (run.py's `Config.clock_steps`) changes one
agent's offset by +2 s, -2 s, +1 h or -1 h at some moment, as an NTP step or an
operator's `date -s` does. The Node never sees it: its `now` is the driver's
monotonic clock; only its wall readings (the submission window) move.

The invariants, checked as the run goes (a violation is reported to the checker at
once, with the times that break it):

* no agent raises on a clock step: the agent takes a turn right at the step; an
  exception there is a violation like any other (run.py's `_handle`);
* no lease fires early: every lease or timeout action happens only after at least
  its configured duration of *true* (monotonic) time since what started it. Both
  ends are observed from outside the agent, in simulation time, never in anything
  the agent computed:
  - a participant in doubt starting termination (its first DecisionQuery about a
    transaction) at least `lease_s` after its reservation for it was first written
    (the lease is the reservation's; the YES may be written later);
  - a coordinator's prepare timeout (an ABORT it decides for a round to which no NO
    vote was sent) at least `prepare_timeout_s` after it sent that round's first
    PREPARE, unless it restarted meanwhile (a restarted coordinator aborts a round
    it was preparing at once: presumed abort, no timer involved).

A deliberately broken agent whose leases run on its wall clock breaks the second
invariant at the first forward step (tests/sim/negotiation/test_clock_steps_sim.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedorch.core.negotiation.messages import DecisionQuery, Key, Value
from fedorch.core.node.ready import PUT, Write
from fedorch.core.node.records import PrepareMsg, VoteMsg

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World

# The four steps of the fault (seconds): NTP's step threshold is far below 2 s; an
# hour is a time-zone or DST mistake made by hand.
CLOCK_STEPS_S = (2.0, -2.0, 3600.0, -3600.0)
# Simulation times are floats summed along different paths: equal instants may differ
# by rounding.
EPSILON_S = 1e-6


class ClockCheck:
    def __init__(self, sim: World) -> None:
        self.sim = sim
        self.steps: list[tuple[str, float, float]] = []  # (agent, at, step_s) done
        self._reserved_at: dict[tuple[str, Key], float] = {}  # first written, true time
        self._queried: set[tuple[str, Key]] = set()
        self._prepared_at: dict[tuple[str, Key], float] = {}  # first PREPARE sent
        self._refused: set[tuple[str, Key]] = set()  # (coordinator, key) got a NO
        self.fired = 0  # lease and timeout actions checked

    # ---- what the simulation tells it --------------------------------------------------

    def stepped(self, agent: str, step_s: float) -> None:
        self.steps.append((agent, self.sim.now, step_s))
        self.sim.stats[f"clock stepped {step_s:+g} s"] += 1

    def written(self, agent: str, write: Write) -> None:
        """A write group, once durable (ports.SimDisk): a reservation's first record
        starts its lease; a coordinator's decision may be a timeout's firing."""
        now = self.sim.now
        for op in write.ops:
            if op.table == "holds" and op.kind == PUT:
                self._reserved_at.setdefault((agent, op.key), now)
        for what, *facts in write.notes:
            if what == "decided":
                self._decided(agent, facts[0], facts[1])

    def sent(self, src: str, dst: str, msg: object) -> None:
        """A message handed to the network (Simulation.send)."""
        kind = type(msg)
        if kind is PrepareMsg:
            self._prepared_at.setdefault((src, msg.tx.key), self.sim.now)
        elif kind is VoteMsg:
            if not msg.yes:
                self._refused.add((dst, msg.key))
        elif kind is DecisionQuery:
            self._query(src, msg)

    # ---- the invariants ------------------------------------------------------------------

    def _query(self, src: str, msg: DecisionQuery) -> None:
        if (src, msg.key) in self._queried:
            return  # only the first query is the lease's firing
        self._queried.add((src, msg.key))
        reserved = self._reserved_at.get((src, msg.key))
        if reserved is None:
            return
        self.fired += 1
        lease = self.sim.config.timing.lease_s
        if self.sim.now + EPSILON_S < reserved + lease:
            self._fail(f"lease fired early: {src} asked about {msg.key} at"
                       f" {self.sim.now:.3f}, {self.sim.now - reserved:.3f} s after its"
                       f" reservation (lease {lease:g} s)")

    def _decided(self, agent: str, key: Key, value: Value) -> None:
        if value.commit or (agent, key) in self._refused:
            return
        started = self._prepared_at.get((agent, key))
        if started is None:
            return
        if self.sim.last_restart.get(agent, -1.0) >= started:
            return  # presumed abort on restart (see the header)
        self.fired += 1
        timeout = self.sim.config.timing.prepare_timeout_s
        if self.sim.now + EPSILON_S < started + timeout:
            self._fail(f"timeout fired early: {agent} aborted {key} at {self.sim.now:.3f},"
                       f" {self.sim.now - started:.3f} s after its PREPARE (timeout"
                       f" {timeout:g} s) with no NO vote")

    def _fail(self, what: str) -> None:
        steps = ", ".join(f"{a} {s:+g} s at {t:.2f}" for a, t, s in self.steps) or "none"
        self.sim.checker.fail(f"{what} (clock steps: {steps})")
