"""The spec signatures a node-engine coordinator makes for open-access submissions.

Without client identities the coordinator vouches for each spec it takes by signing it
with its own domain key, as principal ``domain:NAME`` (core/identity/submission.py),
and every participant verifies that signature in the PREPARE. Such a signature names
no submission (no request id, so the participants' SubmissionGuard admits it under any
workflow id: core/identity/submission_guard.py), so `OwnSpecSignatures` keeps the one
it made for each spec shape and hands it out again for up to
`SPEC_SIGNATURE_REUSE_MS` (see the class).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from fedorch.core.identity.clients import DOMAIN_PRINCIPAL_PREFIX
from fedorch.core.identity.submission import sign_spec, submission_payload
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.runtime.node_codec import node_codec

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

__all__ = ["KNOWN_GOOD_SPEC_BYTES", "OWN_SIGNATURES_KEPT", "OwnSpecSignatures",
           "SPEC_SIGNATURE_REUSE_MS"]

KNOWN_GOOD_SPEC_BYTES = 64 * 1024  # own spec signatures told to the trust store up to this
# An own spec signature is used again for the same spec bytes this long, for at most
# this many spec shapes.
SPEC_SIGNATURE_REUSE_MS = 1_000
OWN_SIGNATURES_KEPT = 256


class OwnSpecSignatures:
    """The signed specs this domain vouches for under open access, one signature per
    spec shape (its deterministic bytes) for up to `SPEC_SIGNATURE_REUSE_MS`.

    A domain's own spec signature names no submission (no request id: the participants'
    SubmissionGuard admits it under any workflow id, core/identity/submission_guard.py),
    so the signature of the same bytes made a moment ago says what a new one would, with
    an `issued_at_ms` up to that much older. Reused, it costs no signature here, and the
    participants' trust stores verify it once, not once per workflow (their cache is
    keyed by the signed bytes and the signature). A new one is made when the signing key
    changed (a rotation), the kept one is older than the reuse span or from a wall
    clock that stepped back, or the spec is larger than KNOWN_GOOD_SPEC_BYTES (not kept
    at all). Each submission gets its own copy of the message."""

    def __init__(self, kept: int = OWN_SIGNATURES_KEPT) -> None:
        self.kept = kept
        self._signed: OrderedDict[bytes, tuple[spec_pb2.SignedSpec, object]] = OrderedDict()
        self.made = 0    # signatures made (for tests and the benchmark note)
        self.reused = 0  # submissions that took a kept one

    def signed(self, a: AgentContext, spec: spec_pb2.WorkflowSpec) -> spec_pb2.SignedSpec:
        """The signed spec `a` vouches for `spec` with now (a message of the caller's own)."""
        now_ms = a.now_ms()
        key_now = a.signer.private_key()
        # The spec's bytes as the Node's rows and PREPAREs will carry them: serialised
        # once for all of them (node_codec_protos.py; the spec is not changed after).
        shape = node_codec().proto_bytes.of(spec)
        kept = self._signed.get(shape)
        if kept is not None and kept[1] is key_now \
                and 0 <= now_ms - kept[0].issued_at_ms < SPEC_SIGNATURE_REUSE_MS:
            self.reused += 1
            copy = spec_pb2.SignedSpec()
            copy.CopyFrom(kept[0])
            return copy
        signed = sign_spec(DOMAIN_PRINCIPAL_PREFIX + a.domain, a.signer.sign, spec,
                           issued_at_ms=now_ms, coordinator=a.domain)
        self.made += 1
        # This domain's own participant checks the signature in the PREPARE it sends
        # itself (never on the wire): known good, as its own votes are. Not for a large
        # spec: the trust store's cache would keep a copy of its bytes (and so would this).
        if len(signed.spec) <= KNOWN_GOOD_SPEC_BYTES:
            a.trust.signed_here(a.domain, submission_payload(signed), signed.signature)
            kept_copy = spec_pb2.SignedSpec()
            kept_copy.CopyFrom(signed)
            self._signed[shape] = (kept_copy, key_now)
            self._signed.move_to_end(shape)
            while len(self._signed) > self.kept:
                self._signed.popitem(last=False)
        return signed
