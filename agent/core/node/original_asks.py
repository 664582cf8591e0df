"""An original coordinator restored while its workflow runs asks where it stands; a
Node restored while it drives a workflow (the original, or a successor acting) asks its
electorate before it starts a step of its own.

Theory of operation
-------------------
A participant reports a step's result to the coordinator it follows (running.py): the
original in epoch 0, or the holder of a later epoch once it followed (or granted) one.
While the original coordinator is down, a successor may take the workflow over
(takeover.py), take the results that were owed to the original, end the workflow, tell
its end to every domain and to the original (takeover_ends.py `told`, resent until
acknowledged), and die for good before the original is back: the original's end
notice was sent to a Node that was down, and its resends died with their sender.
Restored, the original holds the workflow RUNNING in epoch 0 and waits for the
results of its unfinished steps, which their domains sent to the successor and which
that successor acknowledged: nobody sends them again, and nobody tells it the end.

Some such originals learn the end already, each by a message of its own that a
domain which ended the workflow in the later epoch answers with that end and its
proof (EndNotices.tell_overtaken, answer_overtaken: running_ends.py): its end notice
(a loss verdict's, a cancel's), a result it reports as the one that drives, a gone
domain's result it relays (Running.relay_gone_results). One with none of these to
send waits for ever (takeover soak seed 87000414: the last result it took, written
before the crash, left no step owing a relay; before that result's write moved
ahead of the crash, the relay went and drew the end back). Nothing about the case is
rare in time: a step's RUNNING report may reach the original after the step's
result, or the crash may fall just after a result's write, on any base.

The rule (`restored`, at the end of the Node's restore): with coordinator takeover on,
for each workflow this Node is the original coordinator of, RUNNING here in epoch 0
(no later epoch followed or granted here), with a step unfinished in its progress on
another domain (a result it may be owed by a domain that now follows someone else),
the original asks every domain of the workflow but itself the restarted
participant's question, `PlacementQuery` (restart_check.py): no new message. The
first ask waits `takeover_after_s` from the restore, the silence after which a
successor acts: a successor alive and acting tells its end again within it (its
notice is resent every `reliable_resend_s` until acknowledged), and the original's own
reports, relays and end notices draw the end first where they go (so those paths keep
their word, and a restart that finds the results coming in, or the end, asks
nothing). Asked again after `reliable_resend_s`, the wait doubling, while it stays at
most `ASK_AT_MOST_S` (a few asks, against a lost ask or answer), then no more; asked
no more as soon as the workflow ends here, a later epoch is followed or granted here,
or this Node no longer drives it (each checked at every ask).

The answers (restart_check.py `on_query`): a domain that ended the workflow in a
later epoch and keeps its proof (or forgot it and keeps its record's) answers the
original as it answers the original's report, with `tell_overtaken`: the later end,
its epoch, holder and certificate, a `ClaimAnswerMsg` the original takes as a denial
of an older epoch showing the end (takeover_claims.py): it follows the later epoch
and ends the workflow as its successor did. A domain that runs the workflow answers
nothing (it drives nothing); one that drives it (a successor acting, back or never
gone) answers its placements, which the original, holding nothing back, drops; that
successor's own end notice reaches the original as before.

Why it is safe. The question changes nothing where it is asked (a query writes
nothing, restart_check.py), and the answer is the one a domain gives the original's
report already: the end is the one end there is, proven by the later epoch's
certificate, which the original checks before it follows (authority.py).

The cost. Off the usual path: only a restart of an original coordinator with
takeover asks, for a workflow it drives that still waits on another domain
`takeover_after_s` after the restore, a few times, each of its domains; a workflow that nothing took over is asked
about the same way (the original cannot tell, back from a crash, whether it was
down long enough for a successor to act), and its domains answer nothing.

Not built yet: an original that was back before its successor ended the workflow,
whose successor then died for good before its end notice to the original got
through (a cut, say), is not covered by these asks (they are over by then); nor a
successor restored in an epoch later overtaken, waiting on results that went to the
next holder (it follows that holder once one of its claims or notices is denied;
its own steps, below, wait for its electorate).

Its own steps. The restart rule lets a workflow this Node drives itself go at once
(restart_check.py): its own tables are the placements' authority. For the original in
epoch 0 with takeover that holds only if no later epoch won while it was down. A
successor elected then judges the original lost and places each step of the
original's that it judges not started (the loss table, from what it saw: a need not
met yet) on another domain, and the message that makes the step ready here (a need's
result from a domain that has not heard of the move yet) may come before anything
tells the original of the later epoch (the holder's claim, its PlacedMsg, its end):
started here, the step runs on two domains (takeover soak seed 154501010: the original
back 4 s after its crash, the need's result 0.4 s later, the holder's PlacedMsg 0.2 s
after that).

The rule (`confirmed`, read by the restart rule for a workflow this Node drives):
with takeover, an original restored holding epoch 0 (granted none, follows none) with
a step of its own unfinished keeps the workflow held until the electors that hold
epoch 0 meet every majority of the electorate: fewer than a majority left out of
those that said so and itself (n - m + 1 of n members, m the majority, as
replacement_telling.py counts). It asks each elector that has not said so
(`PlacementQuery`, on the restart rule's schedule); an elector that knows the
workflow, not ended there, and holds epoch 0 (granted no later epoch, follows the
original) answers so (`answer`: a `PlacementAnswer` of epoch 0 and no steps, taken at
the boundary from an elector only, authority_steps.py), and is counted (`on_answer`).
An elector that holds a later epoch answers with it, its holder and that epoch's
certificate where it keeps one (a `ClaimAnswerMsg` denial, as it answers the
original's tell of a placement: placed_overtaken.py), which the original follows, or
claims past where the holder is gone in its view (takeover soak seed 97000669: the
successor died for good after it placed the original's step elsewhere; the original,
asking, must learn of its epoch to claim past it). One that knows nothing of the
workflow, or drives it (an acting holder: its claim, resent, tells the original),
answers nothing here.

Why it is safe. A later epoch wins only on the grants of a majority of the
electorate; a grant is written before its answer leaves and never taken back, and an
elector answers epoch 0 only while it has granted none. Electors meeting every
majority that answered epoch 0 after this restore share a member with every
majority that could have elected a successor, so none had won when they answered:
no step of this Node's was placed elsewhere in a later epoch before the original was
back. A later epoch won after that is won over an original alive again, the case of
a coordinator overtaken while it runs, which this rule does not change. An answer
counts only in the life that asked (`said` is in memory, emptied at every restore):
an answer to an ask of an earlier life would have to outlive the crash and the
restart, and a message to a Node that is down is lost. If a later epoch won, fewer
electors than that hold epoch 0: the workflow stays held (nothing of its own starts
here) until the original learns that epoch (the holder's claim, resent to a member
that has not granted it; its PlacedMsg; its end), follows it, and, no longer the
driver, asks that holder as any restored participant does (restart_check.py).

A successor restored while it acts. The same holds for a successor acting in the
epoch e >= 1 it won (its certificate on record): while it was down a member may have
won e + 1 (its view saying the successor gone), judged a step of the successor's not
started and placed it elsewhere, and the need's result that makes it ready here may
come first (the original's case one epoch later). So the rule is the driver's, not
the original's: a Node restored holding, for itself, the epoch it drives in (`_held`:
epoch 0 as the original, or e as a successor; the epoch held here, the higher of
granted and followed, is that one, and `epochs` says it acted in it) asks each elector
that has not said so, naming that epoch (`PlacementQuery.drives_in`). An elector
(knowing the workflow, by its grant alone too: an acceptor holding no step, takeover
soak seed 1007; not ended there; driving nothing of it) that holds no epoch
above e (granted none, follows none: `held_of` is the higher of both) answers e with no
steps (`PlacementAnswer`, taken at the boundary from an elector, by the Node that holds
e here only: authority_steps.py); one that holds a later epoch denies with it, its
holder and that epoch's certificate where it keeps one (`ClaimAnswerMsg` answering
epoch e, so the acting core takes it as a denial of its own epoch: it follows a proven
later epoch, or claims past a holder gone in its view). An elector that answered e may
hold an older epoch than e (it never granted ours nor heard of it): it granted nothing
above e either, which is all the count needs. A query naming no epoch (a restarted
participant's, restart_check.py) is answered as before: only the original's is taken
as asking for epoch 0.

Why it is safe, for e >= 1 too. An epoch e' > e wins only on the grants of a majority
of the electorate; a grant is written before its answer leaves and never taken back,
and an elector answers e only while it holds nothing above e. Those that answered e
after this restore, with this Node (which holds e for itself, granted nothing later),
meet every majority: none of them had granted e', so no e' > e had won when they
answered, and no step of this Node's was placed elsewhere by a later epoch while it
was down. A later epoch won after that is won over a successor alive again: the
overtaken-while-running case, which this rule does not change. If one did win, fewer
electors than that answer e: the step stays held until the successor learns that
epoch (an elector's denial, the holder's claim, its PlacedMsg, its end) and, no longer
the driver, asks that holder as any restored participant does.

The cost: with takeover, a restart of a Node that drives a workflow (its original, or
a successor acting), per workflow with a step of its own unfinished, one ask to each
elector and its answer before that step starts; nothing when no step of its own is
unfinished (restart_check.py lets such a workflow go before it asks), nothing on the
usual path.

Alone. When the original, in epoch 0, holds every step of the workflow (its placement
and progress name no other domain), nothing is asked: a claimant is a participant, or
the original claiming past a gone holder, or a domain a step was placed on again (by
the original, which we are, or a successor, which needs a claimant first), so no
domain but this one could have claimed, and no later epoch can have won. Not so for a
successor: the original may claim past it. Asking there only
held the workflow on electors that may know nothing of it: an acceptor holding no step
forgets its records of the round after the round's life, and answers nothing
(takeover soak seed 156500577, `--keep-ended-s 5 --end 300 --one-way`: the original,
sole participant, restarted and decided its round, then waited for ever on an
acceptor that had forgotten it). Not built yet: the same wait where other domains hold
steps and an elector forgot the round (an acceptor's records outlived by the
original's absence); the workflow stays held, as the rule errs towards never running
a step twice.

Pure: reads the Node's tables, writes its outbox only; the schedule and the answers
are in memory (a restart asks again).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.node.records import ClaimAnswerMsg, PlacementAnswer, PlacementQuery
from fedorch.core.node.takeover_claims import held_of
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES
from fedorch.core.workflow.takeover_events import majority

# The longest wait between two asks; the asks stop once the next wait would be longer.
ASK_AT_MOST_S = 4.0


class OriginalAsks:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node
        # Workflow -> (when to ask next, the wait after that ask).
        self.asks: dict[str, tuple[float, float]] = {}
        # Workflow -> the electors that answered, in this life, that they hold no epoch
        # above the one this Node drives it in (see "Its own steps").
        self.said: dict[str, set[str]] = {}

    def reset(self) -> None:
        self.asks = {}
        self.said = {}

    def timer(self) -> float | None:
        return min((at for at, _ in self.asks.values()), default=None)

    def restored(self, now: float) -> None:
        """The Node is whole again: every workflow it waits on as a restored original
        is asked about `takeover_after_s` from now (see the header)."""
        self.asks = {}
        if self.n.takeover is None:
            return
        for wf in sorted(self.n.state.rows):
            if self._waits(wf):
                self.asks[wf] = (now + self.n.takeover.after_s, self.n.t.reliable_resend_s)

    def tick(self, now: float) -> None:
        for wf in sorted(wf for wf, (at, _) in self.asks.items() if at <= now):
            _, wait = self.asks.pop(wf)
            if self._waits(wf):
                self._ask(now, wf, wait)

    def _ask(self, now: float, wf: str, wait: float) -> None:
        n = self.n
        n.stats["original back asked its domains where the workflow stands"] += 1
        for dst in sorted(n.replacement.domains_of(wf) - {n.name}):
            n.send(dst, PlacementQuery(wf))
        if wait <= ASK_AT_MOST_S:
            self.asks[wf] = (now + wait, wait * 2)

    def _waits(self, wf: str) -> bool:
        """Is this Node the original coordinator of `wf`, RUNNING in epoch 0, with a step
        unfinished on another domain?"""
        n = self.n
        d = n.state
        row = d.rows.get(wf)
        p = n.progress.get(wf)
        if row is None or p is None or row.state is not WorkflowState.RUNNING \
                or wf in d.final or coordinator_of(wf) != n.name \
                or held_of(d, wf, n.name)[0] != 0 or not n.domain_loss.drives(wf):
            return False
        return any(s.state not in TERMINAL_STEP_STATES and s.domain not in ("", n.name)
                   for s in p.steps.values())

    # ---- its own steps: epoch 0 confirmed by the electorate ----------------------------

    def _held(self, wf: str) -> tuple[frozenset[str], int] | None:
        """The electorate of `wf` and the epoch this Node drives it in, if, with
        takeover, it holds that epoch for itself: the original coordinator in epoch 0,
        or a successor acting in the epoch e >= 1 it won (granted no later one, follows
        none); else None (nothing to confirm)."""
        n = self.n
        d = n.state
        original = coordinator_of(wf)
        epoch, holder = held_of(d, wf, original)
        if n.takeover is None or holder != n.name \
                or d.epochs.get(wf, (0, original)) != (epoch, n.name):
            return None
        electorate = n.takeover.electorate_of(wf)
        return (electorate, epoch) if electorate else None

    def confirmed(self, wf: str, ask: bool = True) -> bool:
        """May the restored driver start its own steps of `wf`: no later epoch than the
        one it holds can have won (enough electors answered that epoch, held for it, to
        meet every majority), or there is nothing to confirm? If not, the electors that
        have not answered are asked (`ask`)."""
        n = self.n
        held = self._held(wf)
        if held is None or held[1] == 0 and self._alone(wf):
            return True
        electorate, epoch = held
        said = self.said.setdefault(wf, set()) | ({n.name} & electorate)
        if len(electorate - said) < majority(electorate):
            return True
        if not ask:
            return False
        n.stats["original back asked its electorate for epoch 0" if epoch == 0
                else "successor back asked its electorate for its epoch"] += 1
        for dst in sorted(electorate - said):
            n.send(dst, PlacementQuery(wf, drives_in=epoch))
        return False

    def _alone(self, wf: str) -> bool:
        """Is every step of `wf` placed on this Node (see "Alone")?"""
        n = self.n
        domains = set(n.running.info(wf).placement.values())
        p = n.progress.get(wf)
        if p is not None:
            domains |= {s.domain for s in p.steps.values()}
        return not domains - {n.name, ""}

    def on_answer(self, src: str, msg: PlacementAnswer) -> bool:
        """An elector answered our query holding the epoch we drive in, for us
        (`answer`): counted. True if so (the restart rule then looks whether enough
        did)."""
        wf = msg.workflow_id
        held = self._held(wf)
        if held is None or msg.epoch != held[1] or msg.steps or wf not in self.said \
                or src not in held[0]:
            return False
        self.said[wf].add(src)
        return True

    def answer(self, src: str, msg: PlacementQuery) -> bool:
        """Asked by the Node that drives `msg`'s workflow, back from a restart, naming the
        epoch it drives in (`drives_in`; the original's query naming none asks for
        epoch 0), this Node an elector that knows the workflow, not ended here, and
        drives nothing of it (an acceptor holding no step may not know the electorate
        before a claim shows it, and knows the workflow by its grant alone: the asker
        counts electors only): holding no later
        epoch (granted none, follows none),
        answered that epoch, with no steps; holding a later one, answered with it, its
        holder and its proof, as the original's tell of a placement is
        (placed_overtaken.py). True if answered; a query naming no epoch from another
        (a restarted participant's) is left to the restart rule."""
        n = self.n
        d = n.state
        wf = msg.workflow_id
        original = coordinator_of(wf)
        electorate = n.takeover.electorate_of(wf) if n.takeover is not None else None
        if n.takeover is None or src == n.name \
                or wf in d.final or n.domain_loss.drives(wf) \
                or electorate is not None and n.name not in electorate \
                or wf not in d.committed and wf not in d.granted \
                and not any(w == wf for w, _ in d.acceptor) \
                or n.retain is not None and n.retain.ends.of(wf) is not None:
            return False  # (an end record: forgotten here, its grants with it)
        epoch, holder = held_of(d, wf, original)
        ours = msg.drives_in if msg.drives_in is not None else 0 if src == original else None
        if ours is None or ours < 0:
            return False  # a restarted participant's question, not its driver's
        if epoch <= ours:  # no later epoch granted here (held_of: the higher of both)
            n.send(src, PlacementAnswer(wf, ours, ()))
            return True
        n.stats["driver back told the later epoch held here"] += 1
        n.send(src, ClaimAnswerMsg(wf, ours, False, epoch, holder,
                                   won=n.takeover.proof.proof_of(wf, epoch, holder)))
        return True
