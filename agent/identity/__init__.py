"""Identity: domain keys, the trust store, the replay guard and signed envelopes."""

from agent.identity.envelope import (
    AuthError,
    Signer,
    new_nonce,
    open_evidence,
    open_message,
    seal,
)
from agent.identity.keys import (
    DOMAIN_RE,
    KeyFileError,
    init_keys,
    load_private_key,
    load_public_key_file,
)
from agent.identity.replay import ReplayGuard
from agent.identity.trust import TrustStore

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
