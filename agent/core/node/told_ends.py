"""An end a Node was told and keeps, replaced by a later epoch's proven end.

Theory of operation
-------------------
A coordinator tells the end it holds (a loss verdict's, one on results, a cancel's)
before it makes it, and makes it once enough electors acknowledged it (domain_loss.py).
A Node told such an end keeps it at once: a participant ends the workflow on it
(running_ends.py, `on_final`), an elector holding no step keeps it (elector_ends.py). So
an end kept at a Node that did not make it may be one its teller never made: the
teller died, or followed a later epoch, before enough electors acknowledged it.

A successor that won a later epoch may then decide another end (a cancel its client
asked of it, a verdict on a domain lost meanwhile). Its end notice carries its
epoch's certificate. This part makes such a notice replace the kept end, so that
every Node ends the workflow as the latest coordinator did, at a participant as at
the coordinator: there the told end is only held (domain_loss.py) and is void the
moment its holder follows a later epoch (`_void`); here it is already kept, so it is
replaced instead.

Why that is sound. The notice is of epoch m >= 1, proven by a majority's signed
grants (checked here against the electorate held here), not older than any epoch this
Node followed or granted (of that very epoch only from the holder followed here: a
saga plan of epoch m may have made this Node follow its sender before the end notice
came, saga_plans.py), and its end differs from the one kept here, which this Node did
not make (the holder of the epoch held here is another) and whose proof, if any, is
of an older epoch. The kept end is then of an epoch k < m: a Node that ended the
workflow grants no later epoch (takeover_claims.py) and takes no older end once it
holds a later epoch (authority.py), and the holder of epoch m tells one end in it.
Had its teller made it, the electors that acknowledged it with the teller would be
more than a minority of the electorate; every one of them answers a claim with that
end instead of a grant, and none acknowledges an end of epoch k once it granted a
later one (authority.py, takeover_claims.py, elector_ends.py). So the majority that
granted m would hold one of them, and the claimant would have taken that end and
announced it, not decided another. The epoch-m end differs: so the kept
end was never made, and never will be (the majority that granted m refuses it). The
epoch-m end is told first and held the same way, so a yet later epoch's end replaces
it alike, and one made is the one every later epoch finds.

An end made here (by the original coordinator, or by this Node as a successor) is
never replaced: by the argument above, a later epoch's end cannot differ from it. An
end notice without a certificate (a claimant that tells on an end it learned: the
takeover part's Announce), of an epoch older than the one held here, or of that
epoch from another than its holder, replaces nothing either: it is taken as before.

Pure: reads and writes the Node's tables and outbox only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.node.records import FinalMsg
from fedorch.core.node.takeover_claims import held_of


def later_end_replaces(n: Any, src: str, msg: FinalMsg) -> bool:
    """If `msg`, an end notice let through by the boundary, is a later epoch's proven
    end that differs from the end kept at Node `n`, which `n` was told and did not
    make: the kept end is replaced, in the write of the turn (its proof kept with it,
    the watchers told, the original coordinator's row too). The caller then follows
    the later epoch and acknowledges it. True if replaced."""
    d = n.state
    wf = msg.workflow_id
    kept = d.final.get(wf)
    if n.takeover is None or kept is None or kept is msg.state or msg.epoch < 1 \
            or not msg.won or msg.owed or msg.saga_over:
        return False
    epoch, holder = held_of(d, wf, coordinator_of(wf))
    if holder == n.name:
        return False  # made here
    if msg.epoch < epoch or (msg.epoch == epoch and src != holder):
        return False  # older than the epoch followed or granted here, or a rival's
    proof = d.end_proofs.get(wf)
    if proof is not None and proof[0] >= msg.epoch:
        return False  # the end kept is of that epoch (or a later one) already
    if not n.takeover.proven(wf, msg.epoch, src, msg.won):
        return False
    n.point("told end replaced by a later epoch's")
    n.stats["told end replaced by a later epoch's"] += 1
    d.final[wf] = msg.state
    d.end_proofs[wf] = (msg.epoch, src, msg.won)
    row = d.rows.get(wf)
    if row is not None:  # the original coordinator, which followed an earlier successor
        d.rows[wf] = replace(row, state=msg.state)
    n.mark(wf, ended=True)
    n.out.status.append((wf, msg.state))
    return True
