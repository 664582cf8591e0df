"""The writers of the node engine's acts (core/audit/acts.py) make `canonical`'s bytes
for every value: each kind's shape with any text and any int, and every value outside
a shape (a key more or less, another type) written by `canonical` itself; a record's
body is `chain.record_body`'s; a log written before them verifies as it did."""

from __future__ import annotations

import base64
import enum
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.audit import acts
from fedorch.core.audit.acts import ACTS, act_text, record_body
from fedorch.core.audit.chain import (
    GENESIS,
    Record,
    Verified,
    b64,
    canonical_text,
    make_checkpoint,
    record_hash,
    verify,
)
from fedorch.core.audit.chain import record_body as chain_record_body
from hypothesis import given, settings
from hypothesis import strategies as st

# Any text: surrogates, control characters, quotes, backslashes, non-ASCII.
TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                             blacklist_categories=()))
PLAIN = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E))
BASE64 = st.binary(max_size=600).map(b64)
LONG = st.one_of(BASE64, TEXT, PLAIN)


class Round(enum.IntEnum):
    ONE = 1


class State(enum.StrEnum):
    DONE = "SUCCEEDED"


OTHER = st.one_of(st.floats(), st.booleans(), st.none(), st.integers(), TEXT,
                  st.lists(TEXT, max_size=3), st.dictionaries(TEXT, st.integers(), max_size=2),
                  st.just(Round.ONE), st.just(State.DONE), st.tuples(TEXT))
INT = st.integers()


def _or_other(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(strategy, strategy, strategy, OTHER)


CERTIFICATE = st.one_of(st.none(), st.fixed_dictionaries(
    {"round": INT, "votes": st.lists(LONG, max_size=4)}), OTHER)

SHAPES = {
    "submitted": {"spec_sha256": TEXT, "spec": st.one_of(st.none(), LONG), "principal": TEXT,
                  "peer": TEXT, "request_id": TEXT,
                  "client_signature": st.one_of(st.none(), LONG),
                  "attestation": st.one_of(st.none(), LONG)},
    "vote": {"coordinator": TEXT, "round": INT, "yes": st.booleans(), "reason": TEXT,
             "steps": st.lists(TEXT, max_size=4), "policy_sha256": TEXT,
             "spec_sha256": TEXT},
    "decision": {"round": INT, "outcome": TEXT, "reason": TEXT, "certificate": CERTIFICATE},
    "learned": {"round": INT, "outcome": TEXT},
    "step_started": {"step": TEXT, "attempt": INT},
    "step_ended": {"step": TEXT, "attempt": INT, "state": TEXT, "outputs_sha256": TEXT,
                   "evidence": st.one_of(st.none(), LONG), "error": TEXT},
    "result_received": {"step": TEXT, "attempt": INT, "state": TEXT, "outputs_sha256": TEXT,
                        "evidence": st.one_of(st.none(), LONG), "domain": TEXT,
                        "epoch": INT},
    "workflow_ended": {"state": TEXT, "reason": TEXT, "attestation": st.one_of(st.none(), LONG)},
}


@st.composite
def shaped(draw, exact: bool) -> tuple[str, object, dict]:
    """(kind, time, data) of a kind with a writer: its shape, or (not `exact`) with
    values of other types, a key dropped or added."""
    kind = draw(st.sampled_from(sorted(SHAPES)))
    fields = SHAPES[kind]
    data = {k: draw(s if exact else _or_other(s)) for k, s in fields.items()}
    if not exact and draw(st.booleans()):
        data.pop(draw(st.sampled_from(sorted(data))))
    if not exact and draw(st.booleans()):
        data[draw(TEXT)] = draw(OTHER)
    time_ms = draw(INT if exact else _or_other(INT))
    return kind, time_ms, data


def _outcome(f, *args) -> tuple[str, object]:
    try:
        return ("ok", f(*args))
    except Exception as e:  # the same value must fail the same way
        return ("raises", type(e))


def _canonical_act(kind: object, time_ms: object, data: object) -> str:
    return canonical_text({"kind": kind, "time_ms": time_ms, "data": data})


def test_every_kind_of_the_node_engines_log_has_a_writer():
    assert set(acts._WRITERS) == set(SHAPES)


@settings(max_examples=600)
@given(shaped(exact=True))
def test_an_act_of_its_kinds_shape_is_written_as_canonical_writes_it(act):
    assert _outcome(act_text, *act) == _outcome(_canonical_act, *act)


@settings(max_examples=600)
@given(shaped(exact=False))
def test_an_act_outside_its_kinds_shape_is_written_as_canonical_writes_it(act):
    assert _outcome(act_text, *act) == _outcome(_canonical_act, *act)


@given(TEXT, INT, st.one_of(st.dictionaries(TEXT, OTHER, max_size=3), OTHER))
def test_an_act_of_a_kind_without_a_writer_is_canonicals(kind, time_ms, data):
    assert _outcome(act_text, kind, time_ms, data) == _outcome(_canonical_act, kind, time_ms,
                                                                data)


@given(LONG)
def test_a_long_string_is_written_as_the_c_encoder_writes_it(text):
    assert _outcome(acts._long, text) == _outcome(lambda t: json.dumps(t, ensure_ascii=False),
                                                  text)


@settings(max_examples=300)
@given(st.one_of(TEXT, OTHER), st.one_of(INT, st.just(Round.ONE)),
       st.lists(st.one_of(shaped(exact=True), shaped(exact=False)), max_size=4))
def test_a_records_body_is_chain_record_bodys(workflow, time_ms, queued):
    def joined() -> bytes:
        return record_body(workflow, time_ms, [act_text(*a) for a in queued])

    def whole() -> bytes:
        return chain_record_body(ACTS, workflow, time_ms, {"acts": [
            {"kind": k, "time_ms": t, "data": d} for k, t, d in queued]})

    assert _outcome(joined, ) == _outcome(whole, )


def _workflow_acts() -> list[tuple[str, int, dict]]:
    """A coordinator's acts of one workflow, as the node engine records them."""
    sealed = b64(b"\x00\x10" + b"x" * 16 + b"\x00" + b"s" * 64)
    return [
        ("submitted", 1, {"spec_sha256": "ab" * 32, "spec": b64(b"spec"),
                          "principal": "alice", "peer": "", "request_id": "r1",
                          "client_signature": b64(b"c" * 64), "attestation": sealed}),
        ("vote", 2, {"coordinator": "d0", "round": 1, "yes": True, "reason": "",
                     "steps": ["s0"], "policy_sha256": "p" * 64, "spec_sha256": "ab" * 32}),
        ("decision", 3, {"round": 1, "outcome": "COMMIT", "reason": "",
                         "certificate": {"round": 1, "votes": [sealed, sealed]}}),
        ("learned", 3, {"round": 1, "outcome": "COMMIT"}),
        ("step_started", 3, {"step": "s0", "attempt": 1}),
        ("step_ended", 4, {"step": "s0", "attempt": 1, "state": "SUCCEEDED",
                           "outputs_sha256": "o" * 64, "evidence": None, "error": ""}),
        ("result_received", 5, {"step": "s1", "attempt": 1, "state": "FAILED",
                                "outputs_sha256": "o" * 64, "evidence": sealed,
                                "domain": "d1", "epoch": 0}),
        ("workflow_ended", 6, {"state": "FAILED", "reason": "step s1 failed: \"boom\"\n",
                               "attestation": sealed}),
    ]


def test_a_log_written_before_the_writers_verifies_and_theirs_is_the_same_bytes():
    """Two records per workflow written as the log was before (the whole value through
    `canonical`), then the same acts through the writers: the same bodies, and the
    chain of the old records followed by new ones verifies under its checkpoint."""
    key = Ed25519PrivateKey.generate()
    acts_of = _workflow_acts()
    old = [chain_record_body(ACTS, f"d0.w{i}", 100 + i, {"acts": [
        {"kind": k, "time_ms": t, "data": d} for k, t, d in acts_of]}) for i in range(2)]
    new = [record_body(f"d0.w{i}", 100 + i, [act_text(*a) for a in acts_of])
           for i in range(2)]
    assert new == old
    records, prev = [], GENESIS
    for seq, body in enumerate(old + new, 1):
        digest = record_hash(seq, prev, body)
        records.append(Record(seq, json.loads(body)["workflow"], ACTS, prev, body, digest))
        prev = digest
    checkpoint = make_checkpoint("d0", len(records), prev, 1, key.sign)
    verified = verify(records, [checkpoint], trusted=lambda d, data, sig: (
        d == "d0" and _holds(key, data, sig)))
    assert isinstance(verified, Verified) and verified.records == 4


def _holds(key: Ed25519PrivateKey, data: bytes, signature: bytes) -> bool:
    try:
        key.public_key().verify(signature, data)
    except Exception:
        return False
    return True


def test_base64_is_spliced_and_text_to_escape_is_escaped():
    """The fast path and the escapes (what the equivalence above covers, shown)."""
    raw = base64.b64encode(bytes(range(256))).decode()
    assert acts._long(raw) == f'"{raw}"'
    assert acts._long('a"b\\c\n\x7f') == '"a\\"b\\\\c\\n\x7f"'
    assert acts._long("é" * 3) == '"ééé"'
