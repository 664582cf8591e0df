"""Identity: domain keys, the trust store, the replay guard and signed envelopes."""

from fedorch.core.identity.envelope import (
    AuthError,
    Signer,
    new_nonce,
    open_evidence,
    open_message,
    seal,
)
from fedorch.core.identity.keys import (
    DOMAIN_RE,
    KeyFileError,
    init_keys,
    load_private_key,
    load_public_key_file,
)
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.trust import TrustStore

__all__ = [
    "DOMAIN_RE",
    "AuthError",
    "KeyFileError",
    "ReplayGuard",
    "Signer",
    "TrustStore",
    "init_keys",
    "load_private_key",
    "load_public_key_file",
    "new_nonce",
    "open_evidence",
    "open_message",
    "seal",
]
