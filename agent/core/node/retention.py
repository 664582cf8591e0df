"""Retention inside a Node: which ended workflows it forgets, and when.

Theory of operation
-------------------
Without retention a Node keeps, for every workflow it ever coordinated or took part
in, a Coordinator core and rows in its tables (its row, proposal cells, decision
records, learned decisions, acceptor records, PREPAREs, step runs and results, its end
and who acknowledged it). With a `Retention` policy it forgets the ended ones, by the
daemon's rules (docs/retention.md), never one a peer may still ask about.

The clock. Every end, decision, acceptor record or acknowledgement of a workflow here
*marks* it. The table `endings[wf]` (so a restored Node has it) takes the wall time in
ms of its first mark and of each end: `keep_ended_s` counts from it in wall time, so
from the end, as the daemon's ended_at (or from the first mark, for a workflow that
never ends here: an extra acceptor's). `late_message_s` counts in monotonic time from
the last mark or the restore, whichever is later, so no clock step ever shortens it: nothing goes sooner than that, since a message sent before
may still be on its way (the daemon's replay window, after which its receiver
refuses such a message). Deadlines are rounded up to a multiple of `tick_s`, so
what comes due meanwhile goes in one tick.

The rule. A tracked workflow is *kept* (`kept_because`) while
- it is live here: its coordinator row has not finished in a terminal state, it is
  committed here and not ended, or its steps run here;
- this Node holds a reservation of it (it is itself a participant in doubt, or holds
  slots): it will ask, and must remember what it asks about;
- as its coordinator: a COMMIT record is still kept (a participant has not
  acknowledged the COMMIT and may ask for it; collected once every one did), or a
  participant has not acknowledged the end notice (it is resent until it is);
- it was taken over here (`epochs`, `granted`, `certificates`, `late_grants`) and its
  end is not settled here (`_taken_over_kept`): no end here yet; a late grant owed
  its end; as the holder of the epoch that ended it, a domain it told has not
  acknowledged the end; as a claimant, a grant of its claim may still come (two
  `late_message_s` from its last mark: the claim's way there and the grant's way
  back, counted in the `waiting` heap, not parked); or this Node is an elector
  holding no step of the committed round (an extra acceptor), which a correct
  claimant sends a proof of the round: forgotten, its acceptor records (kept for
  good) would answer that proof with no epoch held and grant an epoch again, so
  it keeps the workflow with them. Settled here, the workflow goes with all its
  takeover rows and `Takeovers.forget` drops its cores, claims and proofs;
- its saga is not over here (compensating.retention.kept_because): as the coordinator that
  drives them, its compensations have not all ended, or a participant has not
  acknowledged the saga's plan or end; as a participant, the plan its driver told it
  is open (the driver has not told the saga over); as a step's domain, an attempt
  of a compensation runs here or its report is not acknowledged.
A kept workflow is *parked*: it costs nothing per tick, and its next mark (the
acknowledgement, the end, the release that unblocks it) tracks it again.

Of the rest, a workflow goes once its last mark is `keep_ended_s` old, or, beyond the
newest `max_ended_workflows` tracked here, once it is `late_message_s` old and
*settled*: none of its acceptor records here could be needed by a recovery ballot
(the ballot of an in-doubt participant asks a majority of acceptors; if they all
forgot a chosen COMMIT it could choose ABORT). Settled: it is this Node's own
workflow (every round decided here), or every acceptor record of it here has its
outcome learned, an ABORT, or a COMMIT whose end notice said every participant had
acknowledged it (`FinalMsg.settled`). An unsettled one goes by age only. (Since the
acceptor records and learned decisions go by their round's life (retention_rounds.py), this
distinction no longer protects them; it is kept as the order in which workflows go
beyond the count.)

With a workflow go its sagas' rows (`compensations`, `comp_runs`, `plans`:
compensating.retention.forget), once its compensations are over; the end of a saga and an acknowledged report mark the
workflow, so one parked for its saga is looked at again then.

The deletes of one tick are one write group ("retention"), so a driver that applies
the Ready, and a Node restored from what it applied, forget the same. With it go the
Coordinator core and anything still resent.

What is not forgotten with the workflow: the acceptor's records and the decisions
learned (tables `acceptor` and `learned`). They go by their round's life, once the
workflow is forgotten here (retention_rounds.py, `RoundLife`, where the argument is).

Presumed abort (`presumes_abort`, the rule in core/workflow/presumed_abort.py). Under
classic 2PC a participant in doubt has only its coordinator to ask: no acceptors, no
recovery ballot. Asked about a round of its own range (epoch 0; a later epoch's round
is a successor's, of which it has no word) of a workflow it named and has no row of,
this Node answers ABORT, writing nothing. Safe because the rule above keeps what
presumed abort asks for: a workflow stays while its row has not finished in a
terminal state (every round of its own decided: a re-placement round under way is
aborted when the workflow ends, replacement.py `ended`) and while a COMMIT record of
it is kept (collected only once each participant acknowledged the COMMIT or started
a step of it, so none of them is in doubt about it); a restarted coordinator presumes
ABORT of any round it had not decided (Coordinator.restore, replacement.restored).
So a forgotten round of its own was aborted, or committed with every participant
knowing it. An id it named but never saved had no PREPARE sent (the row goes first).

What a late message about a forgotten workflow gets (node.py, negotiation.py,
running.py): a decision query at its coordinator is answered ABORT as above under
classic 2PC, else UNKNOWN (nothing is presumed, nothing written: a participant in
doubt that long goes to a recovery ballot), an end notice or a step result of a workflow
unknown here is acknowledged and not kept, a vote or an acknowledgement finds no core
(refused, or ignored), as for any unknown workflow; a claim, a placement question or an
older epoch's placement tell gets the end its record keeps, and the original's end
notice, report or relay a successor's end and proof (ended_records.py).

Cost: a mark is a table put and a heap push; a tick pops only what is due. Two heaps
by wall stamp, oldest first: `main` (every tracked workflow) and `age_only` (the
unsettled ones, which the count may not take); stale heap entries are skipped.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.node.ended_records import EndedRecords
from fedorch.core.node.retention_policy import Retention
from fedorch.core.node.retention_rounds import RoundLife
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.core.workflow.presumed_abort import presumes_abort

__all__ = ["Retainer", "Retention"]

MAIN, AGE_ONLY, PARKED = "main", "age only", "parked"
# A workflow this Node claimed, ended and settled, waiting out its second window: a
# grant of its claim may still come (`_taken_over_kept`; docs/retention.md).
WAITING = "waiting"
CLAIM_ANSWERS = "taken over: a grant of its claim may still come"

# The tables keyed by workflow id (those keyed by (workflow, round) are ready.ROUND_TABLES).
# A round's tables retention forgets with its workflow; `acceptor` and `learned`
# (ROUND_LIFE_TABLES) only once the round is past its life (retention_rounds.py): a recovery
# ballot may need them until then.
ROUND_LIFE_TABLES = ("acceptor", "learned")
FORGOTTEN_ROUND_TABLES = ("cells", "records", "holds", "info", "ballots")
WORKFLOW_TABLES = ("rows", "committed", "results", "final", "final_acked", "epochs",
                   "granted", "electorates", "endings", "cancels", "end_proofs",
                   "end_reasons", "placements", "replaced_rounds", "refusals",
                   "late_grants", "certificates", "earlier_domains", "drivers_before",
                   "withdrawn", "claim_grants")


@dataclass(slots=True)  # one for every workflow tracked: no __dict__ of its own
class _Entry:
    stamp: int      # wall ms of the last mark (the `endings` row)
    since: float    # monotonic time of the last mark, or of the restore
    place: str      # MAIN, AGE_ONLY or PARKED


class Retainer:
    def __init__(self, node: Any, policy: Retention) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts,
        # never the reverse, so the import graph has no cycle).
        self.n = node
        self.policy = policy
        self._keep_ms = int(policy.keep_ended_s * 1000)
        self._entries: dict[str, _Entry] = {}
        self._heaps: dict[str, list[tuple[int, str]]] = {MAIN: [], AGE_ONLY: []}
        # WAITING workflows by the monotonic time their second window ends.
        self._waiting: list[tuple[float, str]] = []
        self._opened = False  # this tick's write group is open
        # Rounds of forgotten workflows whose acceptor record waits for its round's
        # life to pass (retention_rounds.py).
        self.rounds = RoundLife(self)
        self.ends = EndedRecords(self)  # forgotten workflows' ends, kept longer
        # The deadline, as last computed; None when a mark or a tick may have moved it.
        # (A wall clock step moves it too; a deadline that comes early finds nothing due
        # and is computed again, one that comes late forgets later: never sooner.)
        self._deadline: tuple[float | None] | None = None

    # ---- what the Node's parts call ---------------------------------------------------

    def restore(self, now: float) -> None:
        """Track what the tables say, every workflow as if marked `now` (monotonic)."""
        d = self.n.state
        self._entries = {wf: _Entry(stamp, now, MAIN) for wf, stamp in d.endings.items()}
        self._heaps = {MAIN: sorted((e.stamp, wf) for wf, e in self._entries.items()),
                       AGE_ONLY: []}
        self._waiting = []
        self.rounds.restore(now)
        self.ends.restore()
        self._deadline = None

    def mark(self, wf: str, *, ended: bool = False) -> None:
        """An end (`ended`), decision, acceptor record or acknowledgement of `wf`, in
        the write group open now. Its stamp (the table's, and keep_ended_s's) is that
        of its first mark and of each end, as the daemon's ended_at; late_message_s
        counts from the last mark. A parked workflow is looked at again."""
        n = self.n
        e = self._entries.get(wf)
        if e is not None and not ended:
            e.since = n.now
            if e.place != MAIN:
                e.place = MAIN
                heapq.heappush(self._heaps[MAIN], (e.stamp, wf))
                self._deadline = None
            return
        stamp = n.wall_ms(n.now)
        n.state.endings[wf] = stamp
        if e is None:
            self._entries[wf] = _Entry(stamp, n.now, MAIN)
        else:
            e.stamp, e.since, e.place = stamp, n.now, MAIN
        heapq.heappush(self._heaps[MAIN], (stamp, wf))
        # A new mark is due after every older one (its stamp is the newest), so the
        # deadline moves only when the count is now exceeded, or there was none.
        if e is None and len(self._entries) == self.policy.max_ended_workflows + 1 \
                or self._deadline is None or self._deadline[0] is None:
            self._deadline = None

    def knows(self, wf: str) -> bool:
        """Anything of `wf` here that a late end or result could be about."""
        d = self.n.state
        return wf in d.rows or wf in d.committed or wf in d.final \
            or bool(self.n.participant.keys_of(wf))

    def forgotten_here(self, wf: str) -> bool:
        """`wf` is named by this Node and it has no core of it: retention forgot it,
        or a crash lost its submission's write, which under Paxos Commit its first
        PREPAREs may have left with (prepares_ahead.py: nothing of it can commit)."""
        return coordinator_of(wf) == self.n.name and wf not in self.n.state.rows

    def presumes_abort(self, key: tuple[str, int]) -> bool:
        """A query about round `key` is answered ABORT by presumption: a classic round
        of this Node's own range of a workflow it named and forgot (workflow/presumed_abort
        .presumes_abort; safe by the rule `kept_because` keeps, see the top)."""
        n = self.n
        return presumes_abort(key[0], key[1], me=n.name, known=key[0] in n.state.rows,
                              classic=n.t.classic)

    def tracked(self) -> int:
        return len(self._entries)

    # ---- the timer --------------------------------------------------------------------

    def timer(self) -> float | None:
        if self._deadline is None:
            self._deadline = (self._compute_timer(),)
        return self._deadline[0]

    def _compute_timer(self) -> float | None:
        n = self.n
        now, wall = n.now, n.wall_ms(n.now)
        times = []
        for place in (MAIN, AGE_ONLY):
            e = self._top(place)
            if e is not None:
                times.append(self._due(e, now, wall))
        if len(self._entries) > self.policy.max_ended_workflows:
            e = self._top(MAIN)
            if e is not None:
                times.append(max(now, e.since + self.policy.late_message_s))
        if self._waiting:  # a stale one wakes a tick that finds nothing: later, never sooner
            times.append(max(now, self._waiting[0][0]))
        if self.rounds.heap:
            times.append(now + max(0, self.rounds.heap[0][0] - wall) / 1000)
        if (due := self.ends.deadline_ms()) is not None:
            times.append(now + max(0, due - wall) / 1000)
        if not times:
            return None
        grid = self.policy.tick_s
        return math.ceil(min(times) / grid) * grid if grid > 0 else min(times)

    def tick(self, now: float) -> None:
        """Forget what is due: by age, then beyond the count."""
        n = self.n
        wall = n.wall_ms(now)
        self._opened = False
        self._deadline = None
        for place in (MAIN, AGE_ONLY):
            while (e := self._top(place)) is not None and self._due(e, now, wall) <= now:
                self._take(place, now)
        late = self.policy.late_message_s
        while len(self._entries) > self.policy.max_ended_workflows:
            e = self._top(MAIN)
            if e is None or e.since + late > now:
                break
            wf = heapq.heappop(self._heaps[MAIN])[1]
            if self._settled(wf):
                self._forget_or_park(wf)
            else:
                e.place = AGE_ONLY
                heapq.heappush(self._heaps[AGE_ONLY], (e.stamp, wf))
        while self._waiting and self._waiting[0][0] <= now:
            wf = heapq.heappop(self._waiting)[1]
            e = self._entries.get(wf)
            if e is not None and e.place == WAITING:  # else marked again, or forgotten
                self._forget_or_park(wf)
        self.rounds.tick(wall)
        self.ends.tick(wall, self._open)
        self._forget_admissions(wall)

    # ---- the rule ---------------------------------------------------------------------

    def kept_because(self, wf: str) -> str | None:
        """Why `wf` may not be forgotten now (None: it may)."""
        n = self.n
        d = n.state
        row = d.rows.get(wf)
        if row is not None and not (row.finished and row.state in TERMINAL) \
                or wf in d.committed and wf not in d.final or wf in n.progress:
            return "live here"
        if n.participant.keys_of(wf):
            return "a reservation here"
        taken = wf in d.epochs or wf in d.granted or wf in d.certificates \
            or wf in d.late_grants
        if taken:
            reason = self._taken_over_kept(wf)
            if reason is not None:
                return reason
        saga = n.compensating.retention.kept_because(wf)
        if saga is not None:
            return saga
        if row is not None:
            if any(d.records[k].commit for k in d.records.of(wf)):
                return "a participant has not acknowledged the COMMIT"
            if row.committed and not (taken and self._ended_by_a_later_epoch(wf)) \
                    and set(row.info.placement.values()) - {n.name} \
                    - d.final_acked.get(wf, set()):
                return "a participant has not acknowledged the end"
        return None

    def _taken_over_kept(self, wf: str) -> str | None:
        """Why a workflow taken over here (this Node followed, acted in, claimed or
        granted a coordinator epoch of it) may not go yet; None: its end is settled
        here and it goes as any other (docs/retention.md, "Workflows taken over", is
        the argument)."""
        n = self.n
        d = n.state
        if wf not in d.final:
            return "taken over: no end here"
        if d.late_grants.get(wf):
            return "taken over: a late grant is owed its end"
        if self._answers_round_proofs(wf):
            # Forgotten, its acceptor records (kept for good) would answer a claim
            # carrying a proof of the round with no epoch held: a blank, which grants an
            # epoch granted already. Kept with them (one row more per workflow).
            return "taken over: granted as an elector holding no step"
        epoch, holder = d.epochs.get(wf, (0, ""))
        if epoch >= 1 and holder == n.name \
                and (n.replacement.domains_of(wf) | {coordinator_of(wf)}) - {n.name} \
                - d.final_acked.get(wf, set()):
            return "taken over: a domain has not acknowledged the end told in its epoch"
        e = self._entries.get(wf)
        if d.granted.get(wf, (0, ""))[1] == n.name and e is not None \
                and n.now < e.since + 2 * self.policy.late_message_s:
            return CLAIM_ANSWERS
        return None

    def _answers_round_proofs(self, wf: str) -> bool:
        """Could a correct claimant send this Node a claim carrying a proof of the
        committed round (takeover_claim_proof.py, `round_proof`: to an elector that is
        neither the original coordinator nor a participant of the committed round)?
        Conservative: True where this Node holds no step of the committed round and is
        not known to be outside the electorate."""
        n = self.n
        d = n.state
        if wf in d.rows or coordinator_of(wf) == n.name:
            return False
        round_ = d.committed.get(wf)
        info = d.info.get((wf, round_)) if round_ is not None else None
        if info is None:
            # No step committed here: an extra acceptor, unless its record of the round
            # learned COMMIT names it a participant (a participant that forgot the
            # workflow, then kept a late end as an elector does: elector_ends.py).
            return not any(
                d.learned[k].commit and n.name in d.acceptor[k].tx.participants
                for k in d.acceptor.of(wf)
                if k in d.learned and d.acceptor[k].tx is not None)
        if not info.lost and n.name in info.placement.values():
            return False
        # A new domain (its committed round here is its re-placement round): an elector
        # too only if the committed round made it an acceptor.
        return n.name in d.electorates.get(wf, ())

    def _ended_by_a_later_epoch(self, wf: str) -> bool:
        """The original coordinator follows a later epoch's holder (`epochs`): the end
        it holds is that holder's to tell, and that holder keeps the workflow until
        every domain acknowledged it (`_taken_over_kept`)."""
        epoch, holder = self.n.state.epochs.get(wf, (0, ""))
        return epoch >= 1 and holder != self.n.name

    def _settled(self, wf: str) -> bool:
        """No recovery ballot can need this workflow's acceptor records here."""
        d = self.n.state
        if wf in d.rows:
            return True  # our own: every round decided here
        for key in d.acceptor.of(wf):
            value = d.learned.get(key)
            if value is None or value.commit and wf not in d.settled:
                return False
        return True

    # ---- helpers ----------------------------------------------------------------------

    def _due(self, e: _Entry, now: float, wall: int) -> float:
        """When `e` is `keep_ended_s` old in wall time and `late_message_s` old."""
        left_s = max(0, e.stamp + self._keep_ms - wall) / 1000
        return max(e.since + self.policy.late_message_s, now + left_s)

    def _top(self, place: str) -> _Entry | None:
        heap = self._heaps[place]
        while heap:
            stamp, wf = heap[0]
            e = self._entries.get(wf)
            if e is not None and e.stamp == stamp and e.place == place:
                return e
            heapq.heappop(heap)  # marked again, moved, or forgotten since
        return None

    def _take(self, place: str, now: float) -> None:
        wf = heapq.heappop(self._heaps[place])[1]
        self._forget_or_park(wf)

    def _forget_or_park(self, wf: str) -> None:
        reason = self.kept_because(wf)
        if reason == CLAIM_ANSWERS:  # looked at again once its second window is over
            e = self._entries[wf]
            e.place = WAITING
            heapq.heappush(self._waiting, (e.since + 2 * self.policy.late_message_s, wf))
            self.n.stats[f"retention kept: {reason}"] += 1
            return
        if reason is not None:
            self._entries[wf].place = PARKED
            self.n.stats[f"retention kept: {reason}"] += 1
            return
        self._forget(wf)

    def _open(self) -> None:  # this tick's write group, opened once
        if not self._opened:
            self.n.point("retention")
            self._opened = True

    def _forget(self, wf: str) -> None:
        n = self.n
        d = n.state
        self._open()
        self.ends.keep(wf, n.wall_ms(n.now))  # its end, answered to a late asker
        n.note("compacted", wf, d.rows.get(wf), d.final.get(wf), d.results.get(wf))
        if wf in d.epochs or wf in d.granted:
            n.stats["retention: workflow taken over forgotten"] += 1
        for name in FORGOTTEN_ROUND_TABLES:
            table = getattr(d, name)
            for key in table.of(wf):
                del table[key]
        for name in WORKFLOW_TABLES:
            getattr(d, name).pop(wf, None)
        n.compensating.retention.forget(wf)  # the sagas' rows (kept_because: their saga is over)
        d.settled.discard(wf)
        for run in d.runs.of(wf):
            d.runs.discard(run)
        if wf in n.coordinators:
            del n.coordinators[wf]
        n.pending.drop(wf)
        if n.takeover is not None:  # its cores, claims and proofs in memory
            n.takeover.forget(wf)
        stamp = self._entries.pop(wf).stamp
        self.rounds.of(wf, stamp)  # untracked now: its rounds wait for their life alone
        n.stats["retention: workflow forgotten"] += 1

    def _forget_admissions(self, wall: int) -> None:
        """Signed submissions past their window (the guard refuses them by age anyway):
        the guard forgets them at most once per sixteenth of its window, and so do
        the tables."""
        n = self.n
        before = len(n.submissions)
        cutoff = n.submissions.forget_before(wall)
        if len(n.submissions) == before:
            return
        old = [k for k, (_, at) in n.state.admitted.items() if at < cutoff]
        if old:
            self._open()
        for k in old:
            del n.state.admitted[k]
