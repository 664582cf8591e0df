"""A round as its coordinator signs it (Body.round_tx), for tests that drive an acceptor
shell with PaxosPrepares and Accepts of a coordinator other than the agent under test:
an acceptor makes a record only of a round its coordinator stated
(agent/runtime/round_proofs.py, `stated`)."""

from __future__ import annotations

import os
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, seal
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.messages import TxInfo
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire

_KEYS: dict[str, Ed25519PrivateKey] = {}


def signed(trust: TrustStore, tx: TxInfo) -> TxInfo:
    """`tx` carrying its coordinator's signed round; the coordinator's key (made once per
    test run) is added to `trust`."""
    key = _KEYS.setdefault(tx.coordinator, Ed25519PrivateKey.generate())
    if tx.coordinator not in trust.domains():
        trust.add(tx.coordinator, key.public_key())
    sealed = seal(Signer(tx.coordinator, key), recipient="", now_ms=1, nonce=os.urandom(16),
                  round_tx=wire.tx_pb(tx))
    return replace(tx, round_tx=wire.canonical(
        peer_pb2.Envelope(body=sealed.body, signature=sealed.signature)))
