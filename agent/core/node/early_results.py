"""A step result that reaches a participant just before its COMMIT: held, not refused.

Theory of operation
-------------------
A participant learns its workflow's COMMIT in the turn after its Accept's write (its
own acceptor's Accepted, stepped by itself), while the coordinator may decide on
another acceptor's Accepted and send a step's result (a need's, for a dataflow input,
or its relay) at once. Such a result reaches a Node that does not know the workflow
committed: `authority_steps.placed_on` knows no placement to judge it by and refuses
it (`not_known`), unacknowledged, and its sender resends it only after the reliable
send's backoff, so the workflow takes that much longer.

A result refused for that reason alone, at a Node with a live stake in the round (a
prepared hold of the workflow: it voted YES and the decision is not known here, so
the round is in doubt here; the sender a party of that round), is held in memory
instead (`may_hold` lets the authority check pass it, `hold` keeps it, both reached
only when `placed_on` would refuse it). In the turn the Node learns that COMMIT
(`committed`, from the decision's application) each held result of the workflow is
stepped again as if it came again from its sender (`step_due`, at the end of the
Node's step): through the whole authority check first, then the Node's own rules
(epoch, fencing, a terminal result on record), so being held proves nothing; taken,
it is acknowledged and used as it would have been on its resend, a second earlier.

A workflow may come to be committed here, or end here, other than by the decision
of the round held being applied (`committed`, `aborted`, from the COMMIT message, a
recovery's or a decided answer's Learned, a successor's handed-out COMMIT: all one
`apply_decision`): a re-placement round's new domain in doubt is told the workflow's
end by a member or a successor, say, and its YES released at that end. Each path that
writes a workflow's decision or end here, or releases its hold (a later holder's
void: replacement_new_domain.py), marks the workflow in that write (`Node.mark`,
retention's clock), so that mark is the one hook (`touched`): a held
workflow marked is looked at again at the step's end (`_settle`). Committed here by
then (a coordinator's row, a committed round): its held results are due, judged again
as at its COMMIT. Ended here: dropped (the workflow is over; a resend is judged then,
as the end allows). No prepared hold left and not committed: dropped (its stake here
is over). Otherwise kept. A restart's restore needs nothing: the memory is gone
(`reset`), and what the restored Node learns next reaches it through the same hooks.

Nothing here is a fact the protocol relies on: a held result is unacknowledged, so
its sender resends it anyway. So it is dropped, never acknowledged, when the round
aborts here (`aborted`), on a restart (the memory is gone), when the workflow ends
here (`_settle`), when the workflow loses its stake here (forgotten, its hold
released: at its next mark, or found stale when room is needed), and when the
bounds are reached (`PER_WORKFLOW` per workflow, `CAP` in all; the oldest goes
first, counted): the sender's resend covers every one of these cases. The counts
(`HELD`, `TAKEN`, `REFUSED`, `DROPPED`) are the daemon's metrics (`fedorch_node_early_results*`,
runtime/node_engine/metrics.py) and the simulator's stats.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.node.authority import check
from fedorch.core.node.authority_steps import placed_on
from fedorch.core.node.records import ResultMsg

PER_WORKFLOW = 8  # a few needs' results (and their relays) of one workflow
CAP = 1_000  # in all

# The Node's stats each count is kept under (the simulator's path names; the daemon
# exports them: runtime/node_engine/metrics.py).
HELD = "result held until its COMMIT"
TAKEN = "held result stepped at its COMMIT"
REFUSED = "held result refused at its COMMIT"
DROPPED = {"abort": "held result dropped: ABORT",
           "cap": "held result dropped: too many",
           "forgotten": "held result dropped: no stake left",
           "ended": "held result dropped: workflow ended"}


class EarlyResults:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node
        # Workflow -> {(src, step, attempt, epoch): (src, msg)}, oldest workflow first.
        self._held: OrderedDict[str, dict[tuple, tuple[str, ResultMsg]]] = OrderedDict()
        self._count = 0
        self._due: list[tuple[str, ResultMsg]] = []  # stepped again at the step's end
        self._again = False  # stepping a held one again: never held a second time
        self._touched: set[str] = set()  # held workflows marked this step (`touched`)

    def reset(self) -> None:
        """A restore: what was held in memory is gone (the senders resend it)."""
        self._held.clear()
        self._count = 0
        self._due = []
        self._again = False
        self._touched.clear()

    def __len__(self) -> int:
        return self._count

    # ---- holding ---------------------------------------------------------------------

    def may_hold(self, src: str, msg: ResultMsg) -> bool:
        """Would this Node hold `msg`, a result of a workflow not committed here yet?
        Only with a live stake in one of its rounds, the sender a party of it."""
        if self._again:
            return False
        p = self.n.participant
        for key in p.keys_of(msg.workflow_id):
            hold = p.hold(key)
            if hold is not None and p.status(key) == "prepared" and hold.tx is not None \
                    and (src in hold.tx.participants or src == hold.tx.coordinator):
                return True
        return False

    def hold(self, src: str, msg: ResultMsg) -> bool:
        """Keep `msg` until its workflow's COMMIT is learned here, if it is a result
        `placed_on` would refuse as not committed here yet (True: held)."""
        try:
            placed_on(self.n.state, msg)
            return False
        except Refused:
            pass
        if not self.may_hold(src, msg):
            return False
        wf = msg.workflow_id
        entries = self._held.get(wf)
        ident = (src, msg.step_id, msg.attempt, msg.epoch)
        if entries is None or ident not in entries:
            if self._count >= CAP:
                self._prune()
            while self._count >= CAP:
                self._drop_oldest(None)
            entries = self._held.setdefault(wf, {})
            if len(entries) >= PER_WORKFLOW:
                self._drop_oldest(wf)
            self._count += 1
        entries[ident] = (src, msg)  # a resend of one held replaces it
        self.n.stats[HELD] += 1
        return True

    def _drop_oldest(self, wf: str | None) -> None:
        if wf is None:
            wf = next(iter(self._held))
        entries = self._held[wf]
        del entries[next(iter(entries))]
        self._count -= 1
        if not entries:
            del self._held[wf]
        self.n.stats[DROPPED["cap"]] += 1

    def _prune(self) -> None:
        """The workflows whose stake here is over (forgotten, released): their held
        results dropped (no COMMIT will step them again)."""
        for wf in [wf for wf in self._held if not self._stake(wf)]:
            self._drop(wf, DROPPED["forgotten"])

    def _stake(self, wf: str) -> bool:
        """A prepared hold of `wf` here: a round in doubt whose COMMIT may come."""
        p = self.n.participant
        return any(p.status(k) == "prepared" for k in p.keys_of(wf))

    def _drop(self, wf: str, why: str) -> None:
        entries = self._held.pop(wf, None)
        if entries:
            self._count -= len(entries)
            self.n.stats[why] += len(entries)

    # ---- the decision ------------------------------------------------------------------

    def committed(self, wf: str) -> None:
        """`wf`'s COMMIT is learned in this turn: its held results are due again."""
        entries = self._held.pop(wf, None)
        if entries:
            self._count -= len(entries)
            self._due.extend(entries.values())

    def aborted(self, wf: str) -> None:
        """A round of `wf` aborted here: what was held for it goes, unacknowledged."""
        self._drop(wf, DROPPED["abort"])

    def touched(self, wf: str) -> None:
        """`wf`'s decision, end or records are in this step's write (`Node.mark`): if
        results of it are held, they are looked at again at the step's end."""
        if wf in self._held:
            self._touched.add(wf)

    def _settle(self) -> None:
        """The held workflows marked this step, as the step left them (see the header):
        committed here, their results due; ended or no stake left, dropped."""
        d = self.n.state
        for wf in sorted(self._touched):  # sorted: the same order on every replay
            if wf not in self._held:
                continue  # its COMMIT or ABORT dealt with it (`committed`, `aborted`)
            if wf in d.final:
                self._drop(wf, DROPPED["ended"])
            elif wf in d.rows or wf in d.committed:
                self.committed(wf)
            elif not self._stake(wf):
                self._drop(wf, DROPPED["forgotten"])
        self._touched.clear()

    def step_due(self, now: float) -> None:
        """The held workflows marked this step settled, then each due result stepped
        again, as if it came again from its sender: judged by the authority table,
        then the Node's rules; one refused now is dropped (its sender resends it, and
        it is judged again then)."""
        n = self.n
        while True:
            if self._touched:  # again after each one: stepping it may mark others
                self._settle()
            if not self._due:
                return
            src, msg = self._due.pop(0)
            self._again = True
            try:
                check(n, src, msg)  # the whole table, as at the boundary
                n.stats[TAKEN] += 1
                n.negotiation.deliver(now, src, msg)
            except (Refused, RemoteProtocolError):
                n.stats[REFUSED] += 1
            finally:
                self._again = False

    @property
    def due(self) -> bool:
        return bool(self._due or self._touched)
