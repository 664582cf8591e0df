"""SWIM messages to and from protobuf (proto/fedorch/v1/swim.proto).

Pure translation; the protocol checks stay in the core. Decoding raises
RemoteProtocolError for a message with no kind; everything else is checked
where it matters (claims are verified by the core over their bytes as sent).
"""

from __future__ import annotations

from fedorch.core.membership.swim_types import (
    Ack,
    Claim,
    Gossip,
    IndirectAck,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    RemoteProtocolError,
)
from fedorch.gen.fedorch.v1 import swim_pb2


def _claims_out(claims: tuple[Claim, ...]) -> list[swim_pb2.SwimClaim]:
    return [swim_pb2.SwimClaim(signer=c.signer, body=c.body, signature=c.signature)
            for c in claims]


def _claims_in(claims) -> tuple[Claim, ...]:
    return tuple(Claim(c.signer, c.body, c.signature) for c in claims)


def encode(msg: Message) -> swim_pb2.SwimMessage:
    claims = _claims_out(msg.claims)
    match msg:
        case Ping():
            return swim_pb2.SwimMessage(ping=swim_pb2.SwimPing(
                seq=msg.seq, sender=msg.sender, target=msg.target, claims=claims))
        case Ack():
            return swim_pb2.SwimMessage(ack=swim_pb2.SwimAck(
                seq=msg.seq, sender=msg.sender, claims=claims))
        case PingReq():
            return swim_pb2.SwimMessage(ping_req=swim_pb2.SwimPingReq(
                seq=msg.seq, sender=msg.sender, target=msg.target,
                target_address=msg.target_address, claims=claims))
        case IndirectAck():
            return swim_pb2.SwimMessage(indirect_ack=swim_pb2.SwimIndirectAck(
                seq=msg.seq, sender=msg.sender, target=msg.target, claims=claims))
        case Nack():
            return swim_pb2.SwimMessage(nack=swim_pb2.SwimNack(
                seq=msg.seq, sender=msg.sender, target=msg.target, claims=claims))
        case Gossip():
            return swim_pb2.SwimMessage(gossip=swim_pb2.SwimGossip(
                sender=msg.sender, claims=claims))
        case PushPull():
            return swim_pb2.SwimMessage(push_pull=swim_pb2.SwimPushPull(
                sender=msg.sender, reply=msg.reply, claims=claims))
    raise TypeError(f"not a SWIM message: {msg!r}")


def decode(wire: swim_pb2.SwimMessage) -> Message:
    kind = wire.WhichOneof("kind")
    if kind is None:
        raise RemoteProtocolError("SWIM message without a kind")
    m = getattr(wire, kind)
    claims = _claims_in(m.claims)
    match kind:
        case "ping":
            return Ping(m.seq, m.sender, m.target, claims)
        case "ack":
            return Ack(m.seq, m.sender, claims)
        case "ping_req":
            return PingReq(m.seq, m.sender, m.target, m.target_address, claims)
        case "indirect_ack":
            return IndirectAck(m.seq, m.sender, m.target, claims)
        case "nack":
            return Nack(m.seq, m.sender, m.target, claims)
        case "gossip":
            return Gossip(m.sender, claims)
        case "push_pull":
            return PushPull(m.sender, m.reply, claims)
    raise RemoteProtocolError(f"unknown SWIM message kind {kind}")
