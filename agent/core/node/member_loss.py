"""What membership's DEAD and LEFT do to a Node's negotiations.

Theory of operation
-------------------
The driver posts its membership view as `MemberState` / `MemberViews` inputs; the
Node keeps it (`Node.members`). A member that the view now says is DEAD or LEFT
(`GONE`; never SUSPECT, which may only be slow) will not answer, and waiting for it
only delays what it was waited for. On each such change, once every change of the
look is applied, `MemberLoss.lost` acts on the two waits a Node has that a lost
member ends:

- in doubt: every transaction this Node voted YES in, has no decision of, and whose
  coordinator is the lost member starts its recovery now (Termination.coordinator_lost:
  the acceptors are asked at once, this participant's ballot follows after its turn,
  by rank) instead of after its whole lease. A YES voted while the view already says
  its coordinator is gone is caught when it is tracked (Termination's
  `coordinator_gone`, the `gone` predicate here). Safe whatever the truth: Paxos
  lets anyone propose at any time and one value is chosen; a live coordinator's
  COMMIT may lose to an early ABORT, never both;
- coordinating: every round this Node is preparing in which the lost member was
  asked and has not voted aborts now, the refusal naming the member
  (Coordinator.domain_lost), and the workflow is placed again without it, rather
  than at the round's prepare timeout. A YES it gave stands: a COMMIT still comes
  only from every YES. The Node's own placer leaves out members the view says are
  gone (node.py, `placer`), so the next round does not ask another one.

What is gone in the view is not remembered beyond it: a restored Node knows no view
until its driver posts it again, and then the changes act as above (its in-doubt
transactions were tracked again by the restore; its rounds in preparation were
aborted by it). A member that comes back ALIVE changes nothing that was started:
a recovery goes on to its value, a round aborted stays aborted.

A round is found by scanning the coordinators with a deadline (Coordinators.
preparing_with), not every coordinator ever: a preparing round always has one.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.workflow.takeover import GONE_AT_ONCE

GONE = GONE_AT_ONCE  # DEAD or LEFT: acted on at once; SUSPECT changes nothing


class MemberLoss:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node

    def gone(self, domain: str) -> bool:
        """Does the view say `domain` is DEAD or LEFT now? Never this Node itself,
        whatever a driver tells it: it is here to ask."""
        return domain != self.n.name and self.n.members.get(domain) in GONE

    def lost(self, now: float, domains: list[str]) -> None:
        """The view now says each of `domains` is DEAD or LEFT (it did not before)."""
        n = self.n
        for domain in domains:
            state = n.members[domain]
            moved = n.termination.coordinator_lost(now, domain)
            if moved:
                n.stats["in doubt, coordinator gone: recovery at once"] += len(moved)
            for core in n.coordinators.preparing_with(domain):
                refused = len(core.refusals)
                core.domain_lost(now, domain, state)
                if len(core.refusals) > refused:  # it was silent: the round is over
                    n.stats["round aborted: a silent participant gone"] += 1
                n.negotiation.run(now, core.next_actions(), core)
        n.negotiation.run(now, n.termination.next_actions())
