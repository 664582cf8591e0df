"""This domain's audit log: what it did and why, one record per act.

The Node's acts are recorded by node_engine/audit.py once node.db holds them
(`record_acts`, appended in batches, each act already written as canonical JSON by
core/audit/acts.py); this module keeps the log itself (agent.db's chain, its
checkpoints) and the records of acts that are not the Node's: the agent's start, the
policy in force, a refused or taken client request, a trust change. Acts that change no
state (a refused client request) are appended alone before anyone hears of them. The
record format, the chain and the proofs are in agent/core/audit; the tables in
agent/runtime/store/audit_table.py.

Checkpoints: every CHECKPOINT_EVERY records, or CHECKPOINT_INTERVAL_S after a record
when fewer came, and when the agent stops, the head of the log is signed with the
domain key. Records after the last checkpoint are chained but not yet signed. The loop
that makes them sleeps with no deadline while no record is waiting for one (an idle
agent's log does not wake it), and with the interval's deadline once one is.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fedorch.core.audit.acts import ACTS
from fedorch.core.audit.acts import record_body as acts_body
from fedorch.core.audit.chain import STARTED, make_checkpoint
from fedorch.core.identity.keys import public_key_line
from fedorch.runtime.store import audit_table
from fedorch.runtime.store.store import Statement
from fedorch.runtime.wakeups import Sleep
from google.protobuf import json_format

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.audit")

CHECKPOINT_EVERY = 256
CHECKPOINT_INTERVAL_S = 5.0


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Audit:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        self._since_checkpoint = 0  # records made (perhaps not all written) since then
        self._checkpointing = asyncio.Lock()
        self.sleep = Sleep("audit checkpoints", agent.metrics.loop_wakeups, agent.now)

    # ---- appending -------------------------------------------------------------

    def record(self, kind: str, workflow_id: str, *, if_changed: bool = False,
               **data: object) -> Statement:
        """A record to write with the change it records (in the caller's transaction);
        `if_changed`: only if the statement just before it changed a row."""
        self._counted()
        return audit_table.append_statement(kind, workflow_id, self.agent.now_ms(), data,
                                            if_changed=if_changed)

    def record_acts(self, workflow_id: str, acts: Sequence[str]) -> Statement:
        """The node engine's record of a workflow's acts, each already written as its
        canonical JSON (core/audit/acts.py `act_text`): one ACTS record."""
        self._counted()
        return audit_table.append_encoded(
            ACTS, workflow_id, acts_body(workflow_id, self.agent.now_ms(), acts))

    def _counted(self) -> None:
        self._since_checkpoint += 1
        if self._since_checkpoint == 1 or self._since_checkpoint >= CHECKPOINT_EVERY:
            self.sleep.wake()  # the first: arm the interval; enough: checkpoint now

    async def append(self, kind: str, workflow_id: str, **data: object) -> None:
        """A record of an act that changes nothing else: written alone, now."""
        await self.agent.store.apply([self.record(kind, workflow_id, **data)])

    # ---- checkpoints -------------------------------------------------------------

    async def started(self, incarnation: int) -> None:
        """The agent starts: a record naming its key (how `audit verify` knows it without
        a trust dir), then checkpoints from now on."""
        a = self.agent
        raw = public_key_line(a.domain, a.signer.public_key()).split()[2]
        await self.append(STARTED, "", domain=a.domain, public_key=raw,
                          incarnation=incarnation, **self._policy())
        await self.checkpoint()
        a.spawn(self._checkpoint_loop(), name="audit checkpoints")

    async def _checkpoint_loop(self) -> None:
        first_at: float | None = None  # when the first record since the checkpoint came
        while not self.agent.stopping:
            await self.sleep.until(None if first_at is None
                                   else first_at + CHECKPOINT_INTERVAL_S)
            now = self.agent.now()
            if not self._since_checkpoint:
                first_at = None
                continue
            first_at = now if first_at is None else first_at
            if self._since_checkpoint >= CHECKPOINT_EVERY \
                    or now >= first_at + CHECKPOINT_INTERVAL_S:
                await self.checkpoint()
                first_at = None

    async def checkpoint(self) -> None:
        """Sign the head of the log, if a record came since the last checkpoint."""
        a = self.agent
        async with self._checkpointing:
            self._since_checkpoint = 0
            seq, head = await a.store.audit_head()
            if seq == 0 or seq <= await a.store.last_audit_checkpoint():
                return
            await a.store.save_audit_checkpoint(
                make_checkpoint(a.domain, seq, head, a.now_ms(), a.signer.sign))

    # ---- what the hooks record ---------------------------------------------------------

    def policy_hash(self) -> str:
        return sha256_hex(self.agent.config.policy.SerializeToString(deterministic=True))

    def _policy(self) -> dict[str, object]:
        """The policy in force and its hash: what a vote's `policy_sha256` refers to."""
        return {"policy_sha256": self.policy_hash(),
                "policy": json_format.MessageToDict(self.agent.config.policy)}

    async def policy_reloaded(self) -> None:
        """The policy may have changed (SIGHUP): record the one in force from now on."""
        await self.append("policy_loaded", "", **self._policy())

    async def refused(self, what: str, reason: str, *, workflow_id: str = "",
                      principal: str = "", peer: str = "") -> None:
        """A request this domain refused (nothing else changed, so written alone)."""
        await self.append("refused", workflow_id, request=what, reason=reason,
                          principal=principal, peer=peer)

    async def client_request(self, what: str, workflow_id: str, *, principal: str = "",
                             peer: str = "") -> None:
        await self.append("client_request", workflow_id, request=what, principal=principal,
                          peer=peer)

    def trust_changed(self, change: str, domain: str, public_key: str = "") -> Statement:
        """For the trust store's live changes (add, remove, rotate, revoke)."""
        return self.record("trust_changed", "", change=change, domain=domain,
                           public_key=public_key)
