"""The audit log's core: every kind of edit makes `verify` name the first bad record."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.audit.chain import (
    GENESIS,
    STARTED,
    Problem,
    Record,
    Verified,
    attest,
    canonical,
    make_checkpoint,
    open_attestation,
    record_body,
    record_hash,
    verify,
)
from fedorch.core.identity.trust import TrustStore
from hypothesis import given, settings
from hypothesis import strategies as st

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def _raw(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def _chain(bodies: list[tuple[str, str, dict]], start: int = 1,
           prev: bytes = GENESIS) -> list[Record]:
    records = []
    for seq, (kind, workflow, data) in enumerate(bodies, start):
        body = record_body(kind, workflow, 1000 + seq, data)
        digest = record_hash(seq, prev, body)
        records.append(Record(seq, workflow, kind, prev, body, digest))
        prev = digest
    return records


def _log(n: int = 10, key: Ed25519PrivateKey = KEY):
    """A log of `n` records (the first names the key) with checkpoints at 1, 5 and n."""
    bodies = [(STARTED, "", {"domain": "eu", "public_key": _raw(key), "incarnation": 1})]
    bodies += [("vote", f"eu.{i}", {"yes": True, "round": 1}) for i in range(1, n)]
    records = _chain(bodies)
    checkpoints = [make_checkpoint("eu", s, records[s - 1].hash, 5000 + s, key.sign)
                   for s in (1, 5, n)]
    return records, checkpoints


def _edit(record: Record, **data) -> Record:
    body = record_body(record.kind, record.workflow, 1, data)
    return dataclasses.replace(record, body=body)


def test_an_intact_log_verifies():
    records, checkpoints = _log()
    outcome = verify(records, checkpoints)
    assert outcome == Verified(10, 3, "eu", 0)
    # Records after the last checkpoint are counted as not yet signed.
    assert verify(records, checkpoints[:2]) == Verified(10, 2, "eu", 5)


def test_a_changed_field_is_named():
    records, checkpoints = _log()
    records[6] = _edit(records[6], yes=False, round=1)
    assert verify(records, checkpoints) == Problem(
        7, "changed (its hash does not match its content)")


def test_a_changed_record_whose_hash_was_recomputed_is_named():
    records, checkpoints = _log()
    edited = _edit(records[6], yes=False, round=1)
    records[6] = dataclasses.replace(edited, hash=record_hash(7, edited.prev, edited.body))
    outcome = verify(records, checkpoints)
    assert isinstance(outcome, Problem) and outcome.seq == 7, outcome


def test_a_changed_last_record_is_caught_by_its_checkpoint():
    records, checkpoints = _log()
    edited = _edit(records[9], yes=False)
    records[9] = dataclasses.replace(edited, hash=record_hash(10, edited.prev, edited.body))
    outcome = verify(records, checkpoints)
    assert isinstance(outcome, Problem) and outcome.seq == 10
    assert "signed checkpoint" in outcome.reason


def test_a_removed_record_is_named():
    records, checkpoints = _log()
    del records[3]
    assert verify(records, checkpoints) == Problem(4, "missing (the log goes on at record 5)")


@pytest.mark.parametrize("how", ["rows", "contents"])
def test_two_swapped_records_are_named(how):
    records, checkpoints = _log()
    a, b = records[3], records[4]
    if how == "rows":  # stored in the other order
        records[3], records[4] = b, a
    else:  # each seq holding the other's content
        records[3] = dataclasses.replace(b, seq=4)
        records[4] = dataclasses.replace(a, seq=5)
    outcome = verify(records, checkpoints)
    assert isinstance(outcome, Problem) and outcome.seq == 4, outcome


def test_columns_that_differ_from_the_body_are_named():
    records, checkpoints = _log()
    records[2] = dataclasses.replace(records[2], workflow="eu.other")
    assert verify(records, checkpoints) == Problem(3, "changed (its columns differ from its body)")


def test_a_rebuilt_chain_resigned_with_another_key_is_caught():
    records, checkpoints = _log()
    bodies = [(r.kind, r.workflow, r.decoded()["data"]) for r in records]
    bodies[6] = ("vote", "eu.6", {"yes": False, "round": 1})
    rebuilt = _chain(bodies)
    # The checkpoints before the edit still hold; the one after it is signed again.
    resigned = [*checkpoints[:2], make_checkpoint("eu", 10, rebuilt[9].hash, 1, OTHER.sign)]
    outcome = verify(rebuilt, resigned)
    assert outcome == Problem(10, "checkpoint not signed by 'eu''s key (re-signed or forged)")


def test_a_whole_log_rewritten_under_another_key_needs_the_trusted_key():
    records, _ = _log(key=OTHER)
    checkpoints = [make_checkpoint("eu", 10, records[9].hash, 1, OTHER.sign)]
    # Trust on first use: the log names OTHER, and OTHER signed it.
    assert isinstance(verify(records, checkpoints), Verified)
    trust = TrustStore({"eu": KEY.public_key()})
    outcome = verify(records, checkpoints, trusted=trust.verify)
    assert isinstance(outcome, Problem) and outcome.seq == 10


def test_a_truncated_tail_is_named_when_a_checkpoint_covers_it():
    records, checkpoints = _log()
    assert verify(records[:7], checkpoints) == Problem(
        8, "missing (a signed checkpoint names record 10, the log ends at record 7)")


def test_a_forged_checkpoint_is_named():
    records, checkpoints = _log()
    forged = dataclasses.replace(checkpoints[1], seq=3, hash=records[2].hash)
    outcome = verify(records, [*checkpoints, forged])
    assert outcome == Problem(3, "checkpoint not signed by 'eu''s key (re-signed or forged)")
    wrong_hash = make_checkpoint("eu", 6, records[4].hash, 1, KEY.sign)
    outcome = verify(records, [*checkpoints, wrong_hash])
    assert isinstance(outcome, Problem) and outcome.seq == 6 and "checkpoint" in outcome.reason


def test_attestations_verify_only_unchanged_and_signed_by_the_domain_they_name():
    trust = TrustStore({"eu": KEY.public_key()})
    signed = attest("eu", {"kind": "final", "state": "SUCCEEDED"}, KEY.sign)
    assert open_attestation(signed, trust.verify, "final")["state"] == "SUCCEEDED"
    forged = attest("eu", {"kind": "final", "state": "SUCCEEDED"}, OTHER.sign)
    with pytest.raises(ValueError, match="bad signature"):
        open_attestation(forged, trust.verify, "final")
    changed = dict(signed, statement=attest("eu", {"kind": "final", "state": "FAILED"},
                                            KEY.sign)["statement"])
    with pytest.raises(ValueError, match="bad signature"):
        open_attestation(changed, trust.verify, "final")


# ---- canonical JSON: the C encoder made once says what json.dumps says -------------

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                     st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                           blacklist_categories=())))
_KEYS = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats())
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.text(), inner, max_size=4),
    st.dictionaries(_KEYS, inner, max_size=3)), max_leaves=20)


def _outcome(f, value) -> tuple[str, object]:
    try:
        return ("ok", f(value))
    except Exception as e:  # the same value must fail the same way
        return ("raises", type(e))


def _dumps(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


@settings(max_examples=500)
@given(_VALUES)
def test_canonical_is_json_dumps_with_its_options_for_any_value(value):
    assert _outcome(canonical, value) == _outcome(_dumps, value)


def test_canonical_of_a_circular_value_raises_as_json_dumps_does():
    loop: list = []
    loop.append(loop)
    cycle: dict = {}
    cycle["self"] = [cycle]
    for value in (loop, cycle):
        with pytest.raises(ValueError, match="Circular reference"):
            canonical(value)
        with pytest.raises(ValueError, match="Circular reference"):
            _dumps(value)
    assert canonical({"b": [1, 2.5, None], "a": "é\n"}) == '{"a":"é\\n","b":[1,2.5,null]}'.encode()
