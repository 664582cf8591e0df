"""Replay guard: refuse a signed message seen before or sent too far from now.

Sans-I/O: the caller passes the time. A message is accepted only if its sender's clock is
within `window_ms` of ours (either direction: clock skew is bounded, see the fault model)
and its (sender, nonce) has not been seen. A remembered nonce can be forgotten once its
message would be refused by the window anyway (sent_at_ms + window_ms has passed), so
memory stays bounded; expiries sit in a heap so pruning is cheap. If the bound is reached
we refuse new messages ("replay guard full") rather than forget nonces early, because an
early forget would re-open a replay. Time never runs backwards inside the guard: it uses
the highest `now_ms` it has seen, so a clock step back cannot revive pruned nonces.
"""

from __future__ import annotations

import heapq

NONCE_BYTES = 16


class ReplayGuard:
    def __init__(self, window_ms: int, max_entries: int = 1_000_000) -> None:
        if window_ms <= 0:
            raise ValueError("window_ms must be positive")
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self.window_ms = int(window_ms)
        self.max_entries = int(max_entries)
        self._seen: set[tuple[str, bytes]] = set()
        self._expiry: list[tuple[int, str, bytes]] = []  # heap of (expires_at_ms, sender, nonce)
        self._now = -(2**63)

    @property
    def remembered(self) -> int:
        """How many (sender, nonce) pairs are held (not __len__: an empty guard stays truthy)."""
        return len(self._seen)

    def _prune(self, now_ms: int) -> None:
        # An entry expiring at exactly now may still be replayed (skew == window is allowed).
        heap = self._expiry
        while heap and heap[0][0] < now_ms:
            _, sender, nonce = heapq.heappop(heap)
            self._seen.discard((sender, nonce))

    def check_and_remember(
        self, sender: str, nonce: bytes, sent_at_ms: int, now_ms: int
    ) -> str | None:
        """None if fresh (and now remembered); otherwise why the message is refused."""
        if len(nonce) != NONCE_BYTES:
            return f"nonce must be {NONCE_BYTES} bytes"
        self._now = now = max(self._now, int(now_ms))
        skew = abs(now - int(sent_at_ms))
        if skew > self.window_ms:
            return f"outside replay window (skew {skew} ms > {self.window_ms} ms)"
        self._prune(now)
        key = (sender, bytes(nonce))
        if key in self._seen:
            return "replayed nonce"
        if len(self._seen) >= self.max_entries:
            return "replay guard full"
        self._seen.add(key)
        heapq.heappush(self._expiry, (int(sent_at_ms) + self.window_ms, key[0], key[1]))
        return None
