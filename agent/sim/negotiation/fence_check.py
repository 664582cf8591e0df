"""The seeded runs' fencing invariant: no step runs at a cut-off domain past its lease.

Theory of operation
-------------------
With self-fencing on (`Timing.step_lease_s`, the takeover schedule: its runs post
membership views), `FenceWatch` records, from outside the agents, every attempt's run
at its domain (from the executor's start to the first of its end, its stop, or the
crash of its agent), the agents' boots and pauses, and every delivery between agents.
At the end of the run (`check`) it holds, per attempt:

    no step runs at a domain cut off from all its workflow's other domains for longer
    than the step lease (+ SLACK_S)

Cut off, at domain X: every contact of the workflow is told gone (DEAD or LEFT) in X's
view (`MembershipFeed.gone_told`). The contacts counted here are the committed round's
participants and acceptors, its coordinator and every successor that acted: a superset
of the Node's (self_fencing.py: the coordinator X follows, the participants), so a
window here is cut off for the Node too, and nothing is flagged that the rule lets run.
The silence counts from the latest of: the moment the window began, the last delivery
to X from any of them, X's last boot, and the first start of the workflow's attempts at
X in that life (the rule's `heard_at`). The workflow's original coordinator never
fences and is not checked; a successor that acted is checked up to the moment it first
acted (`Checker.acting_at`), as it never fences after.

Not checked: while X is paused (a process frozen by a long pause cannot fence: its step
runs on until it resumes, a limit of any self-fencing by the agent itself).
"""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World

SLACK_S = 0.05  # event order within one instant of the simulation

Run = tuple[str, str, int]


def _intersect(a: list[tuple[float, float]],
               b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


class FenceWatch:
    def __init__(self, sim: World) -> None:
        self.sim = sim
        self.on = sim.config.timing.step_lease_s is not None
        self.runs: dict[tuple[str, Run], list[float]] = {}  # (agent, run) -> [start, end]
        self.boots: dict[str, list[float]] = {}
        self.pauses: dict[str, list[tuple[float, float]]] = {}
        self.deliveries: dict[tuple[str, str], list[float]] = {}  # (dst, src) -> times

    # ---- hooks the run calls -------------------------------------------------------

    def started(self, agent: str, run: Run) -> None:
        if self.on:
            self.runs.setdefault((agent, run), [self.sim.now, math.inf])

    def ended(self, agent: str, run: Run) -> None:
        span = self.runs.get((agent, run)) if self.on else None
        if span is not None and span[1] == math.inf:
            span[1] = self.sim.now

    def crashed(self, agent: str) -> None:
        """Its step processes die with it."""
        if self.on:
            for (name, _run), span in self.runs.items():
                if name == agent and span[1] == math.inf:
                    span[1] = self.sim.now

    def booted(self, agent: str) -> None:
        if self.on:
            self.boots.setdefault(agent, []).append(self.sim.now)

    def paused(self, agent: str, until: float) -> None:
        if self.on:
            self.pauses.setdefault(agent, []).append((self.sim.now, until))

    def delivered(self, src: str, dst: str) -> None:
        if self.on:
            self.deliveries.setdefault((dst, src), []).append(self.sim.now)

    # ---- the check -----------------------------------------------------------------

    def check(self) -> None:
        if not self.on:
            return
        sim = self.sim
        lease = sim.config.timing.step_lease_s
        for (agent, run), (start, end) in self.runs.items():
            end = min(end, sim.now)
            contacts = self._contacts(run[0])
            if contacts is None:
                continue  # not committed as far as the checker knows
            members, coordinators = contacts
            if agent in coordinators:  # it coordinates from then on: it never fences
                end = min(end, coordinators[agent])
            others = (members | set(coordinators)) - {agent}
            for g0, g1 in self._cut_off(agent, others):
                until = min(end, g1)
                if until <= max(start, g0):
                    continue
                since = max(g0, self._last_delivery(agent, others, until),
                            self._life_start(agent, start),
                            self._first_start(agent, run[0], start))
                if until - since > lease + SLACK_S and not self._paused(agent, since, until):
                    sim.checker.fail(
                        f"fencing: {agent} ran {run} cut off from {sorted(others)} from"
                        f" {since:.2f} to {until:.2f}, past its step lease ({lease:g} s)")
                    sim.stats["fencing check: step ran cut off past its lease"] += 1

    def _contacts(self, wf: str) -> tuple[set[str], dict[str, float]] | None:
        """The committed round's participants and acceptors, and its coordinators with
        the moment each began to act (the original: from the start)."""
        checker = self.sim.checker
        round_ = checker.committed(wf)
        tx = checker.txs.get((wf, round_)) if round_ is not None else None
        if tx is None:
            return None
        coordinators = {tx.coordinator: -math.inf}
        for (w, epoch), successor in checker.acting_in.items():
            if w == wf:
                at = checker.acting_at.get((w, epoch), -math.inf)
                coordinators[successor] = min(at, coordinators.get(successor, math.inf))
        return set(tx.participants) | set(tx.acceptors), coordinators

    def _cut_off(self, agent: str, others: set[str]) -> list[tuple[float, float]]:
        """The intervals in which `agent` was told every one of `others` gone."""
        told = self.sim.membership.gone_told
        windows: list[tuple[float, float]] | None = None
        for other in sorted(others):
            spans = [(s, math.inf if e is None else e)
                     for s, e in told.get((agent, other), ())]
            windows = spans if windows is None else _intersect(windows, spans)
            if not windows:
                return []
        return windows or []

    def _last_delivery(self, agent: str, others: set[str], until: float) -> float:
        last = -math.inf
        for other in others:
            times = self.deliveries.get((agent, other), ())
            i = bisect.bisect_right(times, until)
            if i:
                last = max(last, times[i - 1])
        return last

    def _life_start(self, agent: str, at: float) -> float:
        boots = self.boots.get(agent, [])
        i = bisect.bisect_right(boots, at)
        return boots[i - 1] if i else 0.0

    def _first_start(self, agent: str, wf: str, at: float) -> float:
        life = self._life_start(agent, at)
        return min((span[0] for (name, run), span in self.runs.items()
                    if name == agent and run[0] == wf and life <= span[0] <= at),
                   default=at)

    def _paused(self, agent: str, since: float, until: float) -> bool:
        return any(p0 < until and since < p1 for p0, p1 in self.pauses.get(agent, ()))
