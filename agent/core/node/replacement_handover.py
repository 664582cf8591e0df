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
3. the new domain (placed_here.py, `made_here`) holding the round's YES, PREPARED, learns
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
placement hands nothing out: the new domain stays in doubt until the workflow's end
reaches it (placed_here.py, `ended`), as the original's "never told, never sent".

Not done here: a successor that is itself the new domain of a told placement
(its progress waits on the lost domain, its own placement untaken before the COMMIT)
hands nothing out to itself; a new domain that never kept the workflow's electorate
(it missed every tell of the original) cannot check the holder's certificate and
refuses its tell, so the handover waits for the end.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedorch.core.negotiation.messages import DecisionQuery, Key, Value, VoteIn
from fedorch.core.negotiation.participant import HoldState
from fedorch.core.node.records import FinalMsg, PlacedMsg
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES


class Handover:
    def __init__(self, replacements: Any) -> None:
        # The re-placement part that owns this one (replacement.py imports it).
        self.r = replacements
        self.n = replacements.n

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
            if s is None or domain == n.name or (s.domain, s.epoch) != (domain, epoch) \
                    or s.state in TERMINAL_STEP_STATES or (wf, epoch) in r.telling:
                continue
            n.stats["re-placement handed over by a successor"] += 1
            r.telling[(wf, epoch)] = (domain, None)
            r.tell(wf, step)
            r.send_if_told((wf, epoch))

    def make(self, key: Key, domain: str) -> None:
        """Told everywhere: the round's COMMIT goes to its new domain (`made`)."""
        n = self.n
        wf, epoch = key
        step = next((s for s, (e, dom, _) in n.state.placements.get(wf, {}).items()
                     if e == epoch and dom == domain), None)
        if step is None:
            return
        n.stats["re-placement COMMIT handed out by a successor"] += 1
        msg = self.r.message(wf, step)
        n.reliable(domain, ("placed", wf, step, epoch, domain),
                   replace(msg, made=True))

    def made_here(self, now: float, src: str, msg: PlacedMsg) -> None:
        """The holder of a later epoch hands out the COMMIT of our placement: our YES of
        the round, PREPARED, is committed (see the header); anything else (learned
        already, released at the end) changes nothing."""
        n = self.n
        key = (msg.workflow_id, msg.epoch)
        hold = n.participant.hold(key)
        if hold is None or hold.state is not HoldState.PREPARED:
            return
        n.stats["re-placement COMMIT learned from a successor"] += 1
        raw = n.votes.seal([(key, True)])[0]
        n.negotiation.learn(now, key, Value(True, (VoteIn(msg.epoch, n.name, True, "", raw),)),
                            hold.tx)
        if n.takeover is not None and msg.held_epoch >= 1 and msg.won \
                and msg.workflow_id in n.progress:
            n.takeover.follow_proven(now, msg.workflow_id, src, msg.held_epoch, msg.won)

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
        if n.takeover is None or wf in d.rows or epoch <= d.committed.get(wf, 0) \
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
            return True
        placed = n.state.placements.get(wf, {})
        if any(e == epoch and dom == src for e, dom, _ in placed.values()) \
                and n.domain_loss.drives(wf) and n.domain_loss.epoch(wf) >= 1:
            n.stats["re-placement asked: handed over"] += 1
            self.adopt(wf)
        return True
