"""A signed peer message that changes nothing, to see whether an agent takes its sender
(trust, TLS identity): a NodeTurn carrying no message."""

from __future__ import annotations

import time

import grpc
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.node_codec import node_codec


def probe(fed, sender: str | Signer, recipient: str) -> tuple[str, peer_pb2.Envelope]:
    """The Peer method and a fresh envelope signed by `sender` (a domain of `fed`, signing
    with its key file, or a Signer: another key of it) for `recipient`."""
    signer = fed.signer(sender) if isinstance(sender, str) else sender
    return "NodeTurn", seal(signer, recipient=recipient, now_ms=int(time.time() * 1000),
                            nonce=new_nonce(),
                            node_turn=peer_pb2.NodeTurn(messages=node_codec().encode(())))


async def send_probe(channel: grpc.aio.Channel, fed, sender: str, recipient: str
                     ) -> peer_pb2.Envelope:
    """The probe sent over `channel`; its answer, or the call's AioRpcError."""
    method, envelope = probe(fed, sender, recipient)
    return await getattr(peer_pb2_grpc.PeerStub(channel), method)(envelope, timeout=5)


def refusal_label(fed, name: str) -> str:
    """The `reason` of fedorch_rejected_messages_total that counts a probe from an
    untrusted sender at `name`: what failed."""
    return "unauthenticated"


def answered(fed, recipient: str, reply: peer_pb2.Envelope) -> bool:
    """The probe was taken: NodeTurn answers with the empty Envelope once it posted the
    (no) messages."""
    return reply == peer_pb2.Envelope()
