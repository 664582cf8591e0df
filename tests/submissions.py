"""A submitter's signed spec for tests that build PREPAREs by hand: every PREPARE carries
one (agent/core/identity/submission.py), signed here by a client key made for the tests."""

from __future__ import annotations

import time
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.submission import sign_spec
from fedorch.gen.fedorch.v1 import spec_pb2

CLIENT_KEY = Ed25519PrivateKey.generate()
CLIENT_PUBLIC = CLIENT_KEY.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)


def signed(spec: spec_pb2.WorkflowSpec, principal: str = "alice",
           issued_at_ms: int | None = None) -> spec_pb2.SignedSpec:
    """`spec` as `principal` signs it now (a fresh request id, no coordinator named), with
    the key its coordinator vouches for."""
    return sign_spec(principal, CLIENT_KEY.sign, spec, public_key=CLIENT_PUBLIC,
                     request_id=uuid.uuid4().hex,
                     issued_at_ms=issued_at_ms or int(time.time() * 1000))
