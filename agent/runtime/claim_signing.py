"""Signing and checking SWIM claims with the domain's key (membership's).

The SWIM core signs its claims through a `ClaimSigner` and checks others' through a
`ClaimVerifier` (agent/core/membership/swim_types.py's Signer and Verifier). Both put
a context prefix before the claim's body, so a claim can never be mistaken for an
envelope body or the reverse.
"""

from __future__ import annotations

from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.trust import TrustStore

CLAIM_CONTEXT = b"fedorch/v1 swim claim\x00"


class ClaimSigner:
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def sign(self, body: bytes) -> bytes:
        return self._signer.sign(CLAIM_CONTEXT + body)


class ClaimVerifier:
    def __init__(self, trust: TrustStore) -> None:
        self._trust = trust

    def verify(self, signer: str, body: bytes, signature: bytes) -> bool:
        # Claims are relayed long after they were signed: one made under a key its
        # domain rotated away from still counts (as evidence does), unless revoked.
        return self._trust.verify(signer, CLAIM_CONTEXT + body, signature, evidence=True)
