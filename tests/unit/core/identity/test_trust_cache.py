"""The trust store's cache of verified signatures: what it answers, and what it holds."""

from __future__ import annotations

import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity import TrustStore
from fedorch.core.identity import trust as trust_module
from fedorch.core.identity.envelope import (
    Signer,
    new_nonce,
    open_evidence,
    open_message,
    seal,
)
from fedorch.core.identity.replay import ReplayGuard
from fedorch.gen.fedorch.v1 import peer_pb2

EU_KEY = Ed25519PrivateKey.generate()
US_KEY = Ed25519PrivateKey.generate()
EU = Signer("eu-west", EU_KEY)


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


def test_uncached_bytes_are_verified_but_neither_looked_up_nor_remembered(opened):
    store = _store()
    body = bytes(7_000)
    sig = EU_KEY.sign(body)
    assert store.verify("eu-west", body, sig, cache=False)
    assert len(store._verified) == 0
    assert store.verify("eu-west", body, sig)  # a miss: nothing was remembered
    assert store.verify("eu-west", body, sig, cache=False)  # not looked up: checked again
    assert opened == [body, body, body]
    assert not store.verify("eu-west", body, EU_KEY.sign(b"other"), cache=False)
    assert store.verify_counts == {"uncached": 2, "miss": 1}


def test_live_envelopes_leave_the_votes_entries_in_the_cache(opened, monkeypatch):
    # Every envelope is new (its nonce): remembering it would push a vote's entry out,
    # which the next Accept or decision carrying that vote asks for again.
    monkeypatch.setattr(trust_module, "VERIFIED_CACHE_SIZE", 4)
    store = _store()
    vote = b"a vote's statement"
    vote_sig = EU_KEY.sign(vote)
    assert store.verify("eu-west", vote, vote_sig, evidence=True)
    for i in range(10):
        env = seal(EU, recipient="us-east", now_ms=1_700_000_000_000 + i, nonce=new_nonce(),
                   node_turn=peer_pb2.NodeTurn())
        assert open_message(env, store, ReplayGuard(60_000), me="us-east",
                            now_ms=1_700_000_000_000 + i, expect="node_turn")
    opened.clear()
    assert store.verify("eu-west", vote, vote_sig, evidence=True) and opened == []
    assert store.verify_counts == {"miss": 1, "uncached": 10, "hit": 1}


def test_evidence_envelopes_are_remembered(opened):
    # A signed object relayed in many messages (an epoch's certificate) verifies once.
    store = _store()
    env = seal(EU, recipient="us-east", now_ms=1_700_000_000_000, nonce=new_nonce(),
               node_turn=peer_pb2.NodeTurn())
    for _ in range(3):
        open_evidence(env, store, expect="node_turn")
    assert len(opened) == 1 and store.verify_counts == {"miss": 1, "hit": 2}
