"""The end of a workflow retention forgot, kept longer as a compact record.

Theory of operation
-------------------
Retention (retention.py) forgets an ended workflow once its end is settled here and
its last mark is `late_message_s` old (twice that for a claimant). A peer cut off
longer than that may still ask about it, and hears nothing useful: a granter of our
claim for a saga's open plan, following our epoch and holding its reservation, asks
us (`PlacementQuery`, takeover_late_grants.py) and stays held for ever; a claimant
of a workflow every member forgot hears "unknown here" from each and never ends.
Both questions had an answer while the workflow was kept: its end. So, as it forgets
one, retention keeps that answer (`keep`): a row of `ended_records` (records.py),
workflow -> (end state, the epoch held and its holder, the epoch an asker is told
the end in or -1, wall ms forgotten), some 60 bytes, written in retention's own
write group, restored with the tables, and dropped once `keep_end_records_s` old
(a day by default) or past the newest `max_end_records` (retention.Retention).

What it answers, and why each is the answer the live workflow gave:
- a claim (takeover_claims.py, `on_claim`): the end with the epoch and holder held,
  no grant. Kept, an ended workflow whose saga's plan is not open here (and
  retention forgets none with it open) answers every claim so. An elector holding no
  step, which must answer a proof of the round with its epoch held, is never
  forgotten (retention rule 3), so has no record: forgetting changed no answer but
  the end told with it, which the record gives back;
- a placement question (restart_check.py, `on_query`): the end, in `tell`, where the
  workflow was answered with it regardless of who asked: as the claimant of epoch e
  >= 1 that never acted in it, its claim and plan over (takeover_late_grants.py,
  `asked`: retention forgets only once both are over and no late grant is owed);
  or as the original coordinator in epoch 0 following no later epoch, where no plan is
  owed to any asker, a domain holding a step included (its plan closed, or a spec
  with no `compensate` block: restart_check.py, `_tell_end`, where such an end is
  the whole end; a saga's driver tells a step's domain its end with the plan, so a
  record of one that drove a saga tells nothing, as it told a step's domain). An end that
  needs a holder's certificate (a later epoch won here) is not kept: -1, nothing
  told, as before. The asker takes the end through the authority rules of any end
  notice (authority_ends.py): one that follows another holder refuses it.
- the original coordinator back after a successor ended the workflow (epoch >= 1)
  and died for good (`overtaken`): its end notice of an older epoch, its report as
  the one that drives the workflow, or its relay of a gone domain's result. Kept, the
  workflow answered each with the later end and its proof, the successor's
  certificate (EndNotices.answer_overtaken, tell_overtaken), never an
  acknowledgement, and the original followed. So `keep` keeps that proof where the
  workflow had one (EndNotices.end_proof, held by another than the original, kept by
  another Node than the original): a row of `ended_proofs`, (epoch, holder, the
  certificate as received, so it verifies at the original as before). Without it the
  forgotten participant acknowledged the original's notice (or, as an elector holding
  no step, kept that older end and acknowledged it), refused its report and relay
  as of an unknown workflow, and the original stayed RUNNING for ever, or made an end
  that contradicts the successor's. Only the original is answered so: any other
  sender is answered as before.
- a new placement told in an epoch older than the record's (placed_overtaken.py,
  `answer_forgotten`): the kept workflow, its later epoch granted or followed here,
  refused it with that epoch or the end; the record answers with the end, its epoch and
  holder (to the original, the successor's proof with it: `overtaken`), never an
  acknowledgement, which would count toward the majority its COMMIT waits for.
A record is consulted only for a workflow this Node knows nothing else of (no row,
no commitment, no end): known again (a late end kept as an elector's), the live
rows answer. The end is the one end there is (a workflow ends once), so an answer
from a record days late is still true; its bound is memory's, not safety's.

How the records stay bounded: one row per forgotten workflow, dropped
`keep_end_records_s` after it was kept (a day by default) and, past the newest
`max_end_records`, oldest first; a proof lives in `ended_proofs` beside its record,
written in the same group and dropped with it (`_drop`), so there are never more
proofs than records. A record is some 60 bytes; a proof adds one certificate, the
one kept with the end while the workflow was kept (`end_proofs`, moved, not copied):
the signed grants the successor showed, a majority of the committed round's
electorate (each a statement naming that electorate and a signature; a few hundred
bytes for a handful of electors, never more than the end notice that carried it),
kept only for a workflow a successor ended.

Whether a workflow can owe a saga at all (`no_saga`): a spec with no `compensate`
block plans none (workflow/compensation.py `plan`), so its end is the whole end: no
plan, nor a driver's end with one, will ever come. A domain that asks while holding a
step of it is told the end as one of a saga that is over (restart_check.py).

Pure: reads and writes the Node's tables only; the answers are sent by the parts
that take the questions (records.py imports retention, which imports this module).
"""

from __future__ import annotations

import heapq
from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.workflow.lifecycle import WorkflowState

__all__ = ["EndedRecords", "no_saga"]


def no_saga(n: Any, wf: str) -> bool:
    """`wf`'s spec has no step with a `compensate` block: no saga can ever be owed."""
    info = n.running.info(wf)
    spec = getattr(info, "spec", None)
    return spec is not None and not any(s.HasField("compensate") for s in spec.steps)


class EndedRecords:
    def __init__(self, retainer: Any) -> None:
        self.r = retainer
        self.n = retainer.n
        self._keep_ms = int(retainer.policy.keep_end_records_s * 1000)
        # (wall ms kept, workflow), oldest first; an entry whose row says another stamp
        # (kept again since) or none is stale and skipped.
        self.heap: list[tuple[int, str]] = []

    def restore(self) -> None:
        self.heap = sorted((rec[4], wf) for wf, rec in self.n.state.ended_records.items())

    def keep(self, wf: str, wall: int) -> None:
        """Retention forgets `wf` now, its rows still here, in its write group."""
        n = self.n
        d = n.state
        state = d.final.get(wf)
        if state is None or self.r.policy.max_end_records <= 0:
            return
        original = coordinator_of(wf)
        followed = d.epochs.get(wf, (0, original))
        granted = d.granted.get(wf, (0, ""))
        epoch, holder = granted if granted[0] > followed[0] else followed
        tell = -1
        if granted[1] == n.name and granted[0] >= 1 and followed[0] < granted[0]:
            tell = granted[0]  # our claim's epoch, never acted in (late_grants `asked`)
        elif original == n.name and followed[0] == 0 \
                and (d.plans.get(wf) == () or no_saga(n, wf)):
            tell = 0  # the original's own end, no plan owed to any asker (`_tell_end`)
        d.ended_records[wf] = (state, epoch, holder, tell, wall)
        proof = n.end_notices.end_proof(wf)
        if proof is not None and original != n.name and proof[1] != original:
            d.ended_proofs[wf] = proof  # a successor's end: told to the original
        elif wf in d.ended_proofs:
            del d.ended_proofs[wf]
        heapq.heappush(self.heap, (wall, wf))
        n.stats["retention: end kept as a record"] += 1
        while len(d.ended_records) > self.r.policy.max_end_records:
            self._drop_oldest()

    def of(self, wf: str) -> tuple[WorkflowState, int, str, int, int] | None:
        """The record of `wf`, if this Node knows nothing else of it."""
        rec = self.n.state.ended_records.get(wf)
        if rec is None or self.r.knows(wf):
            return None
        return rec

    def claim_answer(self, wf: str) -> tuple[int, str, WorkflowState] | None:
        """A claim of `wf`, forgotten here: the epoch held, its holder and the end to
        answer it with, no grant (takeover_claims.py sends it)."""
        rec = self.of(wf)
        if rec is None:
            return None
        self.n.stats["takeover claim of a forgotten workflow: its end"] += 1
        return rec[1], rec[2], rec[0]

    def query_answer(self, wf: str) -> tuple[WorkflowState, int] | None:
        """A placement question about `wf`, forgotten here: the end and the epoch to
        tell it in, where kept to tell (restart_check.py sends it)."""
        rec = self.of(wf)
        if rec is None or rec[3] < 0:
            return None
        self.n.stats["placement asked of a forgotten workflow: the end told"] += 1
        return rec[0], rec[3]

    def overtaken(self, src: str, wf: str) -> tuple[int, str, Any, WorkflowState] | None:
        """The later end of `wf`, forgotten here, made by a successor, and its proof
        (epoch, holder, certificate, end), for `src` if it is the original coordinator
        (EndNotices answers its end notice, report or relay with it). Reads only."""
        rec = self.of(wf)
        proof = self.n.state.ended_proofs.get(wf)
        if rec is None or proof is None or src != coordinator_of(wf) or src == proof[1]:
            return None
        return proof[0], proof[1], proof[2], rec[0]

    def deadline_ms(self) -> int | None:
        """The wall ms the oldest record is due (a stale one wakes a tick for nothing:
        later, never sooner)."""
        return self.heap[0][0] + self._keep_ms if self.heap else None

    def tick(self, wall: int, opened: Any) -> None:
        """Drop the records `keep_end_records_s` old; `opened()` opens the write group."""
        while self.heap and self.heap[0][0] + self._keep_ms <= wall:
            stamp, wf = heapq.heappop(self.heap)
            rec = self.n.state.ended_records.get(wf)
            if rec is not None and rec[4] == stamp:
                opened()
                self._drop(wf)

    def _drop_oldest(self) -> None:
        d = self.n.state
        while self.heap:
            stamp, wf = heapq.heappop(self.heap)
            rec = d.ended_records.get(wf)
            if rec is not None and rec[4] == stamp:
                self._drop(wf)
                return

    def _drop(self, wf: str) -> None:
        """The record of `wf` goes, its proof with it (the same life and count)."""
        d = self.n.state
        del d.ended_records[wf]
        if wf in d.ended_proofs:
            del d.ended_proofs[wf]
