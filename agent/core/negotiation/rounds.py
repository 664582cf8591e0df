"""The coordinator's inputs, outputs and records: data only (see coordinator.py).

Classes here are re-exported by agent.negotiation.coordinator, which is where a
shell imports them from.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Protocol

from fedorch.core.negotiation.messages import (
    Ballot,
    PersistBallot,
    PersistProposal,
    Send,
    Value,
    VoteIn,
)


class Phase(enum.Enum):
    IDLE = "IDLE"
    PREPARING = "PREPARING"
    DECIDING = "DECIDING"
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
class Refusal:
    round: int
    domain: str
    steps: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class ConsensusOptions:
    """Turns on the non-blocking commit; `me` is this coordinator's domain."""

    me: str
    rng: random.Random
    extra_acceptors: Sequence[str] | Callable[[], Sequence[str]] = ()  # live members, best first
    min_acceptors: int = 3
    # At most this many acceptors (odd, at least 3): the coordinator and participants
    # up to it; a participant beyond it is only a learner (negotiation.max_acceptors).
    max_acceptors: int = 5
    resend_s: float = 1.0
    backoff_s: float = 0.5
    decision_resend_s: float = 4.0
    # A participant learns a chosen COMMIT from its Accept or from the acceptors'
    # Accepted (agent.negotiation.acceptor) and acknowledges it; the coordinator sends
    # the COMMIT itself only to a participant that has not acknowledged it this long after.
    commit_notice_s: float = 1.0
    # Both waits above are for a round of up to this many participants, and grow in
    # proportion beyond it (`notice_scale`), as the prepare timeout does: the results and
    # acknowledgements that stand for a COMMIT's receipt come back one per participant
    # through one coordinator, so a wide round's last ones come later. Without it, a
    # 40-domain fan-out on a loaded host drew a COMMIT notice (its whole certificate) to
    # nearly every participant, each opened and checked there, and then a second one.
    notice_share: int = 10
    # The wall clock (ms) at a monotonic `now`: each round's creation time, stated with
    # it (TxInfo.created_ms), by which the acceptors refuse a round past its life.
    # None: not stated (0).
    wall_ms: Callable[[float], int] | None = None

    def notice_scale(self, participants: int) -> float:
        return max(1.0, participants / max(1, self.notice_share))


@dataclass(frozen=True)
class RoundRecord:
    """The coordinator's log of its last round, as restore() needs it."""

    round: int
    placement: dict[str, str]
    acceptors: tuple[str, ...] = ()
    proposal: Value | None = None  # the write-once proposal cell
    decision: Value | None = None  # the decision record (None: undecided, or collected)
    committed: bool = False        # committed, even when the record was collected
    finished: bool = False         # the shell already applied Finished
    refusals: tuple[Refusal, ...] = ()
    ballot: Ballot | None = None   # the last PersistBallot of this round's recovery, if any
    created_ms: int = 0            # the round's creation time (TxInfo.created_ms)


# ---- actions -----------------------------------------------------------------


@dataclass(frozen=True)
class SendPrepare:
    domain: str
    round: int
    steps: tuple[str, ...]
    placement: dict[str, str]
    acceptors: tuple[str, ...] = ()  # consensus mode: the round's acceptors


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
    # Aborted because a cancel request ended the round (the workflow is CANCELLED).
    cancelled: bool = False


Action = (SendPrepare | PersistProposal | PersistBallot | Send | PersistDecision | SendDecision
          | Finished)


@dataclass
class RoundState:
    """One round as the coordinator core tracks it (not persisted as such)."""

    number: int
    placement: dict[str, str]
    deadline: float
    acceptors: tuple[str, ...] = ()
    votes: dict[str, VoteIn] = field(default_factory=dict)
    next_resend: float = 0.0
    acked: set[str] = field(default_factory=set)
    created_ms: int = 0  # wall ms of its coordinator when it began (TxInfo.created_ms)
    _participants: dict[str, tuple[str, ...]] | None = field(default=None, init=False,
                                                             repr=False, compare=False)

    def participants(self) -> dict[str, tuple[str, ...]]:
        """Each participant domain (sorted) with its steps. Worked out once: a round's
        placement never changes, and the driver asks on every turn."""
        if self._participants is None:
            by_domain: dict[str, list[str]] = {}
            for step, domain in self.placement.items():
                by_domain.setdefault(domain, []).append(step)
            self._participants = {d: tuple(s) for d, s in sorted(by_domain.items())}
        return self._participants
