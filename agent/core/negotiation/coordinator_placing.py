"""Where a coordinator's rounds go: each round placed, and who is not asked again, sans I/O.

Every round of a workflow is placed afresh (through the injected Placer), away from
the domains that refused each step in an earlier round: a NO, silence at the
deadline, or a participant lost while PREPARING. A NO of ROUND_DECIDED refuses
nothing (the participant learned the round's ABORT before its PREPARE: the
participants' recovery decided it), so it excludes no one. In consensus mode the
round's acceptors are fixed here too (acceptor_set), and its creation time as stated.

Apart from coordinator.py because placing a round reads none of the commit protocol's
state: it is given the placer, the options and the round that failed, and gives back a
RoundState (or why no placement was found) and the refusals to record. The
coordinator keeps the refusals (`Coordinator.refusals`, which its restore and the
Node's tables read and set) and decides when a round begins and ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet

from fedorch.core.negotiation.abort_reasons import unplaceable_text
from fedorch.core.negotiation.acceptor_set import choose_acceptors
from fedorch.core.negotiation.messages import ROUND_DECIDED
from fedorch.core.negotiation.rounds import (
    ConsensusOptions,
    PlacementResult,
    Placer,
    Refusal,
    RoundState,
)


class Placing:
    def __init__(
        self,
        workflow_id: str,
        placer: Placer | Callable[[Mapping[str, AbstractSet[str]]], PlacementResult],
        prepare_timeout_s: float,
        consensus: ConsensusOptions | None,
    ) -> None:
        self._workflow_id = workflow_id
        self._placer = placer
        self._timeout = prepare_timeout_s
        self._consensus = consensus
        self._excluded: dict[str, set[str]] = {}  # step -> domains that refused it

    def place(self, now: float, number: int) -> RoundState | str:
        """Round `number`, placed away from the refusers; or why no placement was found."""
        result = self._placer({k: frozenset(v) for k, v in self._excluded.items()})
        if not result.ok:
            return f"no placement: {unplaceable_text(result.unplaceable)}"
        rnd = RoundState(number, dict(result.assignment), now + self._timeout)
        if self._consensus is not None:
            rnd.acceptors = self._acceptors(list(rnd.participants()))
            if self._consensus.wall_ms is not None:
                rnd.created_ms = max(1, self._consensus.wall_ms(now))  # 0: none stated
        return rnd

    def refused(self, rnd: RoundState, *, timed_out: bool) -> list[Refusal]:
        """The refusals of a failed round, each refuser excluded for the steps it was
        asked. A NO ends the round at once; domains still to vote are not refusers
        (they only hear ABORT). At the deadline, silence counts as refusal."""
        refusals = []
        asked = rnd.participants()
        for domain, steps in asked.items():
            vote = rnd.votes.get(domain)
            if vote is None and not timed_out or vote is not None and vote.yes:
                continue
            reason = vote.reason if vote is not None else f"no vote within {self._timeout:g}s"
            refusals.append(Refusal(rnd.number, domain, steps, reason))
            if vote is not None and reason == ROUND_DECIDED:
                # It learned the round's ABORT before our PREPARE (the participants'
                # recovery decided it): it refused nothing, and stays a candidate.
                continue
            self.exclude(domain, steps)
        return refusals

    def exclude(self, domain: str, steps: Sequence[str]) -> None:
        """`domain` is not asked for `steps` again (in this workflow's later rounds)."""
        for step in steps:
            self._excluded.setdefault(step, set()).add(domain)

    def _acceptors(self, participants: Sequence[str]) -> tuple[str, ...]:
        c = self._consensus
        assert c is not None
        extras = c.extra_acceptors() if callable(c.extra_acceptors) else c.extra_acceptors
        return choose_acceptors(self._workflow_id, c.me, participants,
                                max_acceptors=c.max_acceptors,
                                min_acceptors=c.min_acceptors, extras=extras)
