"""A restarted participant asks before it starts: the restart rule of the Node.

Theory of operation
-------------------
A Node restored from its tables (a restart) holds back every step attempt of each
committed workflow it restores (`holds_back`, read by running.py before any start)
until the coordinator it follows confirms where the workflow's steps are placed now.
Why: while this Node was down, its coordinator may have judged it lost (DEAD) and
placed one of its steps again (replacement.py), the new domain may have run it, and
the PlacedMsg telling this Node that its placement is over may still be on its way,
or held by a coordinator that is down. The restored progress still says the step is
here, and the first message that makes it ready (a need's result, from a domain
that reports to this Node as the coordinator it follows) would start an attempt the
new domain ran already: a non-idempotent step twice (takeover soak seed 1700761).

The rule:
- at restore every committed workflow not ended here is held (`hold_all`, before the
  progress is rebuilt and its ready steps are started), and every one in doubt here
  (its COMMIT may come from the acceptors' recovery, not from the coordinator that
  would tell it a placement is over: held, with no deadline, until its progress is
  built, `resumed`, then asked about; one that aborts stays held, in memory, with
  nothing to start); so too, without a restart, a workflow whose COMMIT this Node
  learned without its coordinator (`ask_first`, learned_elsewhere.py); once the Node is whole
  (`restored`), a workflow with no unfinished step here, or that this Node drives
  itself (its original coordinator at epoch 0, or a successor acting in the epoch it
  won), is let go at once: its own tables are the placements' authority (with
  takeover, once electors meeting every majority said they hold no epoch above the one
  it drives in: no later epoch can have placed its steps elsewhere while it was down,
  original_asks.py, "Its own steps");
- any other is asked about: `PlacementQuery` to the coordinator it follows
  (`Takeovers.coordinator_now`: the holder of the epoch followed or granted, else the
  original), asked again every `reliable_resend_s`, doubling to `ASK_AT_MOST_S`, of
  whoever it follows by then (it may follow a successor meanwhile), until answered;
- only a Node that drives the workflow and has granted no later epoch answers
  (`PlacementAnswer`): its placements on record (every step placed again, with
  epoch, domain and lost domain) and its progress's view of every step (placement
  epoch and domain, "" for one lost and waiting for its new round); one asked that
  ended the workflow tells its end instead to a lost domain holding no step of it
  any more, which nobody else tells, or to any asker once the saga's plan is closed
  here or its spec owes none (`_tell_end`), or to a domain that granted its claim,
  over, for the saga's plan, which it never took (the same question, asked by such a
  granter: takeover_late_grants.py `asked`; the original that yielded such a claim
  tells the end in the yielded epoch too, after the one in epoch 0: ended_records.py,
  "An original that yielded"); one that forgot it answers from the end's
  record where the kept workflow told the asker, its saga over by then, with the
  epoch and certificate the asker takes (ended_records.py, a step's domain included:
  the original following a gone driver tells it as below); one whose
  saga's driver is gone in its view, no plan of it held, claims the next epoch for
  the plan its results owe (the winner tells the end), or, none owed, tells the end
  (saga_gone_driver.py);
- the answer's placements are taken as a PlacedMsg's would be (placed_here.py:
  written, an attempt of a placement that is over stopped or its result dropped);
  then, if every unfinished step still placed here is confirmed (the coordinator has
  it here at the same placement epoch), the workflow is let go. If one is not (the
  coordinator's epoch of it is later: lost, its new round under way, or failed by a
  loss verdict; or the coordinator is behind this Node), nothing starts and the
  coordinator is asked again: the new placement (a PlacedMsg, or the next answer)
  moves the step away, the workflow's end lets it go, or a later coordinator (a
  successor, which knows every placement whose COMMIT left, below) confirms it.

Why it is safe. Steps are placed again only by the Node that drives the workflow: the
original coordinator in epoch 0 (replacement.py), or the holder of a later epoch,
in its epoch's own range of round numbers (replacement_successor.py). Answered by the
Node that drives, a confirmation says that no COMMIT of its own placing the step
elsewhere exists (its progress takes a new placement in the write of the round's
decision, before any COMMIT leaves). Answered by the holder of a later epoch, it holds
for the placements of earlier epochs too, because a new placement's COMMIT leaves the
Node that placed it only once a majority of the workflow's electorate that had granted
no later epoch holds the placement (replacement_telling.py, `send_if_told`;
replacement_successor.py for a successor's rounds), and a grant carries the granter's placements
(`ClaimAnswerMsg.placements`), which the claimant takes before it counts the grant
(placed_here.py, `learn_from_grant`): a majority that elects a successor meets that
majority in a member that holds the placement, and so tells it, if it acknowledged
the placement before it granted. After it granted, it acknowledges no placement told
in an older epoch that it does not hold already (placed_here.py), and a Node
that placed a step sends no COMMIT once it granted or follows a later epoch
(replacement.py): so no
placement the successor's majority did not carry can be held by a majority, nor leave
its COMMIT, later. Such a placement, half-done, is completed by the successor if it
knows it (it hands the COMMIT out) or answered void to its new domain, which releases
its reservation (replacement_handover.py). A step confirmed here and then lost again is the
ordinary loss case (the loss table, domain_loss.py). What is held is in memory only:
a restart holds everything again and asks again, so nothing of it is written.

Deadlines. The Node asks for `timer` after every turn; the next asks are kept in a
DeadlineTable (deadlines.py), so it reads the earliest, not every workflow held (all
those committed at a restore), and a tick finds the due ones the same way. Each ask
sets its workflow's next ask through the table (a later time, or math.inf while in
doubt), so a workflow is asked once per deadline, as the walk asked it, in the order of
its name.

Nothing waits for ever on it: a coordinator gone for good is replaced by a
successor (takeover.py), which answers once it acts; a workflow that ends is let go
(`forget`, at its end); a Node that becomes the driver itself lets go at its next
ask. Without coordinator takeover the original alone answers, as the shells' rule.
"""

from __future__ import annotations

import math
from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.node.deadlines import DeadlineTable
from fedorch.core.node.ended_records import no_saga, original_yielded
from fedorch.core.node.original_asks import OriginalAsks
from fedorch.core.node.records import FinalMsg, PlacementAnswer, PlacementQuery
from fedorch.core.node.saga_gone_driver import driver_gone, tell_or_claim
from fedorch.core.node.start_asks import answered
from fedorch.core.node.takeover_claims import held_of
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES

# The longest wait between two asks of one workflow's coordinator.
ASK_AT_MOST_S = 4.0


class RestartCheck:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node
        # A restored original's asks of its domains (original_asks.py), composed here.
        self.originals = OriginalAsks(node)
        self.reset()

    def reset(self) -> None:
        # Workflow -> when to ask next (math.inf: in doubt here, no deadline): held, not
        # yet confirmed; its earliest without a walk (see Deadlines above).
        self.held = DeadlineTable()
        # Workflow -> the wait after its next ask.
        self.wait: dict[str, float] = {}

    # ---- what the Node and its parts ask ------------------------------------------------

    def handlers(self) -> dict:
        """The messages of this part, by type, for the Node's routing (negotiation.py)."""
        return {PlacementQuery: self.on_query, PlacementAnswer: self.on_answer}

    def holds_back(self, wf: str) -> bool:
        """May no attempt of `wf` start here yet (restored, not confirmed)?"""
        return wf in self.held

    def timer(self) -> float | None:
        t = self.held.earliest()
        mine = None if t == math.inf else t  # in doubt here: no deadline, `resumed`
        theirs = self.originals.timer()
        return theirs if mine is None else mine if theirs is None else min(mine, theirs)

    def forget(self, wf: str) -> None:
        """`wf` ended here: nothing of it starts any more, nothing to ask."""
        self.held.pop(wf, None)
        self.wait.pop(wf, None)

    # ---- restore ---------------------------------------------------------------------------

    def hold_all(self, now: float) -> None:
        """A restore, before the progress is rebuilt: every committed workflow held,
        and every one in doubt here (it may learn its COMMIT from the acceptors, not
        from the coordinator that would tell it its placement is over)."""
        d = self.n.state
        resend = self.n.t.reliable_resend_s
        self.reset()
        self.originals.said = {}  # an epoch held for us answered in this life only
        for wf in sorted({h.workflow_id for h in d.holds.values()}):
            if wf not in d.final:
                self.held[wf], self.wait[wf] = math.inf, resend
        for wf in d.committed:
            if wf not in d.final:
                self.held[wf], self.wait[wf] = now, resend

    def ask_first(self, wf: str) -> None:
        """`wf`'s COMMIT learned here without its coordinator (learned_elsewhere.py):
        held as one in doubt at a restore is, and asked about once its progress is
        built (`resumed`)."""
        if wf not in self.held:
            self.held[wf], self.wait[wf] = math.inf, self.n.t.reliable_resend_s

    def resumed(self, wf: str) -> None:
        """`wf` committed here (its progress built): held in doubt since the restore, it
        is asked about at the next tick (now)."""
        if self.held.get(wf) == math.inf:
            self.held[wf] = self.n.now

    def restored(self, now: float) -> None:
        """The Node is whole again: what needs no answer goes, the rest is asked."""
        for wf in sorted(self.held):
            self._ask(now, wf)
        self.originals.restored(now)  # an original back asks where it stands

    def tick(self, now: float) -> None:
        for wf in sorted(self.held.due(now)):
            self._ask(now, wf)
        self.originals.tick(now)

    def _ask(self, now: float, wf: str) -> None:
        n = self.n
        p = n.progress.get(wf)
        wait = self.wait[wf]
        if p is None and wf not in n.state.committed and wf not in n.state.final \
                and any(h.workflow_id == wf for h in n.participant.holds()):
            self.held[wf] = math.inf  # still in doubt here: asked about once committed
            return
        self.held[wf] = now + wait
        self.wait[wf] = min(wait * 2, ASK_AT_MOST_S)
        if p is None or wf in n.state.final \
                or not any(s.state not in TERMINAL_STEP_STATES for s in p.local_steps()):
            self._let_go(now, wf)
            return
        if n.domain_loss.drives(wf):
            if self.originals.confirmed(wf):  # the epoch it drives in, by its electorate
                self._let_go(now, wf)
            return
        target = n.takeover.coordinator_now(wf) if n.takeover is not None \
            else n.running.info(wf).coordinator
        if target != n.name:  # our own claim, not won yet: asked again, then driving
            n.stats["placement asked after a restart"] += 1
            n.send(target, PlacementQuery(wf))

    def _let_go(self, now: float, wf: str) -> None:
        if self.held.pop(wf, None) is not None:
            self.wait.pop(wf, None)
            self.n.running.start_ready(now, wf)

    # ---- the coordinator's side ---------------------------------------------------------------

    def on_query(self, now: float, src: str, msg: PlacementQuery) -> None:
        """Answered only by the coordinator that drives the workflow and has granted no
        later epoch (see the header); anyone else is silent: the asker asks again."""
        n = self.n
        wf = msg.workflow_id
        if self._tell_original(src, wf):
            return
        if wf in n.state.final:
            self._tell_end(src, wf)
            return
        if n.retain is not None and (end := n.retain.ends.query_answer(wf)):
            state, epoch, won = end  # forgotten here: its end (ended_records.py)
            n.send(src, FinalMsg(wf, state, epoch, won=won))
            if too := n.retain.ends.told_too(wf, epoch):  # an original that yielded
                n.send(src, FinalMsg(wf, state, too))
            return
        if self.originals.answer(src, msg):
            return  # an elector, asked by the driver back (original_asks.py)
        if not n.domain_loss.drives(wf) \
                or held_of(n.state, wf, n.running.info(wf).coordinator)[1] != n.name:
            if n.takeover is not None:  # a member held by a claim we withdrew
                n.takeover.late.withdrawn_asked(now, src, wf)  # (takeover_late_grants.py)
            return
        p = n.progress[wf]
        answered(n, src, msg)  # steps it is about to start: may have started (start_asks.py)
        steps = tuple((s.id, s.epoch, s.domain) for s in p.steps.values())
        n.send(src, PlacementAnswer(wf, n.domain_loss.epoch(wf), steps,
                                    **n.placed_here.carried(wf)))

    def _tell_original(self, src: str, wf: str) -> bool:
        """Asked by the workflow's original coordinator, back unaware of a later epoch
        (original_asks.py), where this Node ended `wf` in that epoch (or forgot it, its
        record keeping that end) and is not its holder: answered as the original's
        report is, with the later end and its proof (EndNotices.tell_overtaken), which
        it follows. The holder itself answers as before (`_tell_end`, its own
        certificate). True if answered."""
        n = self.n
        d = n.state
        if n.takeover is None or src != coordinator_of(wf) or src == n.name \
                or d.epochs.get(wf, (0, ""))[1] == n.name:
            return False
        if wf not in d.final and (n.retain is None or n.retain.knows(wf)):
            return False
        return n.end_notices.tell_overtaken(src, wf)

    def _tell_end(self, src: str, wf: str) -> None:
        """Ended here, asked by a lost domain back from a restart that holds no step of
        the workflow any more (each placed again elsewhere): it is told the end, as the
        coordinator it follows tells it (the original in epoch 0, or the holder of the
        epoch that made it, with its certificate), so its holds go. Nobody else tells it
        (its placement is over), and it refuses a successor's end it cannot place (the
        new domain's Announce): it would ask for ever and hold its reservation (takeover
        soak seed 4900881). The end is the one kept here: answered so, the asker holds
        what this Node holds, and a later epoch's proven end replaces it alike
        (told_ends.py). One that holds a step still is told the end by the saga's
        driver, with the plan it owes (seed 5200672: told here first, it ended without
        the plan and later drove a saga that missed a step). Once the plan is closed
        here (the saga over), no plan nor end comes from its driver, which may never
        have learned the asker (placed again by an earlier epoch's holder): told the
        end then, by this Node as that holder too, in the epoch it won, with its
        certificate (takeover soak seed 43007752: the asker held its reservation). A
        spec with no `compensate` block owes no plan at all: its end is the whole end,
        told as for a saga that is over (ended_records.py, `no_saga`). Where the view
        says the saga's driver is gone, no plan of it held here, the compensations the
        results here owe become this Node's plan, claimed for (the winner drives the
        saga and tells the end), or, none owed, the end is told now
        (saga_gone_driver.py; takeover soak seed 109000128: asked for ever)."""
        n = self.n
        d = n.state
        if n.takeover is not None and n.takeover.late.asked(src, wf):
            return  # our claim's granter, never taken (takeover_late_grants.py)
        if wf not in d.committed:
            # No round of it committed here (an elector holding no step took its end),
            # asked by the original back from a restart (original_asks.py) whose later
            # end this Node could not tell (`_tell_original`): silent, as to an asker
            # that is no party; the domains that ran its steps answer it (takeover soak
            # seed 148001372 with a cut one way: the placement read here broke the turn).
            return
        placed = dict(n.running.info(wf).placement)
        placed.update((step, p[1]) for step, p in d.placements.get(wf, {}).items())
        whole = closed = d.plans.get(wf) == () or no_saga(n, wf)  # no plan owed any more
        if src in placed.values() and not whole:
            if not driver_gone(n, wf):
                return  # it holds a step still: the saga's driver tells it the end and plan
            if not tell_or_claim(n, wf):
                return  # owed here: a plan, claimed for (saga_gone_driver.py)
            whole = True  # nothing owed here, no driver alive: the end is the whole end
        epoch, holder = d.epochs.get(wf, (0, ""))
        kept = d.certificates.get(wf, (0, ()))
        if holder == n.name and epoch >= 1:
            won = n.takeover.proof.own_certificate(wf, epoch) if n.takeover else ()
            n.send(src, FinalMsg(wf, d.final[wf], epoch, won=won))
        elif coordinator_of(wf) == n.name:
            n.send(src, FinalMsg(wf, d.final[wf]))
            too = original_yielded(n.name, wf, d.granted.get(wf, (0, "")))
            if too and closed and d.epochs.get(wf) == d.granted[wf] \
                    and n.end_notices.end_proof(wf) is None:  # it yielded its claim
                n.send(src, FinalMsg(wf, d.final[wf], too))  # (ended_records.py)
        elif kept[0] >= 1 and kept[1] and whole:
            # A holder of an earlier epoch, which the asker follows: told in it, with
            # its certificate (the later holder may never have learned the asker).
            n.send(src, FinalMsg(wf, d.final[wf], kept[0], won=kept[1]))
        else:
            return
        n.stats["placement asked of an ended workflow: the end told"] += 1

    # ---- the restarted participant's side -------------------------------------------------------

    def on_answer(self, now: float, src: str, msg: PlacementAnswer) -> None:
        n = self.n
        wf = msg.workflow_id
        if n.fencing is not None:  # asked before a start, cut off (start_asks.py)
            n.fencing.asks.on_answer(now, src, msg)
        if n.takeover is not None:  # the holder of our grant drives: asked no more
            n.takeover.late.answered(src, wf)
        if self.originals.on_answer(src, msg):  # an elector holds our epoch (original_asks.py)
            if wf in self.held and self.originals.confirmed(wf, ask=False):
                self._let_go(now, wf)
            return
        if wf not in self.held or wf not in n.progress or n.takeover is not None \
                and n.takeover.coordinator_now(wf) != src:
            return  # not asked (any more), or not of the coordinator we follow now
        n.placed_here.learn(now, wf, msg.placements, msg.before)
        p = n.progress.get(wf)
        if p is None:
            return
        theirs = {step: (epoch, domain) for step, epoch, domain in msg.steps}
        unconfirmed = [s for s in p.local_steps() if s.state not in TERMINAL_STEP_STATES
                       and theirs.get(s.id) != (s.epoch, n.name)]
        if unconfirmed:  # asked again: a new placement, or the end, is on its way
            over = any(theirs.get(s.id, (-1, ""))[0] > s.epoch for s in unconfirmed)
            n.stats["step of a placement over here held after a restart" if over
                    else "placement answer behind this domain"] += 1
            return
        n.stats["placement confirmed after a restart"] += 1
        self._let_go(now, wf)
