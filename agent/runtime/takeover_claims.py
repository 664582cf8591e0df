"""Coordinator takeover, the claims this agent sends: each until answered, its answer fed back.

A part of Takeovers (agent/runtime/takeover.py), which owns the cores: a core's
`SendClaim` becomes one task here per (workflow, member, epoch), sending the claim over
the Takeover RPC (`TakeoverClaim`, with a deadline on every call) until the member
answers or the claim is over (the core's epoch or coordinator moved on, or it announced
the end), and feeding the answer to the core as a `Grant` or `Deny`.

What a claim carries: to an acceptor holding no step, the proof of the committed round
(agent/runtime/round_proofs.py); once it has won, the claimant's epoch certificate
(agent/runtime/epoch_certs.py). What an answer can say besides a grant or a denial: the
workflow ended meanwhile (its end, which the claimant makes its own and tells on,
Participation.ended -> Takeovers.end_known); the member is in doubt (asked again from
the shortest pause, `IN_DOUBT_AGAIN_S`). A denial naming another holder is proven when
it carries that holder's certificate of the epoch it names and the certificate verifies
here (EpochCertificates.proven_denial: the member won it itself, or relays the proof
it verified): the core follows it at once. Without a proof the core keeps claiming
(or acting) and reports it (`Unproven`, logged and counted by Takeovers.apply).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING, Protocol

from fedorch.core.workflow.takeover import Action, Deny, Grant, Role, SendClaim, Takeover
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.context import PEER_RPC_TIMEOUT_S
from fedorch.runtime.peers import PeerCallError

if TYPE_CHECKING:
    from fedorch.runtime.context import Active, AgentContext
    from fedorch.runtime.epoch_certs import EpochCertificates
    from fedorch.runtime.round_proofs import RoundProofs

log = logging.getLogger("fedorch.takeover")

# A claim is sent again to a member that does not answer until it does: a returning
# old coordinator learns from it that its epoch is over.
CLAIM_PATIENCE_S = 24 * 3600.0
# A participant in doubt answered the claim: asked again after this (then the backoff),
# not after the claim timeout. It learns the decision within a recovery ballot.
IN_DOUBT_AGAIN_S = 0.2


class _Taken(enum.Enum):
    """What an answer to a claim leaves to do."""

    DONE = "done"  # fed to the core (or the claim is over)
    IN_DOUBT = "in doubt"  # the member is in doubt: asked again from the shortest pause
    AGAIN = "again"  # not an answer to this claim: asked again after the backoff


class ClaimOwner(Protocol):
    """What of Takeovers (agent/runtime/takeover.py) the claims need."""

    agent: AgentContext
    certificates: EpochCertificates
    proofs: RoundProofs

    async def apply(self, active: Active, core: Takeover, actions: list[Action]) -> None: ...


class ClaimSender:
    def __init__(self, takeovers: ClaimOwner) -> None:
        self._takeovers = takeovers
        self._tasks: dict[tuple[str, str, int], asyncio.Task] = {}  # (wf, to, epoch)

    def send(self, active: Active, core: Takeover, action: SendClaim) -> None:
        """Send a claim until answered, unless it is on its way already."""
        key = (active.row.id, action.to, action.epoch)
        task = self._tasks.get(key)
        # The current task may be this very claim's, answered by the grant that won it:
        # the winner's claim then goes again, with its certificate (the core's `_won`).
        if task is None or task.done() or task is asyncio.current_task():
            task = self._takeovers.agent.spawn(
                self.until_answered(active, core, action),
                name=f"takeover {active.row.id} claim to {action.to}")
            if task is not None:
                self._tasks[key] = task

    async def until_answered(self, active: Active, core: Takeover, claim: SendClaim) -> None:
        """Send one claim until answered (or the claim is over), and feed in the answer.
        A core that announced the end (`ended`) claims no more: its end notices, resent
        until answered, tell the members that never answered whom to follow."""
        a = self._takeovers.agent
        row = active.row
        deadline = a.now() + CLAIM_PATIENCE_S
        backoff = 0.2
        in_doubt_there = False
        try:
            while core.epoch == claim.epoch and core.coordinator == a.domain and not core.ended:
                reply = await self._send_once(active, core, claim)
                if reply is not None:
                    taken = await self._take(active, core, claim, *reply)
                    if taken is _Taken.DONE:
                        return
                    if taken is _Taken.IN_DOUBT and not in_doubt_there:
                        # Up, and about to learn the COMMIT: asked again soon, from the
                        # shortest pause the first time (it answered, so it is
                        # reachable; the pause grew while it was down), then the backoff
                        # as before (one that says so for ever is not asked more often
                        # than an unreachable one).
                        in_doubt_there, backoff = True, IN_DOUBT_AGAIN_S
                if a.now() + backoff > deadline or not await a.sleep(backoff):
                    return
                backoff = min(backoff * 2, 5.0)
        finally:
            key = (row.id, claim.to, claim.epoch)
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]  # not a claim sent again meanwhile

    async def _send_once(self, active: Active, core: Takeover, claim: SendClaim
                         ) -> tuple[peer_pb2.TakeoverAnswer, peer_pb2.Envelope] | None:
        """One try: the answer and its envelope, or None (no endpoint, no answer)."""
        t = self._takeovers
        a = t.agent
        row = active.row
        endpoint = a.endpoint_of(claim.to, row.endpoints)
        if endpoint is None:
            return None
        message = peer_pb2.TakeoverClaim(workflow_id=row.id, epoch=claim.epoch)
        if core.role is Role.ACTING:  # won: the proof goes with it
            if (cert := t.certificates.certificate(row.id)) is not None:
                message.epoch_certificate.CopyFrom(cert)
        # An acceptor holding no step may have missed the committed round: the claim
        # shows it (agent/runtime/round_proofs.py).
        if claim.to not in core.participants and claim.to != core.original:
            proof = await t.proofs.claim_proof(row)
            if proof is not None:
                message.round_tx.CopyFrom(proof[0])
                message.commit.CopyFrom(proof[1])
        try:
            body, envelope = await a.peers.call(
                endpoint, "Takeover", recipient=claim.to, expect="takeover_answer",
                timeout=PEER_RPC_TIMEOUT_S, takeover_claim=message)
        except PeerCallError as e:
            log.debug("takeover claim of %s to %s: %s", row.id, claim.to, e)
            return None
        return body.takeover_answer, envelope

    async def _take(self, active: Active, core: Takeover, claim: SendClaim,
                    answer: peer_pb2.TakeoverAnswer, envelope: peer_pb2.Envelope) -> _Taken:
        """Feed an answer to the core (or to Participation, an end)."""
        t = self._takeovers
        a = t.agent
        row = active.row
        if answer.workflow_id != row.id:
            return _Taken.AGAIN
        if answer.final_state and not answer.granted and claim.to in core.audience:
            await self._ended_meanwhile(active, core, answer)
            return _Taken.DONE
        if answer.in_doubt and not answer.granted and claim.to in core.participants:
            log.debug("takeover claim of %s to %s: in doubt there", row.id, claim.to)
            return _Taken.IN_DOUBT
        if answer.epoch != claim.epoch:
            return _Taken.AGAIN
        if answer.granted:  # on disk before it counts
            await t.certificates.keep(row, core, claim.to, answer, envelope)
        if a.active.get(row.id) is not active:
            return _Taken.DONE
        if answer.granted:
            event: Grant | Deny = Grant(claim.to, claim.epoch)
        else:
            proven = t.certificates.proven_denial(row.id, claim.to, answer)
            event = Deny(claim.to, claim.epoch, answer.held_epoch, answer.holder, proven)
        before = (core.epoch, core.coordinator)
        await t.apply(active, core, core.step(a.now(), event))
        if isinstance(event, Deny) and event.proven \
                and (core.epoch, core.coordinator) != before:
            log.info("%s: %s showed that %s won coordinator epoch %d: following it", row.id,
                     claim.to, answer.holder, answer.held_epoch)
        return _Taken.DONE

    async def _ended_meanwhile(self, active: Active, core: Takeover,
                               answer: peer_pb2.TakeoverAnswer) -> None:
        """A member of the workflow answered our claim with its end, as its coordinator
        told it (a participant's word on its own work). Still claiming or acting, we make
        that end ours and tell everyone, those that granted us and follow us too: there
        is one end (Participation.ended asks `end_known`). Otherwise it only ends here."""
        await self._takeovers.agent.participation.ended(
            active.row.id, answer.final_state, answer.reason,
            told_by=answer.holder or "a participant")
