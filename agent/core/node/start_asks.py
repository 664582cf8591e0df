"""A participant cut off from its coordinator asks before it starts a step.

Theory of operation
-------------------
A participant P that a partition cuts off from the coordinator C it follows is declared
DEAD by C once C has not heard from it for the membership's time to a verdict
(`Timing.dead_after_s`, plus the loss grace in the daemon), and C then places again
each step of P's it judges not started (the loss table: agent/core/workflow/
domain_loss.py; "not started" is judged from what C saw: a need's result C has not
seen yet, a COMMIT still on its way). The message that makes such a step ready (that
result, from a third domain, or the COMMIT) may still reach P, late, and without this
rule P would start the step: a step that is not idempotent ran in two domains (P's
result is refused by its placement epoch, its side effects are not). Self-fencing
(self_fencing.py) does not stop that: it counts the whole step lease, far longer than
C takes to declare P DEAD and place the step elsewhere.

The rule. Before an attempt starts here (a step's first attempt, a retry, the next step
of a chain here, a fan-out's next wave), P looks at its contact with C (`in_contact`):
its membership view says C is ALIVE, and a message from C was stepped here within the
start margin (`margin_s`), not counting messages of the moment of the start itself (the
late message that makes the step ready may be C's own, a COMMIT resent after the cut
healed: it says nothing of what C decided meanwhile). In contact, the attempt starts at
once, as before: nothing is asked on that path. Otherwise the attempt is held (put back
to WAITING, its attempt number not used: `let_start`) and C is asked where the
workflow's steps are: the restart rule's `PlacementQuery` (restart_check.py), naming
the steps about to start with their placement epochs (`starting`), asked again every
`reliable_resend_s`, doubling to `ASK_AT_MOST_S`, of whoever P follows by then. The
answer (`PlacementAnswer`, answered only by a Node that drives the workflow and
granted no later epoch) is taken as the restart rule takes it (its placements are
PlacedMsgs: a step placed elsewhere moves away from here), then, per step asked:
- still placed here at the epoch asked: it may start once at that epoch (`confirmed`),
  whatever the contact is by then;
- placed at a later epoch (lost and waiting for its new round, placed elsewhere, or
  failed by a loss verdict): the hold ends without a run, and the step never starts
  here at that epoch or below (`over`), only at a later one placed here again;
- the coordinator behind this Node: asked again.
A Node that drives the workflow itself (the original in epoch 0, or the successor it
follows being itself) never asks: it cannot be cut off from itself.

A claimant drives nothing. A participant cut off from C past the takeover delay claims
the next epoch and writes its own grant of it (`granted`), so the holder it reports to
(`coordinator_now`) is itself; yet it drives the workflow only once its claim won and
an `Act` wrote the epoch (`Takeovers.acts`, the same test as takeover.py's "Acting or
claiming, on restore"). Until then C may drive it still, and may have judged this
domain lost and placed its steps elsewhere: taken for the driver, the claimant started
a step made ready by a late need, and a step that is not idempotent ran in two
domains (takeover soak seed 165402137 with a cut one way: d0, claiming epoch 1 cut
off from d2, started s2 while d2 had placed it again on d3, which ran it). So an
attempt of a workflow whose holder here is our own claim not won yet is held, as out of
contact, and asks nobody (the one to ask is ourselves). It is looked at again as soon
as the takeover part has applied a step of the workflow's core that ends the wait
(`holder_stepped`, called at the end of takeover.py's `apply`): once the claim won, in
the very step of the `Act` that writes the epoch, it starts as the driver's own (the
grants that won it each brought the electors' placements before they counted,
placed_here.py, and the Act's own judging and re-placements are done by then); once
this Node follows another holder (it yielded, or was shown a win) that one is asked at
once, the wait between asks from the shortest again. So too a start held while asking
another holder (the original, or a successor): once the holder the workflow's core
names (`coordinator`) is not the one its last ask was for (`asked_of`: a successor's
win shown, a later epoch followed, a claimant granted), the new holder is asked in that
very step, the wait from the shortest again. None waits for the held attempt's next
ask (up to `ASK_AT_MOST_S` away once the asks backed off): an answer of the holder
asked before is taken no more (`on_answer` takes only the holder followed now's), so
that wait was time lost. Any other step of the core (the holder unchanged) leaves the
held start to its ask's time. The widened look met a leak the slower timing had
hidden (takeover soak seed 163101876 with a cut one way: an original that yielded
its claim told its granter the end in epoch 0 only, ended_records.py, "An original
that yielded").

The coordinator's side. Answering "still placed here" to a query naming steps about to
start, the coordinator counts each such step as possibly started by the asker
(`answered`: Progress.start_asked, which `_may_have_started` reads), before the answer
leaves, so a later loss of the asker gives the loss table's FAIL_STARTED for a step
that is not idempotent, never a second run. The mark is in memory: a coordinator
restored from its tables judges from a progress rebuilt with `reports_missed`, which
counts every need that may have succeeded on a third domain as met, and a need placed
on the coordinator itself is met only if it SUCCEEDED there; so every step an asker may
have been told to start counts as started after a restart anyway (domain_loss.py's
header). A successor elected later never sees the mark, and needs none: its verdicts
judge with `reports_missed` too, and a need the asker saw SUCCEEDED is, at the
successor, either on record there (placed on the successor itself) or placed elsewhere
and counted as possibly SUCCEEDED; a step with no needs counts as started anyway. So a
step confirmed by the original and then lost with its asker under the successor is
judged possibly started there as well (domain_loss_verdict.py's header;
tests/unit/core/node/test_start_asks_successor.py).

The margin. C's verdict on P needs C not to have heard from P for `dead_after_s`; in a
cut both ways, the last message P got from C left C no later than the cut, so a start
within the margin of it comes before C can have judged P, as long as messages take less
than half of what is left: `margin_s` is half of `dead_after_s`, the other half for the
message's way and the turns' lag. The daemon sets `dead_after_s` from its gossip
profile's shortest time to a DEAD verdict (docs/membership.md); the loss grace comes on
top, which makes the margin only more cautious. A quiet coordinator costs one round trip:
a step whose start comes more than the margin after the last word from C (a long step
before it in a chain here, a need run elsewhere for long) asks first.

Why the coordinator, and not "the coordinator or a majority of the round's
acceptors". Only the Node that drives the workflow places a step again (replacement.py;
a successor in its own epoch), so only its word says the step is still here. Having
heard from a majority of acceptors says nothing about it: the coordinator needs none of
them to judge P lost, and a re-placement's COMMIT leaves once a majority of the
workflow's electorate holds the new placement, which members P heard from may have
acknowledged just before. Asking a majority (not hearing from one) would do: a majority
none of which holds a new placement proves no COMMIT of one left; it would let P start
while the coordinator is unreachable, and is not built (docs/failures.md).

A cut one way. Hearing C says nothing of whether C hears P: in a cut one way (C's
messages reach P, P's reach neither C nor the others) C judges P DEAD and places its
steps elsewhere while P, hearing C all along, would start them too. What P can know
of it is membership's: the others doubt P (SUSPECT, then DEAD), and their claims reach
P, which refutes them; the refutation never gets out. The membership layer tells the
Node so (`MemberViews.doubted`: a SUSPECT or DEAD claim about us heard, refuted or
about an incarnation we had moved past), and from then on P is in contact with no
coordinator: `doubted` lapses every domain P knows, the one latch of "A cut that heals"
below, so that a coordinator is in contact again only once it has answered a query
sent after the doubt (while P's view of it said ALIVE): the answer proves P's messages
reach C again, and says where the steps are. In a cut one way the query never arrives, so nothing starts; once it heals
the answer comes and the rules above apply. Why no time bound: the doubt comes before
C's verdict (SWIM tells a suspect of its suspicion at once, the buddy system, and the
verdict waits a suspicion timeout, and the daemon's loss grace, on top), but nothing
says it comes again while the cut lasts (the others stop gossiping a verdict once it
has spread, and probe a DEAD member no more), so any window after the last doubt
could close with C's verdict still standing. A doubt on the usual path (a slow host
suspected for a moment) costs one round trip per coordinator, at its next start here.

A cut that heals. The margin counts from C's last message, and after a cut both ways
heals that may be a message C sent before the cut, resent (or delayed, duplicated):
it says nothing of what C decided meanwhile. C may have judged P DEAD and placed the
step elsewhere, and the late message that makes the step ready (a need's result from
a third domain, the COMMIT) may come a moment after it. So P keeps a latch per domain,
the one its doubt sets for every domain: once its view of C lapses, that is, leaves ALIVE (SUSPECT,
DEAD, LEFT: `views_changed`), or turns ALIVE from unknown while a workflow here
follows C (its placement learned before the view knew C; the restart rule's own
answer covers a workflow it holds), C is in contact no more (`lapsed`) until it has
answered a query sent while the view said ALIVE again (`since_lapse`; a new lapse
voids the queries in flight). That answer left C after P's query got through, so the
way back is open, and it says where C has the steps then (its placements move a step
placed elsewhere away from here): whatever C decided during the cut is known before
the next start. The latch is per domain, not per step: a placement learned after the
lapse pays the one ask too, which is simpler and costs no more than the doubt does.
Nothing changes on the usual path: no view change, no ask (`fedorch bench commit`
holds no start); a coordinator suspected for a moment costs one round trip, at the
next start here of one of its workflows.
Why a cut long enough for C's verdict makes P's view of C leave ALIVE, or tells P
otherwise. C acts on a verdict on P only once it has heard nothing from P for the
shortest suspicion (`dead_after_s`) and the loss grace after it (docs/membership.md).
If the others still reach P (a cut between P and C alone, or P and part of the
group), C's suspicion of P is gossiped to every member and reaches P through them,
and P hears its own doubt (above). If nobody reaches P (P isolated), P's probes all
fail, and its view of C goes SUSPECT once it probes C: its probes go round every
member in shuffled order, one per probe period, so any 2(n-1) periods hold a probe of
C. The window before C can act, `dead_after_s` plus the loss grace, is 6.5 s on `lan`
(21 periods of 0.3 s: n up to 11 members), 4.5 s on `local` (9 periods: 5 members),
60 s on `wan` (12 periods: 7 members), at an unstretched probe period (an isolated P's
health score stretches its periods, which lowers these). With more members P may not
probe C within the window; then what tells it is its doubt after the heal: the
others hold P DEAD, and the next push-pull P takes part in (20 s on `lan`), or a
probe's piggy-backed claim, brings that verdict to P, which refutes it and asks; and
its own silence: a start more than the margin after C's last word asks anyway.
What remains (docs/failures.md, "Not built yet"): a cut that isolates P longer than
C's verdict and grace, among enough members that P never probes C within it, and a
start after the heal, before the doubt reaches P, whose late message comes within
the margin after a resend of C's.

Limits. The contact is judged from what P hears and what it hears of its own doubt:
a start between a cut one way and the doubt's arrival (a message's way after C's
suspicion) is judged by the margin, as in a cut both ways; after a cut that heals,
the bound above. What is held is in memory only:
a restart holds every restored workflow until its coordinator answers anyway
(restart_check.py), and a restarted agent's membership hears the doubt again as it
rejoins (the others hold its last life SUSPECT or DEAD).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fedorch.core.node.deadlines import DeadlineTable
from fedorch.core.node.records import PlacementAnswer, PlacementQuery
from fedorch.core.workflow.progress import (
    TERMINAL_STEP_STATES,
    Progress,
    StartAttempt,
    StepState,
)

# The longest wait between two asks of one workflow's coordinator (as restart_check.py's).
ASK_AT_MOST_S = 4.0
HELD = "step start held: coordinator asked"
CONFIRMED = "step start confirmed by the coordinator"
DROPPED = "step start dropped: placed elsewhere"
ANSWERED = "step start asked: still placed there (counted as started)"


def start_margin(dead_after_s: float) -> float:
    """The start margin for a membership that judges a domain DEAD `dead_after_s` after
    it last heard it: half of it (see the header)."""
    return dead_after_s / 2


class StartAsks:
    def __init__(self, node: Any, margin_s: float) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node
        self.margin_s = margin_s
        self.reset()

    def reset(self) -> None:
        """A restore: nothing heard in this life yet, nothing held."""
        # Domain -> the last moment a message from it was stepped here, and the moment
        # before that one (the start of a moment's turn does not count its own message).
        self.heard: dict[str, float] = {}
        self.heard_before: dict[str, float] = {}
        # Workflow -> step -> the placement epoch of the step held and asked about.
        self.asked: dict[str, dict[str, int]] = {}
        self.confirmed: set[tuple[str, str, int]] = set()  # (wf, step, epoch): one start
        self.over: dict[tuple[str, str], int] = {}  # (wf, step) -> no start at or below
        self.due = DeadlineTable()  # workflow -> its next ask
        self.wait: dict[str, float] = {}  # workflow -> the wait after its next ask
        self.asked_of: dict[str, str] = {}  # workflow -> the holder its last ask was for
        # The domains whose contact lapsed (their view left ALIVE, or came from unknown
        # while a workflow here follows it: "A cut that heals"; every one known at our
        # own doubt: "A cut one way"), and the workflows asked since
        # with the coordinator asked, while its view said ALIVE after its lapse.
        self.lapsed: set[str] = set()
        self.since_lapse: dict[str, str] = {}

    # ---- what the Node tells ---------------------------------------------------------

    def message_from(self, now: float, src: str) -> None:
        last = self.heard.get(src)
        if last != now:
            if last is not None:
                self.heard_before[src] = last
            self.heard[src] = now

    def doubted(self, now: float) -> None:
        """Membership heard a doubt of this domain (MemberViews.doubted): no coordinator
        is in contact until it answers a query sent from now on (see the header)."""
        self._lapse(self.n.members)

    def views_changed(self, before: dict[str, str | None]) -> None:
        """The view of the domains in `before` (their states before) changed: a domain
        not ALIVE now, or ALIVE now and unknown before while a workflow here follows it
        and the restart rule holds none of them, is not in contact until it answers a
        query sent while ALIVE after this (see "A cut that heals")."""
        n = self.n
        self._lapse(domain for domain, old in before.items()
                    if n.members.get(domain) != "ALIVE" or old is None and self._follows(domain))

    def _lapse(self, domains: Iterable[str]) -> None:
        """`domains` are in contact no more until each answers a query sent from now on
        while its view says ALIVE (a query already on its way proves nothing)."""
        domains = set(domains)
        if domains:
            self.lapsed |= domains
            self.since_lapse = {wf: d for wf, d in self.since_lapse.items()
                                if d not in domains}

    def _follows(self, domain: str) -> bool:
        """Does a workflow here, not held by the restart rule, follow `domain`?"""
        n = self.n
        return any(wf not in n.state.final and not n.restart_check.holds_back(wf)
                   and self.coordinator(wf) == domain for wf in n.progress)

    def timer(self) -> float | None:
        return self.due.earliest()

    def tick(self, now: float) -> None:
        for wf in self.due.due(now):
            self._ask(now, wf)

    def forget(self, wf: str) -> None:
        """`wf` ended here: nothing of it starts any more, nothing to ask."""
        self._done(wf)
        self.since_lapse.pop(wf, None)
        self.confirmed = {c for c in self.confirmed if c[0] != wf}
        self.over = {k: e for k, e in self.over.items() if k[0] != wf}

    # ---- the participant's side ------------------------------------------------------

    def coordinator(self, wf: str) -> str:
        n = self.n
        return n.takeover.coordinator_now(wf) if n.takeover is not None \
            else n.running.info(wf).coordinator

    def drives(self, wf: str) -> bool:
        """Does this Node drive `wf` itself: its original coordinator, or a successor
        acting in the epoch it won? A claim of ours not won yet is not (see "A claimant
        drives nothing")."""
        n = self.n
        if n.takeover is None:
            return n.running.info(wf).coordinator == n.name
        return n.takeover.acts(wf)

    def in_contact(self, now: float, domain: str) -> bool:
        """Does the view say `domain` is ALIVE, was a message of its stepped here within
        the margin, before this moment, and has it answered since its contact lapsed?"""
        if self.n.members.get(domain) != "ALIVE" or domain in self.lapsed:
            return False
        last = self.heard.get(domain)
        if last == now:
            last = self.heard_before.get(domain)
        return last is not None and now - last <= self.margin_s

    def checks(self, now: float, wf: str) -> bool:
        """May an attempt of `wf` ready now be held (`let_start` must see it)? False on
        the usual path: this Node drives it, or is in contact with who does, and no
        step of it is held or over here (our own claim not won yet: held)."""
        coordinator = self.coordinator(wf)
        if self.drives(wf):
            return False
        return coordinator == self.n.name or wf in self.asked \
            or any(k[0] == wf for k in self.over) or not self.in_contact(now, coordinator)

    def let_start(self, now: float, wf: str, p: Progress, ready: list[StartAttempt],
                  errors: dict[str, str]) -> list[StartAttempt]:
        """Of `ready` (moved to RUNNING by `p.start_ready`), those that start now; every
        other is put back as it was (WAITING, its attempt not used, `errors` its error
        before) and held: asked about, or placed elsewhere (see the header). A
        workflow self-fencing refuses already is left to it (its attempts end FAILED)."""
        n = self.n
        coordinator = self.coordinator(wf)
        if self.drives(wf) or n.fencing.would_fence(now, wf):
            return ready
        contact = coordinator != n.name and self.in_contact(now, coordinator)
        starting = []
        fresh = False
        for a in ready:
            s = p.steps[a.step_id]
            key = (wf, a.step_id, s.epoch)
            if self.over.get(key[:2], -1) >= s.epoch:
                pass  # the coordinator placed it elsewhere: never at this epoch
            elif key in self.confirmed:
                self.confirmed.discard(key)
                self.asked.get(wf, {}).pop(a.step_id, None)
                starting.append(a)
                continue
            elif contact:
                self.asked.get(wf, {}).pop(a.step_id, None)
                starting.append(a)
                continue
            else:
                held = self.asked.setdefault(wf, {})
                if held.get(a.step_id) != s.epoch:  # news to ask about: asked now
                    n.stats[HELD] += 1
                    held[a.step_id] = s.epoch
                    fresh = True
            s.state, s.attempts, s.error = StepState.WAITING, a.attempt - 1, errors.get(
                a.step_id, "")
        if fresh:
            self.wait[wf] = n.t.reliable_resend_s
            self._ask(now, wf)
        elif wf in self.asked and not self.asked[wf]:
            self._done(wf)
        return starting

    def _ask(self, now: float, wf: str) -> None:
        n = self.n
        asked = self.asked.get(wf)
        if not asked or wf not in n.progress or wf in n.state.final:
            self._done(wf)
            return
        wait = self.wait.get(wf, n.t.reliable_resend_s)
        self.due[wf] = now + wait
        self.wait[wf] = min(wait * 2, ASK_AT_MOST_S)
        target = self.asked_of[wf] = self.coordinator(wf)
        if target == n.name:
            if self.drives(wf):  # it drives the workflow now: nothing to ask
                self._done(wf)
                n.running.start_ready(now, wf)
            return  # our own claim, not won yet: looked at again when due
        if target in self.lapsed and n.members.get(target) == "ALIVE":
            self.since_lapse[wf] = target  # its answer tells what it decided since
        n.send(target, PlacementQuery(wf, starting=tuple(sorted(asked.items()))))

    def _done(self, wf: str) -> None:
        self.asked.pop(wf, None)
        self.due.pop(wf, None)
        self.wait.pop(wf, None)
        self.asked_of.pop(wf, None)

    def holder_stepped(self, now: float, wf: str) -> None:
        """The takeover part applied what `wf`'s core said (takeover.py, `apply`): a
        start held here is looked at now, not at its ask's time, if the holder its last
        ask was for holds it no more: our own claim won (an `Act`: it starts as the
        driver's own), or the holder followed now is another (asked now, its wait from
        the shortest again). See "A claimant drives nothing"."""
        n = self.n
        if not self.asked.get(wf) or wf not in self.asked_of:
            return  # nothing held
        if wf in n.progress and wf not in n.state.final and not self.drives(wf) \
                and self.coordinator(wf) == self.asked_of[wf]:
            return  # the holder asked holds it still (our own claim: not won yet)
        self.wait[wf] = n.t.reliable_resend_s
        self._ask(now, wf)

    def on_answer(self, now: float, src: str, msg: PlacementAnswer) -> None:
        """The coordinator asked answered (before the restart rule looks at it)."""
        n = self.n
        wf = msg.workflow_id
        if self.since_lapse.get(wf) == src:  # asked since its view is ALIVE again
            self.lapsed.discard(src)
            del self.since_lapse[wf]
        asked = self.asked.get(wf)
        if not asked or wf not in n.progress or self.coordinator(wf) != src:
            return  # not asked (any more), or not of the coordinator followed now
        if not n.restart_check.holds_back(wf):  # else the restart rule takes them
            n.placed_here.learn(now, wf, msg.placements, msg.before)
        p = n.progress.get(wf)
        if p is None:
            self._done(wf)
            return
        theirs = {step: (epoch, domain) for step, epoch, domain in msg.steps}
        for step, epoch in list(asked.items()):
            s = p.steps.get(step)
            if s is None or s.domain != n.name or s.epoch != epoch \
                    or s.state in TERMINAL_STEP_STATES:
                del asked[step]  # moved away (the answer's placements) or ended here
                n.stats[DROPPED] += 1
            elif theirs.get(step) == (epoch, n.name):
                del asked[step]
                self.confirmed.add((wf, step, epoch))
                n.stats[CONFIRMED] += 1
            elif theirs.get(step, (-1, ""))[0] > epoch:
                del asked[step]
                self.over[(wf, step)] = epoch
                n.stats[DROPPED] += 1
        if not asked:
            self._done(wf)
        n.running.start_ready(now, wf)


def answered(n: Any, src: str, msg: PlacementQuery) -> None:
    """As the coordinator that drives `msg`'s workflow, about to answer it: each step
    `src` is about to start, still placed on `src` at the epoch it asked about, counts
    as possibly started there from now on (see the header)."""
    p = n.progress.get(msg.workflow_id)
    if p is None:
        return
    for step, epoch in msg.starting:
        s = p.steps.get(step)
        if s is not None and s.domain == src and s.epoch == epoch \
                and s.state not in TERMINAL_STEP_STATES:
            p.start_asked(step, src)
            n.stats[ANSWERED] += 1
