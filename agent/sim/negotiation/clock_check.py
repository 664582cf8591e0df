"""Clock steps in the negotiation simulation, and the invariants they must not break.

Theory of operation
-------------------
Each simulated agent has its own wall clock (ports.SimClock): the simulation's time
plus an offset. A clock-step fault (simulation.py's `Config.clock_steps`) changes one
agent's offset by +2 s, -2 s, +1 h or -1 h at some moment, as an NTP step or an
operator's `date -s` does. The Node never sees it: its `now` is the driver's
monotonic clock; only its wall readings (the submission window) move.

The invariants, checked as the run goes (a violation is reported to the checker at
once, with the times that break it):

* no agent raises on a clock step: the agent takes a turn right at the step; an
  exception there is a violation like any other (simulation.py's `_handle`);
* no lease fires early: every lease or timeout action happens only after at least
  its configured duration of *true* (monotonic) time since what started it. Both
  ends are observed from outside the agent, in simulation time, never in anything
  the agent computed:
  - a participant in doubt starting termination (its first DecisionQuery about a
    transaction it does not coordinate: a coordinator asks about its own round with
    its recovery ballot, core/negotiation/coordinator_doubt.py) at least `lease_s` after its reservation for it was first written
    (the lease is the reservation's; the YES may be written later), unless its
    Node's membership view says the coordinator is DEAD or LEFT when it asks (with
    takeover on: what `MembershipFeed` told it; then recovery starts at once,
    core/node/member_loss.py: a decision on the view, not on a timer);
  - a coordinator's prepare timeout (an ABORT it decides for a round to which no NO
    vote was sent) at least `prepare_timeout_s` after it sent that round's first
    PREPARE, unless it restarted meanwhile (a restarted coordinator aborts a round
    it was preparing at once: presumed abort, no timer involved), took a client's
    cancel of the workflow before (a cancel aborts the round at once: cancels.py),
    its view says a participant of that round is DEAD or LEFT (the round aborts at
    once then), or it had proposed COMMIT in that round (its own Accept of COMMIT
    sent: all YES were in, its prepare timer is over) and a participant's recovery
    proposed ABORT there at a ballot of its own (that proposer's Accept of ABORT sent:
    termination.py): then the ABORT is the recovery's choice the coordinator learned,
    no timer of its own (core/negotiation/coordinator.py, DECIDING -> PREPARING; a
    coordinator cut one way is held DEAD by its participants, who recover at once);
  - a participant's takeover claim (with `Timing.takeover_after_s` set: takeover.py)
    only once the coordinator it follows is DEAD in its membership view (now, or at
    some look since its last ALIVE there and since the agent's restart: the view of a
    member that came back and went down again between two looks goes DEAD to
    SUSPECT, and the takeover core holds it gone until ALIVE), or has been
    silent there for at least `takeover_after_s`: the claim is the write of its own
    grant of the next epoch (the decision; its ClaimMsgs follow, after a restart
    perhaps), and "silent" counts from the first time that agent's membership view
    (`Simulation.member_state`, as the world answers the agent) showed the coordinator
    not ALIVE, with no ALIVE since and the agent up throughout (what the agent could
    know: its Node is told each change of its view as it happens, as `MemberState`
    inputs, and a restarted agent starts afresh).
    Which coordinator it followed is read off its disk just before that write: whom
    it follows is the agent's, when it may stop following is what is checked;
  - a claimant whose claim met a rival and timed out claims the next epoch at least
    the claim timeout (`prepare_timeout_s` here) after its own claim before, unless it
    was sent a denial of that claim naming a rival holder of its epoch: then the
    denials may settle the split at once (agent/core/workflow/takeover_split.py), a
    decision on answers, not on a timer.

The self-fencing rule is not in this simulation's agents (their Node has no step
lease): the re-placement world with partitions runs it (fencing.py), on each cut
worker's monotonic clock while its wall clock steps, and `fenced_early` below is its
invariant there: a step is stopped no sooner than `lease_s` after the later of its
start and the last message its domain received, in true time.

A deliberately broken agent whose leases run on its wall clock breaks the second
invariant at the first forward step, one whose takeover cores are fed wall time claims
before the coordinator has been silent long enough, and a cut worker that reads the
fencing rule's times off its wall clock fences early
(tests/sim/negotiation/test_clock_check.py, test_clock_steps_takeover_sim.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedorch.core.negotiation.messages import Accept, DecisionQuery, Key, TxInfo, Value
from fedorch.core.node.ready import PUT, Write
from fedorch.core.node.records import ClaimAnswerMsg, PrepareMsg, VoteMsg
from fedorch.core.node.takeover import held_of

if TYPE_CHECKING:
    from fedorch.core.node.records import Disk
    from fedorch.sim.negotiation.world import World

# The four steps of the fault (seconds): NTP's step threshold is far below 2 s; an
# hour is a time-zone or DST mistake made by hand.
CLOCK_STEPS_S = (2.0, -2.0, 3600.0, -3600.0)
# Simulation times are floats summed along different paths: equal instants may differ
# by rounding.
EPSILON_S = 1e-6
GONE = frozenset({"DEAD", "LEFT"})  # a coordinator in that state may be taken over at once


class ClockCheck:
    def __init__(self, sim: World) -> None:
        self.sim = sim
        self.steps: list[tuple[str, float, float]] = []  # (agent, at, step_s) done
        self._reserved_at: dict[tuple[str, Key], float] = {}  # first written, true time
        self._queried: set[tuple[str, Key]] = set()
        self._prepared_at: dict[tuple[str, Key], float] = {}  # first PREPARE sent
        self._rounds: dict[Key, TxInfo] = {}  # each round a PREPARE was sent of
        self.early = 0  # queries and aborts before their timers, on a DEAD in the view
        self._refused: set[tuple[str, Key]] = set()  # (coordinator, key) got a NO
        self._proposed_commit: set[tuple[str, Key]] = set()  # (coordinator, key)
        self._recovered_abort: set[Key] = set()  # a participant's recovery proposed ABORT
        self.fired = 0  # lease and timeout actions checked
        # Takeover: each agent's membership view as the world answered it, in true time.
        # (observer, member) -> the first view of `member` not ALIVE since it last was.
        self._silent_since: dict[tuple[str, str], float] = {}
        self._last_seen: dict[tuple[str, str], str] = {}  # (observer, member) -> state
        # (observer, member) -> when its view first said DEAD or LEFT since it last said
        # ALIVE: the takeover core holds a coordinator gone from then until ALIVE (a
        # DEAD that turns SUSPECT, the member back and down again between two looks,
        # is still gone to it).
        self._gone_since: dict[tuple[str, str], float] = {}
        self.claimed_at: dict[tuple[str, str, int], float] = {}  # (agent, wf, epoch) -> when
        # (claimant, wf, epoch): a denial naming a rival holder of that epoch was sent it.
        self._rival_denied: set[tuple[str, str, int]] = set()
        self.claims = 0  # takeover claims checked

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

    def observed(self, observer: str, member: str, state: str) -> None:
        """`observer`'s membership view answered `state` for `member` now."""
        key, now = (observer, member), self.sim.now
        self._last_seen[key] = state
        if state == "ALIVE":
            self._silent_since.pop(key, None)
            self._gone_since.pop(key, None)
            return
        if state in GONE:
            gone = self._gone_since.get(key)
            if gone is None or gone < self.sim.last_restart.get(observer, -1.0):
                self._gone_since[key] = now
        since = self._silent_since.get(key)
        if since is None or since < self.sim.last_restart.get(observer, -1.0):
            self._silent_since[key] = now  # a restarted observer counts afresh

    def writing(self, agent: str, disk: Disk, write: Write) -> None:
        """A write group about to be applied to `disk` (still as before it): an agent
        writing its own grant of an epoch is claiming that epoch."""
        for op in write.ops:
            if op.table == "granted" and op.kind == PUT and op.value[1] == agent:
                wf, epoch = op.key, op.value[0]
                original = self.sim.workflows.get(wf, wf.rpartition(".")[0])
                self._claim(agent, wf, epoch, held_of(disk, wf, original))

    def sent(self, src: str, dst: str, msg: object) -> None:
        """A message handed to the network (Simulation.send)."""
        kind = type(msg)
        if kind is PrepareMsg:
            self._prepared_at.setdefault((src, msg.tx.key), self.sim.now)
            self._rounds.setdefault(msg.tx.key, msg.tx)
        elif kind is VoteMsg:
            if not msg.yes:
                self._refused.add((dst, msg.key))
        elif kind is DecisionQuery:
            self._query(src, msg)
        elif kind is Accept and src == msg.ballot.proposer and src in self.sim.names:
            if src == msg.tx.coordinator:
                if msg.value.commit:
                    self._proposed_commit.add((src, msg.tx.key))
            elif not msg.value.commit:
                self._recovered_abort.add(msg.tx.key)
        elif kind is ClaimAnswerMsg and not msg.granted and msg.held_epoch == msg.epoch \
                and msg.holder not in ("", dst):
            self._rival_denied.add((dst, msg.workflow_id, msg.epoch))

    # ---- the invariants ------------------------------------------------------------------

    def _query(self, src: str, msg: DecisionQuery) -> None:
        tx = self._rounds.get(msg.key)
        if tx is not None and src == tx.coordinator:
            return  # its coordinator's own question (core/negotiation/coordinator_doubt.py)
        if (src, msg.key) in self._queried:
            return  # only the first query is the lease's firing
        self._queried.add((src, msg.key))
        reserved = self._reserved_at.get((src, msg.key))
        if reserved is None:
            return
        self.fired += 1
        lease = self.sim.config.timing.lease_s
        if tx is not None and self._gone_in_view(src, (tx.coordinator,)):
            self.early += self.sim.now + EPSILON_S < reserved + lease
            return  # recovery at once: its coordinator is DEAD in its view
        if self.sim.now + EPSILON_S < reserved + lease:
            self._fail(f"lease fired early: {src} asked about {msg.key} at"
                       f" {self.sim.now:.3f}, {self.sim.now - reserved:.3f} s after its"
                       f" reservation (lease {lease:g} s)")

    def _decided(self, agent: str, key: Key, value: Value) -> None:
        if value.commit or (agent, key) in self._refused \
                or self.sim.checker.cancelled.get(key[0]) == agent:  # a cancel, no timer
            return
        started = self._prepared_at.get((agent, key))
        if started is None:
            return
        if self.sim.last_restart.get(agent, -1.0) >= started:
            return  # presumed abort on restart (see the header)
        if (agent, key) in self._proposed_commit and key in self._recovered_abort:
            self.sim.stats["COMMIT proposed, recovery's ABORT learned"] += 1
            return  # the participants' recovery chose ABORT: learned, no timer
        self.fired += 1
        timeout = self.sim.config.timing.prepare_timeout_s
        tx = self._rounds.get(key)
        if tx is not None and self._gone_in_view(agent, tx.participants):
            self.early += self.sim.now + EPSILON_S < started + timeout
            return  # a participant of the round is DEAD in its view: aborted at once
        if self.sim.now + EPSILON_S < started + timeout:
            self._fail(f"timeout fired early: {agent} aborted {key} at {self.sim.now:.3f},"
                       f" {self.sim.now - started:.3f} s after its PREPARE (timeout"
                       f" {timeout:g} s) with no NO vote")

    def _gone_in_view(self, agent: str, members: tuple[str, ...]) -> bool:
        """Does `agent`'s Node hold any of `members` DEAD or LEFT now (as it was told:
        takeover.MembershipFeed; a restarted Node was told anew)?"""
        told = self.sim.membership.told.get(agent, {})
        return any(told.get(m) in GONE for m in members if m != agent)

    def _claim(self, agent: str, wf: str, epoch: int, held: tuple[int, str]) -> None:
        if (agent, wf, epoch) in self.claimed_at:
            return
        now = self.sim.now
        self.claimed_at[(agent, wf, epoch)] = now
        self.claims += 1
        held_epoch, coordinator = held
        t = self.sim.config.timing
        if coordinator == agent:  # its own claim of the epoch before met a rival
            if (agent, wf, held_epoch) in self._rival_denied:
                return  # settled on the denials (see the header), not timed out
            before = self.claimed_at.get((agent, wf, held_epoch))
            if before is not None and now + EPSILON_S < before + t.prepare_timeout_s:
                self._fail(f"claim timed out early: {agent} claimed epoch {epoch} of {wf}"
                           f" at {now:.3f}, {now - before:.3f} s after its claim of epoch"
                           f" {held_epoch} (claim timeout {t.prepare_timeout_s:g} s)")
            return
        state = self._last_seen.get((agent, coordinator))
        gone = self._gone_since.get((agent, coordinator))
        if state in GONE or gone is not None \
                and gone >= self.sim.last_restart.get(agent, -1.0):
            return  # DEAD in its view, and not ALIVE since (nor restarted since)
        since = self._silent_since.get((agent, coordinator))
        if since is None or since < self.sim.last_restart.get(agent, -1.0):
            since = now  # not silent in its view (or not since it restarted)
        if now + EPSILON_S < since + t.takeover_after_s:
            self._fail(f"takeover claimed early: {agent} claimed epoch {epoch} of {wf} at"
                       f" {now:.3f}, its coordinator {coordinator} silent in its view for"
                       f" {now - since:.3f} s (now {state or 'never seen'}; takeover after"
                       f" {t.takeover_after_s:g} s)")

    def _fail(self, what: str) -> None:
        steps = ", ".join(f"{a} {s:+g} s at {t:.2f}" for a, t, s in self.steps) or "none"
        self.sim.checker.fail(f"{what} (clock steps: {steps})")


def fenced_early(started: float, heard: float | None, now: float,
                 lease_s: float) -> str | None:
    """Self-fencing's invariant, in true time (fencing.py): what is wrong with stopping
    a step at `now` that started at `started` in a domain that last received a message
    at `heard`, or None if its lease had run out."""
    since = max(started, heard if heard is not None else started)
    if now + EPSILON_S >= since + lease_s:
        return None
    return (f"fenced early: stopped at {now:.3f}, {now - since:.3f} s after the later of"
            f" its start ({started:.3f}) and the last message heard"
            f" ({'never' if heard is None else f'{heard:.3f}'}) (lease {lease_s:g} s)")
