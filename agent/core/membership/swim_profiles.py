"""Tuning profiles of the SWIM core and the formulas that scale them with federation size.

``lan`` suits a data-centre network, ``wan`` domains spread over continents, ``local`` a
federation on one host (demos, tests). Any field can be overridden:
``make_profile("wan", probe_interval=3.0)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SwimProfile:
    probe_interval: float  # seconds between two probes of a healthy member
    probe_timeout: float  # wait for a direct ack before asking others to probe
    indirect_checks: int  # how many members are asked to probe indirectly
    nack_fraction: float  # part of its probe timeout an intermediary waits before a nack
    retransmit_mult: int  # each update is sent about retransmit_mult * ceil(log10(N+1)) times
    suspicion_alpha: float  # shortest suspicion = alpha * max(1, log10 N) * probe_interval
    suspicion_beta: float  # longest suspicion = beta * shortest
    suspicion_confirmations: int  # independent accusers that shrink suspicion to the shortest
    max_health: int  # cap of the local health score (probe timings stretch up to max+1 times)
    push_pull_interval: float  # anti-entropy period at up to push_pull_scale_from members
    push_pull_scale_from: int
    rejoin_interval: float  # how often seeds and dead members are contacted again
    dead_retention: float  # DEAD/LEFT members stay listed this long, then become tombstones
    # A DEAD verdict reaches the workflows (takeover, step failover, in-doubt recovery)
    # only once it has stood this long with no sign of life from the accused; LEFT at
    # once (agent/core/membership/loss_grace.py). SWIM's own view is not delayed.
    loss_grace: float
    tombstone_ttl: float  # tombstones keep ghosts out this long
    leave_grace: float  # a leaving member keeps answering this long after announcing it
    leave_fanout: int  # members told directly of a leave
    max_message_bytes: int  # bound of every datagram (all messages but PushPull)
    max_record_bytes: int  # bound of the local domain record
    max_claims_per_message: int  # remote input limit, PushPull included

    def __post_init__(self) -> None:
        positive = ("probe_interval", "probe_timeout", "push_pull_interval", "rejoin_interval",
                    "dead_retention", "tombstone_ttl", "suspicion_alpha")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"profile field {name} must be > 0")
        if self.probe_timeout >= self.probe_interval:
            raise ValueError("probe_timeout must be shorter than probe_interval")
        if not 0 < self.nack_fraction < 1:
            raise ValueError("nack_fraction must be between 0 and 1")
        if self.suspicion_beta < 1:
            raise ValueError("suspicion_beta must be >= 1 (the longest is beta * shortest)")
        for name in ("indirect_checks", "suspicion_confirmations", "max_health", "leave_fanout",
                     "leave_grace", "loss_grace"):
            if getattr(self, name) < 0:
                raise ValueError(f"profile field {name} must be >= 0")
        if self.loss_grace >= self.dead_retention:
            # A member reaped before its grace ran out would never be acted on as lost.
            raise ValueError("loss_grace must be shorter than dead_retention")
        if self.retransmit_mult < 1 or self.push_pull_scale_from < 1:
            raise ValueError("retransmit_mult and push_pull_scale_from must be >= 1")
        # A record must fit one datagram with its claim framing and a message header.
        if self.max_record_bytes > self.max_message_bytes - 400:
            raise ValueError("max_record_bytes must leave 400 bytes of max_message_bytes free")
        if self.max_claims_per_message < 1:
            raise ValueError("max_claims_per_message must be >= 1")

    def replace(self, **overrides: float | int) -> SwimProfile:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown profile fields: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)


_COMMON = dict(nack_fraction=0.8, push_pull_scale_from=32, max_claims_per_message=100_000)

PROFILES: dict[str, SwimProfile] = {
    # Faster than memberlist's LAN defaults (1 s probes, alpha 4). At 30 members: shortest
    # suspicion 5 * log10(30) * 0.3 s = 2.2 s, then the last check's period, so every
    # member holds a crashed one DEAD after about 3.5 s (first probe, one period,
    # suspicion, one period, the verdict flooded), under 5 s; a member silent for up to
    # about 2.5 s (a stall) is not declared DEAD. About 1.5 KB/s per agent at rest.
    # Suspicion timeouts count probe periods, and a refutation or a check's answer
    # reaches the accuser within one: 50 members at 10% loss give no false verdicts.
    # Messages up to 8 KiB, not a UDP datagram's 1,400 bytes: gossip travels in gRPC calls,
    # and how many records one message carries sets how fast a join storm converges (50
    # members joining at once: 10-18 s after the last join at 1,400 bytes, about four
    # records a message; 1-4 s at 8 KiB: tests/sim/test_membership_join_storm.py).
    # A message is only as big as the updates waiting, so traffic at rest is unchanged.
    "lan": SwimProfile(
        probe_interval=0.3, probe_timeout=0.15, indirect_checks=3, retransmit_mult=4,
        suspicion_alpha=5.0, suspicion_beta=3.0, suspicion_confirmations=3, max_health=8,
        push_pull_interval=20.0, rejoin_interval=30.0, dead_retention=60.0,
        loss_grace=5.0, tombstone_ttl=3600.0, leave_grace=2.0, leave_fanout=3, max_message_bytes=8192,
        max_record_bytes=1000, **_COMMON),
    # Long round trips: slower probes, longer suspicion, more indirect probers.
    "wan": SwimProfile(
        probe_interval=5.0, probe_timeout=3.0, indirect_checks=4, retransmit_mult=4,
        suspicion_alpha=6.0, suspicion_beta=6.0, suspicion_confirmations=4, max_health=8,
        push_pull_interval=60.0, rejoin_interval=60.0, dead_retention=300.0,
        loss_grace=30.0, tombstone_ttl=86400.0, leave_grace=10.0, leave_fanout=4, max_message_bytes=1400,
        max_record_bytes=1000, **_COMMON),
    # One host: fast detection, roomy messages (loopback gRPC). Updates are sent as often
    # as on a LAN: at retransmit_mult 2 a 4-domain federation sent a record twice, and a
    # member both copies missed saw stale free slots until the next push-pull (15 s).
    "local": SwimProfile(
        probe_interval=0.5, probe_timeout=0.2, indirect_checks=1, retransmit_mult=4,
        suspicion_alpha=3.0, suspicion_beta=4.0, suspicion_confirmations=1, max_health=4,
        push_pull_interval=15.0, rejoin_interval=10.0, dead_retention=30.0,
        loss_grace=3.0, tombstone_ttl=600.0, leave_grace=1.0, leave_fanout=2, max_message_bytes=16384,
        max_record_bytes=8192, **_COMMON),
}


INTEGER_FIELDS = frozenset(
    f.name for f in dataclasses.fields(SwimProfile) if f.type in ("int", int))


def typed_overrides(tuning: dict[str, float]) -> dict[str, float | int]:
    """Overrides read from config (all numbers arrive as floats) with integer fields as int."""
    return {k: int(v) if k in INTEGER_FIELDS else v for k, v in tuning.items()}


def make_profile(name: str = "lan", **overrides: float | int) -> SwimProfile:
    """A named profile with some fields replaced; unknown names or fields raise ValueError."""
    try:
        base = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None
    return base.replace(**overrides)


def retransmit_limit(profile: SwimProfile, members: int) -> int:
    """How many times one update is piggy-backed: enough for an epidemic to reach all."""
    return profile.retransmit_mult * max(1, math.ceil(math.log10(members + 1)))


def suspicion_bounds(profile: SwimProfile, members: int) -> tuple[float, float]:
    """Shortest and longest suspicion timeout: bigger federations take longer to refute."""
    shortest = profile.suspicion_alpha * max(1.0, math.log10(max(1, members))) \
        * profile.probe_interval
    return shortest, profile.suspicion_beta * shortest


def suspicion_timeout(profile: SwimProfile, members: int, confirmations: int) -> float:
    """Seconds from the start of a suspicion to a DEAD verdict.

    It starts at the longest bound and falls logarithmically with each independent
    confirmation (an accuser other than the first), reaching the shortest bound at
    ``suspicion_confirmations`` (fewer if the federation has too few members to supply
    them). One slow accuser must wait long; many independent ones agree quickly.
    """
    shortest, longest = suspicion_bounds(profile, members)
    expected = min(profile.suspicion_confirmations, max(0, members - 2))
    if expected < 1:
        return shortest
    fraction = math.log(confirmations + 1) / math.log(expected + 1)
    return max(shortest, longest - fraction * (longest - shortest))


def push_pull_interval(profile: SwimProfile, members: int) -> float:
    """Anti-entropy period, stretched logarithmically above ``push_pull_scale_from`` members
    so that the full-state traffic each member receives stays about constant."""
    if members <= profile.push_pull_scale_from:
        return profile.push_pull_interval
    factor = math.ceil(math.log2(members) - math.log2(profile.push_pull_scale_from)) + 1
    return profile.push_pull_interval * factor
