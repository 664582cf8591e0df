"""A workflow's own COMMIT learned without its coordinator: the placements asked first.

Theory of operation
-------------------
A participant learns its round's COMMIT from the round's coordinator (its notice, or
its answer to a query), from the acceptors in the coordinator's own ballot while its
lease still runs (`Learned.by_coordinator`), or else without the coordinator: from a
recovery ballot, an acceptor's answer, a decision another participant, an acceptor or
a successor relays. Only the coordinator's word is fresh about placements: its notice
names the steps placed elsewhere since (Decision.moved, placed_here.py `moved_away`),
and in the coordinator's own ballot within the lease no loss verdict can have placed
anything again yet. Learned any other way, the COMMIT says nothing of what its
coordinator did since: while this Node was cut off its coordinator may have judged
it DEAD and placed its steps elsewhere, and the tell of that placement may have been
in the coordinator's memory only (a restore loses it) or may still be on its way.
Started at once, such a step would run here beside its new domain, its result refused
by its placement epoch (the lease bounded the overlap, it did not prevent it).

So such a workflow is held as one in doubt at a restart is (restart_check.py): its
progress is built, nothing of it starts, and once built the coordinator it follows
(the original, or the holder of a later epoch) is asked where its steps are now
(`PlacementQuery`); the answer's placements are taken, and its steps start once each
unfinished one still placed here is confirmed at its placement epoch. The ask waits
for no deadline of its own: a coordinator that never answers is replaced by a
successor, which answers once it acts (restart_check.py, "Nothing waits for ever").
So only with coordinator takeover composed: without it, a coordinator dead for good
would leave the workflow's steps unstarted for ever (the simulator's scenario of a
coordinator dead after its COMMIT was chosen: every learner still runs its step), and
the step starts at once as before, the lease bounding an overlap with a new domain.
A round that placed a step again (`WfInfo.lost`) is not held here: its new domain
takes its placement from that round's COMMIT (placed_here.py `committed_here`).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.messages import Key, TxInfo, Value


def ask_first(n: Any, key: Key, value: Value, tx: TxInfo | None) -> None:
    """`value`, learned here without `key`'s coordinator: a COMMIT of a workflow's own
    round that commits our prepared hold of it holds the workflow until its placements
    are confirmed (restart_check.py, `ask_first`)."""
    if n.takeover is None or not value.commit or tx is None or tx.coordinator == n.name \
            or n.name not in tx.participants:
        return  # without takeover a coordinator dead for good would never answer
    info = n.state.info.get(key)
    wf = key[0]
    if info is None or info.lost or wf in n.state.committed or wf in n.state.final \
            or n.participant.status(key) != "prepared":
        return
    n.stats["COMMIT learned without its coordinator: placements asked first"] += 1
    n.restart_check.ask_first(wf)
