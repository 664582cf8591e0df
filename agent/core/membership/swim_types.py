"""Value types of the SWIM membership core: errors, states, signed claims, messages, events.

Everything here is plain data. The wire shell encodes messages into protobuf; the core only
needs the dataclasses below and :func:`estimate_size`, an upper bound of the encoded size
that the core uses to keep every datagram under the profile's byte limit.

A *claim* is one signed statement about one member ("m7 is ALIVE at incarnation 4 with this
record", "m3 SUSPECTs m7 at incarnation 4"). Its ``body`` is a canonical byte string (see
:class:`ClaimBody`) and its ``signature`` is over exactly those bytes, so a relay can pass
a claim on unchanged and every receiver can check it against the issuer's key.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, Protocol


class LocalProtocolError(Exception):
    """The caller (the shell) used the core wrongly: a bug on our side, never a peer's."""


class RemoteProtocolError(Exception):
    """A peer sent something malformed, forged or contradictory. Counted and dropped."""


class MemberState(enum.Enum):
    __hash__ = object.__hash__  # singletons: identity hashing is exact and runs in C

    ALIVE = "ALIVE"
    SUSPECT = "SUSPECT"
    DEAD = "DEAD"
    LEFT = "LEFT"


class ClaimKind(enum.IntEnum):
    ALIVE = 1  # signed by the subject itself; carries its address and domain record
    SUSPECT = 2  # signed by the accuser
    DEAD = 3  # signed by the accuser
    LEFT = 4  # signed by the subject itself: a graceful leave


class Signer(Protocol):
    """Signs this member's own claims (for example with its Ed25519 domain key)."""

    def sign(self, body: bytes) -> bytes: ...


class Verifier(Protocol):
    """Checks a claim against the named member's trusted key; unknown names return False."""

    def verify(self, signer: str, body: bytes, signature: bytes) -> bool: ...


# Structural limits of the encoding itself; profiles set tighter operational limits.
MAX_NAME_BYTES = 255
MAX_ADDRESS_BYTES = 255
MAX_RECORD_BYTES = 1 << 20
MAX_INCARNATION = (1 << 63) - 1  # claims stay below it, so a refutation's +1 fits an int64

_BODY_FORMAT_VERSION = 1
_HEADER = struct.Struct(">BBQQ")  # format version, kind, incarnation, record version
_SHORT_LEN = struct.Struct(">H")
_LONG_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class ClaimBody:
    """The decoded, signed part of a claim.

    Encoding (big endian): u8 format version, u8 kind, u64 incarnation, u64 record version,
    then u16-length-prefixed UTF-8 subject, issuer and address, then a u32-length-prefixed
    record. One encoding per value, so equal bodies are equal bytes.
    """

    kind: ClaimKind
    subject: str
    incarnation: int
    issuer: str
    address: str = ""
    record_version: int = 0
    record: bytes = b""

    def encode(self) -> bytes:
        parts = [_HEADER.pack(_BODY_FORMAT_VERSION, self.kind, self.incarnation,
                              self.record_version)]
        for text in (self.subject, self.issuer, self.address):
            raw = text.encode()
            parts.append(_SHORT_LEN.pack(len(raw)))
            parts.append(raw)
        parts.append(_LONG_LEN.pack(len(self.record)))
        parts.append(self.record)
        return b"".join(parts)

    @staticmethod
    def decode(data: bytes) -> ClaimBody:
        """Parse and check a body; anything a correct peer could not have signed is refused."""
        if not isinstance(data, bytes) or len(data) < _HEADER.size:
            raise RemoteProtocolError("claim body too short")
        version, kind_code, incarnation, record_version = _HEADER.unpack_from(data, 0)
        if version != _BODY_FORMAT_VERSION:
            raise RemoteProtocolError(f"claim body format {version} unknown")
        try:
            kind = ClaimKind(kind_code)
        except ValueError:
            raise RemoteProtocolError(f"claim kind {kind_code} unknown") from None
        offset = _HEADER.size
        texts = []
        for limit in (MAX_NAME_BYTES, MAX_NAME_BYTES, MAX_ADDRESS_BYTES):
            raw, offset = _take(data, offset, _SHORT_LEN, limit)
            try:
                texts.append(raw.decode())
            except UnicodeDecodeError:
                raise RemoteProtocolError("claim text is not UTF-8") from None
        record, offset = _take(data, offset, _LONG_LEN, MAX_RECORD_BYTES)
        if offset != len(data):
            raise RemoteProtocolError("trailing bytes after claim body")
        body = ClaimBody(kind, texts[0], incarnation, texts[1], texts[2], record_version, record)
        body.check()
        return body

    def check(self) -> None:
        """Semantic rules of each kind; the same rules guard our own signing."""
        if not self.subject or not self.issuer:
            raise RemoteProtocolError("claim without subject or issuer")
        if self.incarnation >= MAX_INCARNATION or self.record_version >= MAX_INCARNATION:
            raise RemoteProtocolError("incarnation out of range")
        self_signed = self.kind in (ClaimKind.ALIVE, ClaimKind.LEFT)
        if self_signed and self.issuer != self.subject:
            raise RemoteProtocolError(f"{self.kind.name} claim must be signed by its subject")
        if not self_signed and self.issuer == self.subject:
            raise RemoteProtocolError("a member cannot accuse itself")
        if self.kind is ClaimKind.ALIVE:
            if not self.address:
                raise RemoteProtocolError("ALIVE claim without address")
        elif self.record or self.record_version or self.address:
            raise RemoteProtocolError(f"{self.kind.name} claim carries alive-only fields")


def _take(data: bytes, offset: int, prefix: struct.Struct, limit: int) -> tuple[bytes, int]:
    if offset + prefix.size > len(data):
        raise RemoteProtocolError("claim body truncated")
    (length,) = prefix.unpack_from(data, offset)
    offset += prefix.size
    if length > limit or offset + length > len(data):
        raise RemoteProtocolError("claim field too long or truncated")
    return data[offset:offset + length], offset + length


@dataclass(frozen=True)
class Claim:
    """A signed statement: ``signature`` is ``signer``'s signature over ``body`` as sent."""

    signer: str
    body: bytes
    signature: bytes

    # Decoding and sizing are cached on the instance: a relayed claim object is parsed once
    # however many times it is merged or measured (the simulator shares objects between nodes).
    @cached_property
    def parsed(self) -> ClaimBody:
        if not isinstance(self.signer, str) or not isinstance(self.signature, bytes):
            raise RemoteProtocolError("claim fields have wrong types")
        body = ClaimBody.decode(self.body)
        if body.issuer != self.signer:
            raise RemoteProtocolError("claim signer differs from its issuer")
        return body

    @cached_property
    def wire_size(self) -> int:
        inner = (_bytes_field(len(self.signer.encode())) + _bytes_field(len(self.body))
                 + _bytes_field(len(self.signature)))
        return _bytes_field(inner)


def sign_claim(body: ClaimBody, signer_name: str, signer: Signer) -> Claim:
    body.check()
    raw = body.encode()
    return Claim(signer_name, raw, signer.sign(raw))


# ---- messages ---------------------------------------------------------------------------
# ``sender`` is the sending member's name (the shell authenticates it with the envelope);
# ``claims`` are piggy-backed gossip. Sequence numbers pair acks with probes.


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int
    sender: str
    target: str  # the name the sender meant to reach; a misdirected ping is refused
    claims: tuple[Claim, ...] = ()


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    sender: str
    claims: tuple[Claim, ...] = ()


@dataclass(frozen=True, slots=True)
class PingReq:
    """Ask the receiver to probe ``target`` on the sender's behalf."""

    seq: int
    sender: str
    target: str
    target_address: str
    claims: tuple[Claim, ...] = ()


@dataclass(frozen=True, slots=True)
class IndirectAck:
    """The intermediary reached ``target``; ``seq`` is the requester's."""

    seq: int
    sender: str
    target: str
    claims: tuple[Claim, ...] = ()


@dataclass(frozen=True, slots=True)
class Nack:
    """The intermediary is alive but did not reach ``target`` in time (Lifeguard)."""

    seq: int
    sender: str
    target: str
    claims: tuple[Claim, ...] = ()


@dataclass(frozen=True, slots=True)
class Gossip:
    """Claims pushed without a probe: used to announce a graceful leave quickly."""

    sender: str
    claims: tuple[Claim, ...] = ()


@dataclass(frozen=True, slots=True)
class PushPull:
    """Anti-entropy: the sender's full state. A request (``reply`` False) is answered in kind.

    It is the one message not bound by ``max_message_bytes``: the shell carries it on a
    stream (a unary gRPC call), not in a datagram.
    """

    sender: str
    reply: bool
    claims: tuple[Claim, ...] = ()


Message = Ping | Ack | PingReq | IndirectAck | Nack | Gossip | PushPull
MESSAGE_TYPES = (Ping, Ack, PingReq, IndirectAck, Nack, Gossip, PushPull)


def _varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def _bytes_field(length: int) -> int:
    """Tag, length prefix and payload of a protobuf bytes/string/sub-message field."""
    return 1 + _varint_size(length) + length if length else 0


def estimate_size(msg: Message) -> int:
    """An upper bound of the protobuf encoding of ``msg`` inside a one-of wrapper.

    Integers are costed at their varint size plus a tag, strings and sub-messages at tag,
    length prefix and payload, booleans at two bytes; unset (zero) fields cost nothing,
    as in proto3. The shell adds its signed envelope on top; profiles leave room for it.
    """
    size = _bytes_field(len(msg.sender.encode()))
    seq = getattr(msg, "seq", 0)
    if seq:
        size += 1 + _varint_size(seq)
    for field in ("target", "target_address"):
        text = getattr(msg, field, "")
        if text:
            size += _bytes_field(len(text.encode()))
    if getattr(msg, "reply", False):
        size += 2
    for claim in msg.claims:
        size += claim.wire_size
    return _bytes_field(size) if size else 2


# ---- outputs for the shell -------------------------------------------------------------


class EventKind(enum.Enum):
    ALIVE = "alive"  # joined, or came back with a higher incarnation
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"
    RECORD_UPDATED = "record-updated"
    REAPED = "reaped"  # a DEAD/LEFT member dropped from the list (a tombstone remains)
    INPUT_REJECTED = "input-rejected"  # a peer message was dropped; ``detail`` says why


class MemberEvent(NamedTuple):  # a tuple: cheap to make, as every change makes one
    kind: EventKind
    name: str  # the member concerned (for INPUT_REJECTED: the claimed sender)
    incarnation: int
    at: float
    accuser: str = ""  # who signed the SUSPECT/DEAD claim
    record_version: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class MemberView:
    name: str
    address: str
    state: MemberState
    incarnation: int
    last_heard: float | None  # last message received from it; None if never direct
    record: bytes
    record_version: int
