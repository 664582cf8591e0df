"""Checks at the core's one input boundary: the shell's arguments and peers' messages."""

from __future__ import annotations

import math

from fedorch.core.membership.swim_types import (
    MAX_ADDRESS_BYTES,
    MAX_NAME_BYTES,
    LocalProtocolError,
    Message,
    RemoteProtocolError,
)

SEQ_LIMIT = 1 << 64


def check_time(now: float) -> float:
    if not isinstance(now, (int, float)) or isinstance(now, bool) or math.isnan(now):
        raise LocalProtocolError(f"now must be a number of seconds, got {now!r}")
    return float(now)


def check_text(what: str, value: str, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value.encode()) > limit:
        raise LocalProtocolError(f"{what} must be a non-empty string of at most {limit} bytes")


def check_message(msg: Message, max_claims: int) -> None:
    """Structure of a peer message; the shell decoded it, but a peer chose the values."""
    sender = msg.sender
    if not isinstance(sender, str) or not sender or len(sender) > MAX_NAME_BYTES:
        raise RemoteProtocolError("message without a valid sender name")
    claims = msg.claims
    if not isinstance(claims, (tuple, list)) or len(claims) > max_claims:
        raise RemoteProtocolError("claims missing or too many")
    seq = getattr(msg, "seq", 0)
    if not isinstance(seq, int) or not 0 <= seq < SEQ_LIMIT:
        raise RemoteProtocolError("sequence number out of range")
    for field in ("target", "target_address"):
        value = getattr(msg, field, "x")
        if not isinstance(value, str) or not value or len(value) > MAX_ADDRESS_BYTES:
            raise RemoteProtocolError(f"message without a valid {field}")
