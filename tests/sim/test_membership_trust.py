"""Signed claims: forgeries change nothing and travel nowhere; tombstones keep ghosts out;
the byte bound of every datagram holds."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fedorch.core.membership.swim_profiles import make_profile
from fedorch.core.membership.swim_types import (
    Claim,
    ClaimBody,
    ClaimKind,
    Gossip,
    MemberState,
    Ping,
    PushPull,
    estimate_size,
    sign_claim,
)
from fedorch.sim.membership import Simulation

ALIVE, SUSPECT, DEAD = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD
ATTACKER = "6.6.6.6:1"


def settled(n: int, seed: int, **kw) -> Simulation:
    sim = Simulation(n, seed=seed, **kw)
    sim.bootstrap()
    sim.run_for(3.0)
    return sim


def record_sent_claims(sim: Simulation) -> list[Claim]:
    sent: list[Claim] = []
    sim.send_hook = lambda sender, destination, msg: sent.extend(msg.claims)
    return sent


def test_forged_and_untrusted_claims_change_nothing_and_are_not_relayed():
    sim = settled(20, seed=21)
    outsider = sim.keyring.outsider_signer
    genuine = sim.nodes[3].own_claim
    forged = (
        # A DEAD verdict from a name nobody trusts.
        sign_claim(ClaimBody(ClaimKind.DEAD, "m0001", 0, "mallory"), "mallory",
                   outsider("mallory")),
        # Trusted names, wrong keys: a death, a suspicion, a leave, a takeover.
        sign_claim(ClaimBody(ClaimKind.DEAD, "m0001", 0, "m0002"), "m0002", outsider("m0002")),
        sign_claim(ClaimBody(ClaimKind.SUSPECT, "m0005", 0, "m0002"), "m0002",
                   outsider("m0002")),
        sign_claim(ClaimBody(ClaimKind.LEFT, "m0006", 1, "m0006"), "m0006", outsider("m0006")),
        sign_claim(ClaimBody(ClaimKind.ALIVE, "m0001", 99, "m0001", ATTACKER, 5, b"evil"),
                   "m0001", outsider("m0001")),
        # A genuine claim whose body was altered in transit (its address redirected).
        Claim(genuine.signer, genuine.body.replace(b"10.0.0.3", b"10.6.6.3"),
              genuine.signature),
    )
    sent = record_sent_claims(sim)
    for target in ("m0000", "m0004", "m0010"):
        sim.inject(target, ATTACKER, Gossip("mallory", forged))
        sim.inject(target, ATTACKER, Ping(77, "mallory", target, forged))
        sim.inject(target, ATTACKER, PushPull("mallory", False, forged))
    sim.run_for(30.0)

    assert sim.dead_verdicts == []
    assert sim.all_see(ALIVE)
    assert all(node.incarnation == 0 for node in sim.nodes)
    for node in sim.nodes:
        view = node.member("m0001")
        assert view.address == sim.addresses[1] and view.record == b""
    # Each forged claim reached three members in three messages; each time it was refused.
    assert sum(node.stats["untrusted_claims"] for node in sim.nodes) == 3 * 3 * len(forged)
    assert not set(forged) & set(sent), "a forged claim was relayed"


def test_tombstones_keep_old_claims_from_reviving_a_dead_member():
    profile = make_profile("lan", dead_retention=10.0)
    sim = settled(20, seed=22, profile=profile)
    victim = "m0003"
    address = sim.addresses[3]
    old = sim.nodes[3].own_claim
    sim.crash(victim)
    sim.run_for(60.0)
    live = sim.live_names()
    assert all(sim.state_of(o, victim) is None for o in live)  # reaped to a tombstone

    outsider = sim.keyring.outsider_signer(victim)
    revival = ClaimBody(ClaimKind.ALIVE, victim, 7, victim, address).encode()
    by_someone_else = ClaimBody(ClaimKind.ALIVE, victim, 7, "m0004", address).encode()
    ghosts = (
        old,  # its last alive claim, replayed
        Claim(victim, revival, outsider.sign(revival)),  # higher, but not its key
        Claim("m0004", by_someone_else,  # higher, signed by a trusted member, not itself
              sim.keyring.signer_for("m0004").sign(by_someone_else)),
    )
    sent = record_sent_claims(sim)
    for target in live[:5]:
        sim.inject(target, address, Gossip(victim, ghosts))
        sim.inject(target, address, PushPull(victim, True, ghosts))
    sim.run_for(10.0)
    assert all(sim.state_of(o, victim) is None for o in live)
    assert not set(ghosts) & set(sent)

    # Only the member itself, at a higher incarnation, comes back.
    back = sign_claim(ClaimBody(ClaimKind.ALIVE, victim, 1, victim, address), victim,
                      sim.keyring.signer_for(victim))
    sim.inject(live[0], address, Gossip(victim, (back,)))
    sim.run_for(2.0)  # shorter than the shortest suspicion: no new verdict yet
    assert all(sim.state_of(o, victim) in (ALIVE, SUSPECT) for o in live)


def test_datagrams_never_exceed_the_byte_bound_and_truncation_is_fair():
    profile = make_profile("lan")
    sim = settled(40, seed=23, loss=0.05, profile=profile)
    sizes: list[int] = []

    def measure(sender, destination, msg):
        if not isinstance(msg, PushPull):
            sizes.append(estimate_size(msg))

    sim.send_hook = measure
    publishers = sim.names[:12]
    for version in range(4):  # twelve members keep publishing records of the largest size
        for name in publishers:
            sim.publish(name, bytes([65 + version]) * profile.max_record_bytes)
        sim.crash(sim.names[30 + version])
        sim.run_for(4.0)
    sim.leave(sim.names[39])
    sim.run_for(60.0)  # 48 one-kilobyte records queue up behind a one-record-wide channel

    assert max(sizes) <= profile.max_message_bytes
    assert max(sizes) > profile.max_record_bytes  # the bound was actually pressed
    # Truncation starved no one: every live member holds every publisher's last record.
    for observer in sim.live_names():
        node = sim.nodes[sim.index[observer]]
        for name in publishers:
            if name != observer:
                assert node.member(name).record == b"D" * profile.max_record_bytes


class _Ed25519Signer:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def sign(self, body: bytes) -> bytes:
        return self._key.sign(body)


class _Ed25519Verifier:
    def __init__(self, trusted: dict[str, Ed25519PublicKey]) -> None:
        self._trusted = trusted

    def verify(self, signer: str, body: bytes, signature: bytes) -> bool:
        key = self._trusted.get(signer)
        if key is None:
            return False
        try:
            key.verify(signature, body)
        except InvalidSignature:
            return False
        return True


class Ed25519Keyring:
    def __init__(self, names: list[str]) -> None:
        self.private = {n: Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(n.encode()).digest()) for n in names}
        self._trusted = {n: k.public_key() for n, k in self.private.items()}

    def signer_for(self, name: str) -> _Ed25519Signer:
        return _Ed25519Signer(self.private[name])

    def verifier_for(self, name: str) -> _Ed25519Verifier:
        return _Ed25519Verifier(self._trusted)


def test_real_ed25519_signatures_reject_a_forgery_and_accept_the_genuine_claim():
    names = [f"m{i:04d}" for i in range(6)]
    keyring = Ed25519Keyring(names)
    sim = Simulation(6, seed=24, keyring=keyring, names=names)
    sim.bootstrap()
    sim.run_for(5.0)
    assert sim.all_see(ALIVE)

    body = ClaimBody(ClaimKind.DEAD, "m0004", 0, "m0002").encode()
    untrusted = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    sim.inject("m0000", ATTACKER, Gossip("m0002", (Claim("m0002", body, untrusted.sign(body)),)))
    sim.run_for(5.0)
    assert sim.dead_verdicts == [] and sim.nodes[4].incarnation == 0
    assert sim.nodes[0].stats["untrusted_claims"] == 1

    # The same statement truly signed by m0002 is accepted, spreads, and m0004 refutes it.
    genuine = Claim("m0002", body, keyring.private["m0002"].sign(body))
    sim.inject("m0000", sim.addresses[2], Gossip("m0002", (genuine,)))
    sim.run_for(10.0)
    assert any(v.observer == "m0000" and v.subject == "m0004" for v in sim.dead_verdicts)
    assert sim.nodes[4].incarnation >= 1
    assert sim.all_see(ALIVE)
