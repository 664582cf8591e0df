"""Key rotation and revocation: the record formats, the trust they lead to (the same for
any order and repetition of records), overlaps, revocations, forks, authority (a
trusted domain cannot rotate or revoke another's key), envelopes that carry records,
and the key directory the `fedorch keys rotate | revoke` commands keep."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.cli.main import cli
from fedorch.core.identity.envelope import (
    AuthError,
    Signer,
    new_nonce,
    open_evidence,
    open_message,
    seal,
)
from fedorch.core.identity.key_records import (
    KeyRecordError,
    derive,
    make_revocation,
    make_rotation,
    open_record,
    raw_key,
)
from fedorch.core.identity.keys import init_keys, load_private_key
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.rotation import own_chain, read_records, records_path
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import keys_pb2, peer_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

K1, K2, K3 = (Ed25519PrivateKey.generate() for _ in range(3))
BETA = Ed25519PrivateKey.generate()
T0 = 1_700_000_000_000  # ms
OVERLAP = 60.0


def _pub(k):
    return k.public_key()


def _store(now: float = T0 / 1000) -> TrustStore:
    store = TrustStore({"eu": _pub(K1), "beta": _pub(BETA)}, overlap_s=OVERLAP)
    store.advance(now)
    return store


R12 = make_rotation("eu", K1, K2, serial=1, now_ms=T0)
R23 = make_rotation("eu", K2, K3, serial=2, now_ms=T0 + 1000)
REV1 = make_revocation("eu", _pub(K1), K2, serial=3, now_ms=T0 + 2000)  # by successor
REV3 = make_revocation("eu", _pub(K3), K3, serial=4, now_ms=T0 + 3000)  # by itself


def _signs(store: TrustStore, key, *, evidence: bool = False) -> bool:
    return store.verify("eu", b"data", key.sign(b"data"), evidence=evidence)


# ---- formats ---------------------------------------------------------------------------

def test_a_rotation_is_signed_by_the_old_and_the_new_key():
    change = open_record(R12)
    assert (change.kind, change.domain, change.serial) == ("rotation", "eu", 1)
    assert (change.old, change.new) == (raw_key(_pub(K1)), raw_key(_pub(K2)))
    assert len(R12.signatures) == 2


@pytest.mark.parametrize("edit", ["statement", "old_sig", "new_sig", "one_sig", "junk"])
def test_an_edited_record_is_refused(edit):
    record = keys_pb2.KeyRecord()
    record.CopyFrom(R12)
    if edit == "statement":
        st_ = keys_pb2.KeyStatement.FromString(record.statement)
        st_.serial = 9
        record.statement = st_.SerializeToString()
    elif edit == "old_sig":
        record.signatures[0] = K3.sign(b"x")
    elif edit == "new_sig":
        record.signatures[1] = bytes(64)
    elif edit == "one_sig":
        del record.signatures[1]
    else:
        record.statement = b"\xff" * 40
    with pytest.raises(KeyRecordError):
        open_record(record)


def test_a_rotation_signed_by_the_old_key_alone_is_refused():
    # Whoever stole an old key cannot make a rotation without also holding the new key.
    stmt = keys_pb2.KeyStatement.FromString(R12.statement)
    forged = keys_pb2.KeyRecord(statement=R12.statement,
                                signatures=[K1.sign(b"fedorch/v1 key record\x00"
                                                    + R12.statement), bytes(64)])
    assert stmt.rotation.old_public_key == raw_key(_pub(K1))
    with pytest.raises(KeyRecordError, match="bad signature"):
        open_record(forged)


# ---- trust transitions -------------------------------------------------------------------

def test_a_rotation_moves_trust_to_the_new_key_with_an_overlap_for_the_old():
    store = _store()
    assert _signs(store, K1) and not _signs(store, K2)
    changed, refused = store.learn([R12])
    assert [c.kind for c in changed] == ["rotation"] and refused == 0
    assert raw_key(store.key("eu")) == raw_key(_pub(K2))
    assert _signs(store, K2) and _signs(store, K1)  # in flight: still verifies
    store.advance(T0 / 1000 + OVERLAP + 1)
    assert _signs(store, K2) and not _signs(store, K1)
    # Evidence signed before the rotation (a vote in a certificate) still verifies.
    assert _signs(store, K1, evidence=True)
    assert store.learn([R12]) == ([], 0)  # a repeat changes nothing


def test_a_revocation_ends_a_key_at_once_even_inside_the_overlap():
    store = _store()
    store.learn([R12, REV1])
    assert not _signs(store, K1) and not _signs(store, K1, evidence=True)
    assert store.signed_by_revoked("eu", b"data", K1.sign(b"data"))
    assert _signs(store, K2)


def test_revoking_the_current_key_leaves_the_domain_no_key():
    store = _store()
    store.learn([R12, R23, REV3])
    assert store.key("eu") is None and not _signs(store, K3)
    assert "eu" in store  # still a member of the trust list: refused, not forgotten


def test_a_revocation_signed_by_a_key_that_is_neither_it_nor_its_successor_does_nothing():
    store = _store()
    store.learn([R12, R23])
    wrong = make_revocation("eu", _pub(K1), K3, serial=5, now_ms=T0)  # K3 follows K2
    store.learn([wrong])
    assert _signs(store, K1)  # still inside the overlap, not revoked


def test_a_fork_fails_closed():
    # Two rotations away from K1: someone else holds K1. Trust stops there.
    store = _store()
    other = make_rotation("eu", K1, K3, serial=1, now_ms=T0)
    store.learn([R12, other])
    assert store.key("eu") is None
    assert not _signs(store, K1) and not _signs(store, K2) and not _signs(store, K3)


def test_a_cached_signature_stops_counting_once_its_key_is_revoked():
    store = _store()
    store.learn([R12])
    sig = K1.sign(b"data")
    assert store.verify("eu", b"data", sig)  # cached now
    store.learn([REV1])
    assert not store.verify("eu", b"data", sig)


def test_another_trusted_domain_cannot_rotate_or_revoke_a_key():
    # beta (trusted, lying) signs a rotation of eu's key to one of its own, and a
    # revocation of eu's key with its own key: both refused, eu's key unchanged.
    store = _store()
    grab = make_rotation("eu", BETA, K3, serial=1, now_ms=T0)
    kill = make_revocation("eu", _pub(K1), BETA, serial=2, now_ms=T0)
    changed, refused = store.learn([grab, kill])
    assert changed == [] and refused == 2
    assert raw_key(store.key("eu")) == raw_key(_pub(K1)) and _signs(store, K1)
    # A rotation from a key nobody trusts for eu (made by anyone) leads nowhere.
    stranger = Ed25519PrivateKey.generate()
    store.learn([make_rotation("eu", stranger, K3, serial=1, now_ms=T0)])
    assert raw_key(store.key("eu")) == raw_key(_pub(K1))


def test_records_of_a_domain_not_trusted_are_ignored():
    store = _store()
    record = make_rotation("nobody", K1, K2, serial=1, now_ms=T0)
    assert store.learn([record]) == ([], 0)
    assert "nobody" not in store


def test_a_trust_list_naming_a_later_key_of_the_chain_is_no_conflict():
    store = _store()
    store.learn([R12])
    wanted = TrustStore({"eu": _pub(K2), "beta": _pub(BETA)})
    assert store.apply(wanted, keep="beta") == ([], [])
    with pytest.raises(ValueError, match="different key"):
        store.apply(TrustStore({"eu": _pub(K3)}), keep="beta")


RECORDS = [R12, R23, REV1, REV3,
           make_rotation("eu", K1, K3, serial=7, now_ms=T0),       # a fork, sometimes
           make_revocation("eu", _pub(K2), K2, serial=8, now_ms=T0),
           make_rotation("eu", BETA, K1, serial=1, now_ms=T0)]      # beta's: refused


def _trust_after(records) -> tuple:
    store = _store()
    store.learn(records)
    keys = store.keys_of("eu")
    return (keys.current, keys.earlier, keys.revoked, keys.chain,
            [store.verify("eu", b"d", k.sign(b"d")) for k in (K1, K2, K3)])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(range(len(RECORDS))), max_size=12), st.randoms())
def test_any_order_or_repetition_of_records_gives_the_same_trust(picks, rnd):
    chosen = [RECORDS[i] for i in picks]
    shuffled = list(chosen) + [chosen[i] for i in range(0, len(chosen), 2)]
    rnd.shuffle(shuffled)
    # One by one, in another order, repeated: the same trust as all at once.
    store = _store()
    for record in shuffled:
        store.learn([record])
    keys = store.keys_of("eu")
    one_by_one = (keys.current, keys.earlier, keys.revoked, keys.chain,
                  [store.verify("eu", b"d", k.sign(b"d")) for k in (K1, K2, K3)])
    assert one_by_one == _trust_after(chosen)


def test_derive_is_a_function_of_the_set():
    changes = [open_record(r) for r in (R12, R23, REV1)]
    root = raw_key(_pub(K1))
    assert derive(root, changes, OVERLAP) == derive(root, changes[::-1] * 2, OVERLAP)


# ---- envelopes ---------------------------------------------------------------------------

def _envelope(signer: Signer, recipient: str = "beta") -> peer_pb2.Envelope:
    return seal(signer, recipient=recipient, now_ms=T0, nonce=new_nonce(),
                node_turn=peer_pb2.NodeTurn())


def test_a_message_under_the_new_key_carries_what_makes_it_verify():
    store = _store()
    signer = Signer("eu", K2)
    signer.key_records = [R12]
    body = open_message(_envelope(signer), store, ReplayGuard(60_000), me="beta",
                        now_ms=T0, expect="node_turn")
    assert body.sender == "eu" and raw_key(store.key("eu")) == raw_key(_pub(K2))


def test_a_message_under_a_revoked_key_is_refused_as_such():
    store = _store()
    store.learn([R12, REV1])
    with pytest.raises(AuthError) as refused:
        open_message(_envelope(Signer("eu", K1)), store, ReplayGuard(60_000), me="beta",
                     now_ms=T0, expect="node_turn")
    assert refused.value.label == "revoked_key"
    with pytest.raises(AuthError):
        open_evidence(_envelope(Signer("eu", K1)), store, expect="node_turn")


def test_an_envelope_with_too_many_records_is_refused_before_any_is_read():
    signer = Signer("eu", K1)
    signer.key_records = [R12] * 33
    store = _store()
    with pytest.raises(AuthError, match="key records"):
        open_message(_envelope(signer), store, ReplayGuard(60_000), me="beta",
                     now_ms=T0, expect="node_turn")
    assert raw_key(store.key("eu")) == raw_key(_pub(K1))


# ---- the key directory and the commands ------------------------------------------------

def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_keys_rotate_and_revoke_keep_a_chain_the_agent_can_follow(tmp_path):
    init_keys("eu", tmp_path)
    first = load_private_key(tmp_path / "eu.key")
    result = _run("keys", "rotate", "--dir", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["serial"] == 1 and (tmp_path / "eu.retired-1.key").stat().st_mode & 0o077 == 0
    second = load_private_key(tmp_path / "eu.key")
    assert raw_key(second.public_key()) != raw_key(first.public_key())
    assert _run("keys", "rotate", "--dir", str(tmp_path)).exit_code == 0
    third = load_private_key(tmp_path / "eu.key")
    assert _run("keys", "revoke", "--dir", str(tmp_path)).exit_code == 0  # the last old key

    changes = read_records(records_path(tmp_path / "eu.key"))
    assert [c.kind for c in changes] == ["rotation", "rotation", "revocation"]
    root, mine = own_chain("eu", raw_key(third.public_key()), changes)
    assert root == raw_key(first.public_key()) and len(mine) == 3
    # A peer that trusted the first key ends up trusting the third, the second revoked.
    store = TrustStore({"eu": first.public_key()})
    store.learn([c.record for c in mine])
    assert raw_key(store.key("eu")) == raw_key(third.public_key())
    assert store.is_revoked("eu", raw_key(second.public_key()))


def test_a_leftover_record_to_a_key_nobody_holds_is_not_followed(tmp_path):
    init_keys("eu", tmp_path)
    key = load_private_key(tmp_path / "eu.key")
    # As a rotation that crashed after writing its record, before swapping the key.
    dangling = make_rotation("eu", key, Ed25519PrivateKey.generate(), serial=1, now_ms=T0)
    line = {"record": __import__("base64").b64encode(dangling.SerializeToString()).decode()}
    records_path(tmp_path / "eu.key").write_text(json.dumps(line) + "\n")
    root, mine = own_chain("eu", raw_key(key.public_key()),
                           read_records(records_path(tmp_path / "eu.key")))
    assert root == raw_key(key.public_key()) and mine == []


@pytest.mark.parametrize("args, code", [
    (["keys", "revoke"], 2),                           # no rotation yet: nothing earlier
    (["keys", "revoke", "--key", "OTHER"], 2),         # another domain's key
    (["keys", "rotate", "--domain", "nobody"], 2),     # no such key
])
def test_bad_input_changes_nothing(tmp_path, args, code):
    init_keys("eu", tmp_path)
    init_keys("other", tmp_path / "o")
    before = (tmp_path / "eu.key").read_bytes()
    args = [str(tmp_path / "o" / "other.pub") if a == "OTHER" else a for a in args]
    result = _run(*args, "--dir", str(tmp_path), "--domain", "eu") \
        if "--domain" not in args else _run(*args, "--dir", str(tmp_path))
    assert result.exit_code == code, result.output
    assert (tmp_path / "eu.key").read_bytes() == before
    assert not records_path(tmp_path / "eu.key").exists()


# ---- config -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-5", "100000"])
def test_a_rotation_overlap_out_of_range_is_refused(value):
    from fedorch.runtime.config import ConfigError, parse_config_text

    def text(overlap: str) -> str:
        return ("domain: eu-west\nlisten: 127.0.0.1:7101\ndata_dir: d\nkey_file: k.key\n"
                f"trust: {{rotation_overlap_s: {overlap}}}\n")
    with pytest.raises(ConfigError, match="trust.rotation_overlap_s"):
        parse_config_text(text(value), "eu.yaml", "/base")
    ok = parse_config_text(text("2.5"), "eu.yaml", "/base")
    assert ok.trust.rotation_overlap_s == 2.5


# ---- the data dir -------------------------------------------------------------------------

async def test_a_data_dir_written_under_an_earlier_key_is_taken_and_relabelled(tmp_path):
    from fedorch.runtime.store.identity import BadDatabase, key_fingerprint, read_identity
    from fedorch.runtime.store.store import Store

    first, second = key_fingerprint(_pub(K1)), key_fingerprint(_pub(K2))
    store = await Store.open(tmp_path, domain="eu", key=first)
    await store.close()
    with pytest.raises(BadDatabase, match="another key"):  # not on the chain: refused
        await Store.open(tmp_path, domain="eu", key=second)
    store = await Store.open(tmp_path, domain="eu", key=second, earlier_keys=[first])
    await store.close()
    assert read_identity(tmp_path).key == second
    store = await Store.open(tmp_path, domain="eu", key=second)  # relabelled for good
    await store.close()


# ---- the audit log across a rotation ------------------------------------------------------

def _audit_log(rotation: keys_pb2.KeyRecord):
    """A log started under K1, rotated to K2 at record 3, checkpoints under each key."""
    import base64

    from fedorch.core.audit.chain import KEY_ROTATED, STARTED, make_checkpoint

    from tests.unit.core.audit.test_chain import _chain, _raw

    bodies = [(STARTED, "", {"domain": "eu", "public_key": _raw(K1), "incarnation": 1}),
              ("vote", "eu.1", {"yes": True, "round": 1}),
              (KEY_ROTATED, "", {"domain": "eu", "record":
                                 base64.b64encode(rotation.SerializeToString()).decode()}),
              ("vote", "eu.2", {"yes": True, "round": 1})]
    records = _chain(bodies)
    checkpoints = [make_checkpoint("eu", 2, records[1].hash, 5002, K1.sign),
                   make_checkpoint("eu", 4, records[3].hash, 5004, K2.sign)]
    return records, checkpoints


def test_audit_verify_follows_the_log_key_through_a_rotation():
    from fedorch.core.audit.chain import Problem, Verified, verify

    assert verify(*_audit_log(R12)) == Verified(4, 2, "eu", 0)
    # A rotation from a key the log never held (K2 -> K3) does not let K2 sign.
    outcome = verify(*_audit_log(R23))
    assert isinstance(outcome, Problem) and outcome.seq == 3


# ---- junk ----------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.lists(st.binary(max_size=80), max_size=3),
       st.sampled_from([None, "domain", "serial", "sig"]))
def test_junk_records_are_refused_and_change_nothing(statement, signatures, mutate):
    # Raw junk, and real records with one field re-written (so the signatures no
    # longer cover them): refused, counted, trust unchanged, nothing raised.
    if mutate is not None:
        stmt = keys_pb2.KeyStatement.FromString(R12.statement)
        if mutate == "domain":
            stmt.domain = "beta"
        elif mutate == "serial":
            stmt.serial += 1
        statement = stmt.SerializeToString() if mutate != "sig" else R12.statement
        signatures = list(R12.signatures) if mutate != "sig" else [bytes(64), bytes(64)]
    store = _store()
    before = store.keys_of("eu"), store.keys_of("beta")
    changed, refused = store.learn([keys_pb2.KeyRecord(statement=statement,
                                                       signatures=signatures)])
    assert changed == [] and refused == 1
    assert (store.keys_of("eu"), store.keys_of("beta")) == before
