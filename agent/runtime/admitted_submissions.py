"""The signed submissions this participant admitted, kept for their window.

The shell of core/identity/submission_guard.py: the guard in memory (loaded once, before
the first PREPARE is checked), its rows in the `admitted_submissions` table, written in
the same transaction as the YES that admits them, so that after a restart a replay
under another workflow id is still refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedorch.core.identity.submission_guard import Admission, SubmissionGuard
from fedorch.gen.fedorch.v1 import spec_pb2

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext
    from fedorch.runtime.store.store import Statement


class AdmittedSubmissions:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        self.guard = SubmissionGuard(int(agent.config.negotiation.signed_spec_window_s * 1000))
        self._loaded = False

    async def load(self) -> None:
        """Once, before the first check: what was admitted before a restart."""
        if self._loaded:
            return
        cutoff = self.guard.forget_before(self.agent.now_ms())
        rows = await self.agent.store.select(
            "SELECT key, workflow_id, issued_at_ms FROM admitted_submissions"
            " WHERE issued_at_ms >= ?", (cutoff,))
        self.guard.restore(rows)
        self._loaded = True

    def check(self, signed: spec_pb2.SignedSpec, workflow_id: str) -> Admission | None:
        """See SubmissionGuard.check (SubmissionError on a replay or a stale spec)."""
        return self.guard.check(signed, workflow_id, self.agent.now_ms())

    def record(self, admission: Admission | None) -> list[Statement]:
        """Admit it now (no await since `check`); the statements that make it durable,
        to be written with the YES, and those dropping rows past the window."""
        if admission is None or not admission.new:
            return []
        self.guard.record(admission)
        cutoff = self.guard.forget_before(self.agent.now_ms())
        return [
            ("INSERT OR IGNORE INTO admitted_submissions(key, workflow_id, issued_at_ms)"
             " VALUES(?, ?, ?)", (admission.key, admission.workflow_id, admission.issued_at_ms)),
            ("DELETE FROM admitted_submissions WHERE issued_at_ms < ?", (cutoff,)),
        ]
