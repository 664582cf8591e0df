"""Membership table, first version: origin-signed records and liveness by heartbeat.

Theory of operation
-------------------
Each domain publishes a DomainRecord inside an Envelope it signs itself, and
re-issues it with a higher version every gossip period: the version is its
heartbeat. Agents swap every record they hold with a few random peers each
period (push-pull) and keep, per domain, the highest version whose signature
verifies against that domain's trusted key. A relay passes records on byte
for byte, so it cannot alter one without the signature failing.

A member is ALIVE while its version keeps rising, SUSPECT after
`suspect_after` seconds without a newer version, DEAD after `dead_after`, and
LEFT once its own record says it is leaving. Time comes in as `now`; the
signature check is injected, so this class does no I/O and no crypto itself.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from agent.gen.fedorch.v1 import peer_pb2


class MemberState(enum.StrEnum):
    ALIVE = "ALIVE"
    SUSPECT = "SUSPECT"
    DEAD = "DEAD"
    LEFT = "LEFT"


@dataclass
class Member:
    domain: str
    envelope: peer_pb2.Envelope
    record: peer_pb2.DomainRecord
    last_heard: float


# verify(envelope, claimed_domain) -> True when the envelope is signed by that
# trusted domain over its body as received.
RecordVerifier = Callable[[peer_pb2.Envelope, str], bool]


class MembershipTable:
    def __init__(
        self, me: str, verify: RecordVerifier, *, suspect_after: float, dead_after: float
    ) -> None:
        self.me = me
        self._verify = verify
        self._suspect_after = suspect_after
        self._dead_after = dead_after
        self._members: dict[str, Member] = {}
        self.rejected = 0  # records dropped: unparseable, unsigned, forged or untrusted

    def publish_self(self, envelope: peer_pb2.Envelope, record: peer_pb2.DomainRecord,
                     now: float) -> None:
        self._members[self.me] = Member(self.me, envelope, record, now)

    def merge(self, envelopes: Iterable[peer_pb2.Envelope], now: float) -> list[str]:
        """Fold in records from a peer; returns the domains whose record changed."""
        changed = []
        for env in envelopes:
            try:
                body = peer_pb2.Body.FromString(env.body)
            except DecodeError:
                self.rejected += 1
                continue
            if body.WhichOneof("payload") != "record":
                self.rejected += 1
                continue
            record = body.record
            domain = record.domain
            if domain == self.me or body.sender != domain:
                if body.sender != domain:
                    self.rejected += 1
                continue
            known = self._members.get(domain)
            if known is not None and record.version <= known.record.version:
                continue  # stale: no need to spend a signature check
            if not self._verify(env, domain):
                self.rejected += 1
                continue
            self._members[domain] = Member(domain, env, record, now)
            changed.append(domain)
        return changed

    def state(self, member: Member, now: float) -> MemberState:
        if member.record.leaving:
            return MemberState.LEFT
        if member.domain == self.me:
            return MemberState.ALIVE
        silent = now - member.last_heard
        if silent >= self._dead_after:
            return MemberState.DEAD
        if silent >= self._suspect_after:
            return MemberState.SUSPECT
        return MemberState.ALIVE

    def members(self) -> list[Member]:
        return sorted(self._members.values(), key=lambda m: m.domain)

    def get(self, domain: str) -> Member | None:
        return self._members.get(domain)

    def endpoint(self, domain: str) -> str | None:
        m = self._members.get(domain)
        return m.record.endpoint if m else None

    def envelopes(self) -> list[peer_pb2.Envelope]:
        return [m.envelope for m in self.members()]

    def gossip_targets(self, rng: random.Random, fanout: int, now: float) -> list[str]:
        """Endpoints for this period's push-pull: live peers first, a dead one now and then.

        Trying a DEAD member occasionally is what lets a healed partition merge.
        """
        peers = [m for m in self._members.values() if m.domain != self.me
                 and self.state(m, now) is not MemberState.LEFT]
        live = [m for m in peers if self.state(m, now) is not MemberState.DEAD]
        dead = [m for m in peers if self.state(m, now) is MemberState.DEAD]
        chosen = rng.sample(live, min(fanout, len(live)))
        if dead and rng.random() < 0.25:
            chosen.append(rng.choice(dead))
        return [m.record.endpoint for m in chosen]
