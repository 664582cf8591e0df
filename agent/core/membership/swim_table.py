"""The one table of member state transitions.

A claim about a member is judged by three things: what we currently hold about that
member (its :class:`Standing`), the claim's kind, and whether the claim's incarnation is
older, the same or newer than the one we hold. Older claims never change anything (that
is what makes replays and late duplicates harmless). For the same and newer incarnations
:data:`TRANSITIONS` names the outcome; the core only carries outcomes out.

Precedence at one incarnation is ALIVE < SUSPECT < DEAD, LEFT: a suspicion beats the alive
claim it doubts, and only the member itself, by signing a higher incarnation, can undo
a suspicion, a death or a leave. DEAD and LEFT rows ignore everything but that, which is
what keeps reaped members from returning as ghosts.

Two claims signed by the same member at the same incarnation that contradict each other
(ALIVE and LEFT, or two different ALIVE bodies) cannot come from a correct member: those
pairs are ILLEGAL and raise :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fedorch.core.membership.swim_types import ClaimKind, RemoteProtocolError


class _FastEnum(enum.Enum):
    # Members are singletons, so identity hashing is exact; it is also done in C, which
    # matters because every merged claim looks the table up.
    __hash__ = object.__hash__


class Standing(_FastEnum):
    """What the observer holds about the claim's subject."""

    UNKNOWN = "unknown"  # never heard of it (or its tombstone expired)
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"
    SELF = "self"  # the claim is about the observer itself


class Age(_FastEnum):
    OLDER = "older"
    SAME = "same"
    NEWER = "newer"


class Outcome(_FastEnum):
    IGNORE = "ignore"  # no news
    BECOME_ALIVE = "become-alive"
    BECOME_SUSPECT = "become-suspect"
    BECOME_DEAD = "become-dead"
    BECOME_LEFT = "become-left"
    CONFIRM = "confirm"  # one more accuser of the same suspicion (Lifeguard)
    DUPLICATE = "duplicate"  # must repeat the body we hold, byte for byte
    REFUTE = "refute"  # about us: answer with a higher incarnation
    REFUTE_IF_DIFFERENT = "refute-if-different"  # our own alive claim, maybe a past life's
    ILLEGAL = "illegal"


@dataclass(frozen=True, slots=True)
class Rule:
    same: Outcome
    newer: Outcome


_O = Outcome
_K = ClaimKind
_S = Standing

TRANSITIONS: dict[tuple[Standing, ClaimKind], Rule] = {
    # Unknown members: there is no incarnation to compare; the core always asks for NEWER.
    # A suspicion alone gives no address to probe, so it waits for the alive claim;
    # DEAD and LEFT are kept so that an older alive claim arriving later cannot revive.
    (_S.UNKNOWN, _K.ALIVE): Rule(_O.BECOME_ALIVE, _O.BECOME_ALIVE),
    (_S.UNKNOWN, _K.SUSPECT): Rule(_O.IGNORE, _O.IGNORE),
    (_S.UNKNOWN, _K.DEAD): Rule(_O.BECOME_DEAD, _O.BECOME_DEAD),
    (_S.UNKNOWN, _K.LEFT): Rule(_O.BECOME_LEFT, _O.BECOME_LEFT),

    (_S.ALIVE, _K.ALIVE): Rule(_O.DUPLICATE, _O.BECOME_ALIVE),
    (_S.ALIVE, _K.SUSPECT): Rule(_O.BECOME_SUSPECT, _O.BECOME_SUSPECT),
    (_S.ALIVE, _K.DEAD): Rule(_O.BECOME_DEAD, _O.BECOME_DEAD),
    (_S.ALIVE, _K.LEFT): Rule(_O.ILLEGAL, _O.BECOME_LEFT),  # a leave raises the incarnation

    (_S.SUSPECT, _K.ALIVE): Rule(_O.IGNORE, _O.BECOME_ALIVE),  # only a higher one refutes
    (_S.SUSPECT, _K.SUSPECT): Rule(_O.CONFIRM, _O.BECOME_SUSPECT),
    (_S.SUSPECT, _K.DEAD): Rule(_O.BECOME_DEAD, _O.BECOME_DEAD),
    (_S.SUSPECT, _K.LEFT): Rule(_O.BECOME_LEFT, _O.BECOME_LEFT),

    (_S.DEAD, _K.ALIVE): Rule(_O.IGNORE, _O.BECOME_ALIVE),
    (_S.DEAD, _K.SUSPECT): Rule(_O.IGNORE, _O.IGNORE),
    (_S.DEAD, _K.DEAD): Rule(_O.IGNORE, _O.BECOME_DEAD),
    (_S.DEAD, _K.LEFT): Rule(_O.BECOME_LEFT, _O.BECOME_LEFT),  # it left before we noticed

    (_S.LEFT, _K.ALIVE): Rule(_O.ILLEGAL, _O.BECOME_ALIVE),
    (_S.LEFT, _K.SUSPECT): Rule(_O.IGNORE, _O.IGNORE),
    (_S.LEFT, _K.DEAD): Rule(_O.IGNORE, _O.BECOME_DEAD),
    (_S.LEFT, _K.LEFT): Rule(_O.DUPLICATE, _O.BECOME_LEFT),

    # Claims about ourselves: any doubt at our incarnation or above is refuted; a newer
    # alive or left claim signed with our key is a previous life (we restarted) to outbid.
    (_S.SELF, _K.ALIVE): Rule(_O.REFUTE_IF_DIFFERENT, _O.REFUTE),
    (_S.SELF, _K.SUSPECT): Rule(_O.REFUTE, _O.REFUTE),
    (_S.SELF, _K.DEAD): Rule(_O.REFUTE, _O.REFUTE),
    (_S.SELF, _K.LEFT): Rule(_O.REFUTE, _O.REFUTE),
}


def compare(claimed: int, held: int) -> Age:
    if claimed < held:
        return Age.OLDER
    return Age.SAME if claimed == held else Age.NEWER


def transition(standing: Standing, kind: ClaimKind, age: Age) -> Outcome:
    """The outcome of a claim; ILLEGAL pairs raise RemoteProtocolError."""
    if age is Age.OLDER:
        return Outcome.IGNORE
    rule = TRANSITIONS[(standing, kind)]
    outcome = rule.same if age is Age.SAME else rule.newer
    if outcome is Outcome.ILLEGAL:
        raise RemoteProtocolError(
            f"{kind.name} claim at the same incarnation as a {standing.name} member")
    return outcome
