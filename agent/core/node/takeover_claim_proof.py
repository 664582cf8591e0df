"""The proof of the committed round a takeover claim shows (takeover_claims.py sends it).

Theory of operation
-------------------
A claim carries, to an acceptor that holds no step, the proof of the round
(the committed round as its coordinator stated it, and its COMMIT: `Round`, with the
COMMIT's certificate as we learned it, every participant's signed YES), and from
a claimant that won (it acts in that epoch) its certificate (`won`). The original
coordinator claiming past a gone holder shows its own COMMIT: its decision record,
or, that collected once every participant acknowledged it, the COMMIT its own
acceptor record of the round holds. That is as good a proof: the same signed YES of
every participant, which the acceptor checks, of the round its row says committed; an
ABORT there shows nothing, as before.

`round_proof` says what a claim to one domain shows: nothing to the original
coordinator or to a participant of the committed round (each holds the round itself),
nor from a domain whose committed round here is only its re-placement round; else the
round as its coordinator stated it at PREPARE (`WfInfo.stated`) with the COMMIT's
certificate we learned. `own_round_proof` is the original coordinator's own (it claims
past a later epoch's gone holder: agent/core/workflow/takeover_overtaken.py), signed
again by it with the electorate's acceptors.

Pure: reads the Node's state, no I/O.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.messages import VoteIn
from fedorch.core.node.takeover_grants import GrantSigner, StatedRound, sign_round
from fedorch.core.workflow.acceptor_grant import COMMIT, Round
from fedorch.core.workflow.takeover import Takeover

__all__ = ["own_round_proof", "round_proof"]


def round_proof(n: Any, sign: GrantSigner, wf: str, core: Takeover, to: str
                ) -> tuple[Round | None, StatedRound | None, tuple[VoteIn, ...]]:
    """What our claim shows an acceptor holding no step: the committed round, as its
    coordinator signed it at PREPARE (WfInfo.stated), and its COMMIT (the
    certificate we learned: every participant's signed YES)."""
    d = n.state
    round_ = d.committed.get(wf)
    if to == core.original or round_ is None or to in core.participants \
            and to in n.running.info(wf).placement.values():
        # A participant only of a re-placement is shown it: a step's new domain that
        # never learned its round's COMMIT holds nothing committed and answers as an
        # acceptor, on this proof (takeover soak seed 97000669: the original, back,
        # claimed past a gone holder for ever).
        return None, None, ()
    info = d.info.get((wf, round_))
    learned = d.learned.get((wf, round_))
    if info is None and wf in d.rows:
        return own_round_proof(n, sign, wf, core, round_)
    if info is None or not d.electorates.get(wf) or learned is None or not learned.commit \
            or info.lost:
        # A new domain's committed round here is its re-placement round (classic
        # 2PC, its own acceptors): no proof of the workflow's committed round, which
        # it never held; the acceptor refuses it for want of one, as it would.
        return None, None, ()
    return Round(round_, frozenset(info.placement.values()),
                 frozenset(d.electorates[wf]), COMMIT), info.stated, learned.votes

def own_round_proof(n: Any, sign: GrantSigner, wf: str, core: Takeover, round_: int
                    ) -> tuple[Round | None, StatedRound | None, tuple[VoteIn, ...]]:
    """The original coordinator's proof of its own committed round (it claims past a
    later epoch's gone holder: takeover_overtaken.py): its COMMIT as decided or
    learned here, whose signed YES name the round's participants, and the round
    signed again by its coordinator, us, with the electorate's acceptors."""
    d = n.state
    value = d.records.get((wf, round_)) or d.learned.get((wf, round_))
    accepted = d.acceptor.get((wf, round_))
    if value is None and accepted is not None and d.rows[wf].committed:
        # Its decision record collected once every participant acknowledged it: the
        # COMMIT it decided, as its own acceptor record of the round holds it
        # (takeover soak seed 8300672: no proof, the claim was refused for ever).
        value = accepted.decided or accepted.accepted_value
    if value is None or not value.commit:
        return None, None, ()
    participants = frozenset(v.domain for v in value.votes if v.round == round_)
    stated = sign_round(sign, wf, round_, n.name, participants,
                        core.electorate)
    return Round(round_, participants, frozenset(core.electorate), COMMIT), stated, \
        value.votes
