"""Identity: key files, trust store, replay guard and signed envelopes."""

from __future__ import annotations

import base64
import shutil
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity import (
    AuthError,
    KeyFileError,
    ReplayGuard,
    Signer,
    TrustStore,
    init_keys,
    load_private_key,
    load_public_key_file,
    new_nonce,
    open_evidence,
    open_message,
    seal,
)
from fedorch.core.identity.replay import NONCE_BYTES
from fedorch.gen.fedorch.v1 import peer_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1_700_000_000_000
WINDOW = 60_000

EU_KEY = Ed25519PrivateKey.generate()
US_KEY = Ed25519PrivateKey.generate()
MALLORY_KEY = Ed25519PrivateKey.generate()
EU = Signer("eu-west", EU_KEY)
US = Signer("us-east", US_KEY)
MALLORY = Signer("mallory", MALLORY_KEY)


def trust() -> TrustStore:
    return TrustStore({"eu-west": EU_KEY.public_key(), "us-east": US_KEY.public_key()})


def guard() -> ReplayGuard:
    return ReplayGuard(WINDOW)


def vote(**kw) -> peer_pb2.Vote:
    base = {"workflow_id": "wf-1", "round": 1, "domain": "eu-west", "yes": True}
    return peer_pb2.Vote(**{**base, **kw})


def sealed_vote(signer: Signer = EU, *, to: str = "us-east", at: int = NOW, nonce=None):
    return seal(signer, recipient=to, now_ms=at, nonce=nonce or new_nonce(), vote=vote())


def open_vote(env, g=None, *, me: str = "us-east", now: int = NOW) -> peer_pb2.Body:
    return open_message(env, trust(), guard() if g is None else g, me=me, now_ms=now, expect="vote")


def reason_of(fn, *args, **kw) -> str:
    with pytest.raises(AuthError) as info:
        fn(*args, **kw)
    return info.value.reason


# ---- key files --------------------------------------------------------------------------


def test_init_keys_writes_private_0600_and_pub_naming_domain(tmp_path):
    directory = tmp_path / "keys" / "nested"
    key_path, pub_path = init_keys("eu-west", directory)
    assert key_path == directory / "eu-west.key"
    assert pub_path == directory / "eu-west.pub"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    line = pub_path.read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    prefix, domain, b64 = line.split()
    assert (prefix, domain) == ("fedorch-ed25519", "eu-west")
    priv = load_private_key(key_path)
    raw = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.b64decode(b64) == raw


def test_init_keys_refuses_to_overwrite(tmp_path):
    key_path, pub_path = init_keys("eu-west", tmp_path)
    before = key_path.read_bytes(), pub_path.read_bytes()
    with pytest.raises(FileExistsError):
        init_keys("eu-west", tmp_path)
    assert (key_path.read_bytes(), pub_path.read_bytes()) == before
    # Only the .pub left over: still refused, and no new private key appears.
    key_path.unlink()
    with pytest.raises(FileExistsError):
        init_keys("eu-west", tmp_path)
    assert not key_path.exists()


@pytest.mark.parametrize(
    "bad", ["", "EU-West", "-eu", ".eu", "eu/west", "eu west", "eu_west", "a" * 64, "eu-west\n"]
)
def test_init_keys_rejects_bad_domain(tmp_path, bad):
    with pytest.raises(ValueError, match="invalid domain"):
        init_keys(bad, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_load_round_trip_signs_and_verifies(tmp_path):
    key_path, pub_path = init_keys("partner.example", tmp_path)
    priv = load_private_key(key_path)
    domain, pub = load_public_key_file(pub_path)
    assert domain == "partner.example"
    store = TrustStore.from_files([pub_path])
    assert store.domains() == ["partner.example"]
    assert store.verify("partner.example", b"hello", priv.sign(b"hello"))
    assert not store.verify("partner.example", b"hellO", priv.sign(b"hello"))
    pub.verify(priv.sign(b"x"), b"x")


def test_key_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.key"
    with pytest.raises(KeyFileError, match="not found") as info:
        load_private_key(missing)
    assert str(missing) in str(info.value)

    garbage = tmp_path / "garbage.key"
    garbage.write_text("hello\n")
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_private_key(garbage)

    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="not Ed25519"):
        load_private_key(ec_key)

    _, pub_path = init_keys("eu-west", tmp_path / "k")
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_private_key(pub_path)  # a .pub where a .key belongs

    good = pub_path.read_text().split()
    cases = {
        "wrong-prefix.pub": f"ssh-ed25519 eu-west {good[2]}\n",
        "no-domain.pub": f"fedorch-ed25519 {good[2]}\n",
        "bad-domain.pub": f"fedorch-ed25519 EU {good[2]}\n",
        "bad-b64.pub": "fedorch-ed25519 eu-west !!!!\n",
        "short.pub": f"fedorch-ed25519 eu-west {base64.b64encode(b'x' * 31).decode()}\n",
        "two-lines.pub": pub_path.read_text() * 2,
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(KeyFileError) as info:
            load_public_key_file(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message, name


# ---- trust store --------------------------------------------------------------------------


def test_trust_store_from_files_rejects_conflicting_keys(tmp_path):
    _, pub_a = init_keys("eu-west", tmp_path / "a")
    _, pub_b = init_keys("eu-west", tmp_path / "b")
    with pytest.raises(KeyFileError, match="different key") as info:
        TrustStore.from_files([pub_a, pub_b])
    assert str(pub_b) in str(info.value) and str(pub_a) in str(info.value)
    # The same key listed twice is fine.
    copy = tmp_path / "copy.pub"
    shutil.copy(pub_a, copy)
    assert TrustStore.from_files([pub_a, copy]).domains() == ["eu-west"]


def test_trust_store_add_and_verify_never_raises():
    store = TrustStore()
    assert "eu-west" not in store
    store.add("eu-west", EU_KEY.public_key())
    store.add("eu-west", EU_KEY.public_key())  # same key again: no-op
    with pytest.raises(ValueError, match="different key"):
        store.add("eu-west", US_KEY.public_key())
    assert "eu-west" in store and 42 not in store
    sig = EU_KEY.sign(b"data")
    assert store.verify("eu-west", b"data", sig)
    assert not store.verify("us-east", b"data", US_KEY.sign(b"data"))  # unknown domain
    assert not store.verify("eu-west", b"data", b"short")
    assert not store.verify("eu-west", b"data", None)  # type: ignore[arg-type]
    assert not store.verify(["unhashable"], b"data", sig)  # type: ignore[arg-type]


def test_trust_store_remembers_only_good_verifications(monkeypatch):
    from fedorch.core.identity import trust as trust_module

    monkeypatch.setattr(trust_module, "VERIFIED_CACHE_SIZE", 2)
    store = TrustStore({"eu-west": EU_KEY.public_key(), "us-east": US_KEY.public_key()})
    sig = EU_KEY.sign(b"data")
    assert store.verify("eu-west", b"data", sig)
    assert store.verify("eu-west", b"data", sig)  # again, from memory
    # What was remembered is the exact triple: other bytes, another domain, or a
    # bad signature never pass because a good one was seen.
    assert not store.verify("eu-west", b"datA", sig)
    assert not store.verify("us-east", b"data", sig)
    assert not store.verify("eu-west", b"data", bytes(64))
    for i in range(5):  # the memory stays bounded
        assert store.verify("eu-west", bytes([i]), EU_KEY.sign(bytes([i])))
    assert len(store._verified) == 2
    assert store.verify("eu-west", b"data", sig)  # forgotten, checked afresh: still good


def test_a_signature_made_here_is_remembered_without_verifying(monkeypatch):
    from fedorch.core.identity import trust as trust_module

    store = TrustStore({"eu-west": EU_KEY.public_key()})
    calls = []
    real_open = trust_module.crypto_sign_open

    def counting_open(signed, public_key):
        calls.append(signed[64:])
        return real_open(signed, public_key)

    monkeypatch.setattr(trust_module, "crypto_sign_open", counting_open)
    sig = EU_KEY.sign(b"vote")
    store.signed_here("eu-west", b"vote", sig)
    assert store.verify("eu-west", b"vote", sig) and calls == []
    # Only that exact triple: anything else is still checked.
    assert not store.verify("eu-west", b"votE", sig) and calls == [b"votE"]


def test_signer_makes_the_signature_cryptography_makes_and_verifies():
    # Signing and verifying run through libsodium; Ed25519 is deterministic, so the bytes
    # are the ones `cryptography` makes, and either library verifies the other's.
    signer = Signer("eu-west", EU_KEY)
    for data in (b"", b"vote", bytes(range(256)) * 3):
        sig = signer.sign(data)
        assert sig == EU_KEY.sign(data)
        EU_KEY.public_key().verify(sig, data)  # raises if bad
        assert TrustStore({"eu-west": EU_KEY.public_key()}).verify("eu-west", data, sig)


def test_a_short_signature_cannot_borrow_bytes_of_the_message():
    # libsodium reads signature and message as one buffer: a 63-byte signature followed by
    # data that starts with the missing byte must not pass for the rest of the data.
    store = TrustStore({"eu-west": EU_KEY.public_key()})
    sig = EU_KEY.sign(b"data")
    assert not store.verify("eu-west", sig[63:] + b"data", sig[:63])
    assert not store.verify("eu-west", b"data", sig + b"x")
    assert store.verify("eu-west", b"data", sig)


def test_a_removed_domain_no_longer_verifies_and_may_come_back_with_a_new_key():
    store = TrustStore({"eu-west": EU_KEY.public_key()})
    assert store.verify("eu-west", b"data", EU_KEY.sign(b"data"))
    assert store.remove("eu-west")
    assert not store.verify("eu-west", b"data2", EU_KEY.sign(b"data2"))
    store.add("eu-west", US_KEY.public_key())
    assert not store.verify("eu-west", b"data3", EU_KEY.sign(b"data3"))
    assert store.verify("eu-west", b"data3", US_KEY.sign(b"data3"))


# ---- replay guard -------------------------------------------------------------------------


def test_replay_guard_fresh_replay_and_bad_nonce():
    g = guard()
    nonce = new_nonce()
    assert g.check_and_remember("eu-west", nonce, NOW, NOW) is None
    assert g.check_and_remember("eu-west", nonce, NOW, NOW + 1) == "replayed nonce"
    assert g.check_and_remember("us-east", nonce, NOW, NOW) is None  # nonces are per sender
    assert g.check_and_remember("eu-west", b"short", NOW, NOW) == "nonce must be 16 bytes"


def test_replay_guard_window_both_directions():
    g = guard()
    expected = "outside replay window (skew 75000 ms > 60000 ms)"
    assert g.check_and_remember("eu-west", new_nonce(), NOW - 75_000, NOW) == expected
    assert g.check_and_remember("eu-west", new_nonce(), NOW + 75_000, NOW) == expected
    assert g.check_and_remember("eu-west", new_nonce(), NOW - WINDOW, NOW) is None
    assert g.check_and_remember("eu-west", new_nonce(), NOW + WINDOW, NOW) is None


def test_replay_guard_prunes_expired_but_never_reopens_a_replay():
    g = guard()
    nonce = new_nonce()
    assert g.check_and_remember("eu-west", nonce, NOW, NOW) is None
    for i in range(50):
        assert g.check_and_remember("eu-west", new_nonce(), NOW + i, NOW + i) is None
    assert g.remembered == 51
    # Still remembered at the very edge of the window.
    assert g.check_and_remember("eu-west", nonce, NOW, NOW + WINDOW) == "replayed nonce"
    # Later, the old ones are pruned (memory bounded) and the old message fails the window.
    later = NOW + 10 * WINDOW
    assert g.check_and_remember("eu-west", new_nonce(), later, later) is None
    assert g.remembered == 1
    assert g.check_and_remember("eu-west", nonce, NOW, later).startswith("outside replay window")
    # A clock stepping back does not revive the pruned nonce.
    assert g.check_and_remember("eu-west", nonce, NOW, NOW).startswith("outside replay window")


def test_replay_guard_full_refuses_rather_than_forgets():
    g = ReplayGuard(WINDOW, max_entries=3)
    nonces = [new_nonce() for _ in range(3)]
    for n in nonces:
        assert g.check_and_remember("eu-west", n, NOW, NOW) is None
    assert g.check_and_remember("eu-west", new_nonce(), NOW, NOW) == "replay guard full"
    for n in nonces:
        assert g.check_and_remember("eu-west", n, NOW, NOW + 10) == "replayed nonce"
    later = NOW + WINDOW + 1
    assert g.check_and_remember("eu-west", new_nonce(), later, later) is None


# ---- seal / open ------------------------------------------------------------------------


def test_seal_open_round_trip():
    nonce = new_nonce()
    env = sealed_vote(nonce=nonce)
    EU_KEY.public_key().verify(env.signature, env.body)  # signs exactly the body bytes
    body = open_vote(env)
    assert (body.sender, body.recipient, body.nonce, body.sent_at_ms) == (
        "eu-west",
        "us-east",
        nonce,
        NOW,
    )
    assert body.vote == vote()
    # Survives a trip over the wire as bytes.
    wire = peer_pb2.Envelope.FromString(env.SerializeToString())
    assert open_vote(wire).vote == vote()


def test_seal_takes_exactly_one_known_payload():
    with pytest.raises(TypeError):
        seal(EU, recipient="us-east", now_ms=NOW, nonce=new_nonce())
    with pytest.raises(TypeError):
        seal(EU, recipient="x", now_ms=NOW, nonce=new_nonce(), vote=vote(),
             node_turn=peer_pb2.NodeTurn())
    with pytest.raises(TypeError):
        seal(EU, recipient="x", now_ms=NOW, nonce=new_nonce(), bogus=vote())


def test_tampered_body_byte_is_bad_signature():
    env = sealed_vote()
    body = bytearray(env.body)
    body[body.index(b"wf-1")] ^= 0x01  # "wf-1" -> "vf-1": still parses
    tampered = peer_pb2.Envelope(body=bytes(body), signature=env.signature)
    assert reason_of(open_vote, tampered) == "bad signature from 'eu-west'"


def test_untrusted_sender():
    env = sealed_vote(MALLORY)
    assert reason_of(open_vote, env) == "untrusted sender 'mallory'"


def test_key_a_claiming_sender_b_is_bad_signature():
    impostor = Signer("eu-west", MALLORY_KEY)
    assert reason_of(open_vote, sealed_vote(impostor)) == "bad signature from 'eu-west'"


def test_short_signature_and_junk_body():
    env = sealed_vote()
    short = peer_pb2.Envelope(body=env.body, signature=env.signature[:63])
    assert reason_of(open_vote, short) == "signature must be 64 bytes, got 63"
    junk = peer_pb2.Envelope(body=b"\xff\xff\xff", signature=env.signature)
    assert reason_of(open_vote, junk) == "malformed message body"


def test_wrong_recipient():
    env = sealed_vote(to="us-east")
    assert reason_of(open_vote, env, me="eu-west") == "message for 'us-east' delivered to 'eu-west'"


def test_wrong_payload_kind():
    env = sealed_vote()
    reason = reason_of(
        open_message, env, trust(), guard(), me="us-east", now_ms=NOW, expect="node_turn"
    )
    assert reason == "expected node_turn, got vote"


def test_replay_of_same_envelope():
    g = guard()
    env = sealed_vote()
    open_vote(env, g)
    assert reason_of(open_vote, env, g, now=NOW + 5) == "replayed nonce"


@pytest.mark.parametrize("sent_at", [NOW - 75_000, NOW + 75_000])
def test_outside_window_both_directions(sent_at):
    env = sealed_vote(at=sent_at)
    assert reason_of(open_vote, env) == "outside replay window (skew 75000 ms > 60000 ms)"


def test_forged_or_misdirected_messages_do_not_burn_the_nonce():
    g = guard()
    nonce = new_nonce()
    genuine = sealed_vote(nonce=nonce)
    forged = peer_pb2.Envelope(body=genuine.body, signature=MALLORY_KEY.sign(genuine.body))
    assert reason_of(open_vote, forged, g) == "bad signature from 'eu-west'"
    misdirected = sealed_vote(to="eu-west", nonce=nonce)
    assert reason_of(open_vote, misdirected, g).startswith("message for 'eu-west'")
    wrong_kind = seal(EU, recipient="us-east", now_ms=NOW, nonce=nonce,
                      node_turn=peer_pb2.NodeTurn())
    assert reason_of(open_vote, wrong_kind, g) == "expected vote, got node_turn"
    assert g.remembered == 0
    assert open_vote(genuine, g).nonce == nonce
    assert reason_of(open_vote, genuine, g) == "replayed nonce"


def test_open_evidence_ignores_window_and_recipient_but_checks_signature():
    decision = peer_pb2.Decision(workflow_id="eu-west.1", round=3, coordinator="eu-west",
                                 outcome=peer_pb2.OUTCOME_ABORT)
    env = seal(EU, recipient="", now_ms=NOW - 30 * 86_400_000, nonce=new_nonce(),
               decision=decision)
    body = open_evidence(env, trust(), expect="decision")
    assert body.decision == decision
    assert open_evidence(env, trust(), expect="decision") == body  # no replay guard either
    with pytest.raises(AuthError, match="expected vote, got decision"):
        open_evidence(env, trust(), expect="vote")
    forged = peer_pb2.Envelope(body=env.body, signature=MALLORY_KEY.sign(env.body))
    with pytest.raises(AuthError, match="bad signature from 'eu-west'"):
        open_evidence(forged, trust(), expect="decision")
    untrusted = seal(MALLORY, recipient="", now_ms=NOW, nonce=new_nonce(), decision=decision)
    with pytest.raises(AuthError, match="untrusted sender 'mallory'"):
        open_evidence(untrusted, trust(), expect="decision")


PROPERTY_ENV = sealed_vote(nonce=bytes(range(16)))


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(["body", "signature"]), data=st.data())
def test_any_single_bit_flip_is_refused(field, data):
    assert open_vote(PROPERTY_ENV).vote == vote()  # the untouched envelope passes
    original = getattr(PROPERTY_ENV, field)
    bit = data.draw(st.integers(0, len(original) * 8 - 1), label="bit")
    flipped = bytearray(original)
    flipped[bit // 8] ^= 1 << (bit % 8)
    env = peer_pb2.Envelope()
    env.CopyFrom(PROPERTY_ENV)
    setattr(env, field, bytes(flipped))
    with pytest.raises(AuthError):
        open_vote(env)


# ---- non-canonical encodings ------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


@pytest.mark.parametrize("unknown", [False, True])
def test_non_canonical_body_verifies_as_received(unknown):
    nonce = new_nonce()
    parts = [
        _len_field(13, vote().SerializeToString()),  # payload first
        _int_field(4, NOW),
        _len_field(3, nonce),
        _len_field(2, b"us-east"),
        _len_field(1, b"eu-west"),
    ]
    if unknown:
        parts.insert(2, _int_field(99, 7) + _len_field(500, b"future field"))
    raw = b"".join(parts)
    canonical = peer_pb2.Body.FromString(raw).SerializeToString(deterministic=True)
    assert raw != canonical  # really non-canonical: re-serialising would change the bytes
    env = peer_pb2.Envelope(body=raw, signature=EU_KEY.sign(raw))
    body = open_vote(env)
    assert (body.sender, body.recipient, body.nonce, body.sent_at_ms) == (
        "eu-west",
        "us-east",
        nonce,
        NOW,
    )
    assert body.vote == vote()
    # And a signature over the canonical form does not cover these bytes.
    other = peer_pb2.Envelope(body=raw, signature=EU_KEY.sign(canonical))
    assert reason_of(open_vote, other) == "bad signature from 'eu-west'"


def test_new_nonce_is_16_random_bytes():
    a, b = new_nonce(), new_nonce()
    assert len(a) == 16 and a != b


def test_nonces_are_unique_and_of_the_guards_length() -> None:
    nonces = [new_nonce() for _ in range(10_000)]
    assert {len(n) for n in nonces} == {NONCE_BYTES}
    assert len(set(nonces)) == len(nonces)
