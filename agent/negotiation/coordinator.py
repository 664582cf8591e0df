"""Coordinator core: one workflow's two-phase admission, sans I/O.

Theory of operation
-------------------
The agent that takes a submission coordinates it. Admission runs in numbered
rounds; each round is its own transaction, identified by (workflow, round) and
never reused. A round places every step (through the injected Placer), sends
PREPARE to each participant domain with the steps asked of it, and collects
signed votes until all are in or the prepare timeout passes:

* every participant voted YES: the round's decision is COMMIT. The core emits
  PersistDecision first and only then SendDecision to each participant, so the
  decision is on disk before anyone hears of it (the shell runs actions in
  order). The COMMIT carries the votes: a commit certificate.
* any NO, or a missing vote at the timeout: the round's decision is ABORT
  (persisted, then sent to the participants that may hold a reservation). The
  refusers are excluded for the steps they were asked and the workflow is
  placed again, up to `max_rounds`; then the workflow is ABORTED and its
  reason lists every refusal.

Time comes in as `now` (seconds); the next deadline comes out of get_timer();
actions come out of next_actions(). Votes for other rounds are late or
duplicated: a late YES for an aborted round gets that round's ABORT again, so
a participant that missed it releases its reservation; anything else is
ignored. Inputs the protocol does not allow raise RemoteProtocolError.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Protocol

from agent.negotiation.errors import LocalProtocolError, RemoteProtocolError


class Phase(enum.Enum):
    IDLE = "IDLE"
    PREPARING = "PREPARING"
    COMMITTED = "COMMITTED"
    ABORTED = "ABORTED"


class PlacementResult(Protocol):
    assignment: dict[str, str]
    unplaceable: dict[str, str]

    @property
    def ok(self) -> bool: ...


class Placer(Protocol):
    def __call__(self, excluded: Mapping[str, AbstractSet[str]]) -> PlacementResult: ...


@dataclass(frozen=True)
class VoteIn:
    """A verified vote, as the shell parsed it from a signed envelope."""

    round: int
    domain: str
    yes: bool
    reason: str
    raw: bytes  # the envelope as received: it goes into the commit certificate


@dataclass(frozen=True)
class Refusal:
    round: int
    domain: str
    steps: tuple[str, ...]
    reason: str


# ---- actions -----------------------------------------------------------------


@dataclass(frozen=True)
class SendPrepare:
    domain: str
    round: int
    steps: tuple[str, ...]
    placement: dict[str, str]


@dataclass(frozen=True)
class PersistDecision:
    round: int
    commit: bool
    placement: dict[str, str]
    votes: tuple[bytes, ...]
    reason: str


@dataclass(frozen=True)
class SendDecision:
    domain: str
    round: int


@dataclass(frozen=True)
class Finished:
    """Admission is over: committed (with its placement) or aborted (with why)."""

    committed: bool
    round: int
    placement: dict[str, str]
    reason: str


Action = SendPrepare | PersistDecision | SendDecision | Finished


@dataclass
class _Round:
    number: int
    placement: dict[str, str]
    deadline: float
    votes: dict[str, VoteIn] = field(default_factory=dict)

    def participants(self) -> dict[str, tuple[str, ...]]:
        by_domain: dict[str, list[str]] = {}
        for step, domain in self.placement.items():
            by_domain.setdefault(domain, []).append(step)
        return {d: tuple(s) for d, s in sorted(by_domain.items())}


class Coordinator:
    def __init__(
        self,
        workflow_id: str,
        *,
        placer: Placer | Callable[[Mapping[str, AbstractSet[str]]], PlacementResult],
        max_rounds: int,
        prepare_timeout_s: float,
    ) -> None:
        if max_rounds < 1:
            raise LocalProtocolError("max_rounds must be at least 1")
        self.workflow_id = workflow_id
        self.phase = Phase.IDLE
        self.refusals: list[Refusal] = []
        self._placer = placer
        self._max_rounds = max_rounds
        self._timeout = prepare_timeout_s
        self._excluded: dict[str, set[str]] = {}
        self._round: _Round | None = None
        self._aborted_rounds: dict[int, set[str]] = {}  # round -> domains told ABORT
        self._outbox: list[Action] = []

    # ---- outputs -------------------------------------------------------------

    def next_actions(self) -> list[Action]:
        actions, self._outbox = self._outbox, []
        return actions

    def get_timer(self) -> float | None:
        if self.phase is Phase.PREPARING and self._round is not None:
            return self._round.deadline
        return None

    @property
    def round(self) -> int:
        return self._round.number if self._round else 0

    @property
    def placement(self) -> dict[str, str]:
        return dict(self._round.placement) if self._round else {}

    # ---- inputs: one table of transitions ------------------------------------

    def start(self, now: float) -> None:
        self._dispatch("start", now, None)

    def receive_vote(self, now: float, vote: VoteIn) -> None:
        self._dispatch("vote", now, vote)

    def handle_timer(self, now: float) -> None:
        self._dispatch("timer", now, None)

    def cancel(self, now: float, reason: str) -> None:
        self._dispatch("cancel", now, reason)

    def _dispatch(self, event: str, now: float, arg: object) -> None:
        handler = _TRANSITIONS.get((self.phase, event))
        if handler is None:
            if event == "vote":
                raise RemoteProtocolError(f"vote not expected while {self.phase.value}")
            raise LocalProtocolError(f"{event} not allowed while {self.phase.value}")
        handler(self, now, arg)

    # ---- handlers ------------------------------------------------------------

    def _on_start(self, now: float, _: object) -> None:
        self._begin_round(now, 1)

    def _on_vote(self, now: float, vote: VoteIn) -> None:
        current = self._round
        assert current is not None
        if vote.round != current.number:
            self._late_vote(vote)
            return
        asked = current.participants()
        if vote.domain not in asked:
            raise RemoteProtocolError(
                f"{vote.domain} voted in round {vote.round} but was not asked"
            )
        if vote.domain in current.votes:
            return  # duplicate
        current.votes[vote.domain] = vote
        if not vote.yes:
            self._fail_round(now, current, timed_out=False)
        elif len(current.votes) == len(asked):
            self._commit(current)

    def _on_late_vote(self, now: float, vote: VoteIn) -> None:
        self._late_vote(vote)

    def _on_timer(self, now: float, _: object) -> None:
        current = self._round
        assert current is not None
        if now >= current.deadline:
            self._fail_round(now, current, timed_out=True)

    def _on_cancel_preparing(self, now: float, reason: object) -> None:
        current = self._round
        assert current is not None
        self._abort_round(current, f"cancelled: {reason}")
        self.phase = Phase.ABORTED
        self._outbox.append(Finished(False, current.number, {}, f"cancelled: {reason}"))

    def _ignore(self, now: float, arg: object) -> None:
        pass

    # ---- helpers -------------------------------------------------------------

    def _late_vote(self, vote: VoteIn) -> None:
        told = self._aborted_rounds.get(vote.round)
        if vote.yes and told is not None:
            # It may have missed the ABORT: tell it again so it releases.
            self._outbox.append(SendDecision(vote.domain, vote.round))

    def _begin_round(self, now: float, number: int) -> None:
        result = self._placer({k: frozenset(v) for k, v in self._excluded.items()})
        if not result.ok:
            why = "; ".join(f"{s}: {r}" for s, r in sorted(result.unplaceable.items()))
            self._finish_aborted(number - 1, f"no placement: {why}")
            return
        rnd = _Round(number, dict(result.assignment), now + self._timeout)
        self._round = rnd
        self.phase = Phase.PREPARING
        for domain, steps in rnd.participants().items():
            self._outbox.append(SendPrepare(domain, number, steps, dict(rnd.placement)))

    def _fail_round(self, now: float, rnd: _Round, *, timed_out: bool) -> None:
        # A NO ends the round at once; domains still to vote are not refusers
        # (they only hear ABORT). At the deadline, silence counts as refusal.
        asked = rnd.participants()
        for domain, steps in asked.items():
            vote = rnd.votes.get(domain)
            if vote is None and not timed_out or vote is not None and vote.yes:
                continue
            reason = vote.reason if vote is not None else f"no vote within {self._timeout:g}s"
            self.refusals.append(Refusal(rnd.number, domain, steps, reason))
            for step in steps:
                self._excluded.setdefault(step, set()).add(domain)
        self._abort_round(rnd, "a participant refused or did not vote")
        if rnd.number >= self._max_rounds:
            self._finish_aborted(
                rnd.number, f"no placement agreed after {rnd.number} round(s)"
            )
        else:
            self._begin_round(now, rnd.number + 1)

    def _abort_round(self, rnd: _Round, reason: str) -> None:
        # NO voters hold nothing; everyone else may hold a reservation.
        holders = [
            d for d in rnd.participants() if d not in rnd.votes or rnd.votes[d].yes
        ]
        self._outbox.append(PersistDecision(rnd.number, False, dict(rnd.placement), (), reason))
        self._aborted_rounds[rnd.number] = set(holders)
        self._outbox.extend(SendDecision(d, rnd.number) for d in holders)

    def _commit(self, rnd: _Round) -> None:
        self.phase = Phase.COMMITTED
        votes = tuple(rnd.votes[d].raw for d in sorted(rnd.votes))
        self._outbox.append(PersistDecision(rnd.number, True, dict(rnd.placement), votes, ""))
        self._outbox.extend(SendDecision(d, rnd.number) for d in rnd.participants())
        self._outbox.append(Finished(True, rnd.number, dict(rnd.placement), ""))

    def _finish_aborted(self, last_round: int, reason: str) -> None:
        self.phase = Phase.ABORTED
        if self.refusals:
            reason += "; refusals: " + "; ".join(
                f"round {r.round} {r.domain} ({', '.join(r.steps)}): {r.reason}"
                for r in self.refusals
            )
        self._outbox.append(Finished(False, last_round, {}, reason))


_TRANSITIONS: dict[tuple[Phase, str], Callable[[Coordinator, float, object], None]] = {
    (Phase.IDLE, "start"): Coordinator._on_start,
    (Phase.IDLE, "cancel"): Coordinator._ignore,
    (Phase.PREPARING, "vote"): Coordinator._on_vote,
    (Phase.PREPARING, "timer"): Coordinator._on_timer,
    (Phase.PREPARING, "cancel"): Coordinator._on_cancel_preparing,
    (Phase.COMMITTED, "vote"): Coordinator._on_late_vote,
    (Phase.COMMITTED, "timer"): Coordinator._ignore,
    (Phase.COMMITTED, "cancel"): Coordinator._ignore,
    (Phase.ABORTED, "vote"): Coordinator._on_late_vote,
    (Phase.ABORTED, "timer"): Coordinator._ignore,
    (Phase.ABORTED, "cancel"): Coordinator._ignore,
}
