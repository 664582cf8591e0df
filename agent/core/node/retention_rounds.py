"""Retention of acceptor records and learned decisions: by their round's life.

Theory of operation
-------------------
The part of the Node's retention (retention.py, `Retainer`, which owns it) that keeps
the records a recovery ballot may read after their workflow is forgotten here.

What is not forgotten with the workflow: the acceptor's records and the decisions
learned (tables `acceptor` and `learned`, and the acceptor core's memory of them).
Paxos keeps a chosen value only while a majority of its acceptors remember accepting
it: if they forget and answer blank, a recovery ballot of a participant still in doubt
(one that missed the decision, or holds a YES of an earlier round that aborted) can
find another value accepted at a minority (the coordinator's COMMIT that reached one
acceptor before the round aborted) and choose it. Being settled here does not prove
that no participant anywhere is in doubt about any round of the workflow (the seeded
soak found the violation, seed 201539 of range 200000, with them forgotten with the
workflow: an extra acceptor, told of no end, forgot by age a COMMIT chosen with the
coordinator that died, while the one participant, paused and restarted, was still in
doubt). An acceptor with no record of a round answers as if it never heard of it, so a
forgotten decision must be refused, never blank (acceptor.py, "A round's life"): every
acceptor refuses a recovery ballot of a round past its life (`Retention.round_life_s`:
`keep_ended_s` plus one replay window of skew; its creation time is signed in the
round), and any round of a coordinator no newer than its *horizon* there (the newest
creation time among that coordinator's rounds it forgot: table `horizons`). So once a
workflow is forgotten here, each acceptor record of it goes when its round is
`round_kept_s` old (its life and `late_message_s` more) by the wall clock, with its
learned decision and the horizon raised, in one write group (`of`,
`forget`); a learned decision without a record here goes as long after the
workflow's last mark (no ballot reads it). A re-placement round states its creation
time as a Paxos round does (replacement.py), and a classic 2PC workflow round has no
acceptors, so no record of it is made; only a record of a round stated without one (an
older release's) has no life and stays. docs/retention.md ("Forgetting acceptor
records") has the argument.

Cost: one heap of (when it may go, wall ms; the round's key), the soonest first; a
tick pops only what is due, and a stale entry (a record made since, a workflow marked
again) is skipped.
"""

from __future__ import annotations

import heapq
from typing import Any

__all__ = ["RoundLife"]


class RoundLife:
    def __init__(self, retainer: Any) -> None:
        # The Retainer that owns this part (typed loosely, as the Node's parts are): its
        # tracked workflows, and the tick's write group, opened once.
        self.r = retainer
        self.n = retainer.n
        self._kept_ms = int(retainer.policy.round_kept_s * 1000)
        # Rounds of forgotten workflows whose acceptor record waits for its round's
        # life to pass: (when it may go, wall ms; its key), the soonest first.
        self.heap: list[tuple[int, tuple[str, int]]] = []

    def restore(self, now: float) -> None:
        """After the Retainer's restore (its workflows tracked already)."""
        d = self.n.state
        # The rounds of workflows forgotten before: theirs wait for their life; a
        # learned decision without an acceptor record, as long again from now.
        self.heap = []
        for key, rec in d.acceptor.items():
            if key[0] not in self.r._entries and rec.tx.created_ms > 0:
                self.heap.append((rec.tx.created_ms + self._kept_ms, key))
        later = self.n.wall_ms(now) + self._kept_ms
        self.heap.extend((later, key) for key in d.learned
                         if key[0] not in self.r._entries and key not in d.acceptor)
        heapq.heapify(self.heap)

    def of(self, wf: str, stamp: int) -> None:
        """`wf` is forgotten (its last `endings` stamp): each acceptor record of it
        waits for its round's life (and `late_message_s`) to pass, from the creation
        time the round states; a learned decision without one, as long from the stamp
        (which is no earlier than the round's creation here; no ballot reads such a
        decision: an acceptor that never promised nor accepted anything of a round
        answers as if blank after any restart anyway, so when it goes is no matter of
        safety). A round stated without a creation time (0: an older release's) has no
        life: its record stays, as before rounds had one."""
        d = self.n.state
        for key in list(d.acceptor.of(wf)):
            created = d.acceptor[key].tx.created_ms
            if created > 0:
                heapq.heappush(self.heap, (created + self._kept_ms, key))
        for key in list(d.learned.of(wf)):
            if key not in d.acceptor:
                heapq.heappush(self.heap, (stamp + self._kept_ms, key))

    def forget(self, key: tuple[str, int], wall: int) -> None:
        """A round past its life (or a learned decision alone, above): its acceptor
        record and learned decision go, in memory and on disk, in this tick's write
        group, with its coordinator's horizon risen to its creation time (acceptor.py:
        a forgotten round is refused, never blank). Not if its workflow was marked
        again since (a late record or decision): it goes with that workflow again."""
        n = self.n
        d = n.state
        if key[0] in self.r._entries:
            return
        rec = d.acceptor.get(key)
        if rec is None and key not in d.learned:
            return  # gone already (pushed twice)
        if rec is not None and (rec.tx.created_ms <= 0
                                or rec.tx.created_ms + self._kept_ms > wall):
            return  # a record made since it was pushed: it goes by its own round's life
        if not self.r._opened:
            n.point("retention")
            self.r._opened = True
        horizon = n.acceptor.forget(key, rec.tx if rec is not None else None)
        if horizon is not None:
            assert rec is not None
            d.horizons[rec.tx.coordinator] = horizon
        if rec is not None:
            del d.acceptor[key]
            n.stats["retention: acceptor record forgotten"] += 1
        if key in d.learned:
            del d.learned[key]
            n.stats["retention: learned decision forgotten"] += 1

    def tick(self, wall: int) -> None:
        """Forget every round now past its life (`forget`)."""
        while self.heap and self.heap[0][0] <= wall:
            self.forget(heapq.heappop(self.heap)[1], wall)
