"""A participant admits a client's signed submission under one workflow id only.

The client signs its spec with a request id and its signing time (submission.py). A
signed spec that a participant has admitted under workflow W is refused under any other
workflow id: a coordinator (or anyone holding the spec, though its signed coordinator
already stops those) that starts it again as a new workflow gets NO here. A signed spec
older than the window is refused outright, so the guard need remember a submission only
for the window (and the tolerated clock skew): after that the age check refuses it.

Submissions signed by a domain for itself (``domain:NAME``, open access) are not bound:
only that domain may present them, as their coordinator, and it is their principal.

Sans-I/O: the wall-clock time comes in as `now_ms`; the shell persists what `record`
admits (the rows `restore` takes back after a restart).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from fedorch.core.identity.clients import DOMAIN_PRINCIPAL_PREFIX
from fedorch.core.identity.submission import (
    MAX_CLOCK_SKEW_MS,
    SubmissionError,
    check_fresh,
)
from fedorch.gen.fedorch.v1 import spec_pb2

__all__ = ["Admission", "SubmissionGuard", "submission_key"]


def submission_key(signed: spec_pb2.SignedSpec) -> bytes:
    """What names one submission: its principal, that principal's key and its request
    id (two principals of one name at two domains have two keys)."""
    h = hashlib.sha256(b"fedorch-submission-key-v1\n")
    for part in (signed.principal.encode("utf-8"), signed.public_key,
                 signed.request_id.encode("utf-8")):
        h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


@dataclass(frozen=True)
class Admission:
    """A submission that may be admitted under `workflow_id`; `new` when this
    participant has not admitted it before (the shell then persists it)."""

    key: bytes
    workflow_id: str
    issued_at_ms: int
    new: bool


class SubmissionGuard:
    def __init__(self, window_ms: int) -> None:
        if window_ms <= 0:
            raise ValueError("the signed-spec window must be positive")
        self.window_ms = window_ms
        self._admitted: dict[bytes, tuple[str, int]] = {}  # key -> (workflow id, issued at)
        self._swept_at: int | None = None

    def __len__(self) -> int:
        return len(self._admitted)

    def restore(self, rows: Iterable[tuple[bytes, str, int]]) -> None:
        """Submissions admitted before a restart: (key, workflow id, issued_at_ms)."""
        for key, workflow_id, issued_at_ms in rows:
            self._admitted[bytes(key)] = (workflow_id, int(issued_at_ms))

    def check(self, signed: spec_pb2.SignedSpec, workflow_id: str,
              now_ms: int) -> Admission | None:
        """May `signed` be admitted under `workflow_id` now? SubmissionError naming the
        workflow it was admitted under (a replay) or its age; None for a domain's own
        spec (not bound, see the module doc). Changes nothing: `record` does."""
        if signed.principal.startswith(DOMAIN_PRINCIPAL_PREFIX):
            return None
        if not signed.request_id or not signed.issued_at_ms:
            raise SubmissionError(f"signed spec of {signed.principal}: not bound to a"
                                  " request (no request id or signing time)")
        key = submission_key(signed)
        known = self._admitted.get(key)
        if known is not None:
            if known[0] != workflow_id:
                raise SubmissionError(
                    f"signed spec of {signed.principal} (request {signed.request_id!r}) was"
                    f" admitted here as workflow {known[0]}: replayed as {workflow_id}")
            return Admission(key, workflow_id, known[1], new=False)
        check_fresh(signed, now_ms, self.window_ms)
        return Admission(key, workflow_id, signed.issued_at_ms, new=True)

    def record(self, admission: Admission) -> None:
        """Admitted (a YES is on its way to disk): later PREPAREs for another workflow id
        are refused. Call it with no await since `check`, so two PREPAREs cannot both
        pass."""
        self._admitted[admission.key] = (admission.workflow_id, admission.issued_at_ms)

    def forget_before(self, now_ms: int) -> int:
        """Drop what the age check now refuses anyway; returns the issued-at cutoff (the
        shell deletes its rows older than it)."""
        cutoff = now_ms - self.window_ms - MAX_CLOCK_SKEW_MS
        # A sweep reads every entry: at most one per sixteenth of the window (what stays
        # a little longer is refused by its age all the same).
        if self._swept_at is not None and now_ms - self._swept_at < self.window_ms // 16:
            return cutoff
        self._swept_at = now_ms
        for key in [k for k, (_, at) in self._admitted.items() if at < cutoff]:
            del self._admitted[key]
        return cutoff
