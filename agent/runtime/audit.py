"""This domain's audit log: what it did and why, one record per act.

The hooks in the shells call one method each. Most return a Statement that the caller
adds to the write that makes the act durable (a vote with its reservation, a decision
with its cell, a step's start or end with its step row), so a record is on disk
exactly when the act is: never missing for a durable change, never present for a lost
one. Acts that change no state (a NO vote, a refused client request) are appended
alone before anyone hears of them. The record format, the chain and the proofs are
in agent/core/audit; the tables in agent/runtime/store/audit_table.py.

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
from collections.abc import Mapping
from typing import TYPE_CHECKING

from fedorch.core.audit import proof as proofs
from fedorch.core.audit.chain import STARTED, attest, b64, make_checkpoint
from fedorch.core.identity.keys import public_key_line
from fedorch.core.workflow import values
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.convert import step_state, step_state_name
from fedorch.runtime.store import audit_table
from fedorch.runtime.store.store import Statement
from fedorch.runtime.wakeups import Sleep
from google.protobuf import json_format

if TYPE_CHECKING:
    from fedorch.runtime.context import Active, AgentContext

log = logging.getLogger("fedorch.audit")

CHECKPOINT_EVERY = 256
CHECKPOINT_INTERVAL_S = 5.0
# Step states of progress notes: only final results are evidence worth a record.
_NOT_FINAL = frozenset(step_state(s) for s in ("PENDING", "WAITING", "RUNNING"))


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
        self._since_checkpoint += 1
        if self._since_checkpoint == 1 or self._since_checkpoint >= CHECKPOINT_EVERY:
            self.sleep.wake()  # the first: arm the interval; enough: checkpoint now
        return audit_table.append_statement(kind, workflow_id, self.agent.now_ms(), data,
                                            if_changed=if_changed)

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

    def vote(self, coordinator: str, req: peer_pb2.PrepareRequest,
             vote: peer_pb2.Vote) -> Statement:
        """A vote cast, with the hash of the policy that decided it."""
        return self.record(
            "vote", req.workflow_id, coordinator=coordinator, round=req.round, yes=vote.yes,
            reason=vote.reason, steps=list(req.steps), policy_sha256=self.policy_hash(),
            spec_sha256=sha256_hex(req.spec.SerializeToString(deterministic=True)))

    async def vote_alone(self, coordinator: str, req: peer_pb2.PrepareRequest,
                         vote: peer_pb2.Vote) -> None:
        """A vote that holds nothing (NO): written alone, before it leaves."""
        await self.agent.store.apply([self.vote(coordinator, req, vote)])

    def submitted(self, workflow_id: str, signed: spec_pb2.SignedSpec, request_id: str,
                  peer: str = "") -> Statement:
        """A submission taken here (as coordinator), with the submitter's signed spec:
        the attestation vouches for the principal's key (`client_key`, "" for a spec this
        domain signed as itself), and the signature travels beside it, so that a proof
        shows the exact spec the principal asked for."""
        a = self.agent
        digest = sha256_hex(signed.spec)
        attestation = attest(a.domain, {
            "kind": "submission", "workflow": workflow_id, "spec_sha256": digest,
            "principal": signed.principal, "client_key": b64(signed.public_key),
            "request_id": request_id, "time_ms": a.now_ms(),
            # What the submitter signed with the spec (binding it to this submission).
            "signed_request_id": signed.request_id, "signed_at_ms": signed.issued_at_ms,
            "signed_coordinator": signed.coordinator},
            a.signer.sign)
        return self.record(proofs.SUBMITTED, workflow_id, spec_sha256=digest,
                           spec=b64(signed.spec), principal=signed.principal, peer=peer,
                           request_id=request_id, client_signature=b64(signed.signature),
                           attestation=attestation)

    def decision(self, workflow_id: str, round_: int, outcome: str, envelope: bytes,
                 reason: str = "") -> Statement:
        """A decision this coordinator recorded (to follow its write-once statement); a
        COMMIT keeps its certificate here even once the decision record drops it."""
        return self.record(proofs.DECISION, workflow_id, if_changed=True, round=round_,
                           outcome=outcome,
                           reason=reason,
                           certificate=b64(envelope) if outcome == "COMMIT" else None)

    def learned(self, workflow_id: str, round_: int, outcome: str) -> Statement:
        """A decision learned (to follow the learned log's write-once statement)."""
        return self.record("learned", workflow_id, if_changed=True, round=round_,
                           outcome=outcome)

    def decided(self, workflow_id: str, round_: int, outcome: str) -> Statement:
        """A classic 2PC decision applied to this participant's hold (no learned log)."""
        return self.record("learned", workflow_id, round=round_, outcome=outcome)

    def step_started(self, workflow_id: str, step_id: str, attempt: int) -> Statement:
        return self.record("step_started", workflow_id, step=step_id, attempt=attempt)

    def step_ended(self, active: Active, step_id: str, attempt: int, state: str,
                   attested: peer_pb2.StepResult | None = None) -> Statement:
        """An attempt's end, with the hash of its outputs. At the coordinator the record
        keeps the result signed alone, as other domains send theirs (proofs use it):
        `attested`, the final result it sends with its attestation, when it has one (one
        signature for both), else signed here."""
        a = self.agent
        step = active.progress.steps[step_id]  # type: ignore[union-attr]
        evidence = None
        if attested is not None:
            evidence = b64(attested.attestation.SerializeToString())
        elif active.row.coordinator == a.domain:
            result = self.result_message(active.row.id, step_id, attempt, state,
                                         step.outputs, step.error)
            evidence = b64(a.seal("", step_result=result).SerializeToString())
        return self.record(proofs.STEP_ENDED, active.row.id, step=step_id, attempt=attempt,
                           state=state, error=step.error,
                           outputs_sha256=proofs.outputs_value_hash(step.outputs),
                           evidence=evidence)

    def result_message(self, workflow_id: str, step_id: str, attempt: int, state: str,
                       outputs: Mapping, error: str) -> peer_pb2.StepResult:
        result = peer_pb2.StepResult(workflow_id=workflow_id, step_id=step_id,
                                     attempt=attempt, domain=self.agent.domain,
                                     state=step_state(state), error=error)
        values.write_object(result, "outputs", dict(outputs))
        return result

    def attest_result(self, result: peer_pb2.StepResult) -> None:
        """Attach to a final result the same result sealed alone (StepResult.attestation)."""
        alone = peer_pb2.StepResult()
        alone.CopyFrom(result)
        alone.ClearField("attestation")
        result.attestation.CopyFrom(self.agent.seal("", step_result=alone))

    def result_records(self, sender: str, result: peer_pb2.StepResult) -> list[Statement]:
        """The record of a result received, if it is a final one and this domain its
        workflow's coordinator (the others keep no evidence of results)."""
        if result.state in _NOT_FINAL or result.workflow_id.rpartition(".")[0] != \
                self.agent.domain:
            return []
        return [self.result_received(sender, result)]

    def result_received(self, sender: str, result: peer_pb2.StepResult) -> Statement:
        """A final result from the domain that ran the step (at its coordinator), with
        its attestation if that says the same result from that domain. Its signature is
        checked when a proof is (not here, on every result: a bad one only fails the
        proof, which is what it would have to do anyway)."""
        evidence = None
        if result.HasField("attestation"):
            alone = peer_pb2.StepResult()
            alone.CopyFrom(result)
            alone.ClearField("attestation")
            try:
                body = peer_pb2.Body.FromString(result.attestation.body)
                same = body.sender == sender and body.step_result == alone
            except Exception:  # DecodeError, or anything the parser throws at junk
                same = False
            if same:
                evidence = b64(result.attestation.SerializeToString())
            else:
                log.warning("result of %s/%s from %s: its attestation is not that result",
                            result.workflow_id, result.step_id, sender)
        return self.record(proofs.RESULT, result.workflow_id, step=result.step_id,
                           domain=sender, attempt=result.attempt,
                           state=step_state_name(result.state),
                           outputs_sha256=proofs.outputs_hash(result), evidence=evidence)

    def ended(self, active: Active) -> Statement:
        """How a workflow coordinated here ended, attested by this domain."""
        a = self.agent
        row = active.row
        steps = {}
        if active.progress is not None:
            for s in active.progress.steps.values():
                steps[s.id] = {"state": s.state.value, "attempt": s.attempts,
                               "domain": s.domain,
                               "outputs_sha256": proofs.outputs_value_hash(s.outputs)}
        else:
            steps = {s.id: {"state": "PENDING", "attempt": 0, "domain": "",
                            "outputs_sha256": ""} for s in _spec_steps(row.spec)}
        attestation = attest(a.domain, {
            "kind": "final", "workflow": row.id, "state": row.state, "reason": row.reason,
            "steps": steps, "time_ms": a.now_ms()}, a.signer.sign)
        return self.record(proofs.ENDED, row.id, state=row.state, reason=row.reason,
                           attestation=attestation)

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


def _spec_steps(spec_bytes: bytes):
    return spec_pb2.WorkflowSpec.FromString(spec_bytes).steps


