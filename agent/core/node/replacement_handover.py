"""A successor hands out the COMMIT of a step's new placement it was told.

Theory of operation
-------------------
replacement.py: the workflow's original coordinator runs a re-placement round,
writes its COMMIT with the new placement, tells the placement to every domain of the
workflow and every elector (PlacedMsg), and sends the COMMIT to the new domain only
once all of them (those its view does not say are gone) acknowledged it. If the
original starts following a later epoch between its COMMIT and that send, it never
sends it (it no longer drives, and the later epoch may not know the placement): the
new domain holds its YES in doubt, and a successor that was told the placement waits
for the step there for ever (takeover soak seeds 1700831, 1701689).

The rule: a successor acting in epoch e >= 1 (`drives`, epoch above 0) that knows a
placement of a step it still waits for on that placement (its progress has the step on
the new domain, at the round's number, not ended) hands the round's COMMIT out
itself, told before made as the original would:

1. the placement is told again to every domain of the workflow and every elector
   (PlacedMsg carrying e and e's certificate, `held_epoch`, `won`, so a new domain not
   committed here takes it from the holder: authority.py), through the original's own
   `telling` (the value None marks a handover);
2. once all that the view does not say are gone (at least one) acknowledged it, the new
   domain is sent the PlacedMsg with `made` set, resent until acknowledged;
3. the new domain (`made_here`, from placed_here.py; the new domain's side of the
   handover is replacement_new_domain.py) holding the round's YES, PREPARED, learns
   the round's COMMIT: its own signed YES is the certificate of a round with one
   participant; it follows the holder that told it (the certificate `won`), to whom its
   result goes.

Why this is safe. A PlacedMsg exists only once the original wrote the round's COMMIT
(replacement.py `_placed`, in the same write; a successor relays only a placement it
was told), so the holder knowing the placement means the round committed: the new
domain learns the decision that was made, never another (its coordinator answers
UNKNOWN, never ABORT, once the decision is on record). The holder is one coordinator
(one per epoch, its certificate shows it), and its progress already waits for the step
on the new domain (the placement was taken there as it was told), so nothing it decided
disagrees with the step running there. Told before made keeps its reason: a successor
elected after this one is elected by electors every one of which the view did not say
was gone was told the placement, so it knows it too. A holder that does not know the
placement hands nothing out: it answers the round void instead (below).

Void. A new domain in doubt asks the workflow's members too (`asked`). The holder of
a later epoch e >= 1 that acts (drives, certificate on record), has not ended the
workflow, and knows no placement of the asked round answers it void (`void`: a
PlacedMsg with `void` set, carrying e and its certificate), and the new domain
releases its YES (`voided_here`), as at the workflow's end: no decision is made up
(the checker counts it as resolving the YES), nothing runs under it, and a COMMIT that
came later would find nothing held. Why no COMMIT of that round can leave after the
holder's answer, so that nobody ever waits for the step there:
1. the original sends a round's COMMIT only once a majority of the electorate (it
   counting) holds the placement (replacement.py), and not at all once it granted or
   follows a later epoch held by another (`later_holder`); nor does it decide one
   then: the YES of its round under way ABORTS the round (the ABORT sent to the new
   domain, and its answer when asked), and it starts no round (replacement.py,
   `on_vote`, `start`), so every placement it keeps was decided before its grant;
2. a member that granted (or follows) epoch e acknowledges no placement told in an
   older epoch that it does not hold already (placed_here.py, `on_placed`): so, after
   the majority M that elected the holder granted e, a placement none of M held can
   never be held by a majority (every majority meets M) and its COMMIT never leaves
   the original;
3. a grant carries the granter's placements, taken before it counts
   (`learn_from_grant`), so the holder knows every placement some member of M held
   when it granted; and once it acts it takes no more (a late grant's, or an older
   epoch's tell: `on_placed`), so what it does not know when it answers it never
   hands out (`adopt` hands out only what it knows);
4. the original decides no COMMIT after it granted e (1): its word on a round it had
   under way then is ABORT, which agrees with the void; the holder answers only for
   its own epoch, and a new domain takes a void only from the holder of the latest
   epoch it grants or follows (a later holder may know the placement).
The YES is released, not decided ABORT: the original may have the round's COMMIT on
its record (it decided it and was cut off before a majority held it); that COMMIT is
never acted on, since it never leaves (1, 2) and the holder, which drives the
workflow, never takes it (3): the step stays where the holder has it (on its lost
domain, judged by the holder's loss table) and ends with the workflow.

A member's end. A member of the workflow (committed to it) that has ended it but
holds no certificate to show (the original's own end, epoch 0, or one a claimant took
on a member's word) answers the asking new domain with that end, in epoch 0, on its
word (the round's coordinator answers so too: replacement.py, `answer`); the new
domain takes it from a domain its round's PREPARE names (the coordinator, the
placement, the lost domain; not past an epoch it granted or followed that another
holds: authority_ends.py) and releases its YES, as at any end (placed_here.py,
`ended`). From the holder of the epoch granted here it is that epoch's one end: the
claimant it granted, having learned the end, tells it, never another (takeover soak
seed 115435: the original, its claim of epoch 2 granted by the new domain, answered
the new domain's three rounds with its end, refused there as below epoch 2). Safe: releasing decides nothing (no COMMIT or ABORT is made
up); an ended workflow runs no step, so nothing waits for the step at the new domain;
and a participant's word about its own workflow is what a claimant takes its end on
already (takeover_claims.py). Without it, an original that ended the workflow and died
for good before its ABORT of the round left held the YES for ever: no successor is
elected for an ended workflow (takeover soak seed 101675).

A successor that is itself the new domain of a placement it was told (its progress
still has the step on the lost domain: a new domain takes its own placement only with
the COMMIT) hands the COMMIT out to itself the same way, its YES still PREPARED: the
original, following it, no longer sends it (replacement.py; takeover soak seed
3200734, where that COMMIT was the only way out).

A void holds in every later epoch for a round the original had under way when it
granted e (takeover soak seed 47000184: it finished the round after its grant, and
its grant of epoch e + 1 carried the placement to a holder that waited for the step
at the new domain for ever, the YES released on e's void): it ABORTED the round and
keeps no placement of it (1), so no grant of any epoch carries it, and no member
was ever told it.

A void in a later epoch. A round the original decided COMMIT before it granted e keeps
its placement there, and at any member outside M it told: should the holder of e
answer the round void (no member of M held it) and lose its epoch before its end, a
later holder elected with a grant that carries the placement (the original's, or such
a member's) takes it and hands its COMMIT out to a new domain that released its YES,
and would wait for the step there for ever. The new domain's record of its void is its
round tables: its YES of the round gone from its holds, no COMMIT of it learned (both
durable). Told that placement again (`on_placed`), by the holder's handover or any
tell, it acknowledges it `void` (`released_here`, AckMsg.void; not once it ended the
workflow: an ended workflow places nothing again, and its end, not a void, is what the
holder must learn, as before). A holder acting in an epoch >= 1 (certificate on
record, not ended) whose progress still waits for the step there under that very round
(on that domain, at the round's number, no attempt reported) drops the placement
(`void_acked`): the round's tells stop, its handover (or, the original acting in a
later epoch, its own COMMIT) is told no more, and the step goes back to be placed
again, as the loss of the domain it was lost on sent it to that round (the loss
table's verdict, REPLACE, stands: a placement that never began there changes nothing
of it), by a round of the holder's own epoch on a fresh majority
(replacement_successor.py). Not back on the lost domain: told the placement, that
domain runs nothing of the step any more, and the holder would wait for it.

Why dropping loses no run. A YES released is not held again: its round's PREPARE goes
only while the coordinator prepares it, before its decision, and the participant
refuses a round it closed; a COMMIT that comes finds nothing held. So the new domain
never runs under the round, whatever is handed out later, and the step runs only where
the holder places it next. Its word is about its own round alone: the acknowledgement
names the round and its sender (authority.py `_ack`), and the holder takes it only
from that round's new domain. The holder's round is numbered in its own epoch's range,
above the dropped one, so its placement, once its COMMIT left (told to a majority
first: replacement_telling.py), replaces the dropped one in every later holder; a
later holder that learns only the dropped one (nothing of the new round committed; the
drop is in memory) is answered void again and drops it too, and so is a restarted
holder (the placement stays on record until a later one replaces it, and its progress
is rebuilt on it). Retention: a new domain that ran the round, ended the workflow and
forgot it (its learned decisions go a round's life after the workflow) holds nothing
of it either; a holder still waiting for the step there places it again only on a
fresh majority of its epoch (replacement_successor.py), which the majority that
granted a later epoch, or that was told the end before it was made, denies it, unless
they forgot it too: the hazard of an end forgotten that docs/failures.md names. A YES
released keeps nothing that holds the workflow at its new domain, which forgets it
alike, and still answers void.

Why this, and not the void told to the electorate and carried in grants, as a
placement is: the new domain is the one Node that knows whether anything can run
under the round, and it already keeps that on record; a void told first would need
its own table, its own telling before the answer, a field in every grant, and the
same drop at a holder that learned both, for the same outcome.

Not done here: a new domain that never kept the workflow's electorate
(it missed every tell of the original) cannot check the holder's certificate and
refuses its tell, so the handover waits for the end. A member that is not committed
to the workflow (an elector holding no step) answers nothing, so the new domain then
waits for the holder or the end notice.

The handed-out COMMIT's own resends. The `made` PlacedMsg is resent under an id of kind
`MADE`, which the new domain's acknowledgement names (placed_here.py): sharing the
plain tell's id, a late copy of that tell's acknowledgement ended its resends, the
COMMIT lost (takeover soak seed 97000669). The plain tell still owed to the new domain
goes no more (`make`): the `made` message tells the same placement, and its
acknowledgement counts as the tell's. A round's drops name both kinds (`TOLD_KINDS`).

The original as a later holder. The original coordinator acting in a later epoch it
won itself is asked about a successor's round (another epoch's range) as any holder is
(`answered`): the COMMIT handed out if it knows the placement, the round void if not;
its own rounds (epoch 0's range) are its log's and its cores', as before. It answered
NOT_PREPARED before (its log has no word on another's round), and that new domain, its
coordinator dead for good, had no other way out: the round's acceptors are that
coordinator and itself, so its recovery ballot never reaches a majority (takeover soak
seed 97000669: the COMMIT it handed out was lost, and a copy of the new domain's
acknowledgement of the plain tell, then named as that send was, ended its resends). The
argument above is a holder's, not a successor's: its grants carried every placement
whose COMMIT can leave, and the successor's COMMIT, on its log alone (the one word on
the round), leaves only once its placement is held by enough of the electorate to
meet every majority (replacement_telling.py). Not widening the round's
acceptors instead: a ballot among more of them could choose ABORT for a round whose
COMMIT is on that log and told, and the holder would hand out that COMMIT.

A COMMIT after a void. The original, acting in a later epoch it claimed itself, tells
its placements again in that epoch (takeover.py, Act: `retell`), and the electors that
granted it take them; the new domain, still holding its YES, acknowledges its tell
plainly (it granted and follows no epoch of the original's); then the holder of an
older epoch, which knows no placement of the round and has not learned the original
won since, answers the round void, no older than any epoch the new domain grants or
follows, and the new domain releases its YES (the original claimed past that holder,
gone in its view); then the original's own COMMIT comes, a Decision (told everywhere,
so sent). (Point 2 of "Void" above holds up to the voiding epoch: a later epoch won by
the original is its own, and its tells in it are taken.) Holding nothing of the round,
the new domain used to refuse it as a COMMIT of a transaction unknown there, and the
original waited for the step there until a restart told its placements again. Now a
COMMIT of a round whose new domain we are, told its placement (on record here),
holding no YES of it, no COMMIT of it learned, the workflow not ended here (`released_here`'s test), is answered as that test answers a
tell: an acknowledgement of the placement, `void` (`commit_released`; negotiation.py
asks first, before the COMMIT is looked at). The original takes it as any void
acknowledgement (`void_acked`): acting in an epoch >= 1 and waiting for the step there
under that very round, it drops the placement, its own COMMIT record with it (the
round's one participant holds nothing, and its log is asked no more), and the step
goes back to be placed again as the loss of its lost domain sent it to that round (the
loss table's verdict stands), by a round of its own epoch on a fresh majority.

Why dropping loses no run: the new domain never runs under a round it released. Its
release is durable (its YES gone from its holds, no COMMIT learned), a released YES is
never held again (the round's PREPARE went before its decision, and a round closed is
refused), and the answer is given instead of learning the COMMIT, so the step's
progress is never built there under that round (a new domain takes its placement only
with the COMMIT); the answer names the round and the step and is taken only from that
round's new domain, about that very round (`void_acked`). Nothing else ran under the
round either: a round has one participant. So, dropped, the step runs only where the
original places it next, in a round numbered in its own epoch's range, told before made
(replacement_telling.py), which replaces the dropped placement in every later holder as
in "A void in a later epoch".

Lost on the way. The COMMIT was sent once per tell (`send_if_told`), and neither it
nor the void answer was resent: the new domain holds nothing that would ask, and the
tell it had acknowledged plainly is not told again, so one lost message left the
original waiting for the step there until a restart told its placements again. Now
the original's own COMMIT sent in an epoch >= 1 is resent on the reliable sends'
backoff (1 s doubling to 8 s) until the new domain's DecisionAck collects its record
or its void answer drops it (replacement_telling.py, `resend`; it stops too once the
workflow ends here or the original grants or follows a later epoch held by another,
when its COMMIT must leave no more), and the new domain answers every copy as the
first (`commit_released` keeps nothing of having answered): so a void answer, or the
COMMIT, lost any number of times, is given again until one gets through. A copy is
the decision that already left, so it changes nothing of the argument above.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedorch.core.negotiation.messages import Decision, DecisionQuery, Key
from fedorch.core.negotiation.participant import HoldState
from fedorch.core.node.records import FinalMsg, PlacedMsg
from fedorch.core.node.replacement_new_domain import (
    commit_released,
    made_here,
    released_here,
    voided_here,
)
from fedorch.core.node.replacement_telling import MADE, PLACED, TOLD_KINDS
from fedorch.core.workflow.epoch_certificate import epoch_of_round
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, StepState


class Handover:
    def __init__(self, replacements: Any) -> None:
        # The re-placement part that owns this one (replacement.py imports it).
        self.r = replacements
        self.n = replacements.n
        # Workflow -> the (round, asker) pairs asked while we claimed it, answered once
        # we act (`asked_early`); in memory only: the asker asks again.
        self.early: dict[str, set[tuple[Key, str]]] = {}

    def adopt(self, wf: str) -> None:
        """This Node acts for `wf` in a later epoch (it just won it, or is restored
        acting): each placement it knows whose step still waits on its new domain is
        told again, and made once told (see the header)."""
        n, r = self.n, self.r
        if n.takeover is None or not n.domain_loss.drives(wf) \
                or n.domain_loss.epoch(wf) < 1:
            return
        p = n.progress.get(wf)
        if p is None:
            return
        for step, (epoch, domain, _) in sorted(n.state.placements.get(wf, {}).items()):
            s = p.steps.get(step)
            if s is None or s.state in TERMINAL_STEP_STATES or (wf, epoch) in r.telling:
                continue
            if domain == n.name:
                # We are its new domain, our YES of the round still PREPARED (told the
                # placement, so the round committed): the COMMIT is made to ourselves,
                # told everywhere first, as to another (our progress takes the
                # placement only then: it still has the step where it was lost).
                hold = n.participant.hold((wf, epoch))
                if hold is None or hold.state is not HoldState.PREPARED:
                    continue
            elif (s.domain, s.epoch) != (domain, epoch):
                continue
            n.stats["re-placement handed over by a successor"] += 1
            r.telling[(wf, epoch)] = (domain, None)
            r.told.tell(wf, step)
            r.told.send_if_told((wf, epoch))

    def make(self, key: Key, domain: str) -> None:
        """Told everywhere: the round's COMMIT goes to its new domain (`made`)."""
        n = self.n
        wf, epoch = key
        step = next((s for s, (e, dom, _) in n.state.placements.get(wf, {}).items()
                     if e == epoch and dom == domain), None)
        if step is None:
            return
        n.stats["re-placement COMMIT handed out by a successor"] += 1
        msg = self.r.told.message(wf, step)
        # Its own id: only its own acknowledgement ends its resends; the plain tell
        # still owed to the new domain goes no more, told by this message too (see the
        # header, "The handed-out COMMIT's own resends").
        n.pending.pop((PLACED, wf, step, epoch, domain), None)
        n.reliable(domain, (MADE, wf, step, epoch, domain), replace(msg, made=True))

    def made_here(self, now: float, src: str, msg: PlacedMsg) -> None:
        made_here(self.n, now, src, msg)  # the new domain's side: replacement_new_domain.py

    def later_holder(self, wf: str) -> bool:
        """Did this Node grant, or does it follow, a later epoch held by another? (The
        original's COMMIT of a round is then left to that holder, and it decides none:
        replacement.py.)"""
        d = self.n.state
        epoch, holder = max(d.granted.get(wf, (0, "")), d.epochs.get(wf, (0, "")))
        return epoch >= 1 and holder != self.n.name

    # ---- a new domain in doubt asks the workflow's members ---------------------------

    def asked(self, key: Key, to: str) -> None:
        """Our termination asks `to` about `key`: if it is a re-placement round we hold
        a YES of, PREPARED, and `to` its coordinator, the workflow's other members we
        know of are asked too (the PREPARE's placement, the lost domain, the electorate
        if told): its coordinator may be gone for good or follow a later epoch, and the
        holder of that epoch, or a member that ended the workflow, answers (`answered`)."""
        n = self.n
        info = n.state.info.get(key)
        hold = n.participant.hold(key)
        if info is None or not info.lost or hold is None or hold.tx is None \
                or hold.state is not HoldState.PREPARED or to != hold.tx.coordinator:
            return
        members = set(info.placement.values()) | {info.lost} \
            | set(n.state.electorates.get(key[0], ()))
        for dst in sorted(members - {n.name, to, ""}):
            n.send(dst, DecisionQuery(key, n.name))

    def answered(self, key: Key, src: str) -> bool:
        """`src` asks about round `key` of a workflow known here, a round this Node has
        no part in (a re-placement round's new domain asking everyone, `asked`): if we
        ended the workflow as the holder of a later epoch, our end and certificate go to
        `src` (its YES is released at the end, placed_here.py); if we act in a later
        epoch and know `src`'s placement of that round, it is handed out (`adopt`); else
        nothing is said (we know nothing of that round: an answer would be refused there
        as a stranger's). False: a round or workflow we take part in or coordinate,
        answered as any query is."""
        n = self.n
        wf, epoch = key
        d = n.state
        # The original's own rounds (epoch 0's range) are its log's and its cores'; a
        # round of a later epoch's range is asked of it as of any member (see the
        # header, "The original as a later holder").
        own = wf in d.rows and epoch_of_round(epoch) == 0 or self.r.owns(key)
        if n.takeover is None or own or epoch <= d.committed.get(wf, 0) \
                or key in d.learned or n.tx_of(key) is not None \
                or wf not in d.committed and wf not in d.final:
            return False
        end = d.final.get(wf)
        if end is not None:
            held, holder = d.epochs.get(wf, (0, ""))
            won = n.takeover.proof.own_certificate(wf, held) if holder == n.name else ()
            if held >= 1 and won:
                n.stats["re-placement asked: the end told"] += 1
                n.send(src, FinalMsg(wf, end, held, won=won))
            elif wf in d.committed:
                # No certificate to show (the original's end, or one a claimant took on
                # a member's word): a member's word, as a claimant takes it (see the
                # header, "A member's end").
                n.stats["re-placement asked: the end told on a member's word"] += 1
                n.send(src, FinalMsg(wf, end, 0))
            return True
        placed = n.state.placements.get(wf, {})
        acting = n.domain_loss.drives(wf) and n.domain_loss.epoch(wf) >= 1
        if any(e == epoch and dom == src for e, dom, _ in placed.values()) and acting:
            n.stats["re-placement asked: handed over"] += 1
            self.adopt(wf)
        elif acting and not any(e == epoch for e, _, _ in placed.values()):
            self.void(key, src)
        elif not acting:
            self.early.setdefault(wf, set()).add((key, src))
        return True

    def asked_early(self, wf: str) -> None:
        """We start acting in an epoch of `wf`: a round asked of us while we did not
        act yet is answered now, as if asked now (`answered`). The asker's next ask may
        come only after we are gone again (takeover soak seed 26000884: asked just
        before the grants came in, and crashed a second after winning, so its YES waited
        past the lease twice over for a later holder)."""
        for key, src in sorted(self.early.pop(wf, ())):
            self.answered(key, src)

    def void(self, key: Key, src: str) -> None:
        """We act in epoch e >= 1 and know no placement of round `key`, which `src`
        holds a YES of: none can ever leave its COMMIT (see the header), so `src` is
        told so, with our certificate, and releases its YES (`voided_here`)."""
        n = self.n
        wf, round_ = key
        held = n.domain_loss.epoch(wf)
        won = n.takeover.proof.own_certificate(wf, held)
        if not won:
            return
        n.stats["re-placement asked: answered void"] += 1
        n.send(src, PlacedMsg(wf, "", src, round_, "", held_epoch=held, won=won, void=True))

    def voided_here(self, now: float, src: str, msg: PlacedMsg) -> None:
        voided_here(self.n, now, src, msg)

    # ---- a void in a later epoch (see the header) -----------------------------------

    def released_here(self, msg: PlacedMsg) -> bool:
        return released_here(self.n, msg)

    def commit_released(self, src: str, msg: Decision) -> bool:
        return commit_released(self.n, src, msg)

    def void_acked(self, now: float, src: str, msg_id: tuple) -> bool:
        """`src` acknowledged our tell of a placement on it void (`released_here`): if
        we act in a later epoch and our progress still waits for the step there, under
        that very round, the placement is dropped and the step goes back to be placed
        again (see the header). False: nothing dropped (the acknowledgement counts as
        any other)."""
        n, r = self.n, self.r
        _, wf, step, round_, _ = msg_id
        if n.takeover is None or not n.domain_loss.drives(wf) \
                or n.domain_loss.epoch(wf) < 1 or wf in n.state.final:
            return False
        p = n.progress.get(wf)
        s = p.steps.get(step) if p is not None else None
        placed = n.state.placements.get(wf, {}).get(step)
        if s is None or placed is None or placed[:2] != (round_, src) \
                or (s.domain, s.epoch, s.state, s.attempts) \
                != (src, round_, StepState.WAITING, 0):
            return False
        n.stats["re-placement void at its new domain: placed again"] += 1
        if (wf, round_) in n.state.records and r.owns((wf, round_)):
            # Our own round's COMMIT: its one participant holds nothing of it, and asks
            # no more (see the header, "A COMMIT after a void").
            n.point("collect record")
            del n.state.records[(wf, round_)]
        r.telling.pop((wf, round_), None)
        r.acked.pop((wf, round_), None)
        n.pending.drop(wf, lambda k, _: k[0] in TOLD_KINDS and k[2:4] == (step, round_))
        r.step_lost(wf, step, placed[2], s.lost_as)
        r.start(now, wf)
        return True
