"""The in-memory wire of `bench node` (node.py): envelopes encoded, signed, verified.

A message (or, one envelope per turn, the messages one driver turn sends to one peer)
is encoded with `NodeCodec` behind a header naming sender and receiver, signed with
the sender's Ed25519 key on the sender's thread, handed to the receiver's event loop
(`call_soon_threadsafe`), and there verified over the bytes as received, its header
checked, decoded and posted to the receiver's DriverLoop as `Message`s. What fails
verification is counted and dropped. Each agent's `Timers` hold the thread CPU of
those parts (no counter is shared between threads).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fedorch.core.node import Message
from fedorch.runtime.node_codec import NodeCodec
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

__all__ = ["CRYPTO", "Peer", "Timers", "Wire", "WirePort"]

DOMAINS = ("c1", "c2", "c3")


class Peer(Protocol):
    """An agent as the wire reaches it (node.Agent)."""

    name: str
    timers: Timers
    loop: Any           # its asyncio event loop
    driver_loop: Any    # its DriverLoop: post(input)


class Timers:
    """Thread CPU seconds and counts of the parts timed apart, one per agent thread (no
    counter is shared between threads)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()


class CryptographyKeys:
    """Ed25519 through `cryptography` (OpenSSL)."""

    def __init__(self) -> None:
        self._keys = {n: Ed25519PrivateKey.generate() for n in DOMAINS}
        self._public: dict[str, Ed25519PublicKey] = {n: k.public_key()
                                                     for n, k in self._keys.items()}

    def sign(self, src: str, data: bytes) -> bytes:
        return self._keys[src].sign(data)

    def verify(self, src: str, signature: bytes, data: bytes) -> bool:
        try:
            self._public[src].verify(signature, data)
        except InvalidSignature:
            return False
        return True


class LibsodiumKeys:
    """Ed25519 through libsodium (PyNaCl), as the daemon signs and verifies
    (core/identity/envelope.py, trust.py)."""

    def __init__(self) -> None:
        pairs = {n: crypto_sign_seed_keypair(os.urandom(32)) for n in DOMAINS}
        self._secret = {n: sk for n, (_, sk) in pairs.items()}
        self._public = {n: pk for n, (pk, _) in pairs.items()}

    def sign(self, src: str, data: bytes) -> bytes:
        return crypto_sign(data, self._secret[src])[:64]

    def verify(self, src: str, signature: bytes, data: bytes) -> bool:
        try:
            crypto_sign_open(signature + data, self._public[src])
        except BadSignatureError:
            return False
        return True


CRYPTO = {"cryptography": CryptographyKeys, "libsodium": LibsodiumKeys}


class Wire:
    """The in-memory network between the agents' loops (see the header)."""

    def __init__(self, codec: NodeCodec, envelope: str, crypto: str) -> None:
        self.codec = codec
        self.envelope = envelope
        self.agents: dict[str, Peer] = {}
        self.keys = CRYPTO[crypto]()
        self.refused = 0

    def seal(self, src: str, dst: str, body: object, timers: Timers) -> None:
        """On the sender's thread: encode, sign; then hand to the receiver's loop."""
        t0 = time.thread_time()
        data = f"{src}>{dst}\n".encode() + self.codec.encode(body)
        t1 = time.thread_time()
        signature = self.keys.sign(src, data)
        t2 = time.thread_time()
        timers.seconds["wire encode"] += t1 - t0
        timers.seconds["sign"] += t2 - t1
        timers.counts["envelopes"] += 1
        timers.counts["bytes"] += len(data) + len(signature)
        if src == dst:  # a daemon would hand these to itself unsigned; here they are not
            timers.counts["envelopes to itself"] += 1
        receiver = self.agents[dst]
        try:
            receiver.loop.call_soon_threadsafe(self.receive, src, receiver, data, signature)
        except RuntimeError:  # its loop is closed: the agent has stopped (the bench ends)
            timers.counts["lost to a stopped agent"] += 1

    def receive(self, src: str, receiver: Peer, data: bytes, signature: bytes) -> None:
        """On the receiver's thread: verify over the bytes as received, decode, post."""
        timers = receiver.timers
        t0 = time.thread_time()
        if not self.keys.verify(src, signature, data):
            self.refused += 1
            return
        t1 = time.thread_time()
        header, _, payload = data.partition(b"\n")
        if header != f"{src}>{receiver.name}".encode():
            self.refused += 1
            return
        body = self.codec.decode(payload)
        t2 = time.thread_time()
        timers.seconds["verify"] += t1 - t0
        timers.seconds["wire decode"] += t2 - t1
        timers.counts["envelopes verified"] += 1
        for msg in (body if self.envelope == "turn" else (body,)):
            timers.counts["messages"] += 1
            timers.counts[f"message {type(msg).__name__}"] += 1
            receiver.driver_loop.post(Message(src, msg))


class WirePort:
    """An agent's Transport: each message sealed alone, or (envelope="turn") the
    messages of one driver turn to one peer held and sealed together after the turn."""

    def __init__(self, wire: Wire, agent: Peer) -> None:
        self.wire, self.agent = wire, agent
        self._held: dict[str, list[object]] = {}

    def send(self, dst: str, msg: object) -> None:
        if self.wire.envelope == "message":
            self.wire.seal(self.agent.name, dst, msg, self.agent.timers)
            return
        if not self._held:  # the turn's first: seal them all once the turn is over
            self.agent.loop.call_soon(self._flush)
        self._held.setdefault(dst, []).append(msg)

    def _flush(self) -> None:
        held, self._held = self._held, {}
        for dst, msgs in held.items():
            self.wire.seal(self.agent.name, dst, tuple(msgs), self.agent.timers)
