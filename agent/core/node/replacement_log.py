"""A re-placement round's coordinator log: what it owns, answers, refuses, collects.

Theory of operation
-------------------
replacement.py runs the rounds; this part is what the Node asks of their log. The
round is classic 2PC, decided by its coordinator's log alone: a query of its new
domain is answered UNKNOWN while the placement is being told (`answer`), and a
recovery ballot of it is refused here (`refuses_paxos`), so it cannot learn the
decision any other way. Only the rounds of this Node's own range are its own
(`owns`): the original's log has no word on a successor's round, and never presumes
ABORT for one.

A COMMIT record is collected once its new domain acknowledged it
(`on_decision_ack`), or once it acknowledged the workflow's end, if it never had the
COMMIT (`end_acked`). A round cut short by a crash has no decision on record: its
candidate's query is answered ABORT (presumed), and a YES of it still held here is
decided ABORT by the log after a restore (`restored`).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.coordinator import Phase
from fedorch.core.negotiation.messages import (
    ABORT,
    AnswerStatus,
    DecisionAnswer,
    Key,
)
from fedorch.core.negotiation.participant import HoldState
from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.epoch_certificate import epoch_of_round


class RoundLog:
    def __init__(self, replacements: Any) -> None:
        # The re-placement part that owns this one (replacement.py imports it); the
        # rounds under way (`cores`) and told (`telling`) are its state.
        self.r = replacements
        self.n = replacements.n

    def owns(self, key: Key) -> bool:
        """Is `key` a re-placement round this Node coordinates: the original's (epoch
        0's range, after the committed round), or a successor's (its epoch's range, up
        to the last number it wrote: replacement_successor.py)?"""
        d = self.n.state
        row = d.rows.get(key[0])
        epoch = epoch_of_round(key[1])
        if epoch == 0:
            return row is not None and row.committed and key[1] > row.round
        last = d.replaced_rounds.get(key[0], 0)
        return epoch_of_round(last) == epoch and key[1] <= last

    def on_decision_ack(self, now: float, src: str, key: Key) -> None:
        """The new domain learned the COMMIT: its record is no longer needed."""
        n = self.n
        placed = n.state.placements.get(key[0], {})
        if key in n.state.records and any(e == key[1] and dom == src
                                          for e, dom, _ in placed.values()):
            n.point("collect record")
            del n.state.records[key]

    def end_acked(self, wf: str, src: str) -> None:
        """`src` acknowledged the end of `wf`: the COMMIT record of a round that placed a
        step on it, if it never had it (`ended`), is of no more use (retention would
        keep the workflow for it)."""
        n = self.n
        if wf not in n.state.final:
            return
        for epoch, domain, _ in n.state.placements.get(wf, {}).values():
            if domain == src and (wf, epoch) in n.state.records:
                n.point("collect record")
                del n.state.records[(wf, epoch)]

    def answer(self, key: Key, src: str) -> DecisionAnswer:
        """A DecisionQuery of `src` about a re-placement round, answered from this log."""
        n = self.n
        value = n.state.records.get(key)
        ended = n.state.final.get(key[0])
        if ended is not None and value is not None and value.commit:
            # The workflow ended here before its new domain had the COMMIT (`ended`):
            # it hears the end again instead, and releases its YES: nothing may run.
            n.send(src, FinalMsg(key[0], ended))
            return DecisionAnswer(key, n.name, AnswerStatus.UNKNOWN)
        if key in self.r.telling:
            # Not told yet: the COMMIT is not handed out (replacement_telling.py,
            # `send_if_told`; the new domain hears the end instead if the workflow ends
            # here first, above).
            return DecisionAnswer(key, n.name, AnswerStatus.UNKNOWN)
        entry = self.r.cores.get(key[0])
        if entry is not None and entry[0].round == key[1] \
                and entry[0].phase is Phase.PREPARING:
            return DecisionAnswer(key, n.name, AnswerStatus.UNKNOWN)
        return DecisionAnswer(key, n.name, AnswerStatus.DECIDED,
                              value if value is not None else ABORT)

    def refuses_paxos(self, key: Key) -> bool:
        """A re-placement round is decided by this coordinator's log alone (see the
        header): no recovery ballot of it is taken part in here."""
        return self.owns(key)

    def restored(self, now: float) -> None:
        """After a restore: this Node's own YES in a re-placement round it coordinated,
        with no decision on record, is decided ABORT by its log (presumed: the round's
        core is gone, and its number is never used again)."""
        n = self.n
        for h in list(n.participant.holds()):
            if h.state is HoldState.PREPARED and h.coordinator == n.name \
                    and self.owns(h.key) and h.key not in n.state.records:
                n.stats["re-placement YES of a round cut short released"] += 1
                n.negotiation.learn(now, h.key, ABORT, h.tx)
