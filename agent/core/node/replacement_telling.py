"""A step's new placement told to the workflow's members before its COMMIT is made.

Theory of operation
-------------------
replacement.py runs a re-placement round and, on COMMIT, writes the new placement
(`placements`) in the same write as the decision. This part tells it (PlacedMsg,
resent until acknowledged) and decides when the COMMIT may go to the new domain.

Told before made. With coordinator takeover composed, a successor elected while the
round's coordinator is down decides on what it knows, so a new placement must be known
before it can run: the COMMIT goes to the new domain only once every domain of the
workflow and every member of its electorate the view does not say is gone (and at
least one), the new domain included, acknowledged the PlacedMsg, and those with the
coordinator meet every majority of the electorate (n - m + 1 of its n members, m the
majority: a majority when n is odd, one fewer when it is even, so a classic 2PC
workflow on two domains, its electorate those two, is placed again by its original
alone once the other is gone: 2PC takeover soak seeds 5500337, 5501408). Every live
one: a member not told would keep reporting to the lost domain; a domain that joins
the workflow meanwhile (a later round's new domain) is told it too, or that COMMIT
would wait for it for ever. Enough to meet every majority too: the lost domain, back
while the coordinator is down, may be elected by members that were gone when the
placement was told (takeover soak seed 1700761); a grant carries the granter's
placements, and a successor's majority holds a member that was told, so a successor
elected knows every placement whose COMMIT left, and a restarted lost domain, which asks the
coordinator it follows before it starts anything (restart_check.py), learns its
placement is over. A grant is a promise: a member that granted (or follows) a later
epoch acknowledges no placement told in an older one that it does not hold already
(placed_here.py), and once the coordinator granted or follows a later epoch held by
another, its COMMIT no longer leaves at all, however held (and a round it has under
way then makes none: replacement.py, `on_vote`): that epoch's holder hands it out if
it knows the placement, or answers the round void to the new domain if it does not
(replacement_handover.py, where the argument is). Until then its
DecisionQuery is answered UNKNOWN; the round is classic 2PC, decided by its
coordinator's log alone, and a recovery ballot of the new domain is refused
(`Replacements.refuses_paxos`), so it cannot learn the decision any other way.
Told enough (`told_enough`), the placement is a fact even while that COMMIT stays on
record unsent for a later holder: every later holder knows it, as above. So the
workflow's own COMMIT notice, held back from the lost domain while the placement is
told (placed_here.py, `moved_away`), goes then, naming the step moved away; held till
this COMMIT left, it never went, and the lost domain, in doubt, answered every claim
"in doubt" (2PC takeover soak seed 222100025).
Without takeover no other coordinator can exist: the COMMIT goes at once.

The argument reads the same for the coordinator of any epoch k: the original (k = 0)
or a successor acting in k >= 1 (replacement_successor.py), whose PlacedMsg carries k
and its certificate (`message`): a member that granted a later epoch refuses it, and
the later epoch's holder learns it from every grant of a member that held it.

The end drops the tells (replacement.py, `ended`): a workflow ended here tells no
placement any more, acknowledged or not, and sends no COMMIT. Every domain a tell went
to hears the end all the same, so none holds a reservation or a placement it never
hears the end of. A tell goes to `told_to`: the domains of the workflow
(`Replacements.domains_of`: every placement on record, its lost domain and every
domain its step was placed on before) and, with takeover, the electorate. One such
domain leaves that set: the new domain of a placement dropped on its void answer
(replacement_handover.py, `void_acked`), once the next round, naming the step's own
lost domain, replaces it; it holds nothing of the round (that is why it was dropped),
and a tell it took goes with the workflow by retention, below. The end goes to the
rest of that set, by whoever makes it:
- made here (the original in epoch 0, running.py `end_as_coordinator`; or acting in a
  later epoch, takeover_ends.py): the end notice, resent until acknowledged, goes to
  every domain of the workflow as known here then (every domain this Node told a
  placement as a domain of the workflow, but the one above); with takeover the end
  is told before it is made to every elector (domain_loss.py, `tell_end`, which holds
  it whenever a step was placed again: its lost domain may claim; an elector holding
  no step keeps it, elector_ends.py), so an elector told the placement hears it too;
  the new domain of a round whose COMMIT never left is told at once (`ended`);
- taken from another (this Node follows a later epoch's holder, or took an end on a
  member's word): that ender tells its own domains of the workflow and the electorate
  (the same committed round's acceptors). The domains told here that it does not know
  are the new domains (and earlier domains) of placements it does not know: such a
  new domain holds its YES in doubt and asks the members, this Node among them, which
  answer with the end (replacement_log.py `answer`, replacement_handover.py
  `answered`, "A member's end"); or it released that YES on a void and holds nothing
  that keeps the workflow (it never learned the COMMIT: a COMMIT leaves only once a
  majority holds the placement, and the ender's epoch was granted by a majority one of
  which would then have carried it to the ender); a tell it took keeps nothing live
  there (not committed there, the workflow is forgotten by age: retention.py).
A tell to a domain the view says is gone is dropped as any other: the end notice to it
is resent until it acknowledges, as to every domain of the workflow.

A COMMIT sent in a later epoch is resent until answered (`resend`). The original
acting in an epoch >= 1 may send its COMMIT to a new domain that released its YES on
an older epoch's void; that domain holds nothing that would ask, so it answers the
COMMIT once, `void` (replacement_handover.py, "A COMMIT after a void"), and a single
lost message (the COMMIT or the answer) left the original waiting for the step there
until a restart. So such a COMMIT is kept (`resending`, in memory) and sent again on
the reliable sends' backoff while its answer is owed (`answer_owed`): its record
kept (the new domain's DecisionAck collects it: a COMMIT learned again is
acknowledged again; its void answer drops it, `void_acked`), the placement on record
still that round's on that domain, the workflow not ended here, and no later epoch
held by another granted or followed since (the COMMIT must leave no more then: see
above). In epoch 0 nothing is resent, as before: no older epoch can have voided the
round there, and a new domain holding its YES asks for the decision itself.

Restore (`retell`). A restored coordinator tells every placement on record again
(acknowledgements were in memory: a domain down when told would never learn it, and
refuse the new domain's claim for ever; takeover soak seed 1800599), and a COMMIT its
new domain had not acknowledged is sent again once told. With takeover, every
placement, its round's record collected or not, to every domain of the workflow,
those the step was placed on before included (`domains_of`, from the durable
`earlier_domains`): a middle domain of a chain d1 -> d2 -> d3 that holds the
workflow's own COMMIT is sent no COMMIT notice again (placed_here.py, `moved_away`,
goes only with one), and, cut off while the step moved on and the coordinator
restarted, it learns so from this tell
(tests/unit/core/node/test_replacement_middle_restart.py). A restored successor hands
out what it knows (replacement_handover.py, `adopt`): its own rounds' COMMITs as
any told placement's, made by the new domain's own YES.

Not built yet: without takeover (the simulator's and tests' classic configuration;
the daemon always composes it) the restore tells only a placement whose round's
record is still kept, so such a middle domain is told nothing and runs the step
beside the latest domain until the end (its result refused by its epoch). Telling
every placement there too holds the restored original's COMMIT to a lost domain in
doubt until it acknowledges the tell (`may_send_commit`), which that configuration's
tests do not expect; left as is.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.messages import Decision, Key
from fedorch.core.node.authority_steps import earlier_of
from fedorch.core.node.records import PlacedMsg
from fedorch.core.workflow.progress import StepState
from fedorch.core.workflow.takeover_events import majority

# The kinds of a placement's reliable sends (their ids' first element): a plain tell,
# and the COMMIT a holder hands out with it (replacement_handover.py, `make`), each
# acknowledged by its own id (placed_here.py, `on_placed`).
PLACED, MADE = "placed", "made"
TOLD_KINDS = frozenset({PLACED, MADE})


class Telling:
    def __init__(self, replacements: Any) -> None:
        # The re-placement part that owns this one (replacement.py imports it); the
        # rounds told (`telling`) and their acknowledgements (`acked`) are its state.
        self.r = replacements
        self.n = replacements.n
        # (workflow, round) -> [new domain, COMMIT, next resend, wait]: our own COMMITs
        # sent acting in an epoch >= 1, resent until answered (`resend`); in memory
        # only: a restore tells the placements again and sends them anew (`retell`).
        self.resending: dict[Key, list] = {}

    def tell(self, wf: str, step: str) -> None:
        """The new placement of `step` to every domain of the workflow, resent until
        each acknowledges."""
        msg = self.message(wf, step)
        # The lost domain too: back, it learns its placement is over.
        for dst in sorted(self.told_to(wf)):
            self.n.reliable(dst, (PLACED, wf, step, msg.epoch, dst), msg)

    def message(self, wf: str, step: str) -> PlacedMsg:
        """`step`'s placement on record, told (a successor's: its epoch, certificate)."""
        n = self.n
        epoch, domain, lost = n.state.placements[wf][step]
        p = n.progress.get(wf)
        needs: tuple = ()
        if p is not None:
            needs = tuple((need, p.steps[need].attempts, dict(p.steps[need].outputs))
                          for need in p.steps[step].needs if need in p.steps
                          and p.steps[need].state is StepState.SUCCEEDED)
        electorate = n.takeover.electorate_of(wf) if n.takeover is not None else None
        held = n.domain_loss.epoch(wf) if n.domain_loss.drives(wf) else 0
        won = n.takeover.proof.own_certificate(wf, held) \
            if held >= 1 and n.takeover is not None else ()
        return PlacedMsg(wf, step, domain, epoch, lost, needs,
                         tuple(sorted(electorate or ())), held, won,
                         before=earlier_of(n.state, wf, step))

    def told_to(self, wf: str) -> set[str]:
        """Who is told a new placement: every domain of the workflow, and, with takeover,
        every member of its electorate (an acceptor that holds no step may be elected)."""
        n = self.n
        out = self.r.domains_of(wf)
        if n.takeover is not None:
            out |= set(n.takeover.electorate_of(wf) or ())
        return out - {n.name}

    def placed_acked(self, now: float, src: str, msg_id: tuple) -> None:
        _, wf, _, epoch, _ = msg_id
        self.r.acked.setdefault((wf, epoch), set()).add(src)
        self.send_if_told((wf, epoch))

    def send_if_told(self, key: Key) -> None:
        n = self.n
        told = self.r.telling.get(key)
        if told is None:
            return
        wf = key[0]
        if wf in n.state.final or wf not in n.progress:
            del self.r.telling[key]  # ended here: the new domain hears the end instead
            return
        if not self.told_enough(key):
            return
        domain, value = told
        if value is not None and self.r.handover.later_holder(wf):
            # Ours, and we granted (or follow) a later epoch since: its holder hands the
            # COMMIT out if it knows the placement (replacement_handover.py), or answers
            # the round void if it does not, so ours must not leave (see the header).
            return
        del self.r.telling[key]
        if value is None:  # a successor's handover: the COMMIT it hands out
            self.r.handover.make(key, domain)
            return
        n.stats["re-placement COMMIT sent once told"] += 1
        n.send(domain, Decision(key, value, n.name))
        if self.answer_owed(key, domain):
            self.resending[key] = [domain, value, n.now + n.t.reliable_resend_s,
                                   n.t.reliable_resend_s]

    def told_enough(self, key: Key) -> bool:
        """Is the placement of round `key` held by enough to be a fact: acknowledged by
        every live domain of the workflow (at least one), and by enough of the
        electorate, with this Node, to meet every majority of it? (A successor's
        majority must meet one whose grant carries it: restart_check.py. One fewer
        than a majority for an even electorate: a classic 2PC workflow on two
        domains, the original alone.)"""
        n = self.n
        wf = key[0]
        acked = self.r.acked.get(key, set())
        others = self.told_to(wf)
        waiting = {m for m in others if not n.member_loss.gone(m)} - acked
        if waiting or (others and not acked & others):
            return False
        electorate = set(n.takeover.electorate_of(wf) or ())
        return bool(electorate) \
            and len(electorate - {n.name} - acked) < majority(electorate)

    # ---- a COMMIT sent in a later epoch, resent until answered (see the header) -----

    def answer_owed(self, key: Key, domain: str) -> bool:
        """Is our own COMMIT of round `key` still owed an answer by its new domain
        `domain`, as sent acting in an epoch >= 1: its record kept (a DecisionAck
        collects it, a void answer drops it: replacement_handover.py `void_acked`),
        the placement still that round's on `domain`, the workflow not ended here, and
        no later epoch held by another granted or followed since (our COMMIT leaves
        no more then)?"""
        n = self.n
        wf, round_ = key
        return n.takeover is not None and domain != n.name and key in n.state.records \
            and wf not in n.state.final and wf in n.progress \
            and n.domain_loss.drives(wf) and n.domain_loss.epoch(wf) >= 1 \
            and not self.r.handover.later_holder(wf) \
            and any(e == round_ and dom == domain
                    for e, dom, _ in n.state.placements.get(wf, {}).values())

    def timer(self) -> float | None:
        return min((entry[2] for entry in self.resending.values()), default=None)

    def resend(self, now: float) -> None:
        """Each COMMIT still owed an answer (`answer_owed`) goes again when due, its
        wait doubled up to 8 s (as a reliable send's); one owed none is sent no more."""
        n = self.n
        for key, entry in list(self.resending.items()):
            if not self.answer_owed(key, entry[0]):
                del self.resending[key]
            elif entry[2] <= now:
                entry[3] = min(entry[3] * 2, 8.0)
                entry[2] = now + entry[3]
                n.stats["re-placement COMMIT sent again: no answer yet"] += 1
                n.send(entry[0], Decision(key, entry[1], n.name))

    def may_send_commit(self, wf: str, domain: str) -> bool:
        """May the workflow's own COMMIT go to `domain` now? Not to a domain a step was
        placed again away from until it acknowledged the new placement: in doubt and
        back, it would start the old placement's attempt."""
        n = self.n
        placed = n.state.placements.get(wf)
        if not placed:
            return True
        for key in n.pending.of(wf):
            if key[0] in TOLD_KINDS and key[-1] == domain \
                    and placed.get(key[2], (0, "", ""))[2] == domain:
                return False
        return True

    def retell(self, wf: str) -> None:
        """A restored coordinator tells every placement on record again (see the
        header: takeover soak seed 1800599) and sends again each COMMIT on record (once
        told, with takeover); a restored successor hands out what it was told."""
        n = self.n
        p = n.progress.get(wf)
        if wf not in n.state.rows:
            self.r.handover.adopt(wf)
            return
        # The original tells its placements and sends its COMMITs whatever epoch it
        # follows (a placement it decided is a committed round's fact).
        if p is not None and wf not in n.state.final:
            for step, (epoch, domain, _) in n.state.placements.get(wf, {}).items():
                value = n.state.records.get((wf, epoch)) if step in p.steps else None
                if value is not None and value.commit:
                    if n.takeover is not None:
                        self.r.telling[(wf, epoch)] = (domain, value)
                    else:
                        n.send(domain, Decision((wf, epoch), value, n.name))
                if step in p.steps and (n.takeover is not None or value is not None):
                    self.tell(wf, step)
