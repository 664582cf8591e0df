"""A claim answered by an acceptor that holds no step of the workflow.

Part of the Node's takeover claims (takeover_claims.py, whose header tells when a claim
is answered this way). An elector of the committed round that holds no step grants only
on the claim's proof of that round, checked against its own acceptor records; the rules
are agent/core/workflow/acceptor_grant.py's, and this module turns its verdict into the
grant record and the answer. It is its own module because it answers from the acceptor
records alone, apart from the participant's and coordinator's answers beside it.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg
from fedorch.core.workflow.acceptor_grant import ABORT, COMMIT, Round, acceptor_grant


def answer_as_acceptor(tk: Any, src: str, msg: ClaimMsg) -> None:
    """A claim of a workflow with no step here: an acceptor of its round answers, on
    the claim's proof, checked against its records (acceptor_grant). `tk` is the
    Node's takeover part."""
    n = tk.n
    wf = msg.workflow_id
    d = n.state
    records = []
    for (w, round_), rec in d.acceptor.items():
        if w == wf:
            decided = rec.decided or d.learned.get((w, round_))
            records.append(Round(round_, frozenset(rec.tx.participants),
                                 frozenset(rec.tx.acceptors), None if decided is None
                                 else COMMIT if decided.commit else ABORT))
    proof, error = msg.proof, None
    if proof is not None \
            and not tk.evidence.round_proof_holds(wf, proof, msg.stated,
                                                  msg.commit):
        proof, error = None, ("bad_round_proof", "not the committed round as signed")
    epoch, holder = d.granted.get(wf, (0, wf.rpartition(".")[0]))
    verdict = acceptor_grant(n.name, src, msg.epoch, (epoch, holder), records,
                             proof, error, original=wf.rpartition(".")[0])
    if verdict.refused:
        n.stats["takeover claim unknown here"] += 1
        n.stats[f"takeover claim refused {verdict.reason}"] += 1
        n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, 0, ""))
        return
    if not verdict.granted:
        n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder,
                                   won=tk.proof.proof_of(wf, epoch, holder)))
        return
    if msg.won:  # the winner tells the acceptors that granted it: kept, relayed
        tk.proof.saw_proof(wf, msg.epoch, src, msg.won)
    n.point("takeover epoch")
    d.granted[wf] = (msg.epoch, src)
    n.stats["takeover granted by an acceptor only"] += 1
    if proof is not None and not records:
        n.stats["takeover granted on a proof of the round"] += 1
    assert verdict.basis is not None  # a grant names its round and electorate
    grant = tk.proof.grant(wf, msg.epoch, src, verdict.basis.acceptors)
    n.send(src, ClaimAnswerMsg(wf, msg.epoch, True, msg.epoch, src, grant=grant,
                               **n.placed_here.carried(wf)))
