"""Deterministic simulation of the commit protocol: real cores, simulated faults.

Theory of operation
-------------------
One seed gives one run, event for event: N agents (agent.sim.negotiation.agent:
each a thin driver around one pure Node, agent/core/node, which holds the real
Coordinator / Participant / Acceptor / Termination / Progress cores, and a disk
that survives crashes), a handful of workflows of 1-4
steps submitted at random agents, random policies and capacities (so some votes
are NO; the draw is config.py's Config.random), and a simulated network with seeded loss, duplication, delay (hence
reordering) and a partition that heals. Agents crash at random crash points (at
every disk write and every send, so at every point of every path) and restart
from their disk; one coordinator may die forever at its k-th point.

A small share of the workflows is cancelled by its client at a random moment
(cancels.py: negotiating, deciding, running or ended by then).

Each agent has its own wall clock (simulation time plus an offset); a clock-step
fault steps one by +2 s, -2 s, +1 h or -1 h at some moment (clock_check.py: no agent
raises on it, and no lease, timeout or takeover claim fires early, in true time).

With coordinator takeover on (`Timing.takeover_after_s`), each agent's membership view
(`member_state`) is posted to its Node as `MemberState` inputs whenever it may have
changed: after an event that crashed, restarted or paused an agent or crossed the
partition, and at the instants time alone changes it (DEAD `dead_after_s` after a
crash, a pause's end), each an event of its own (takeover.py).

A cut one way (`Config.one_way`, drawn only when asked: config.draw_one_way) drops
what its group's agents send out of the group and delivers what the others send them.
The others' views of the group go SUSPECT at once and DEAD `dead_after_s` later, as
for a crash; the group's views of the others stay ALIVE (they hear them all along: the
case the start rule must catch, core/node/start_asks.py). Each agent of the group
hears its own doubt (MemberViews.doubted) at its first look once the cut starts, and
at its first look after a restart during it: SWIM tells a suspect of its suspicion at
once (the buddy system), and tells a member that rejoins of the verdict on its last
life as it joins; nothing of its refutation gets out.

Virtual time runs on a heap of events. Faults stop at `chaos_end`: the network
heals and every crashed agent (bar the dead-forever one) restarts; the run goes
on until nothing is left to do or `end`. Then the checker
(agent.sim.negotiation.check) verifies the invariants and `Simulation.run` returns
a Report listing any violation; run.py's `run(seed)` raises on one, naming the seed,
and the seed replays the run exactly.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import TxInfo
from fedorch.core.node.inputs import MemberViews
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.sim.negotiation import cancels as client_cancels
from fedorch.sim.negotiation.agent import SimAgent
from fedorch.sim.negotiation.check import Checker
from fedorch.sim.negotiation.clock_check import ClockCheck
from fedorch.sim.negotiation.config import Config
from fedorch.sim.negotiation.disk import Crash, PrepareMsg
from fedorch.sim.negotiation.fence_check import FenceWatch
from fedorch.sim.negotiation.keyring import Keyring
from fedorch.sim.negotiation.liar import Liar
from fedorch.sim.negotiation.takeover import MembershipFeed

_DELIVER, _WAKE, _STEP, _SUBMIT, _RESTART, _CRASH, _CLOCK, _MEMBERS, _CANCEL = range(9)
MAX_EVENTS = 200_000  # a livelock guard (load.py raises it for its long runs)


@dataclass
class Report:
    seed: int
    events: int
    sim_time: float
    workflows: int
    committed: int
    aborted: int
    crashes: int
    dead_forever: list[str]
    refusals: int
    violations: list[str]
    stats: Counter[str] = field(default_factory=Counter)


class Simulation:
    def __init__(self, seed: int, config: Config | None = None, *,
                 cancels: bool | None = None) -> None:
        """`cancels`: clients cancel some workflows (cancels.py); by default in a
        seed's random run (no `config`), not in a targeted test's."""
        self.seed = seed
        self.config = config if config is not None else Config.random(random.Random(seed))
        c = self.config
        self.names = list(c.names)
        self.now = 0.0
        # Every round a coordinator sent a PREPARE of: the simulator signs nothing, so an
        # acceptor's check of a round's signature stands as membership here (agent.py).
        self.stated_rounds: set[TxInfo] = set()
        self.checker = Checker()
        self.dead_forever: set[str] = set()
        self.crashes = 0
        self.events = 0
        self.workflows = {w.workflow_id: w.coordinator for w in c.workflows}
        self.last_restart: dict[str, float] = {}
        self.died_at: dict[str, float] = {}  # the last crash of each agent
        self.stats: Counter[str] = Counter()  # messages sent by type, and notable paths
        # Targeted tests steer the run with these: intercept(src, dst, msg, now) returns
        # None (normal), "drop", or a delay; crash_hook(agent, now, what) returns None,
        # "crash" or "forever" at the crash point before `what` is written or sent.
        self.intercept: Callable[[str, str, object, float], object] | None = None
        self.crash_hook: Callable[[SimAgent, float, str], str | None] | None = None
        # A replay's trace (run.py `--trace`): told each event as it happens, as
        # trace(now, kind, who, what); None in the soaks, where it would cost the run.
        self.trace: Callable[[float, str, str, object], None] | None = None
        self._net = random.Random(seed * 7_919 + 17)
        self._faults = random.Random(seed * 104_729 + 3)
        self._heap: list[tuple[float, int, int, SimAgent, object]] = []
        self._seq = 0
        self._points: dict[str, int] = {}
        self.keyring = Keyring(self.names, c.liar, seed)
        self.clock_check = ClockCheck(self)
        # Coordinator takeover reads membership: each agent's view as inputs to its
        # Node (takeover.py), told after every event; off when takeover is.
        self.membership = MembershipFeed(self)
        self._views = c.timing.takeover_after_s is not None
        self._views_seen: tuple | None = None  # what the views were last computed from
        self._pauses_seen: dict[str, float] = {}  # a pause's end, once seen (a view change)
        self._doubt_told: set[tuple[str, int]] = set()  # (agent, incarnation): cut one way
        # Self-fencing's invariant (fence_check.py; on with Timing.step_lease_s).
        self.fences = FenceWatch(self)
        self.agents = {n: SimAgent(self, n, c.policies[n], c.capacities[n], c.timing)
                       for n in self.names}
        for w in c.workflows:
            self._push(w.at, _SUBMIT, self.agents[w.coordinator], w)
        # The clients' cancels (cancels.py): drawn for a seed's random run, asked by a
        # targeted test (`cancel_client.push`).
        self.cancel_client = client_cancels.Client(
            self, lambda at, agent, wf, tries: self._push(at, _CANCEL, agent, (wf, tries)))
        self._cancels = config is None if cancels is None else cancels
        if self._cancels:
            for at, wf, coordinator in client_cancels.draw(seed, c.workflows):
                self._push(at, _CANCEL, self.agents[coordinator], (wf, 0))
        for name, at, step_s in c.clock_steps:
            self.step_clock_at(name, at, step_s)
        if self._views and c.partition is not None:  # views change as it starts and heals
            self._view_change_at(c.partition[0])
            self._view_change_at(min(c.partition[1], c.chaos_end))
            if c.partition_dead:
                self._view_change_at(self._after_dead(c.partition[0]))
        if self._views and c.one_way is not None:  # SUSPECT, DEAD, and healed
            start, end, _ = c.one_way
            self._view_change_at(start)
            self._view_change_at(self._after_dead(start))
            self._view_change_at(min(end, c.chaos_end))
        self.liar = Liar(self, c.liar, random.Random(seed * 15_485_863 + 5)) \
            if c.liar is not None else None

    # ---- services the agents use -------------------------------------------------

    def agent_seed(self, name: str, incarnation: int) -> int:
        return self.seed * 1_000_003 + self.names.index(name) * 1_009 + incarnation

    def config_spec(self, workflow_id: str) -> spec_pb2.WorkflowSpec | None:
        return next((w.spec for w in self.config.workflows if w.workflow_id == workflow_id),
                    None)

    def send(self, src: str, dst: str, msg: object) -> None:
        now = self.now
        self.clock_check.sent(src, dst, msg)
        if isinstance(msg, PrepareMsg) and src == msg.tx.coordinator:
            self.stated_rounds.add(msg.tx)  # what its signed round would prove
        liar = self.liar
        if liar is not None:
            if dst == liar.name:
                liar.receive(src, msg)
                return
            if src != liar.name:
                liar.overhear(src, dst, msg)
            else:
                self.stats["lie"] += 1
        self.stats[type(msg).__name__] += 1
        if self.intercept is not None:
            verdict = self.intercept(src, dst, msg, now)
            if verdict == "drop":
                self.checker.network_hit(src, dst, msg, now)
                return
            if isinstance(verdict, (int, float)):
                self.checker.network_hit(src, dst, msg, now, verdict)
                self._push(now + verdict, _DELIVER, self.agents[dst], (src, msg))
                return
        if src == dst:
            self._push(now + 0.001, _DELIVER, self.agents[dst], (src, msg))
            return
        c, net = self.config, self._net
        chaos = now < c.chaos_end
        if chaos and c.partition is not None:
            start, end, group = c.partition
            if start <= now < end and (src in group) != (dst in group):
                self._traced("cut", f"{src}->{dst}", msg)
                self.checker.network_hit(src, dst, msg, now)
                return
        group = self._one_way_group()
        if group is not None and src in group and dst not in group:
            self._traced("cut", f"{src}->{dst}", msg)
            self.checker.network_hit(src, dst, msg, now)
            return
        if chaos and c.loss and net.random() < c.loss:
            self._traced("lost", f"{src}->{dst}", msg)
            self.checker.network_hit(src, dst, msg, now)
            return
        copies = 2 if chaos and c.duplicate and net.random() < c.duplicate else 1
        for _ in range(copies):
            delay = net.uniform(0.005, 0.08)
            if chaos and c.slow and net.random() < c.slow:
                held = net.uniform(0.0, c.max_delay)
                delay += held
                self.checker.network_hit(src, dst, msg, now, held)
            paused = self.agents[src].paused_until if src in self.agents else 0.0
            if paused > now:
                delay += paused - now
            self._push(now + delay, _DELIVER, self.agents[dst], (src, msg))

    def crash_point(self, agent: SimAgent, what: str) -> None:
        c = self.config
        if self.crash_hook is not None:
            verdict = self.crash_hook(agent, self.now, what)
            if verdict is not None:
                raise Crash(verdict)
        count = self._points.get(agent.name, 0) + 1
        self._points[agent.name] = count
        if c.forever is not None and agent.name == c.forever[0] and count == c.forever[1]:
            raise Crash("forever")
        if c.pause is not None and agent.name == c.pause[0] and count == c.pause[1]:
            agent.paused_until = self.now + c.pause[2]
            self.fences.paused(agent.name, agent.paused_until)
        if self.crashes < c.max_crashes and self.now < c.chaos_end \
                and self._faults.random() < c.crash_rate:
            raise Crash("crash")

    def step_clock_at(self, name: str, at: float, step_s: float) -> None:
        """That agent's wall clock steps by `step_s` at `at` (a test's hook may ask)."""
        self._push(at, _CLOCK, self.agents[name], step_s)

    def view_change_at(self, at: float) -> None:
        """Membership views may change then (a test's own `member_state`): tell them."""
        if self._views:
            self._view_change_at(at)

    def _view_change_at(self, at: float) -> None:
        self._push(at, _MEMBERS, self.agents[self.names[0]], None)

    def schedule_step(self, agent: SimAgent, run: tuple[str, str, int], delay: float) -> None:
        self._push(self.now + delay, _STEP, agent, (agent.incarnation, run))

    def calm_since(self, agents: tuple[str, ...]) -> float:
        """When the network had healed and these agents were up for the last time."""
        calm = 0.0
        p = self.config.partition
        if p is not None:
            calm = p[1]
        if self.config.one_way is not None:  # a cut one way heals too (at chaos's end)
            calm = max(calm, min(self.config.one_way[1], self.config.chaos_end))
        for a in agents:
            calm = max(calm, self.agents[a].paused_until)
        for a in agents:
            calm = max(calm, self.last_restart.get(a, 0.0))
        return calm

    def member_state(self, observer: str, name: str) -> str:
        """`name` as `observer`'s membership sees it: DEAD a while after a crash (SWIM's
        suspicion timeout), SUSPECT while crashed before that, paused, or cut off from
        `observer` by the partition (a member of its group DEAD to the others from
        `dead_after_s` into it with `Config.partition_dead`); ALIVE otherwise."""
        agent, p = self.agents[name], self.config.partition
        group = self._one_way_group()
        if not agent.alive:
            since = self.now - self.died_at.get(name, self.now)
            state = "DEAD" if since >= self.config.timing.dead_after_s else "SUSPECT"
        elif group is not None and name in group and observer not in group:
            since = self.now - self.config.one_way[0]  # silent to `observer` since
            state = "DEAD" if since >= self.config.timing.dead_after_s else "SUSPECT"
        elif p is not None and self.now < self.config.chaos_end \
                and p[0] <= self.now < p[1] and (observer in p[2]) != (name in p[2]):
            cut_for = self.now - p[0] if self.config.partition_dead and name in p[2] else 0.0
            state = "DEAD" if cut_for >= self.config.timing.dead_after_s else "SUSPECT"
        elif agent.paused_until > self.now:
            state = "SUSPECT"
        else:
            state = "ALIVE"
        self.clock_check.observed(observer, name, state)  # what a takeover counts from
        return state

    def _one_way_group(self) -> frozenset[str] | None:
        """The group cut off one way now, if any (Config.one_way)."""
        c = self.config
        if c.one_way is None or self.now >= c.chaos_end:
            return None
        start, end, group = c.one_way
        return group if start <= self.now < end else None

    def _after_dead(self, since: float) -> float:
        """The first instant `dead_after_s` after `since`, in floats (DEAD from then)."""
        dead_at = since + self.config.timing.dead_after_s
        while dead_at - since < self.config.timing.dead_after_s:
            dead_at = math.nextafter(dead_at, math.inf)
        return dead_at

    def _doubt_heard(self, agent: SimAgent) -> bool:
        """Is `agent`, cut off one way, to hear its own doubt at this look (its first in
        this life since the cut started: see the header)?"""
        group = self._one_way_group()
        life = (agent.name, agent.incarnation)
        if group is None or agent.name not in group or life in self._doubt_told:
            return False
        self._doubt_told.add(life)
        return True

    # ---- the event loop ------------------------------------------------------------

    def run(self) -> Report:
        c = self.config
        self._push(c.chaos_end, _RESTART, self.agents[self.names[0]], "heal")
        heap = self._heap
        while heap and self.events < MAX_EVENTS:
            at, _, kind, agent, payload = heapq.heappop(heap)
            if at > c.end:
                break
            if kind == _CLOCK:  # the host's clock steps, paused or down as it may be
                self.now = at
                self.events += 1
                self._clock_step(agent, payload)
                continue
            if kind == _MEMBERS:  # views change by time alone (for every agent)
                self.now = at
                self.events += 1
                self._tell_views(force=True)
                continue
            if agent.paused_until > at and kind != _RESTART:
                self._push(agent.paused_until, kind, agent, payload)  # it resumes then
                continue
            self.now = at
            self.events += 1
            if kind == _DELIVER:
                if agent.alive:
                    self._traced("deliver", f"{payload[0]}->{agent.name}", payload[1])
                    self.fences.delivered(payload[0], agent.name)
                    self._handle(agent, agent.deliver, *payload)
            elif kind == _WAKE:
                if agent.alive and payload == agent.wake_token:
                    agent.wake_at = None
                    self._handle(agent, agent.wake)
            elif kind == _STEP:
                incarnation, run = payload
                if agent.alive and agent.incarnation == incarnation:
                    # A compensation's start entry has a fourth field (compensating.py).
                    done = agent.step_done if len(run) == 3 else agent.compensation_done
                    self._handle(agent, done, *run[:3])
            elif kind == _SUBMIT:
                if agent.alive:
                    self._traced("submit", agent.name, payload.workflow_id)
                    self._handle(agent, agent.submit, payload.workflow_id, payload.spec,
                                 payload.placement)
            elif kind == _CANCEL:  # routed as the client service routes it (cancels.py)
                self.cancel_client.ask(at, agent, *payload)
            elif kind == _RESTART:
                if payload == "heal":
                    for a in self.agents.values():
                        if not a.alive and a.name not in self.dead_forever:
                            self._restart(a)
                elif not agent.alive and agent.incarnation == payload \
                        and agent.name not in self.dead_forever:
                    self._restart(agent)
            if self._views:
                self._tell_views()
        if self.events >= MAX_EVENTS:
            self.checker.fail(f"livelock: {MAX_EVENTS} events by t={self.now:.2f}")
        else:
            self.checker.finish(self)
            self.fences.check()
        return self.report()

    def report(self) -> Report:
        committed = aborted = 0
        for wf in self.workflows:
            if self.checker.committed(wf) is not None:
                committed += 1
            else:
                row = self.checker.row(self, wf)  # retention may have forgotten it
                aborted += row is not None and row.state in TERMINAL
        self.stats["transaction with a learner-only participant"] += sum(
            not set(tx.participants) <= set(tx.acceptors) for tx in self.checker.txs.values())
        return Report(self.seed, self.events, self.now, len(self.workflows), committed, aborted,
                      self.crashes, sorted(self.dead_forever),
                      sum(self.checker.refusals.values()), list(self.checker.violations),
                      self.stats)

    # ---- helpers -------------------------------------------------------------------

    def _push(self, at: float, kind: int, agent: SimAgent, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, agent, payload))

    def _handle(self, agent: SimAgent, fn: Callable, *args: object) -> None:
        try:
            fn(self.now, *args)
        except Crash as crash:
            self._crash(agent, forever=crash.args[0] == "forever")
            return
        except RemoteProtocolError as e:
            self.checker.refused(agent.name, e)
        except Exception as e:  # a bug in a core or the shell: a violation, then a crash
            self.checker.fail(f"{agent.name} at {self.now:.3f}: {type(e).__name__}: {e}")
            self._crash(agent, forever=False)
            return
        self._reschedule(agent)

    def _traced(self, kind: str, who: str, what: object) -> None:
        if self.trace is not None:
            self.trace(self.now, kind, who, what)

    def _crash(self, agent: SimAgent, *, forever: bool) -> None:
        self._traced("crash", agent.name, "for good" if forever else "")
        agent.crash()
        self.crashes += 1
        self.died_at[agent.name] = self.now
        if self._views and self._cancels:
            self.cancel_client.coordinator_died(agent)  # its clients may cancel meanwhile
        if self._views:  # DEAD in every view dead_after_s later
            self._view_change_at(self._after_dead(self.now))
        if forever:
            self.dead_forever.add(agent.name)
            return
        c = self.config
        downtime = self._faults.uniform(0.5, 2 * c.timing.lease_s)
        at = max(self.now + 0.01, min(self.now + downtime, c.chaos_end))
        self._push(at, _RESTART, agent, agent.incarnation)

    def _clock_step(self, agent: SimAgent, step_s: float) -> None:
        self._traced("clock", agent.name, f"{step_s:+g} s")
        agent.clock.offset_s += step_s
        self.clock_check.stepped(agent.name, step_s)
        if agent.alive and agent.paused_until <= self.now:
            self._handle(agent, agent.wake)  # a turn at once: it must not raise

    def _views_from(self) -> tuple:
        """What `member_state` reads of the run, but for time: the views change only
        when this does, or at the instants `_view_change_at` schedules."""
        now, c = self.now, self.config
        p = c.partition
        cut = p is not None and now < c.chaos_end and p[0] <= now < p[1]
        return cut, self._one_way_group() is not None, tuple((a.alive, a.incarnation, a.paused_until > now)
                          for a in self.agents.values())

    def _tell_views(self, *, force: bool = False) -> None:
        """Every agent up and not paused is told what changed in its membership view
        (takeover.MembershipFeed); again until nobody has news (a turn of it may crash
        or pause an agent, which others then see). Only when the views may have
        changed (`_views_from`, or `force`): computing every view after every event
        would cost more than the run."""
        if not force and self._views_from() == self._views_seen:
            return
        told = True
        while told:
            told = False
            for a in self.agents.values():
                if a.paused_until > self.now and self._pauses_seen.get(a.name) != a.paused_until:
                    self._pauses_seen[a.name] = a.paused_until
                    self._view_change_at(a.paused_until)  # SUSPECT until then
            for agent in self.agents.values():
                if not agent.alive or agent.paused_until > self.now:
                    continue
                changes = self.membership.changes(agent.name)
                if self._doubt_heard(agent):  # its own doubt too, in the same input
                    told = True
                    self._handle(agent, lambda now, a=agent, news=changes: a.driver.turn(
                        (MemberViews(news, doubted=True),)))
                elif changes:
                    told = True
                    self._handle(agent, agent.members_changed, changes)
        self._views_seen = self._views_from()

    def _restart(self, agent: SimAgent) -> None:
        self._traced("restart", agent.name, "")
        self.last_restart[agent.name] = self.now
        self._handle(agent, agent.boot)

    def _reschedule(self, agent: SimAgent) -> None:
        if not agent.alive:
            return
        t = agent.next_timer()
        if t is None or agent.wake_at is not None and agent.wake_at <= t:
            return
        agent.wake_token += 1
        agent.wake_at = t
        self._push(max(t, self.now), _WAKE, agent, agent.wake_token)
