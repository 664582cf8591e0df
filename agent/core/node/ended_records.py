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
  kept workflow told it to the asker, now that its saga is over (retention forgets
  none before: compensating.retention.kept_because; every participant it told acknowledged
  the plan and the end). Kept, a Node asked by a domain holding a step stayed silent
  while a saga's driver was to tell that domain the end with its plan (restart_check.py,
  `_tell_end`; seed 5200672); once the driver's saga is over, the asker is a domain
  it never told (placed by an earlier epoch's holder, or cut off while a later
  epoch's holder ended the workflow), which no plan and no end will ever reach: the
  "saga over" case, told the end (seed 43007752). So it is told (the epoch it is
  told in is the one the asker follows this Node in, so it takes it through the
  authority rules of any end notice, authority_ends.py):
  - as the claimant of epoch e >= 1 that never acted in it (e followed in a rival
    claimant's hands, or a lower epoch followed), its claim and plan over
    (takeover_late_grants.py, `asked`): in e, as before;
  - as the claimant of e >= 1 that yielded e to a better-ranked rival (takeover_split.py:
    its grant of e names the rival, followed here in e) and is not the original
    (`yielded`, the very test `asked` makes): in e. Kept, `asked` told its granter so
    once the claim was over and the plan not open here; at forgetting both hold
    (retention forgets none with its plan open, and a running claim is a grant of our
    own). The end is the one end there is, taken here from the rival, the holder this
    Node follows, through the authority rules of any end notice; the saga is over here,
    so no plan is owed with it. Who asks: only a domain that follows this Node asks
    it (restart_check.py), and one follows it in e only by a grant of its claim that
    reached it after the yield; it takes the end from the holder it follows. Any other
    takes or refuses it by the authority rules of any participant's end of e
    (authority_ends.py): one that follows the rival in e refuses it (e held by
    another, no certificate: the claimant never won), one that granted or follows a
    later epoch refuses it, and what any takes is that one end. As for our own grant
    of e, the record keeps no list of domains: any asker is told (`asked` told only a
    domain; only domains ask). The original's asks in epoch 0 (original_asks.py) are
    told it as while kept, taken or refused by the same rules. Nothing changes here:
    no row, grant or epoch is written, and the asker ends its part and lets its
    reservation go, as above. A Node that granted the rival's claim without claiming
    has the same tables: none follows it in e, so only the original's asks reach it,
    answered as while kept;
  - as the original coordinator in epoch 0 that granted no later epoch: in epoch 0. It
    drove the workflow and its saga, if any, itself, to its end (or its plan was
    closed here, or its spec has no `compensate` block: the end is the whole end);
  - as the holder of its won epoch e >= 1, which made the end and drove its saga:
    in e, with its certificate, kept as the record's proof (below);
  - as the original following a later epoch's holder, the saga's driver: in epoch 0
    once its plan closed here (or none can be owed); else, where the results here
    owed no compensation, `IF_DRIVER_GONE`: told in epoch 0 once the view here says
    that driver is gone, as saga_gone_driver.py tells it while kept, and nothing while
    it lives (it tells the end with the plan it owes; seed 109000128's asker, the
    original following a gone claimant, forgot by retention while the step's domain
    was down: it asked every 4 s for ever, held).
  Nothing else is told (`NOTHING`): where this Node granted a later epoch than it
  follows (its claimant may drive a saga unknown here), where the results here owed
  a compensation and the driver is gone (kept, they became a plan claimed for; their
  rows are gone with the workflow), or where this Node, not the original, follows
  another's epoch other than the one it granted (kept, it told a step's domain the end
  only with a certificate of an earlier epoch of its own, which the record does not
  keep).
  An original that yielded: the original coordinator that claimed e past a gone
  holder and yielded e to a rival (`original_yielded`). Its granter follows it in e
  and refuses the end in epoch 0 (an older epoch than it holds) and the rival's in e
  (e held here by the original, no certificate): it kept its reservation for ever
  (takeover soak seed 163101876 with a cut one way). `asked` leaves the original out,
  since domains that follow it in epoch 0 ask it too and the question names no epoch.
  So the original answers with two ends: in epoch 0, as before (`tell` is 0), and in
  e (`told_too`; restart_check.py `_tell_end` alike while kept, where the tables show
  the yield itself: its grant of e names the rival, followed in e, with no
  certificate of e kept). Each is argued on its own. The first is the answer as
  before. The second carries the same end (the one end there is, the value the first
  tells), only told in e, and only where the saga is over (the plan closed here, or
  none can be owed: a record's `tell` of 0 with e >= 1 held means so, and
  `IF_DRIVER_GONE` told in epoch 0 gets no second answer). Who asks the
  original follows it: in epoch 0 (refuses an end in e from a sender that is no
  participant, or takes that same end as any participant's end of a later epoch:
  authority_ends.py), or in e by a grant of its claim (takes it from the holder it
  follows, ends its part and lets its reservation go, as `asked`'s granters do). The
  record keeps no grant apart from the epoch followed, so it tells e too wherever the
  original holds e in another's hands (a grant of a claim it never made, or a proven
  holder followed: nobody follows the original in e then, and the second answer is
  refused or taken as that one end). No row changes; no message changes. Chosen over
  the epoch in the question (a message change).
  What is not done: the told asker ends its part and lets its reservation go, runs
  nothing and compensates nothing; a SUCCEEDED run it holds that no driver learned of
  stays uncompensated, as its late result would at a Node that forgot the workflow
  (acknowledged, not kept). An asker told nothing asks on, as before (docs/retention.md,
  "Not built yet").
- the original coordinator back after a successor ended the workflow (epoch >= 1)
  and died for good (`overtaken`): its end notice of an older epoch, its report as
  the one that drives the workflow, or its relay of a gone domain's result. Kept, the
  workflow answered each with the later end and its proof, the successor's
  certificate (EndNotices.answer_overtaken, tell_overtaken), never an
  acknowledgement, and the original followed. So `keep` keeps that proof where the
  workflow had one (EndNotices.end_proof, held by another than the original, kept by
  another Node than the original): a row of `ended_proofs`, (epoch, holder, the
  certificate as received, so it verifies at the original as before); where this
  Node was that holder, it is also the certificate a placement question is told the
  end with (above). Without it the
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
from fedorch.core.workflow.compensation import plan
from fedorch.core.workflow.lifecycle import WorkflowState

__all__ = ["IF_DRIVER_GONE", "NOTHING", "EndedRecords", "no_saga", "original_yielded",
           "yielded"]

# A record's `tell`, besides an epoch (>= 0) to tell the end in to any asker: nothing
# told; or the end told in epoch 0, by the original, once the view here says the saga's
# driver (the record's holder) is gone, nothing owed by the results that were here.
NOTHING, IF_DRIVER_GONE = -1, -2


def no_saga(n: Any, wf: str) -> bool:
    """`wf`'s spec has no step with a `compensate` block: no saga can ever be owed."""
    info = n.running.info(wf)
    spec = getattr(info, "spec", None)
    return spec is not None and not any(s.HasField("compensate") for s in spec.steps)


def yielded(d: Any, name: str, wf: str) -> int:
    """The epoch e >= 1 of `wf` whose grant here names another holder, followed here in
    that very epoch, this Node `name` not the original: a claim of e yielded to a
    better-ranked rival (takeover_late_grants.py, "A claim yielded to a rival"); else 0.
    `d` is the Node's tables."""
    epoch, holder = d.granted.get(wf, (0, ""))
    if epoch >= 1 and holder not in ("", name) and d.epochs.get(wf) == (epoch, holder) \
            and coordinator_of(wf) != name:
        return epoch
    return 0


def original_yielded(name: str, wf: str, held: tuple[int, str]) -> int:
    """`name` the original coordinator of `wf`, `held` the epoch it holds (granted or
    followed, the later) and that epoch's holder: that epoch e >= 1 where another
    holds it, the epoch its end, told in epoch 0 to a placement question, is told in
    too (restart_check.py; see the header, "An original that yielded"); else 0."""
    epoch, holder = held
    if coordinator_of(wf) == name and epoch >= 1 and holder not in ("", name):
        return epoch
    return 0


def _owed_here(n: Any, wf: str) -> bool:
    """Do the results of `wf` held here owe a compensation (saga_gone_driver.py's
    `tell_or_claim`: a plan claimed for, not the end told)?"""
    states = {step: getattr(r[1], "value", r[1])
              for step, r in n.state.results.get(wf, {}).items()}
    spec = getattr(n.running.info(wf), "spec", None)
    return spec is not None and bool(plan(spec, states, n.compensating.results.domain_of(wf)))


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
        proof = n.end_notices.end_proof(wf)
        if proof is not None and (original == n.name or proof[1] == original):
            proof = None  # kept only as a successor's end, told to the original
        d.ended_records[wf] = (state, epoch, holder, self._tell(wf, proof), wall)
        if proof is not None:
            d.ended_proofs[wf] = proof
        elif wf in d.ended_proofs:
            del d.ended_proofs[wf]
        heapq.heappush(self.heap, (wall, wf))
        n.stats["retention: end kept as a record"] += 1
        while len(d.ended_records) > self.r.policy.max_end_records:
            self._drop_oldest()

    def _tell(self, wf: str, proof: Any) -> int:
        """The epoch the end of `wf` is told in to a placement question, or NOTHING, or
        IF_DRIVER_GONE (see the header, "A placement question")."""
        n = self.n
        d = n.state
        original = coordinator_of(wf)
        followed = d.epochs.get(wf, (0, original))
        granted = d.granted.get(wf, (0, ""))

        def whole() -> bool:  # no plan owed any more: closed here, or none can be
            return d.plans.get(wf) == () or no_saga(n, wf)

        if granted[1] == n.name and granted[0] >= 1 and (
                followed[0] < granted[0] or followed[0] == granted[0]
                and followed[1] != n.name):
            # Our claim's epoch, never acted in, or followed in a rival's hands
            # (takeover_late_grants.py `asked`).
            return granted[0]
        if original == n.name and followed[0] == 0 and (granted[0] == 0 or whole()):
            return 0  # the original's end, its saga (if it drove one) over
        if granted[0] > followed[0]:
            return NOTHING  # a later epoch granted: its holder may drive a saga
        if followed[1] == n.name and followed[0] >= 1:
            # The holder that made the end and drove its saga, over: with its proof.
            return followed[0] if proof is not None and proof[:2] == followed else NOTHING
        if original == n.name:  # following a later holder, the saga's driver
            if whole():
                return 0  # its saga over (the plan closed here) or none owed
            return IF_DRIVER_GONE if not _owed_here(n, wf) else NOTHING
        # Our claim's epoch yielded to a rival, followed in its hands, not the original
        # (takeover_late_grants.py `asked`; the plan is closed: forgotten).
        return yielded(d, n.name, wf) or NOTHING

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

    def query_answer(self, wf: str) -> tuple[WorkflowState, int, Any] | None:
        """A placement question about `wf`, forgotten here: the end, the epoch to tell
        it in and the certificate to show with it, where kept to tell
        (restart_check.py sends it)."""
        n = self.n
        rec = self.of(wf)
        if rec is None or rec[3] == NOTHING:
            return None
        tell, won = rec[3], ()
        if tell == IF_DRIVER_GONE:
            if n.takeover is None or not n.member_loss.gone(rec[2]):
                n.stats["placement asked of a forgotten workflow: its driver lives"] += 1
                return None  # the saga's driver tells the end, with the plan it owes
            tell = 0
        elif (proof := n.state.ended_proofs.get(wf)) is not None \
                and proof[:2] == (tell, n.name):
            won = proof[2]  # the holder's end, in its won epoch: shown with its proof
        n.stats["placement asked of a forgotten workflow: the end told"] += 1
        return rec[0], tell, won

    def told_too(self, wf: str, epoch: int) -> int:
        """The epoch the end of `wf`, forgotten here and told in `epoch` to a placement
        question (`query_answer`), is told in too, or 0 (`original_yielded`)."""
        rec = self.of(wf)
        if rec is None or epoch != 0 or rec[3] != 0:
            return 0  # (an IF_DRIVER_GONE told in 0: its saga may not be over)
        return original_yielded(self.n.name, wf, (rec[1], rec[2]))

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
