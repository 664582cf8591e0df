"""The bytes of the protobuf messages a Node's rows and messages carry again and again
(a workflow's spec and its signed submission), serialised once per message object.

Theory of operation
-------------------
A workflow's `WfInfo` (core/node/records.py) holds its spec and the signed submission
as protobuf messages, and it is encoded whole each time something holding it is: the
coordinator's workflow row at each of its changes, a participant's committed PREPARE,
every PREPARE sent. The codec cannot know that a message it serialised before is
unchanged (protobuf messages are mutable, and keep no mark of a change), so it
serialised the spec again each time (`NodeCodec`'s `["pb", name, bytes]` tree).

`ProtoBytes` keeps the deterministic bytes of each message of the classes it is given,
keyed by the message's identity, the message held alive with its bytes: while it is
kept, its id names no other object. That is safe only for messages nothing changes
once the Node holds them, and a spec and its submission are such: the client service
builds or parses them and places the spec (fan-out expanded into a new message,
core/workflow/fanout.py) before posting the `Submit`; the Node puts that message into
its `WfInfo` and copies it into every later one (`WfInfo(info.spec, ...)`), never
changing it; a participant's comes new from the PREPARE's bytes; the own spec
signatures copy what they keep (runtime/node_engine/own_specs.py). The placing of a
submission (its plans are kept by the spec's bytes: runtime/node_engine/placing.py),
the own spec signature (its shape) and the audit log's hash of a PREPARE's spec take
their bytes from here too, so a coordinator serialises each spec once. Nothing in the
cores or the runtime sets a field of a spec or submission once the client service
placed it (the submission's public key is set before), and a test holds every kept
message equal to its bytes after a federation's workflows ran
(tests/unit/runtime/test_node_codec_protos.py). Other protobuf messages (the config's)
are serialised at each encoding, as before.

Two threads encode (the event loop its messages, the commit thread node.db's rows)
with one codec, so the table is changed under a lock; a look-up takes none (one dict
read, atomic under the GIL; an entry is an immutable pair). At most `kept` messages
and `max_bytes` of their bytes are kept, the oldest go first; a message larger than
`max_bytes / 64` is serialised at each encoding (kept, it would hold much memory).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from google.protobuf.message import Message as ProtoMessage

__all__ = ["KEPT_PROTO_BYTES", "KEPT_PROTOS", "ProtoBytes"]

KEPT_PROTOS = 8_192  # messages whose bytes are kept
KEPT_PROTO_BYTES = 32 * 1024 * 1024  # and their bytes, in all


class ProtoBytes:
    """`message.SerializeToString(deterministic=True)`, kept per message object for the
    messages nothing changes once made (see the header)."""

    def __init__(self, classes: Iterable[type[ProtoMessage]], kept: int = KEPT_PROTOS,
                 max_bytes: int = KEPT_PROTO_BYTES) -> None:
        """`classes`: those whose messages' bytes are kept (others are serialised at
        each call)."""
        self.classes = frozenset(classes)
        self.kept = kept
        self.max_bytes = max_bytes
        self._entries: dict[int, tuple[ProtoMessage, bytes]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.serialised = 0  # messages of `classes` serialised (for tests and benchmarks)

    def of(self, message: ProtoMessage) -> bytes:
        entry = self._entries.get(id(message))
        if entry is not None and entry[0] is message:
            return entry[1]
        data = message.SerializeToString(deterministic=True)
        if message.__class__ not in self.classes:
            return data
        with self._lock:
            self.serialised += 1
            if len(data) <= self.max_bytes // 64:
                self._keep(message, data)
        return data

    def _keep(self, message: ProtoMessage, data: bytes) -> None:
        entries = self._entries
        old = entries.pop(id(message), None)  # another thread's, of the same message
        if old is not None:
            self._bytes -= len(old[1])
        entries[id(message)] = (message, data)
        self._bytes += len(data)
        while len(entries) > self.kept or self._bytes > self.max_bytes:
            _, oldest = entries.pop(next(iter(entries)))
            self._bytes -= len(oldest)

    def stale(self) -> list[ProtoMessage]:
        """The kept messages whose bytes are no longer theirs (one was changed after it
        was serialised): none, unless some code changes a message the header says
        nothing changes. For tests."""
        with self._lock:
            entries = list(self._entries.values())
        return [m for m, data in entries if m.SerializeToString(deterministic=True) != data]
