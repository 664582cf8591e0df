"""A domain that follows a later epoch's holder not known to drive: the original's
saga tells are taken, and its reports go to the original too.

Theory of operation
-------------------
A domain that ended a workflow follows the holder of a later epoch (e >= 1) from the
moment it grants that holder's claim (takeover.py, `Persist`): a claim for the saga's
open plan, made by a participant whose view said the driver was gone. From then on
it takes the saga's tells only from that holder (authority_steps.compensate), and the
original coordinator's are refused. That is right while the holder drives the saga
or will (it wins, adopts the plan and tells it). It is wrong when the holder never
drives: its claim ended without a win, the original having told the saga over first
(takeover_late_grants.py: the claimant then tells its granter the end in the granted
epoch, "nothing more is driven", and may forget the workflow). But the saga over at
the original can start again: a SUCCEEDED run that reaches it late joins the saga
(saga_results.py), and a run of this very domain does, when a cut kept its report
in (a step placed elsewhere meanwhile, its run here an older placement's:
saga_runs.py). The original then tells this domain the compensation, and the domain,
following a holder that drives nothing, refused it for ever; the step stayed
uncompensated where it SUCCEEDED (simulator seed 128000131 with `--one-way`: d3's
messages got out to nobody, d2 claimed for the plan while a partition hid d1, d3
granted, d1 told the saga over, d2 got the grant late and told d3 the bare end, and
d3's run of s1 then reached d1).

The rule (`original_drives_too`). A domain whose later epoch's holder followed is
neither itself nor the original, and has not shown this domain that it won (no
certificate kept here: `Proofs.proof_of`; no end of that epoch or a later one proven
here: `end_proofs`), and which holds the workflow's end FAILED or CANCELLED (the ends
a saga is owed for) takes the original's compensation tells as it takes the holder's,
and reports each attempt's end to both (Compensating.reports_to), as it does for a
holder its view says is gone. An acknowledgement from either is the report's.

The driver before the grant. The driver whose saga reopens is not always the
original: the domain may have followed a successor that ended the workflow in its
epoch (e >= 1) and drives the saga, before it granted a still later claim; and the
claimant may be the original itself, told the saga over by that driver (simulator
seed 150000018 with `--one-way`: d3 followed d0, epoch 1's driver, granted the
original d2's claim of epoch 2, d2 told it the end bare; a late result reopened d0's
saga, and d0's tell of s1 was refused at d3 for ever). The domain cannot tell that
driver from the message (a tell carries no epoch), so it writes it as it grants
(`drivers_before`, in the grant's write: takeover.py, `Persist`), and the rule
takes that driver's tells and reports to it as it does the original's
(`drivers_too`); with the holder the original, the rule holds only where such a
driver is written (else the original is the holder, taken anyway).

Why safe. It is the "two drivers" case compensating.py argues already: each attempt
number runs once here, its record (`comp_runs`) the idempotency key, answered to
whoever asks, and only for a step this domain's own record says SUCCEEDED here
(`_refusal`); so a compensation runs at most `1 + retries` times in all whichever
driver tells it. The end it compensates for is the one held here, the original's
(a later epoch's end proven here, or its holder's win, keeps the old rule: only that
holder is taken); a domain that never granted the claim takes the original's tells
on the same terms already. What the grant promised the claimant is that no older
epoch decides the workflow through this domain: a saga's compensation decides
nothing; the end was made before.

Why not narrower. The holder's bare end (the late grant's tell) is what says it
drives nothing, but a claimant that told the end on, and drives, tells it bare too:
nothing here says which end came, nor does any durable record of how this domain came
to follow the holder. Proofs of wins seen are in memory: after a restart a holder
that did win counts as unproven here, which only lets both drivers tell, as above.
So the old rule's test of a live holder now gives that holder a proven end
(tests/unit/core/node/test_compensating_takeover.py).

Pure: reads the Node, changes nothing.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.workflow.lifecycle import OWING


def drivers_too(node: Any, wf: str) -> tuple[str, ...]:
    """The drivers of `wf`'s saga whose tells this Node takes, and to which it reports,
    besides the holder it follows (see the header, "The driver before the grant"):
    the original, and the driver followed until the grant where that was another, while
    `original_drives_too`; () otherwise."""
    if not original_drives_too(node, wf):
        return ()
    original = coordinator_of(wf)
    before = node.state.drivers_before.get(wf, original)
    holder = node.state.epochs[wf][1]
    return tuple(dict.fromkeys(x for x in (original, before) if x not in (holder, node.name)))


def original_drives_too(node: Any, wf: str) -> bool:
    """Does this Node take the saga tells of `wf`'s original coordinator, and report to
    it, while it follows a later epoch's holder that has not shown it won (see the
    header)?"""
    d = node.state
    held = d.epochs.get(wf)
    if held is None or held[0] < 1 or node.takeover is None:
        return False
    epoch, holder = held
    if holder == node.name or d.final.get(wf) not in OWING \
            or holder == d.drivers_before.get(wf, coordinator_of(wf)) == coordinator_of(wf):
        return False
    proof = d.end_proofs.get(wf)
    if proof is not None and proof[0] >= epoch:
        return False  # a later epoch's end proven here: its holder drives
    return node.takeover.proof.proof_of(wf, epoch, holder) == ()
