"""The coordinator's log of one workflow: what it has on record, and what that answers.

Theory of operation
-------------------
A coordinator's word on a round is what its log holds, never what it remembers of
the round's progress: the log is what survives a crash (the Node writes each
Persist* action before the messages that follow it leave) and what a participant in
doubt is answered from. Per round it holds:

- the write-once proposal cell (consensus mode only; `propose`): compare-and-set, so
  a cell holding COMMIT is never overwritten by ABORT nor the reverse. Only the
  coordinator proposes COMMIT, and only with its cell holding COMMIT, so an ABORT in
  the cell can never be contradicted by a ballot;
- the decision on record (`decided`): COMMIT with its certificate, or ABORT;
- the rounds told ABORT (`told_abort`): a late YES of one is sent its ABORT again;
- the COMMIT records dropped once every participant acknowledged them (`collected`):
  the fact that the round committed stays, its certificate is gone.

Presumed abort: an ABORT record never needs keeping (unless COMMIT was proposed in
its round: the record then spares a recovery ballot after a restart), and a query
about a round with no decision on record is answered ABORT once that ABORT is in the
cell and on record (`answer`), except for the round still being decided (UNKNOWN:
its answer is not ours yet) and a collected COMMIT (FORGOTTEN: the asker has it).
"""

from __future__ import annotations

from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    AnswerStatus,
    DecisionAnswer,
    Key,
    PersistProposal,
    Value,
)
from fedorch.core.negotiation.rounds import Action, PersistDecision


class CoordinatorLog:
    def __init__(self, workflow_id: str, me: str, *, cells: bool) -> None:
        """`me`: the coordinator's domain, which its answers name; `cells`: consensus
        mode, which keeps the write-once proposal cells (classic mode has none)."""
        self.workflow_id = workflow_id
        self._me = me
        self._cells_kept = cells
        self.cells: dict[int, Value] = {}         # write-once proposal cells
        self.decided: dict[int, Value] = {}       # decisions on record
        self.told_abort: dict[int, set[str]] = {}  # round -> domains told ABORT
        self.collected: set[int] = set()          # COMMIT records dropped after every ack

    def propose(self, round_: int, value: Value) -> list[Action]:
        """Compare-and-set the round's write-once proposal cell (consensus mode): the
        write to make first, if any."""
        if not self._cells_kept:
            return []
        held = self.cells.get(round_)
        if held is not None:
            if held != value:
                raise LocalProtocolError(f"round {round_}: proposal cell already holds another")
            return []
        self.cells[round_] = value
        return [PersistProposal(round_, value)]

    def abort(self, round_: int, holders: list[str]) -> list[Action]:
        """The round's ABORT, told to `holders`: in the cell unless COMMIT was proposed
        there (a ballot chose ABORT over it), and on record. The cell's write, if any."""
        writes = [] if self.cells.get(round_, ABORT).commit else self.propose(round_, ABORT)
        self.decided[round_] = ABORT
        self.told_abort[round_] = set(holders)
        return writes

    def abort_records(self) -> list[Key]:
        """The ABORT records that may be dropped: presumed abort needs none, bar one of
        a round whose cell holds COMMIT."""
        return [(self.workflow_id, r) for r, v in sorted(self.decided.items())
                if not v.commit and not self.cells.get(r, v).commit]

    def collect(self, round_: int) -> None:
        """The COMMIT record of `round_` dropped (every participant acknowledged it)."""
        self.decided.pop(round_, None)
        self.collected.add(round_)

    def answer(self, round_: int, last_round: int, undecided: bool
               ) -> tuple[DecisionAnswer, list[Action]]:
        """A decision query about `round_`, answered from the log, and the writes it
        makes first (a presumed ABORT). `last_round`: the workflow's latest round;
        `undecided`: that round is still being decided."""
        me = self._me
        key = (self.workflow_id, round_)
        if round_ < 1 or round_ > last_round:
            raise RemoteProtocolError(f"{self.workflow_id} has no round {round_}")
        value = self.decided.get(round_)
        if value is not None:
            return DecisionAnswer(key, me, AnswerStatus.DECIDED, value), []
        if round_ in self.collected:
            return DecisionAnswer(key, me, AnswerStatus.FORGOTTEN), []
        if round_ == last_round and undecided:
            return DecisionAnswer(key, me, AnswerStatus.UNKNOWN), []
        # No decision on record: presumed abort, written (compare-and-set) first.
        writes = self.propose(round_, ABORT)
        self.decided[round_] = ABORT
        writes.append(PersistDecision(round_, False, {}, (), "no decision on record"))
        return DecisionAnswer(key, me, AnswerStatus.DECIDED, ABORT), writes
