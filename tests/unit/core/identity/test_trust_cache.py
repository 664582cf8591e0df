"""The trust store's cache of verified signatures: what it answers, and what it holds."""

from __future__ import annotations

import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity import TrustStore
from fedorch.core.identity import trust as trust_module

EU_KEY = Ed25519PrivateKey.generate()
US_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def opened(monkeypatch):
    """The messages libsodium was asked to check, in order (a cache hit asks nothing)."""
    calls: list[bytes] = []
    real_open = trust_module.crypto_sign_open

    def counting_open(signed, public_key):
        calls.append(bytes(signed[64:]))
        return real_open(signed, public_key)

    monkeypatch.setattr(trust_module, "crypto_sign_open", counting_open)
    return calls


def _store() -> TrustStore:
    return TrustStore({"eu-west": EU_KEY.public_key(), "us-east": US_KEY.public_key()})


def test_a_repeat_is_answered_from_the_cache(opened):
    store = _store()
    body = bytes(range(256)) * 28  # an envelope body's size at a coordinator
    sig = EU_KEY.sign(body)
    assert store.verify("eu-west", body, sig) and opened == [body]
    assert store.verify("eu-west", bytearray(body), sig) and opened == [body]
    assert store.verify("eu-west", memoryview(body), memoryview(sig)) and opened == [body]


@pytest.mark.parametrize("where", [0, 1, 3_000, 7_167])
def test_one_changed_byte_of_the_message_misses_and_fails(opened, where):
    store = _store()
    body = bytes(range(256)) * 28
    sig = EU_KEY.sign(body)
    assert store.verify("eu-west", body, sig)
    changed = bytearray(body)
    changed[where] ^= 1
    assert not store.verify("eu-west", bytes(changed), sig)
    assert opened == [body, bytes(changed)]  # checked afresh, not taken from the cache


@pytest.mark.parametrize("where", [0, 31, 63])
def test_one_changed_byte_of_the_signature_misses_and_fails(opened, where):
    store = _store()
    sig = EU_KEY.sign(b"vote")
    assert store.verify("eu-west", b"vote", sig)
    changed = bytearray(sig)
    changed[where] ^= 0x80
    assert not store.verify("eu-west", b"vote", bytes(changed))
    assert opened == [b"vote", b"vote"]


def test_a_shifted_boundary_between_signature_and_message_misses(opened):
    # The digest covers signature and message concatenated: the same bytes split
    # elsewhere are another pair, refused as the signature is not 64 bytes long.
    store = _store()
    sig = EU_KEY.sign(b"vote")
    assert store.verify("eu-west", b"vote", sig)
    assert not store.verify("eu-west", sig[63:] + b"vote", sig[:63])
    assert not store.verify("eu-west", b"ote", sig + b"v")
    assert opened == [b"vote"]


def test_a_hit_counts_only_for_its_domain(opened):
    store = _store()
    sig = EU_KEY.sign(b"vote")
    assert store.verify("eu-west", b"vote", sig)
    assert not store.verify("us-east", b"vote", sig)
    assert opened == [b"vote", b"vote"]


def test_the_cache_holds_its_cap_and_forgets_the_oldest_first(opened, monkeypatch):
    monkeypatch.setattr(trust_module, "VERIFIED_CACHE_SIZE", 3)
    store = _store()
    messages = [bytes([i]) * 100 for i in range(5)]
    sigs = [EU_KEY.sign(m) for m in messages]
    for m, s in zip(messages, sigs, strict=True):
        assert store.verify("eu-west", m, s)
    assert len(store._verified) == 3
    opened.clear()
    # The newest three are remembered, the first two were dropped and are checked again.
    for m, s in zip(messages[2:], sigs[2:], strict=True):
        assert store.verify("eu-west", m, s)
    assert opened == []
    assert store.verify("eu-west", messages[0], sigs[0]) and opened == [messages[0]]
    assert len(store._verified) == 3


def test_an_entry_holds_a_digest_not_the_bytes_it_verified():
    store = _store()
    body = bytes(7_000)
    assert store.verify("eu-west", body, EU_KEY.sign(body))
    ((entry, key),) = store._verified.items()
    held = sum(sys.getsizeof(part) for part in entry) + sys.getsizeof(entry)
    assert held < 200 and key == trust_module.raw_key(EU_KEY.public_key())


def test_a_signature_made_here_is_remembered_by_its_digest(opened):
    store = _store()
    body = bytes(7_000)
    sig = EU_KEY.sign(body)
    store.signed_here("eu-west", body, sig)
    store.signed_here("eu-west", body, sig[:63])  # not a signature: not remembered
    assert len(store._verified) == 1
    assert store.verify("eu-west", body, sig) and opened == []
