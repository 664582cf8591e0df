"""A signed peer message that changes nothing, to see whether an agent takes its sender
(trust, TLS identity), on either engine: the shells' QueryDecision about a workflow
nobody runs, or, on `engine: node`, a NodeTurn carrying no message."""

from __future__ import annotations

import time

import grpc
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.config import load_config
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_engine.engine import uses_node_engine


def runs_node_engine(fed, name: str) -> bool:
    return uses_node_engine(load_config(fed.configs[name]))


def probe(fed, sender: str | Signer, recipient: str) -> tuple[str, peer_pb2.Envelope]:
    """The Peer method and a fresh envelope signed by `sender` (a domain of `fed`, signing
    with its key file, or a Signer: another key of it) for `recipient`."""
    signer = fed.signer(sender) if isinstance(sender, str) else sender
    now_ms = int(time.time() * 1000)
    if runs_node_engine(fed, recipient):
        return "NodeTurn", seal(signer, recipient=recipient, now_ms=now_ms,
                                nonce=new_nonce(),
                                node_turn=peer_pb2.NodeTurn(messages=node_codec().encode(())))
    return "QueryDecision", seal(signer, recipient=recipient, now_ms=now_ms,
                                 nonce=new_nonce(), decision_query=peer_pb2.DecisionQuery(
                                     workflow_id=f"{recipient}.absent", round=1))


async def send_probe(channel: grpc.aio.Channel, fed, sender: str, recipient: str
                     ) -> peer_pb2.Envelope:
    """The probe sent over `channel`; its answer, or the call's AioRpcError."""
    method, envelope = probe(fed, sender, recipient)
    return await getattr(peer_pb2_grpc.PeerStub(channel), method)(envelope, timeout=5)


def refusal_label(fed, name: str) -> str:
    """The `reason` of fedorch_rejected_messages_total that counts a probe from an
    untrusted sender at `name`: the shells count it by the message's kind, the node
    engine by what failed."""
    return "unauthenticated" if runs_node_engine(fed, name) else "decision_query"


def answered(fed, recipient: str, reply: peer_pb2.Envelope) -> bool:
    """The probe was taken: the shells answer with a signed decision, the node engine
    with the empty Envelope NodeTurn answers once it posted the (no) messages."""
    if runs_node_engine(fed, recipient):
        return reply == peer_pb2.Envelope()
    return bool(reply.signature)
