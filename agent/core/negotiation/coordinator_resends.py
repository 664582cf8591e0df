"""When a coordinator's PREPARE and COMMIT go again, and to whom, sans I/O.

A transport that drops what a peer does not take (the Node's) needs the coordinator to
send again what must arrive; the shells' calls retry, so they give no `resend_s` and
nothing is resent. Each round keeps one instant, `RoundState.next_resend`:

- while PREPARING, a PREPARE goes again every `resend_s` (consensus mode: the
  ConsensusOptions' `resend_s`) to each participant that has not voted, until the
  round's deadline, which stays the round's timer when there is no resend;
- once COMMITTED, the COMMIT goes to each participant that has not acknowledged it.
  Classic mode sends it to every participant at once and again every
  `decision_resend_s` (by default `resend_s`). Consensus mode sends it to nobody else
  at once (each participant learns it from the acceptors and acknowledges): one still
  silent after `commit_notice_s` is sent it, then again every `decision_resend_s`,
  both scaled by the round's width (`ConsensusOptions.notice_scale`), so a wide round
  is not flooded with COMMITs its participants are about to learn anyway.

Resending is safe because every message resent is idempotent at its receiver: a
PREPARE of a round already voted is answered with the same vote, a COMMIT already
learned is acknowledged again.
"""

from __future__ import annotations

from collections.abc import Callable

from fedorch.core.negotiation.rounds import (
    ConsensusOptions,
    RoundState,
    SendDecision,
    SendPrepare,
)


class Resends:
    def __init__(self, consensus: ConsensusOptions | None, resend_s: float | None,
                 decision_resend_s: float | None) -> None:
        self._consensus = consensus
        # None: nothing is resent (the shells), in either phase.
        self._prepare_s = consensus.resend_s if consensus is not None else resend_s
        self._decision_s = decision_resend_s or resend_s  # classic mode's COMMIT

    def prepare_timer(self, rnd: RoundState) -> float:
        """The timer of a round PREPARING: its deadline, or the next resend before it."""
        return rnd.deadline if self._prepare_s is None else min(rnd.deadline, rnd.next_resend)

    def commit_timer(self, rnd: RoundState, unacked: Callable[[], list[str]]) -> float | None:
        """The timer of a round COMMITTED: the next resend while one has not acknowledged."""
        return rnd.next_resend if self._prepare_s is not None and unacked() else None

    def round_begun(self, now: float, rnd: RoundState) -> None:
        if self._prepare_s is not None:
            rnd.next_resend = now + self._prepare_s

    def prepares_due(self, now: float, rnd: RoundState) -> list[SendPrepare]:
        """The PREPAREs to send again now (to the participants that have not voted)."""
        if self._prepare_s is None or now < rnd.next_resend:
            return []
        rnd.next_resend = now + self._prepare_s
        return [SendPrepare(domain, rnd.number, steps, dict(rnd.placement), rnd.acceptors)
                for domain, steps in rnd.participants().items() if domain not in rnd.votes]

    def commit_announced(self, now: float, rnd: RoundState) -> None:
        """The round committed: when the COMMIT first goes to the unacknowledged."""
        c = self._consensus
        if c is None:
            if self._decision_s is not None:
                rnd.next_resend = now + self._decision_s
        else:
            rnd.next_resend = now + c.commit_notice_s * c.notice_scale(len(rnd.participants()))

    def commits_due(self, now: float, rnd: RoundState,
                    unacked: Callable[[], list[str]]) -> list[SendDecision]:
        """The COMMITs to send now (to the participants `unacked()` names)."""
        if self._prepare_s is None or now < rnd.next_resend:
            return []
        c = self._consensus
        if c is None:  # classic, with resends: the unacknowledged are sent it again
            assert self._decision_s is not None
            rnd.next_resend = now + self._decision_s
        else:
            rnd.next_resend = now + c.decision_resend_s \
                * c.notice_scale(len(rnd.participants()))
        return [SendDecision(d, rnd.number) for d in unacked()]
