"""A held end at a Node that is an elector of the workflow and nothing more.

Theory of operation
-------------------
A coordinator tells the end it holds (a loss verdict's, one on results, a cancel's:
domain_loss.py) to every elector of the workflow, the committed round's acceptors,
before it makes it, and makes it once the electors that have not acknowledged it,
itself aside, are fewer than a majority of the electorate. An elector that holds a
step is a participant and takes the end as one (running_ends.py, `on_final`). This module
is what an elector holding no step and no vote of the workflow does with it: an extra
acceptor of the round, or one whose Accept was lost and that knows nothing of the
round (the coordinator counts it as told, so it must not acknowledge an end it would
not keep).

It keeps the end in `final` (with the successor's certificate in `end_proofs`, and
follows that epoch, when a successor told it) in the write its acknowledgement waits
for, and from then on answers every takeover claim with that end instead of a grant
(takeover_claims.py: a workflow ended here is not taken over), as a participant does.
The proof goes first, in a write group of its own ("end proof kept"), then the end, the
epoch followed and retention's mark in one group: a crash between the two leaves a
proof with no end, read by nothing (`EndNotices.end_proof` shows a proof only with
the end), so this Node, back, answers as one that granted the later epoch and holds no
end; the end comes again from its teller, or an older epoch's end is answered with
that later epoch (below). Before, the end went first and its proof and epoch in the
next group: a crash between them left an end with no proof, which answers an older
epoch's end neither with the later end (no proof to show) nor with the later epoch
(an end is held), so it was refused as stale, silently; its successor dead for good,
the original coordinator back resent its loss verdict for ever and stayed RUNNING
(takeover soak seed 140103976, with a cut one way).

Why the end is then safe to make. A later coordinator must win a later epoch with the
grants of a majority of the electorate. The electors holding the end, with the
coordinator that made it, are more than a minority, so that majority holds one of
them: asked, it answers with the end, which the claimant takes and announces (the
takeover part's Announce), or the claim never wins. An elector acknowledges an end of
epoch k only while it holds no later epoch (authority.py refuses a successor's end
without its certificate, and lets an older epoch's through only to be answered here,
never acknowledged): so every acknowledgement counted was given by an elector that
will answer a later claim with that very end. The argument is the same for an extra
acceptor as for a participant; the only difference is that it has no progress, no
holds and no steps to stop.

An older epoch's end (the original coordinator back after its successor acted) is not
acknowledged: answered with the later end kept here and its proof
(EndNotices.answer_overtaken), or, none kept, with the later epoch this elector granted
and its certificate where it keeps one, so that the original follows it
(takeover_claims.py) and a claim of the next epoch can end the workflow. Shown no
proof (the successor died before it sent its certificate, or never won), the
original does not follow; where its view holds that holder gone it claims the next
epoch itself (agent/core/workflow/takeover_overtaken.py), else its end waits. A later epoch's
proven end that differs from the one kept here replaces it (told_ends.py: the kept
end was never made) and is followed. Forgotten here since (retention.py), a
participant or an elector alike, the workflow's record answers an older epoch's end
the same way (`forgotten_later_end`: the end, the epoch held and its holder, as
ended_records.py answers a claim): with no row left, that older end was kept and
acknowledged as an elector's, and the original made it against the end this Node had
taken (takeover soak seed 115458).

Pure: reads and writes the Node's tables and outbox only.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, FinalMsg
from fedorch.core.node.takeover_claims import held_of
from fedorch.core.node.told_ends import later_end_replaces


def elector_takes(n: Any, src: str, msg: FinalMsg) -> bool:
    """An end notice at Node `n` that holds no step and no vote of its workflow, with
    takeover composed (the boundary let it through: authority.py): kept and
    acknowledged, or, older than the epoch held here, answered (see the header).
    False where it is not such a Node (a participant's `on_final` takes it)."""
    d = n.state
    wf = msg.workflow_id
    if n.takeover is None or msg.owed or msg.saga_over or wf in d.rows \
            or wf in d.committed or n.participant.keys_of(wf):
        return False
    if wf in d.final and n.end_notices.answer_overtaken(src, msg):
        return True
    if forgotten_later_end(n, src, msg):
        return True
    if later_end_replaces(n, src, msg):  # a told end, never made (told_ends.py)
        d.epochs[wf] = (msg.epoch, src)
        n.send(src, AckMsg(("final", wf, n.name), gen=msg.gen))
        return True
    epoch, holder = held_of(d, wf, wf.rpartition(".")[0])
    if wf not in d.final and msg.epoch < epoch:
        # Granted (or followed) a later epoch: not acknowledged; shown to its sender
        # with its proof, so it follows it (takeover soak seed 4600665).
        n.stats["end of an overtaken epoch answered with the later epoch"] += 1
        n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder,
                                   won=n.takeover.proof.proof_of(wf, epoch, holder)))
        return True
    if wf not in d.final:
        if msg.epoch >= 1:  # the proof first, in a group of its own: see the header
            n.end_notices.keep_end_proof(src, msg)
        n.point("end kept by an elector holding no step")
        n.stats["end kept by an elector holding no step"] += 1
        d.final[wf] = msg.state
        if msg.epoch >= 1:
            d.epochs[wf] = (msg.epoch, src)
        n.mark(wf, ended=True)
    n.send(src, AckMsg(("final", wf, n.name), gen=msg.gen))
    return True


def forgotten_later_end(n: Any, src: str, msg: FinalMsg) -> bool:
    """An end notice of an epoch older than the one a forgotten workflow's record
    holds (ended_records.py): answered with that record's end, epoch and holder, as a
    claim is, never kept nor acknowledged. True if answered (see the header)."""
    retain = n.retain
    rec = retain.ends.of(msg.workflow_id) if retain is not None else None
    if rec is None or msg.epoch >= rec[1]:
        return False
    n.stats["end of an overtaken epoch answered from a forgotten workflow's record"] += 1
    n.send(src, ClaimAnswerMsg(msg.workflow_id, msg.epoch, False, rec[1], rec[2], rec[0]))
    return True
