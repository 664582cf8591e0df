"""The members placement may choose from, as this agent sees them: one rule for the
first placement of a workflow (coordination) and for a lost step's re-placement
(replacement), so that a domain one of them would refuse the other does not pick.

SUSPECT members are candidates, ranked after ALIVE ones (a suspicion is not a death:
core/workflow/placement.py); DEAD and LEFT ones are not; a member whose key is revoked
here is not either, and placement names that as the reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedorch.core.workflow.placement import Candidate

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext


def key_revoked(agent: AgentContext, domain: str) -> bool:
    keys = agent.trust.keys_of(domain)
    return keys is not None and keys.current is None and bool(keys.revoked)


def placement_candidates(agent: AgentContext) -> list[Candidate]:
    return [Candidate.of(m.record, m.state, revoked=key_revoked(agent, m.domain))
            for m in agent.membership.members() if m.record.domain]
