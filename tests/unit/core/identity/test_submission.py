"""The submitter's signed spec (agent/core/identity/submission.py): what the agent a
client submits to checks, what every participant checks in a PREPARE, and what a proof
holds."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.clients import ClientKeys
from fedorch.core.identity.submission import (
    SubmissionError,
    attached,
    check_prepare_submission,
    check_submitted,
    detached,
    qualified,
    sign_spec,
    submission_payload,
)
from fedorch.core.identity.trust import TrustStore
from fedorch.core.workflow import fanout
from fedorch.gen.fedorch.v1 import spec_pb2
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SPEC = json_format.ParseDict(
    {"name": "model", "data": {"jurisdiction": "EU"},
     "steps": [{"id": "a", "capability": "x", "params": {"table": "sales"}},
               {"id": "b", "capability": "y", "needs": ["a"]}]},
    spec_pb2.WorkflowSpec())
ALICE = Ed25519PrivateKey.generate()
MALLORY = Ed25519PrivateKey.generate()
EU_WEST = Ed25519PrivateKey.generate()
NOW_MS = 1_800_000_000_000
WINDOW_MS = 3_600_000
BOUND = {"request_id": "r-1", "issued_at_ms": NOW_MS}


def _at_agent(signed: spec_pb2.SignedSpec, caller: str, clients: ClientKeys,
              request_id: str = "r-1", now_ms: int = NOW_MS) -> spec_pb2.WorkflowSpec:
    """check_submitted at eu-west, for request r-1, now."""
    return check_submitted(signed, caller, clients, request_id=request_id, domain="eu-west",
                           now_ms=now_ms, window_ms=WINDOW_MS)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def _vouched(principal: str = "alice", key: Ed25519PrivateKey = ALICE,
             spec: spec_pb2.WorkflowSpec = SPEC) -> spec_pb2.SignedSpec:
    """As a coordinator puts it into a PREPARE: with the key it vouches for."""
    return sign_spec(principal, key.sign, spec, public_key=_raw(key), **BOUND)


def _trust() -> TrustStore:
    return TrustStore({"eu-west": EU_WEST.public_key()})


def _clients() -> ClientKeys:
    return ClientKeys({"alice": ALICE.public_key()})


# ---- at the agent the client submits to ---------------------------------------------


def test_the_agent_takes_the_callers_own_signature_and_parses_the_bytes_it_got():
    signed = sign_spec("alice", ALICE.sign, SPEC, **BOUND)
    assert _at_agent(signed, "alice", _clients()) == SPEC


def test_a_signed_spec_naming_another_principal_than_the_caller_is_refused():
    signed = sign_spec("alice", ALICE.sign, SPEC, **BOUND)
    with pytest.raises(SubmissionError, match="names principal 'alice'.*from 'bob'"):
        _at_agent(signed, "bob", _clients())


def test_a_spec_signed_by_another_key_or_edited_after_signing_is_refused():
    forged = sign_spec("alice", MALLORY.sign, SPEC, **BOUND)
    with pytest.raises(SubmissionError, match="bad signature"):
        _at_agent(forged, "alice", _clients())
    edited = sign_spec("alice", ALICE.sign, SPEC, **BOUND)
    edited.spec = edited.spec.replace(b"sales", b"wages")
    with pytest.raises(SubmissionError, match="bad signature"):
        _at_agent(edited, "alice", _clients())


def test_a_principal_whose_key_is_not_listed_is_refused():
    with pytest.raises(SubmissionError, match="not in this agent's clients.key_files"):
        _at_agent(sign_spec("carol", ALICE.sign, SPEC, **BOUND), "carol", _clients())


@pytest.mark.parametrize("change, needle", [
    (lambda s: s.ClearField("principal"), "no principal"),
    (lambda s: setattr(s, "principal", "Alice!"), "invalid principal"),
    (lambda s: setattr(s, "signature", b"\0" * 10), "64 bytes"),
    (lambda s: s.ClearField("spec"), "no spec bytes"),
])
def test_malformed_signed_specs_are_refused_with_a_reason(change, needle):
    signed = sign_spec("alice", ALICE.sign, SPEC, **BOUND)
    change(signed)
    with pytest.raises(SubmissionError, match=needle):
        _at_agent(signed, "alice", _clients())


def test_signed_bytes_that_do_not_parse_are_refused_after_the_signature_holds():
    junk = b"\xff\xff\xff"
    signed = spec_pb2.SignedSpec(principal="alice", spec=junk, **BOUND)
    signed.signature = ALICE.sign(submission_payload(signed))
    with pytest.raises(SubmissionError, match="do not parse"):
        _at_agent(signed, "alice", _clients())


def test_the_signature_covers_the_principal_too():
    signed = sign_spec("alice", ALICE.sign, SPEC, **BOUND)
    signed.principal = "bob"
    clients = ClientKeys({"bob": ALICE.public_key()})  # even under the same key
    with pytest.raises(SubmissionError, match="bad signature"):
        _at_agent(signed, "bob", clients)


def test_the_agent_takes_a_signed_spec_only_for_its_request_its_domain_and_in_time():
    signed = sign_spec("alice", ALICE.sign, SPEC, request_id="r-1", issued_at_ms=NOW_MS,
                       coordinator="eu-west")
    assert _at_agent(signed, "alice", _clients()) == SPEC
    with pytest.raises(SubmissionError, match="signed for request 'r-1', sent as request"):
        _at_agent(signed, "alice", _clients(), request_id="r-2")
    with pytest.raises(SubmissionError, match="older than the 3600 s window"):
        _at_agent(signed, "alice", _clients(), now_ms=NOW_MS + WINDOW_MS + 1)
    with pytest.raises(SubmissionError, match="in the future"):
        _at_agent(signed, "alice", _clients(), now_ms=NOW_MS - 301_000)
    assert _at_agent(signed, "alice", _clients(), now_ms=NOW_MS - 299_000) == SPEC  # skew
    elsewhere = sign_spec("alice", ALICE.sign, SPEC, request_id="r-1", issued_at_ms=NOW_MS,
                          coordinator="us-east")
    with pytest.raises(SubmissionError, match="signed for coordinator us-east, not eu-west"):
        _at_agent(elsewhere, "alice", _clients())
    for unbound in ({"request_id": "r-1"}, {"issued_at_ms": NOW_MS}):
        with pytest.raises(SubmissionError, match="no request id|no signing time"):
            _at_agent(sign_spec("alice", ALICE.sign, SPEC, **unbound), "alice", _clients(),
                      request_id=unbound.get("request_id", ""))


def test_the_request_id_time_and_coordinator_are_under_the_signature():
    genuine = sign_spec("alice", ALICE.sign, SPEC, request_id="r-1", issued_at_ms=NOW_MS,
                        coordinator="eu-west")
    for field, value in (("request_id", "r-2"), ("issued_at_ms", NOW_MS + 1),
                         ("coordinator", "")):
        changed = spec_pb2.SignedSpec()
        changed.CopyFrom(genuine)
        setattr(changed, field, value)
        with pytest.raises(SubmissionError, match="bad signature"):
            _at_agent(changed, "alice", _clients(), request_id=changed.request_id)


# ---- at a participant, in a PREPARE --------------------------------------------------


def test_a_participant_takes_the_spec_the_principal_signed_as_vouched_by_its_coordinator():
    submitter = check_prepare_submission(_vouched(), coordinator="eu-west", spec=SPEC,
                                         trust=_trust())
    assert (submitter.principal, submitter.qualified) == ("alice", "alice@eu-west")
    assert submitter.spec == SPEC


def test_a_coordinator_that_alters_the_spec_meets_a_refusal_naming_the_principal():
    altered = spec_pb2.WorkflowSpec()
    altered.CopyFrom(SPEC)
    altered.steps[0].params["table"] = "wages"
    with pytest.raises(SubmissionError, match="differs from the one alice signed"):
        check_prepare_submission(_vouched(), coordinator="eu-west", spec=altered,
                                 trust=_trust())
    dropped = spec_pb2.WorkflowSpec()
    dropped.CopyFrom(SPEC)
    dropped.data.clear()  # the EU label gone: the residency check would not see it
    with pytest.raises(SubmissionError, match="differs"):
        check_prepare_submission(_vouched(), coordinator="eu-west", spec=dropped,
                                 trust=_trust())


ROLLOUT = json_format.ParseDict(
    {"name": "rollout",
     "steps": [{"id": "deploy", "capability": "x", "params": {"version": "2"},
                "each": {"domains": ["a", "b", "c"]}, "waves": {"max_parallel": 1}},
               {"id": "verify", "capability": "y", "needs": ["deploy"]}]},
    spec_pb2.WorkflowSpec())


def test_a_participant_takes_the_coordinators_expansion_of_fan_out_steps_and_nothing_else():
    signed = _vouched(spec=ROLLOUT)
    for chosen in (["a", "b", "c"], ["b", "c"], ["c"]):  # the coordinator's view chooses
        expanded = fanout.expand_into(ROLLOUT, {"deploy": chosen})
        assert [s.id for s in expanded.steps][:len(chosen)] == [f"deploy@{d}" for d in chosen]
        submitter = check_prepare_submission(signed, coordinator="eu-west", spec=expanded,
                                             trust=_trust())
        assert submitter.spec == ROLLOUT

    expanded = fanout.expand_into(ROLLOUT, {"deploy": ["a", "b"]})
    altered = spec_pb2.WorkflowSpec()
    altered.CopyFrom(expanded)
    altered.steps[1].params["version"] = "3"  # one instance's params changed
    unbarred = spec_pb2.WorkflowSpec()
    unbarred.CopyFrom(expanded)
    del unbarred.steps[1].needs[:]  # wave 2 without its barrier on wave 1
    outside = fanout.expand_into(ROLLOUT, {"deploy": ["a", "z"]})  # z is not in each.domains
    for spec in (altered, unbarred, outside):
        with pytest.raises(SubmissionError, match="differs from the one alice signed"):
            check_prepare_submission(signed, coordinator="eu-west", spec=spec, trust=_trust())


def test_a_coordinator_that_re_signs_an_altered_spec_with_the_vouched_key_changes_nothing():
    """Alter the signed bytes and keep alice's signature: the signature fails."""
    signed = _vouched()
    signed.spec = signed.spec.replace(b"sales", b"wages")
    with pytest.raises(SubmissionError, match="bad signature"):
        check_prepare_submission(signed, coordinator="eu-west",
                                 spec=spec_pb2.WorkflowSpec.FromString(signed.spec),
                                 trust=_trust())


def test_a_prepare_without_a_signed_spec_is_refused():
    with pytest.raises(SubmissionError, match="no principal"):
        check_prepare_submission(spec_pb2.SignedSpec(), coordinator="eu-west", spec=SPEC,
                                 trust=_trust())


def test_only_a_principals_home_domain_may_vouch_for_it():
    signed = _vouched("alice@us-east")
    with pytest.raises(SubmissionError, match="only us-east may vouch for it, not eu-west"):
        check_prepare_submission(signed, coordinator="eu-west", spec=SPEC, trust=_trust())
    submitter = check_prepare_submission(_vouched("alice@eu-west"), coordinator="eu-west",
                                         spec=SPEC, trust=_trust())
    assert submitter.qualified == "alice@eu-west"


def test_a_participant_refuses_a_spec_signed_for_another_coordinator():
    """What stops a participant (or a proof holder) that saw alice's signed spec from
    coordinating it as a workflow of its own."""
    signed = sign_spec("alice", ALICE.sign, SPEC, public_key=_raw(ALICE), request_id="r-1",
                       issued_at_ms=NOW_MS, coordinator="eu-west")
    assert check_prepare_submission(signed, coordinator="eu-west", spec=SPEC,
                                    trust=_trust()).principal == "alice"
    with pytest.raises(SubmissionError, match="signed for coordinator eu-west, not mallory"):
        check_prepare_submission(signed, coordinator="mallory", spec=SPEC, trust=_trust())
    unbound = sign_spec("alice", ALICE.sign, SPEC, public_key=_raw(ALICE))
    with pytest.raises(SubmissionError, match="no request id"):
        check_prepare_submission(unbound, coordinator="eu-west", spec=SPEC, trust=_trust())


def test_a_vouched_key_must_be_an_ed25519_key():
    signed = _vouched()
    signed.public_key = b"short"
    with pytest.raises(SubmissionError, match="32 bytes"):
        check_prepare_submission(signed, coordinator="eu-west", spec=SPEC, trust=_trust())


def test_a_domain_signed_spec_is_checked_with_the_coordinators_trusted_key():
    signed = sign_spec("domain:eu-west", EU_WEST.sign, SPEC, **BOUND)
    submitter = check_prepare_submission(signed, coordinator="eu-west", spec=SPEC,
                                         trust=_trust())
    assert submitter.qualified == "domain:eu-west"
    forged = sign_spec("domain:eu-west", MALLORY.sign, SPEC, **BOUND)
    with pytest.raises(SubmissionError, match="bad signature"):
        check_prepare_submission(forged, coordinator="eu-west", spec=SPEC, trust=_trust())


def test_a_coordinator_cannot_sign_as_another_domain_nor_bring_a_domains_key():
    other = sign_spec("domain:us-east", EU_WEST.sign, SPEC, **BOUND)
    with pytest.raises(SubmissionError, match="only as itself"):
        check_prepare_submission(other, coordinator="eu-west", spec=SPEC, trust=_trust())
    keyed = sign_spec("domain:eu-west", EU_WEST.sign, SPEC, public_key=_raw(EU_WEST),
                      **BOUND)
    with pytest.raises(SubmissionError, match="trust store"):
        check_prepare_submission(keyed, coordinator="eu-west", spec=SPEC, trust=_trust())


def test_qualified_names_a_principal_as_its_voucher_does():
    assert qualified("alice", "eu-west") == "alice@eu-west"
    assert qualified("alice@us-east", "eu-west") == "alice@us-east"
    assert qualified("domain:eu-west", "eu-west") == "domain:eu-west"


def test_the_stored_part_and_the_spec_bytes_make_the_signed_spec_again():
    signed = _vouched()
    kept = detached(signed)
    assert signed.spec not in kept
    assert attached(kept, signed.spec) == signed


# ---- fuzzing: no change to a signed spec passes ---------------------------------------

_FIELDS = ("principal", "spec", "signature", "public_key", "request_id", "coordinator")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(_FIELDS), data=st.binary(max_size=200),
       flip=st.integers(min_value=0, max_value=10_000))
def test_any_change_to_a_vouched_signed_spec_is_refused_and_never_raises_otherwise(
        field, data, flip):
    """Replace a field with random bytes, or flip one bit of it: the participant's check
    refuses with SubmissionError (never another exception), unless nothing changed."""
    genuine = _vouched()
    changed = spec_pb2.SignedSpec()
    changed.CopyFrom(genuine)
    value = getattr(genuine, field)
    raw = value.encode() if isinstance(value, str) else value
    if flip % 2 and raw:
        index = (flip // 2) % len(raw)
        raw = raw[:index] + bytes([raw[index] ^ (1 << (flip % 8))]) + raw[index + 1:]
    else:
        raw = data
    if isinstance(value, str):
        try:
            setattr(changed, field, raw.decode("utf-8"))
        except UnicodeDecodeError:
            return  # not a string protobuf can carry
    else:
        setattr(changed, field, raw)
    if changed == genuine:
        return
    with pytest.raises(SubmissionError):
        check_prepare_submission(changed, coordinator="eu-west", spec=SPEC, trust=_trust())
