"""Replay guard: refuse a signed message seen before or sent too far from now.

Sans-I/O: the caller passes the time. A message is accepted only if its sender's clock is
within `window_ms` of ours (either direction: clock skew is bounded, see the fault model)
and its (sender, nonce) has not been seen. A remembered nonce can be forgotten once its
message would be refused by the window anyway, so memory stays bounded; expiries sit in a
heap so pruning is cheap. If the bound is reached we refuse new messages ("replay guard
full") rather than forget nonces early, because an early forget would re-open a replay.

Two clocks. The window compares the sender's wall clock with ours (`now_ms`): that is all
a timestamp from another machine can be compared with. How long a nonce is held is
measured on our monotonic clock (`mono_ms`): each timestamp is translated into the
monotonic frame when it arrives (`sent_at_ms - now_ms + mono_ms`) and its nonce is kept
until two windows past that. So a step of our wall clock forward does not forget nonces
early, and one back does not stop the guard: messages stamped by the stepped clock (ours,
or the whole federation's after a common correction) fit the window and pass. A step back
of up to one window revives no forgotten nonce (that is what the second window buys);
after a step back of D > window, a message captured about D earlier fits the window again
with its nonce long forgotten. No guard can refuse that without keeping every nonce
forever; receivers are idempotent, so such a replay repeats what was already done.

Without `mono_ms` (callers with no monotonic clock) the wall clock is the frame, and the
guard's time never runs backwards: it uses the highest `now_ms` it has seen, so a clock
step back cannot revive pruned nonces, but also refuses everything until the wall clock
is back where it was.
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
        # Heap of (expires_at_ms, sender, nonce), in the guard's frame (see the docstring).
        self._expiry: list[tuple[int, str, bytes]] = []
        self._now = -(2**63)  # the highest time seen in that frame: pruning never goes back

    @property
    def remembered(self) -> int:
        """How many (sender, nonce) pairs are held (not __len__: an empty guard stays truthy)."""
        return len(self._seen)

    def _prune(self, now: int) -> None:
        # An entry expiring at exactly now may still be replayed (skew == window is allowed).
        heap = self._expiry
        while heap and heap[0][0] < now:
            _, sender, nonce = heapq.heappop(heap)
            self._seen.discard((sender, nonce))

    def check_and_remember(
        self, sender: str, nonce: bytes, sent_at_ms: int, now_ms: int,
        mono_ms: int | None = None,
    ) -> str | None:
        """None if fresh (and now remembered); otherwise why the message is refused.

        `now_ms` is our wall clock; `mono_ms` our monotonic one (ms), if the caller has one
        (a guard is fed either always or never: the two frames do not mix).
        """
        if len(nonce) != NONCE_BYTES:
            return f"nonce must be {NONCE_BYTES} bytes"
        sent_at_ms = int(sent_at_ms)
        if mono_ms is None:  # the wall clock is the frame; it never goes back here
            self._now = now = max(self._now, int(now_ms))
            sent, keep = sent_at_ms, self.window_ms
        else:
            now = int(now_ms)
            self._now = max(self._now, int(mono_ms))
            sent, keep = sent_at_ms - now + int(mono_ms), 2 * self.window_ms
        skew = abs(now - sent_at_ms)
        if skew > self.window_ms:
            return f"outside replay window (skew {skew} ms > {self.window_ms} ms)"
        self._prune(self._now)
        key = (sender, bytes(nonce))
        if key in self._seen:
            return "replayed nonce"
        if len(self._seen) >= self.max_entries:
            return "replay guard full"
        self._seen.add(key)
        heapq.heappush(self._expiry, (sent + keep, key[0], key[1]))
        return None
