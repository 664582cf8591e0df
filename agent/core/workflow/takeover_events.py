"""The takeover core's inputs and actions, and the rules every member applies alike.

The inputs a shell feeds agent/core/workflow/takeover.py (`Input`), the actions it
gets back (`Action`), and the rules that must be the same at every domain for the
takeover to be safe and deterministic: `majority` of the electorate, `may_grant` (at
most one claimant per epoch, never an epoch below the one held) and `successor` (who
claims next). What each input and action means is told in that module's theory of
operation.

Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass


class Role(enum.Enum):
    FOLLOWING = "following"  # another domain is the coordinator known here
    CLAIMING = "claiming"    # asked the electorate for the next epoch
    ACTING = "acting"        # coordinator of the current epoch, agreed by a majority


@dataclass(frozen=True)
class Watch:
    state: str  # membership state of the coordinator known here ("" if unknown)
    dead: frozenset[str] = frozenset()  # participants membership holds DEAD or LEFT


@dataclass(frozen=True)
class Timer:
    pass


@dataclass(frozen=True)
class Grant:
    voter: str
    epoch: int


@dataclass(frozen=True)
class Deny:
    """`voter` will not grant `epoch`: it holds `held_epoch` for `holder`. `proven`: the
    denial carried an epoch certificate of (held_epoch, holder), verified by the shell
    (signatures over the bytes as received, a majority of this workflow's electorate).
    Unproven, a later epoch is only the voter's word, and nobody follows it
    (agent/core/workflow/takeover.py, "Denials"). `holder_gone`: the membership view
    here holds `holder` DEAD or LEFT (an acting coordinator claims past it then)."""

    voter: str
    epoch: int
    held_epoch: int
    holder: str
    proven: bool = False
    holder_gone: bool = False


@dataclass(frozen=True)
class Adopted:
    epoch: int
    coordinator: str


@dataclass(frozen=True)
class EndKnown:
    pass


@dataclass(frozen=True)
class Proven:
    """An epoch certificate, verified by the shell: `coordinator` won `epoch`."""

    epoch: int
    coordinator: str


@dataclass(frozen=True)
class Asked:
    """`voter`, a domain of the workflow, asked us where the workflow stands (the
    shell's placement question) while we follow another: a member that follows us in
    an epoch we claimed and withdrew asks so, its grant lost on the way
    (agent/core/workflow/takeover_claiming.py, "A grant lost on the way")."""

    voter: str


Input = Watch | Timer | Grant | Deny | Adopted | EndKnown | Proven | Asked


@dataclass(frozen=True)
class SendClaim:
    to: str
    epoch: int


@dataclass(frozen=True)
class Persist:
    """Write (epoch, coordinator) as the coordinator known here before anything leaves."""

    epoch: int
    coordinator: str


@dataclass(frozen=True)
class Act:
    """This domain is the coordinator of `epoch`: collect results, end, notify."""

    epoch: int


@dataclass(frozen=True)
class Announce:
    """The workflow ended (`EndKnown`): tell that end to every participant and the
    original coordinator as the holder of `epoch` (on disk as such before it leaves, so
    that a restart tells it again), and end it here."""

    epoch: int


@dataclass(frozen=True)
class Unproven:
    """A denial named a later epoch (`held_epoch`, for `holder`) without a certificate
    that holds: not followed; the shell logs it and counts it
    (fedorch_rejected_messages{reason="unproven_denial"})."""

    voter: str
    held_epoch: int
    holder: str


Action = SendClaim | Persist | Act | Announce | Unproven


def majority(electorate: Collection[str]) -> int:
    return len(electorate) // 2 + 1


def may_grant(held_epoch: int, holder: str, epoch: int, claimant: str) -> bool:
    """May a domain that holds (held_epoch, holder) grant `epoch` to `claimant`? At most
    one claimant per epoch, and never an epoch below the one held."""
    return epoch > held_epoch or (epoch == held_epoch and claimant == holder)


def successor(participants: Collection[str], gone: Collection[str]) -> str | None:
    """The live participant that claims next: the lowest name, so every domain with the
    same view names the same one. None if none is live."""
    live = sorted(set(participants) - set(gone))
    return live[0] if live else None
