"""MembershipTable: origin-signed records, version order, rejections, liveness, targets."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.gen.fedorch.v1 import peer_pb2
from agent.identity.envelope import AuthError, Signer, open_evidence, seal
from agent.identity.trust import TrustStore
from agent.membership.table import MembershipTable, MemberState

ME = "eu-west"
SUSPECT = 3.0
DEAD = 10.0


class FakeVerifier:
    """Accepts every envelope unless its claimed domain is in `refuse`; records each call."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.refuse = refuse or set()
        self.calls: list[str] = []

    def __call__(self, envelope: peer_pb2.Envelope, domain: str) -> bool:
        self.calls.append(domain)
        return domain not in self.refuse


def record(domain: str, version: int, *, leaving: bool = False,
           endpoint: str | None = None) -> peer_pb2.DomainRecord:
    return peer_pb2.DomainRecord(
        domain=domain, version=version, endpoint=endpoint or f"{domain}:7100",
        labels={"cloud": "aws"}, leaving=leaving,
        capabilities=[peer_pb2.CapabilityInfo(name="ml.train", capacity=2, available=2)],
    )


def envelope(rec: peer_pb2.DomainRecord, sender: str | None = None) -> peer_pb2.Envelope:
    body = peer_pb2.Body(sender=rec.domain if sender is None else sender, recipient="",
                         nonce=b"\x00" * 16, sent_at_ms=1, record=rec)
    return peer_pb2.Envelope(body=body.SerializeToString(), signature=b"s" * 64)


def table(verifier: FakeVerifier | None = None) -> tuple[MembershipTable, FakeVerifier]:
    v = verifier or FakeVerifier()
    t = MembershipTable(ME, v, suspect_after=SUSPECT, dead_after=DEAD)
    own = record(ME, 1)
    t.publish_self(envelope(own), own, 0.0)
    return t, v


# ---- versions -----------------------------------------------------------------------------


def test_newer_version_replaces_the_record() -> None:
    t, v = table()
    first = envelope(record("us-east", 1))
    assert t.merge([first], 1.0) == ["us-east"]
    newer = envelope(record("us-east", 2, endpoint="10.0.0.2:7100"))
    assert t.merge([newer], 2.0) == ["us-east"]
    m = t.get("us-east")
    assert m is not None
    assert m.record.version == 2
    assert m.envelope.body == newer.body  # kept byte for byte, to relay as received
    assert m.last_heard == 2.0
    assert t.endpoint("us-east") == "10.0.0.2:7100"
    assert v.calls == ["us-east", "us-east"]
    assert t.rejected == 0


def test_older_and_equal_versions_are_ignored_without_a_signature_check() -> None:
    t, v = table()
    t.merge([envelope(record("us-east", 5))], 1.0)
    calls = len(v.calls)
    assert t.merge([envelope(record("us-east", 5, endpoint="x:1")),
                    envelope(record("us-east", 4, endpoint="y:1"))], 2.0) == []
    assert len(v.calls) == calls
    m = t.get("us-east")
    assert m.record.version == 5 and m.record.endpoint == "us-east:7100"
    assert m.last_heard == 1.0  # a stale record is not a heartbeat
    assert t.rejected == 0


def test_a_record_sent_by_another_domain_is_rejected() -> None:
    t, v = table()
    forged = envelope(record("us-east", 9), sender="partner")
    assert t.merge([forged], 1.0) == []
    assert t.get("us-east") is None
    assert t.rejected == 1
    assert v.calls == []


def test_a_record_failing_verification_is_rejected() -> None:
    t, v = table(FakeVerifier(refuse={"mallory"}))
    assert t.merge([envelope(record("mallory", 1)), envelope(record("partner", 1))], 1.0) == [
        "partner"
    ]
    assert t.get("mallory") is None
    assert t.rejected == 1
    assert v.calls == ["mallory", "partner"]


@pytest.mark.parametrize("body", [
    b"\xff\xff\xff",                        # not protobuf
    b"\x0a\x10short",                       # truncated length-delimited field
    peer_pb2.Body(sender="us-east", ack=peer_pb2.Ack(ok=True)).SerializeToString(),
    peer_pb2.Body(sender="us-east").SerializeToString(),  # no payload at all
])
def test_garbage_and_non_records_are_rejected(body: bytes) -> None:
    t, v = table()
    good = envelope(record("partner", 1))
    assert t.merge([peer_pb2.Envelope(body=body, signature=b"s" * 64), good], 1.0) == ["partner"]
    assert t.rejected == 1
    assert v.calls == ["partner"]
    assert [m.domain for m in t.members()] == [ME, "partner"]


def test_own_record_relayed_by_others_is_ignored() -> None:
    t, v = table()
    echoed = record(ME, 99, endpoint="evil:1")
    assert t.merge([envelope(echoed)], 1.0) == []
    assert t.get(ME).record.version == 1
    assert t.endpoint(ME) == f"{ME}:7100"
    assert v.calls == []
    assert t.rejected == 0


def test_members_and_envelopes_are_sorted_by_domain() -> None:
    t, _ = table()
    t.merge([envelope(record("us-east", 1)), envelope(record("partner", 1))], 1.0)
    assert [m.domain for m in t.members()] == ["eu-west", "partner", "us-east"]
    assert [peer_pb2.Body.FromString(e.body).record.domain for e in t.envelopes()] == [
        "eu-west", "partner", "us-east"
    ]
    assert t.endpoint("nobody") is None


# ---- liveness -----------------------------------------------------------------------------


def test_liveness_alive_suspect_dead_by_time_and_back_alive_on_a_newer_version() -> None:
    t, _ = table()
    t.merge([envelope(record("us-east", 1))], 100.0)
    m = t.get("us-east")
    assert t.state(m, 100.0) is MemberState.ALIVE
    assert t.state(m, 100.0 + SUSPECT - 0.01) is MemberState.ALIVE
    assert t.state(m, 100.0 + SUSPECT) is MemberState.SUSPECT
    assert t.state(m, 100.0 + DEAD - 0.01) is MemberState.SUSPECT
    assert t.state(m, 100.0 + DEAD) is MemberState.DEAD
    t.merge([envelope(record("us-east", 2))], 200.0)
    assert t.state(t.get("us-east"), 200.0) is MemberState.ALIVE
    # This agent itself is alive however long ago it published.
    assert t.state(t.get(ME), 10_000.0) is MemberState.ALIVE


def test_a_leaving_record_makes_the_member_left() -> None:
    t, _ = table()
    t.merge([envelope(record("us-east", 1))], 0.0)
    t.merge([envelope(record("us-east", 2, leaving=True))], 1.0)
    m = t.get("us-east")
    assert t.state(m, 1.0) is MemberState.LEFT
    assert t.state(m, 1.0 + DEAD * 5) is MemberState.LEFT
    own = record(ME, 2, leaving=True)
    t.publish_self(envelope(own), own, 2.0)
    assert t.state(t.get(ME), 2.0) is MemberState.LEFT


# ---- gossip targets ----------------------------------------------------------------------


def _crowd() -> MembershipTable:
    t, _ = table()
    t.merge([envelope(record("dead", 1))], 0.0)
    t.merge([envelope(record(d, 1)) for d in ("a", "b", "c", "d")], 95.0)
    t.merge([envelope(record("suspect", 1))], 95.0 - SUSPECT)
    t.merge([envelope(record("gone", 2, leaving=True))], 99.0)
    return t


def test_gossip_targets_pick_live_peers_never_self_or_left() -> None:
    t = _crowd()
    now = 100.0
    assert t.state(t.get("dead"), now) is MemberState.DEAD
    assert t.state(t.get("suspect"), now) is MemberState.SUSPECT
    live = {f"{d}:7100" for d in ("a", "b", "c", "d", "suspect")}
    dead_seen = 0
    for seed in range(200):
        targets = t.gossip_targets(random.Random(seed), 2, now)
        assert f"{ME}:7100" not in targets and "gone:7100" not in targets
        assert len(set(targets)) == len(targets)
        picked_live = [x for x in targets if x in live]
        assert len(picked_live) == 2
        extra = [x for x in targets if x not in live]
        assert extra in ([], ["dead:7100"])
        dead_seen += bool(extra)
    # A dead member is tried now and then (about one period in four), not every time.
    assert 20 < dead_seen < 100


def test_gossip_targets_are_deterministic_for_a_seed_and_capped_by_live_peers() -> None:
    t = _crowd()
    assert t.gossip_targets(random.Random(7), 3, 100.0) == t.gossip_targets(
        random.Random(7), 3, 100.0)
    everyone = t.gossip_targets(random.Random(1), 50, 100.0)
    live = {f"{d}:7100" for d in ("a", "b", "c", "d", "suspect")}
    assert live <= set(everyone) <= live | {"dead:7100"}
    lonely, _ = table()
    assert lonely.gossip_targets(random.Random(0), 3, 0.0) == []


# ---- real signatures ----------------------------------------------------------------------


def test_real_signatures_a_relay_cannot_alter_a_record() -> None:
    keys = {d: Ed25519PrivateKey.generate() for d in ("us-east", "partner")}
    trust = TrustStore({d: k.public_key() for d, k in keys.items()})

    def verify(env: peer_pb2.Envelope, domain: str) -> bool:
        try:
            return open_evidence(env, trust, expect="record").sender == domain
        except AuthError:
            return False

    def signed(domain: str, rec: peer_pb2.DomainRecord,
               key: Ed25519PrivateKey | None = None) -> peer_pb2.Envelope:
        signer = Signer(domain, key or keys[domain])
        return seal(signer, recipient="", now_ms=1_000, nonce=b"\x01" * 16, record=rec)

    t = MembershipTable(ME, verify, suspect_after=SUSPECT, dead_after=DEAD)
    assert t.merge([signed("us-east", record("us-east", 1, endpoint="10.0.0.1:7100"))], 0.0) == [
        "us-east"
    ]

    genuine = signed("us-east", record("us-east", 2, endpoint="10.0.0.1:7100"))
    assert b"10.0.0.1" in genuine.body
    tampered = peer_pb2.Envelope(body=genuine.body.replace(b"10.0.0.1", b"10.6.6.6"),
                                 signature=genuine.signature)
    # Still a well-formed record, one byte different: only the signature catches it.
    assert peer_pb2.Body.FromString(tampered.body).record.endpoint == "10.6.6.6:7100"
    assert t.merge([tampered], 1.0) == []
    assert t.rejected == 1
    assert t.endpoint("us-east") == "10.0.0.1:7100"
    assert t.get("us-east").record.version == 1

    # A key the trust store does not hold for that domain cannot speak for it either.
    impostor = signed("us-east", record("us-east", 3), key=Ed25519PrivateKey.generate())
    assert t.merge([impostor], 1.0) == []
    assert t.rejected == 2

    assert t.merge([genuine], 2.0) == ["us-east"]
    assert t.get("us-east").record.version == 2
    assert t.get("us-east").envelope.body == genuine.body
