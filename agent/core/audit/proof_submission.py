"""The submitter's signature in a proof: the check formats 1 and 2 share.

A proof's submission carries the spec bytes, the submitter's signature over them and
the coordinator's attestation, which names the principal and the public key it
vouches for as that principal's, and what the submitter signed with the spec (request
id, time, the coordinator it was signed for). `submitter_signature` rebuilds the
SignedSpec from those and checks it as a participant checks a PREPARE's
(core/identity/submission.py); see docs/audit.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedorch.core.audit.chain import unb64
from fedorch.core.identity.clients import ClientKeys
from fedorch.core.identity.submission import (
    SubmissionError,
    check_prepare_submission,
    qualified,
)
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import spec_pb2
from google.protobuf.message import DecodeError

__all__ = ["ProofError", "submitter_signature"]


class ProofError(ValueError):
    """The proof does not hold; the message says where."""


def _signed_field(submitted: Mapping, name: str, kind: type, default):
    """A field the submitter signed with the spec, as the attestation records it."""
    value = submitted.get(name, default)
    if not isinstance(value, kind) or isinstance(value, bool) \
            or (kind is int and not 0 <= value < 1 << 64):
        raise ValueError(f"submission: {name} is not a valid {kind.__name__}")
    return value


def submitter_signature(sub: dict, submitted: Mapping, spec_bytes: bytes, coordinator: str,
                         trust: TrustStore | None, clients: ClientKeys | None) -> bool:
    """Check the submitter's signature over the spec bytes; whether there is one (a log
    from before signed submissions has none, and its attestation no `client_key`)."""
    if "client_key" not in submitted:
        if sub["client_signature"] is not None:
            raise ProofError("submission: a client signature the attestation does not cover")
        return False
    principal = submitted.get("principal")
    if not isinstance(principal, str) or not principal:
        raise ProofError("submission: no principal")
    try:
        signed = spec_pb2.SignedSpec(
            principal=principal, spec=spec_bytes,
            signature=unb64(sub["client_signature"], "submission.client_signature"),
            public_key=unb64(submitted["client_key"], "submission.client_key"),
            request_id=_signed_field(submitted, "signed_request_id", str, ""),
            issued_at_ms=_signed_field(submitted, "signed_at_ms", int, 0),
            coordinator=_signed_field(submitted, "signed_coordinator", str, ""))
    except ValueError as e:
        raise ProofError(str(e)) from None
    if trust is None:
        return True  # building: the checker verifies
    try:
        check_prepare_submission(signed, coordinator=coordinator,
                                 spec=spec_pb2.WorkflowSpec.FromString(spec_bytes), trust=trust)
    except (SubmissionError, DecodeError) as e:
        raise ProofError(f"submission: {e}") from None
    if clients is not None:
        for name in dict.fromkeys((principal, qualified(principal, coordinator))):
            known = clients.public_bytes(name)
            if known is not None and known != signed.public_key:
                raise ProofError(f"submission: {coordinator} vouched for another key of"
                                 f" {principal} than the one held here")
    return True
