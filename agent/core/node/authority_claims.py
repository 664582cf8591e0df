"""Who claims a workflow's coordination: the claim a grantee of ours yielded to.

Theory of operation
-------------------
A takeover claim comes from a party of the workflow as this Node knows it
(authority_ends.py `claim`: a participant, the original coordinator, the claimant this
Node granted its latest epoch to, or anyone once the workflow ended here). A step's
new domain (a re-placement's) is a participant at this Node only once the placement's
tell reached it (authority_steps.py `epoch_of`), and that tell comes from the
coordinator that placed the step again alone. A member that missed it (down as it
came, its acknowledgement never sent) and whose coordinator then died for good never
learns of that domain from anyone: it refuses the new domain's claims for ever.

That is harmless while another party can win, and fatal when the new domain is the
claimant the others follow. Takeover one-way soak seed 206402979 (`--keep-ended-s 5
--end 300`): the original d2 placed step s3 again from d3 onto d0 and died for good;
d6, crashed as the tell reached it, never learned of d0. d6 granted epoch 1 to d3;
d3, shown by d5's denial that d5 held epoch 1 for d0, a better-ranked rival, yielded
to d0 and granted it (core/workflow/takeover_split.py). d0 held the grants of d3 and
d5 of an electorate of four (d2, d3, d5, d6) and needed d6's; d6 refused its claim
as `not_participant` (148 times), and the workflow never ended.

The rule here: a claim is let through when it shows (`ClaimMsg.grants`, the grants a
claimant outside the electorate collected) the signed grant, of the very epoch it
claims, to the claimant, by the domain this Node granted its latest epoch to, verified
here as that domain's in the workflow's electorate (takeover_proofs.py
`shown_grants`). Our grantee, a claimant with standing here, gave its vote of that
epoch to the claimant: the rival it yielded to, or one it granted a later epoch. This
extends the rule for a rival our own claim yielded to (authority_ends.py, 2PC seed
9100469) by one hop: our grantee's yield, not ours. Otherwise `claim` rules.

Why it is safe. The authority table only says whom this Node hears; it grants nothing.
Once heard, the claim meets the same core as every claim (takeover_claims.py
`on_claim`): `may_grant` grants an epoch to one claimant only, never below the epoch
held, so our vote of the epoch we granted our grantee is never given twice; the
claimant is denied that epoch (naming our grantee), claims the next one, and is
granted it only as any claim above the epoch held would be. At most one driver acts in
an epoch, as before: the grants of a majority of the electorate still decide. No step
runs twice for it: the winner drives from the placements its grants carry, as any
successor does. The grant shown is verified (a claimant cannot make one up), and is of
the claimant by name and epoch (one shown for another does not count).

Pure: reads the Node, changes nothing.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.authority_ends import claim as claim_by_party
from fedorch.core.node.records import ClaimMsg

__all__ = ["claim", "grantee_yielded"]


def claim(node: Any, src: str, msg: ClaimMsg, votes: Any, proven: Any) -> None:
    if grantee_yielded(node, src, msg):
        return
    claim_by_party(node, src, msg, votes, proven)


def grantee_yielded(node: Any, src: str, msg: ClaimMsg) -> bool:
    """Does `msg` show the verified signed grant of its epoch to `src` by the domain
    this Node granted its latest epoch of the workflow to (another than `src`)?"""
    takeover = getattr(node, "takeover", None)
    if takeover is None or not msg.grants:
        return False
    wf = msg.workflow_id
    granted, grantee = node.state.granted.get(wf, (0, ""))
    if granted < 1 or grantee in ("", src, node.name):
        return False
    electorate = takeover.electorate_of(wf)
    if not electorate or grantee not in electorate:
        return False
    return grantee in takeover.proof.shown_grants(wf, msg.epoch, src, msg.grants,
                                                  frozenset(electorate))
