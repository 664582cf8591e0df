"""The submitter's signed spec: made by the client, checked by the agent that takes it
and by every participant that votes on it, and by anyone who checks a proof.

A submitter signs ``submission_payload(signed)``: a fixed prefix (so a spec signature can
never be taken for a call signature or a peer message), the principal, the coordinator it
submits to, its request id and the wall-clock time of signing, then the serialized
WorkflowSpec *exactly as sent*. Whoever checks it verifies those bytes as received and
only then parses them; nothing is ever re-serialised before a check.

Why the request id, time and coordinator are signed: the spec alone names no submission,
so anyone holding a signed spec (every participant sees it) could start it again as a
new workflow. Signed with the coordinator, it is valid in that coordinator's PREPAREs
only; signed with a request id and a time, a participant admits it under one workflow
id only, and only within a window of its signing (submission_guard.py).

Who vouches for the key. A client key is known to the agents of its own domain
(``clients.key_files``). The coordinator puts the principal's public key into the PREPARE,
which it signs: a participant takes the key on the coordinator's word, and its policy says
whose word it takes for which principals (``accept_from: [{domain, principals}]``). So a
principal is always read as vouched by the coordinator: ``alice`` there is
``alice@COORDINATOR``, and a principal homed at another domain (``alice@other``) is refused,
since only its home domain may vouch for it. A coordinator that lies about a key can only
speak for principals it vouches for, and its lie is signed by it.

Without client identities (``fedorch demo``'s open access) the coordinator signs the spec
with its own domain key as principal ``domain:NAME``, checked against the trust store.

Sans-I/O: bytes, keys and the trust store in, verdicts out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fedorch.core.identity.clients import (
    DOMAIN_PRINCIPAL_PREFIX,
    SIGNATURE_BYTES,
    ClientKeys,
    home_domain,
    is_valid_principal,
)
from fedorch.core.identity.keys import is_valid_domain
from fedorch.core.identity.trust import TrustStore
from fedorch.core.workflow import fanout
from fedorch.gen.fedorch.v1 import spec_pb2

__all__ = [
    "SubmissionError",
    "attached",
    "detached",
    "Submitter",
    "check_fresh",
    "check_prepare_submission",
    "check_submitted",
    "principal_of",
    "qualified",
    "sign_spec",
    "submission_payload",
    "verify_spec_signature",
]

PAYLOAD_PREFIX = b"fedorch-signed-spec-v2\n"
MAX_REQUEST_ID_CHARS = 128
PUBLIC_KEY_BYTES = 32
# How far ahead of this agent's wall clock a submitter's may be (docs/security.md).
MAX_CLOCK_SKEW_MS = 300_000
# The largest spec a signed submission may carry (the gRPC message limit is larger).
MAX_SPEC_BYTES = 1 << 20


class SubmissionError(ValueError):
    """A signed spec does not hold; the message says what, naming the principal."""


@dataclass(frozen=True)
class Submitter:
    """Who asked for a spec, as checked: `principal` as signed, `qualified` with the
    domain that vouched for it (``alice@eu-west``, or ``domain:eu-west``)."""

    principal: str
    qualified: str
    spec: spec_pb2.WorkflowSpec


def _field(text: str) -> bytes:
    raw = text.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw  # length-prefixed: no field can end early


def submission_payload(signed: spec_pb2.SignedSpec) -> bytes:
    """The bytes a submitter signs: prefix, principal, coordinator, request id (each
    length-prefixed), issued-at (8 bytes), then the spec bytes as sent."""
    return (PAYLOAD_PREFIX + _field(signed.principal) + _field(signed.coordinator)
            + _field(signed.request_id) + signed.issued_at_ms.to_bytes(8, "big")
            + signed.spec)


def sign_spec(principal: str, sign: Callable[[bytes], bytes],
              spec: spec_pb2.WorkflowSpec, public_key: bytes = b"", *, request_id: str = "",
              issued_at_ms: int = 0, coordinator: str = "") -> spec_pb2.SignedSpec:
    """Serialize `spec` once and sign those bytes with what binds them to one submission
    (see the module doc); what the client sends."""
    signed = spec_pb2.SignedSpec(principal=principal,
                                 spec=spec.SerializeToString(deterministic=True),
                                 public_key=public_key, request_id=request_id,
                                 issued_at_ms=issued_at_ms, coordinator=coordinator)
    signed.signature = sign(submission_payload(signed))
    return signed


def qualified(principal: str, vouched_by: str) -> str:
    """A principal as `vouched_by` names it: ``alice`` -> ``alice@vouched_by``."""
    if principal.startswith(DOMAIN_PRINCIPAL_PREFIX) or "@" in principal:
        return principal
    return f"{principal}@{vouched_by}"


def principal_of(signed: spec_pb2.SignedSpec | None, coordinator: str) -> str:
    """The submitter a PREPARE carries, qualified as `coordinator` vouches for it (what
    `check_prepare_submission` names once it verified `signed`): ``alice@COORDINATOR``,
    or ``domain:COORDINATOR`` for a spec the coordinator signed itself (open access) or
    for a PREPARE with no signed spec at all, which is the coordinator's word alone."""
    if signed is None or not signed.principal:
        return DOMAIN_PRINCIPAL_PREFIX + coordinator
    return qualified(signed.principal, coordinator)


def _shape(signed: spec_pb2.SignedSpec) -> None:
    principal = signed.principal
    if not principal:
        raise SubmissionError("signed spec: no principal")
    if not principal.startswith(DOMAIN_PRINCIPAL_PREFIX) and not is_valid_principal(principal):
        raise SubmissionError(f"signed spec: invalid principal {principal[:80]!r}")
    if len(signed.signature) != SIGNATURE_BYTES:
        raise SubmissionError(f"signed spec of {principal}: the signature must be "
                              f"{SIGNATURE_BYTES} bytes")
    if not signed.spec:
        raise SubmissionError(f"signed spec of {principal}: no spec bytes")
    if len(signed.spec) > MAX_SPEC_BYTES:
        raise SubmissionError(f"signed spec of {principal}: over {MAX_SPEC_BYTES} bytes")
    if len(signed.request_id) > MAX_REQUEST_ID_CHARS:
        raise SubmissionError(f"signed spec of {principal}: request id over "
                              f"{MAX_REQUEST_ID_CHARS} characters")
    if signed.coordinator and not is_valid_domain(signed.coordinator):
        raise SubmissionError(f"signed spec of {principal}: invalid coordinator "
                              f"{signed.coordinator[:80]!r}")


def _bound(signed: spec_pb2.SignedSpec) -> None:
    """A client's signature names its submission: a request id and a signing time."""
    if not signed.request_id:
        raise SubmissionError(f"signed spec of {signed.principal}: no request id signed (a"
                              " client signs the request id, time and coordinator with the"
                              " spec)")
    if not signed.issued_at_ms:
        raise SubmissionError(f"signed spec of {signed.principal}: no signing time")


def _parse(signed: spec_pb2.SignedSpec) -> spec_pb2.WorkflowSpec:
    try:
        return spec_pb2.WorkflowSpec.FromString(signed.spec)
    except Exception:  # DecodeError, or anything the parser throws at junk
        raise SubmissionError(f"signed spec of {signed.principal}: the spec bytes do not"
                              " parse") from None


def _key(raw: bytes, principal: str) -> Ed25519PublicKey:
    if len(raw) != PUBLIC_KEY_BYTES:
        raise SubmissionError(f"signed spec of {principal}: the public key must be "
                              f"{PUBLIC_KEY_BYTES} bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SubmissionError(f"signed spec of {principal}: not an Ed25519 key") from None


def verify_spec_signature(signed: spec_pb2.SignedSpec, key: Ed25519PublicKey) -> None:
    """SubmissionError unless `key` signed `signed.spec` for `signed.principal`."""
    try:
        key.verify(signed.signature, submission_payload(signed))
    except InvalidSignature:
        raise SubmissionError(f"signed spec of {signed.principal}: bad signature (not the"
                              " spec this principal signed)") from None


def check_submitted(signed: spec_pb2.SignedSpec, caller_principal: str,
                    clients: ClientKeys, *, request_id: str, domain: str, now_ms: int,
                    window_ms: int) -> spec_pb2.WorkflowSpec:
    """At the agent a client submits to (`domain`): the signature is the caller's own over
    these bytes, by the key this agent knows for it, for this request (`request_id` is
    the SubmitRequest's), to this domain, signed within the window. Returns the spec
    parsed from the bytes."""
    _shape(signed)
    if signed.principal != caller_principal:
        raise SubmissionError(f"signed spec names principal {signed.principal!r}, but the"
                              f" call is from {caller_principal!r}")
    if signed.principal not in clients:
        raise SubmissionError(f"signed spec of {signed.principal}: its key is not in this"
                              " agent's clients.key_files")
    if not clients.verify(signed.principal, submission_payload(signed), signed.signature):
        raise SubmissionError(f"signed spec of {signed.principal}: bad signature")
    _bound(signed)
    if signed.request_id != request_id:
        raise SubmissionError(f"signed spec of {signed.principal}: signed for request"
                              f" {signed.request_id!r}, sent as request {request_id!r}")
    if signed.coordinator and signed.coordinator != domain:
        raise SubmissionError(f"signed spec of {signed.principal}: signed for coordinator"
                              f" {signed.coordinator}, not {domain}")
    check_fresh(signed, now_ms, window_ms)
    return _parse(signed)


def check_fresh(signed: spec_pb2.SignedSpec, now_ms: int, window_ms: int) -> None:
    """SubmissionError unless `signed` was signed within `window_ms` before `now_ms`
    (wall clocks; up to MAX_CLOCK_SKEW_MS ahead of this one is tolerated)."""
    age_ms = now_ms - signed.issued_at_ms
    if age_ms > window_ms:
        raise SubmissionError(f"signed spec of {signed.principal}: signed {age_ms // 1000} s"
                              f" ago, older than the {window_ms // 1000} s window (sign it"
                              " again to submit it again; if it was just signed, this"
                              " agent's clock is that far ahead of the signer's)")
    if -age_ms > MAX_CLOCK_SKEW_MS:
        raise SubmissionError(f"signed spec of {signed.principal}: signed {-age_ms // 1000} s"
                              " in the future (clocks differ by more than"
                              f" {MAX_CLOCK_SKEW_MS // 1000} s)")


def check_prepare_submission(signed: spec_pb2.SignedSpec, *, coordinator: str,
                             spec: spec_pb2.WorkflowSpec, trust: TrustStore) -> Submitter:
    """At a participant: the PREPARE's signed spec holds, is vouched for by its
    coordinator, and `spec` (what the PREPARE asks to run) is exactly the signed one."""
    _shape(signed)
    principal = signed.principal
    if principal.startswith(DOMAIN_PRINCIPAL_PREFIX):
        signer = principal.removeprefix(DOMAIN_PRINCIPAL_PREFIX)
        if signer != coordinator:
            raise SubmissionError(f"signed spec of {principal}: a coordinator signs specs only"
                                  f" as itself (domain:{coordinator})")
        if signed.public_key:
            raise SubmissionError(f"signed spec of {principal}: a domain's key comes from the"
                                  " trust store, not the PREPARE")
        if not trust.verify(coordinator, submission_payload(signed), signed.signature):
            raise SubmissionError(f"signed spec of {principal}: bad signature")
    else:
        home = home_domain(principal)
        if home and home != coordinator:
            raise SubmissionError(f"signed spec of {principal}: only {home} may vouch for it,"
                                  f" not {coordinator}")
        verify_spec_signature(signed, _key(signed.public_key, principal))
        _bound(signed)
    if signed.coordinator and signed.coordinator != coordinator:
        raise SubmissionError(f"signed spec of {principal}: signed for coordinator"
                              f" {signed.coordinator}, not {coordinator} (a replay)")
    signed_spec = _parse(signed)
    # The coordinator may expand fan-out steps into one instance per domain it chose;
    # nothing else of the signed spec may differ.
    if signed_spec != spec and not fanout.is_expansion_of(spec, signed_spec):
        raise SubmissionError(f"the spec to run differs from the one {principal} signed")
    return Submitter(principal, qualified(principal, coordinator), signed_spec)


def detached(signed: spec_pb2.SignedSpec) -> bytes:
    """`signed` without its spec bytes, serialized: what a coordinator stores beside the
    spec (which it keeps as the exact bytes signed)."""
    kept = spec_pb2.SignedSpec()
    kept.CopyFrom(signed)
    kept.ClearField("spec")
    return kept.SerializeToString()


def attached(stored: bytes, spec_bytes: bytes) -> spec_pb2.SignedSpec:
    """The SignedSpec that `detached` stored, with its spec bytes put back (a spec whose
    fan-out steps the coordinator expanded is stored whole: its bytes are not the row's)."""
    signed = spec_pb2.SignedSpec.FromString(stored)
    if not signed.spec:
        signed.spec = spec_bytes
    return signed
