"""The Node's membership input: a look of the driver's view, its changes applied, sans I/O.

`MemberState` (one domain's state) and `MemberViews` (the changes of one look) come in
here (Node.step). Every change of the look is applied to `Node.members` before
anything acts on it, so nothing acts on a view half told; then the domains gone now
and not before (DEAD or LEFT; SUSPECT changes nothing there) go to the parts that act
on a loss (member_loss.py, domain_loss.py, replacement.py, saga_loss.py), a domain
back is told the end notices owed it (told_again.py), and takeover and self-fencing
read what changed. The theory of operation ("Membership's DEAD and LEFT") is node.py's.

Apart from node.py because taking a view is one input of its own, routed to the
parts in one order; the function takes the Node (typed loosely: it imports this
module) and does what its method did.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.inputs import MemberState
from fedorch.core.node.told_again import domains_back


def take_views(n: Any, now: float, changes: tuple[MemberState, ...]) -> None:
    changed, was_gone = set(), set()
    before: dict[str, str | None] = {}
    for change in changes:  # all applied first: nothing acts on a view half told
        if n.members.get(change.domain) != change.state:
            before.setdefault(change.domain, n.members.get(change.domain))
            if n.member_loss.gone(change.domain):
                was_gone.add(change.domain)
            n.members[change.domain] = change.state
            changed.add(change.domain)
    # Gone now and not before (DEAD or LEFT; a DEAD that LEFT is no news): the
    # in-doubt recover and the rounds waiting for it abort at once (member_loss.py);
    # SUSPECT changes nothing there.
    lost = sorted(d for d in changed - was_gone if n.member_loss.gone(d))
    if lost:
        n.member_loss.lost(now, lost)
        n.domain_loss.lost(now, lost)  # the steps placed there, where we drive
        n.replacement.lost(now, lost)  # re-placement rounds asking them
        n.compensating.loss.lost(now, lost)  # compensations owed there (saga_loss.py)
    domains_back(n, now, before)  # end notices owed one back: now (told_again.py)
    if changed and n.takeover is not None:
        n.takeover.member_changed(now, changed)
    if before and n.fencing is not None:
        n.fencing.views_changed(now, before)
        n.fencing.asks.views_changed(before)  # a lapse of contact (start_asks.py)
