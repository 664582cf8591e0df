"""Coordinator takeover, a claim received: grant it, or answer why not.

A part of Takeovers (agent/runtime/takeover.py). One claim of a workflow is answered at
a time (`granting`, a lock per workflow that the watch takes too while it sets a
workflow up), so two claimants of one epoch never both read "not granted yet" before
either grant is written; a grant is on disk before the answer leaves.

A participant grants by the core's rule (`may_grant`: a higher epoch than it holds, or
the same epoch to the same claimant again), feeds the grant to its core (`Adopted`: it
follows the claimant at once) and answers with the committed round and the electorate
the grant is counted in (an epoch certificate counts it only there). It refuses with
what it holds (`held_epoch`, `holder`): the claimant's core reads from that whom the
epoch went to. Holding the epoch as an acting successor, its refusal carries its epoch
certificate, so that a rival claimant follows it at once; holding it for another, the
refusal carries that holder's certificate when one was verified here (shown with the
holder's claim: EpochCertificates.proof_of), since a claimant or the original
coordinator follows a later epoch only on its proof. A claim that carries a
certificate is checked (and its proof kept) even when it is granted anyway. An ended
workflow answers with its end; a vote of ours whose decision is not learned yet, "in
doubt here".

An extra acceptor that holds no step has no workflow row: it grants only on the proof
the claim carries, the round as its coordinator signed it and a COMMIT of it
(agent/runtime/round_proofs.py; the rule is agent/core/workflow/acceptor_grant.py), to
a participant of that round, and keeps its grant in `takeover_grants` (`GrantRecords`),
written before the answer leaves. The winner's claim, sent to it once it won, carries
its certificate: kept (in memory) and shown with this acceptor's denials. Its acceptor records never grant on their own (a
participant can plant one: a recovery PaxosPrepare carries the round as its proposer
states it); they refuse a proof that contradicts them. Both refusals are counted.

A claim of epoch 0 is the original coordinator asking, before a re-placement round,
whether this agent still holds epoch 0 for it (agent/core/workflow/round_mandate.py;
only the coordinator the workflow id names may ask, the authority table's row). It is
answered from what this agent holds (`_on_origin_ask`) and changes nothing: no write,
no core input, so a later epoch's claim is granted or denied here exactly as without
it. "Granted" means still epoch 0, for the asker; a denial names the later epoch held
and its holder, with its proof when this agent has it. An extra acceptor holding no step answers from its grant records
alone, with no proof of the round asked: it grants nothing new, and a domain that
granted a later epoch wrote that grant (row or `takeover_grants`) before its answer
left, so one that has none on record has granted none.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from fedorch.core.identity.authority import Facts, Refused, authorize, coordinator_of
from fedorch.core.workflow.acceptor_grant import acceptor_grant
from fedorch.core.workflow.takeover import Action, Adopted, Takeover, may_grant
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.convert import is_over, state_of
from fedorch.runtime.epoch_certs import held
from fedorch.runtime.keyed_locks import KeyedLocks
from fedorch.runtime.peer_service import count_refusal

if TYPE_CHECKING:
    from fedorch.runtime.context import Active, AgentContext
    from fedorch.runtime.epoch_certs import EpochCertificates
    from fedorch.runtime.round_proofs import RoundProofs

log = logging.getLogger("fedorch.takeover")


class GrantOwner(Protocol):
    """What of Takeovers (agent/runtime/takeover.py) answering a claim needs."""

    agent: AgentContext
    certificates: EpochCertificates
    proofs: RoundProofs

    def prepared(self, workflow_id: str) -> bool: ...

    async def prepare(self, active: Active) -> None: ...

    def core_for(self, active: Active) -> Takeover | None: ...

    def acting(self, active: Active) -> bool: ...

    async def apply(self, active: Active, core: Takeover, actions: list[Action]) -> None: ...

    async def follow_proven(self, active: Active, winner: str,
                            certificate: peer_pb2.EpochCertificate) -> bool: ...

    def report_again(self, active: Active) -> None: ...


class GrantRecords:
    """The grants this agent made while it held no step of a workflow (`takeover_grants`):
    every committed workflow asks, and almost none has one, so the workflows that may
    have a row are read once and then kept as grants are made, and the others are
    answered without a read. A row compaction deleted is dropped at its next read."""

    def __init__(self, agent: AgentContext) -> None:
        self._agent = agent
        self._rows: set[str] | None = None

    async def get(self, workflow_id: str) -> tuple[int, str] | None:
        """The epoch this agent granted for `workflow_id` while it held no step of it."""
        store = self._agent.store
        if self._rows is None:
            self._rows = {r[0] for r in await store.select(
                "SELECT workflow_id FROM takeover_grants")}
        if workflow_id not in self._rows:
            return None
        rows = await store.select(
            "SELECT epoch, holder FROM takeover_grants WHERE workflow_id = ?", (workflow_id,))
        if not rows:
            self._rows.discard(workflow_id)
            return None
        return int(rows[0][0]), str(rows[0][1])

    async def add(self, workflow_id: str, epoch: int, holder: str) -> None:
        """Written before the answer that grants it leaves."""
        await self.get(workflow_id)  # the known rows are loaded before one is added
        await self._agent.store.apply([(
            "INSERT OR REPLACE INTO takeover_grants(workflow_id, epoch, holder) VALUES (?, ?, ?)",
            (workflow_id, epoch, holder))])
        self._rows.add(workflow_id)  # type: ignore[union-attr]


class ClaimAnswers:
    def __init__(self, takeovers: GrantOwner) -> None:
        self._takeovers = takeovers
        self.granting = KeyedLocks()  # one claim at a time per workflow: grant once
        self.records = GrantRecords(takeovers.agent)

    async def on_claim(self, sender: str,
                       claim: peer_pb2.TakeoverClaim) -> peer_pb2.TakeoverAnswer:
        """Grant `claim` (and follow its sender) if no other claimant holds its epoch here.
        One claim of a workflow at a time: two claimants of one epoch never both read
        "not granted yet" before either grant is written."""
        async with self.granting.hold(claim.workflow_id):
            if claim.epoch == 0:
                return await self._on_origin_ask(sender, claim)
            return await self._on_claim(sender, claim)

    async def _on_origin_ask(self, sender: str,
                             claim: peer_pb2.TakeoverClaim) -> peer_pb2.TakeoverAnswer:
        """The original coordinator asks whether this agent still holds epoch 0 for it:
        answered from what is held here, nothing written (see the module docstring)."""
        t = self._takeovers
        a = t.agent
        wf = claim.workflow_id
        answer = peer_pb2.TakeoverAnswer(workflow_id=wf, epoch=0)
        try:
            authorize("takeover_claim", sender, Facts(workflow_id=wf, epoch=0))
        except Refused as e:
            count_refusal(a, sender, "takeover_claim", e)
            answer.error = e.detail
            return answer
        active = a.active.get(wf)
        row = active.row if active is not None else await a.store.get_workflow(wf)
        recorded = await self.records.get(wf)  # granted while it held no step here
        if row is None or not row.placement:
            answer.held_epoch, answer.holder = recorded or (0, coordinator_of(wf))
        else:
            if is_over(row):
                answer.final_state, answer.reason = state_of(row), row.reason
                return answer
            answer.held_epoch, answer.holder = held(row)
            if recorded is not None and recorded[0] > answer.held_epoch:
                answer.held_epoch, answer.holder = recorded
            answer.committed_round = row.round
            answer.electorate[:] = sorted(t.certificates.electorate_of(row))
        answer.granted = (answer.held_epoch, answer.holder) == (0, sender)
        if not answer.granted and (cert := t.certificates.proof_of(
                wf, answer.held_epoch, answer.holder)) is not None:
            answer.epoch_certificate.CopyFrom(cert)
        return answer

    async def _on_claim(self, sender: str,
                        claim: peer_pb2.TakeoverClaim) -> peer_pb2.TakeoverAnswer:
        t = self._takeovers
        a = t.agent
        answer = peer_pb2.TakeoverAnswer(workflow_id=claim.workflow_id, epoch=claim.epoch)
        active = a.active.get(claim.workflow_id)
        row = active.row if active is not None else await a.store.get_workflow(claim.workflow_id)
        if row is None and a.participant.keys_of(claim.workflow_id):
            # A vote of ours, no decision learned yet (in doubt, just back from a
            # restart, or setting the workflow up): not a refusal. Our grant will come
            # with the COMMIT; the claimant asks again shortly (it would otherwise wait
            # its whole claim timeout, and this domain claim in its turn meanwhile).
            answer.in_doubt = True
            answer.error = "in doubt here: the decision is not learned yet"
            return answer
        if row is None or not row.placement:
            return await self._on_claim_as_acceptor(sender, claim, answer)
        if active is not None and not t.prepared(row.id) and not is_over(row):
            await t.prepare(active)  # its grant record, if any, is in the row now
        elif active is None:
            granted = await self.records.get(row.id)
            if granted is not None and granted[0] > held(row)[0]:
                row.granted_epoch, row.granted_to = granted
        try:
            authorize("takeover_claim", sender, Facts(
                workflow_id=row.id, epoch=claim.epoch, participants=set(row.placement.values())))
        except Refused as e:
            count_refusal(a, sender, "takeover_claim", e)
            answer.error = e.detail
            return answer
        answer.held_epoch, answer.holder = held(row)
        again = (answer.held_epoch, answer.holder) == (claim.epoch, sender)
        if is_over(row):  # an ended workflow is not taken over: its end instead
            answer.final_state, answer.reason = state_of(row), row.reason
            return answer
        if not may_grant(answer.held_epoch, answer.holder, claim.epoch, sender) \
                and claim.HasField("epoch_certificate") and active is not None \
                and await t.follow_proven(active, sender, claim.epoch_certificate):
            # The sender won the epoch we hold for another (our own claim of it, or a
            # claimant that lost it): followed now, and granted it below like any
            # claimant of the epoch held here (the core's Proven).
            answer.held_epoch, answer.holder = held(row)
        if not may_grant(answer.held_epoch, answer.holder, claim.epoch, sender):
            # Our proof if we act in the epoch held (a rival claimant of it follows us
            # now), else its holder's if verified here: a claimant of an earlier epoch
            # follows a later one only on its proof.
            if (cert := t.certificates.proof_of(row.id, answer.held_epoch,
                                                answer.holder)) is not None:
                answer.epoch_certificate.CopyFrom(cert)
            return answer
        if claim.HasField("epoch_certificate") and active is not None \
                and not t.certificates.knows_proof(row.id, claim.epoch, sender):
            # The claimant won and shows it: checked, and kept for our later denials.
            t.certificates.proven(row.id, sender, claim.epoch_certificate)
        core = t.core_for(active) if active is not None else None
        if core is not None:
            await t.apply(active, core, core.step(a.now(), Adopted(claim.epoch, sender)))
        else:  # not running here yet (or not set up): the grant is all there is to keep
            row.granted_epoch, row.granted_to = claim.epoch, sender
            row.epoch, row.coordinator = claim.epoch, sender
            if active is not None:
                await a.save(active)
            else:
                await a.store.save_workflow(row)
        answer.granted = True
        answer.held_epoch, answer.holder = claim.epoch, sender
        answer.committed_round = row.round
        answer.electorate[:] = sorted(t.certificates.electorate_of(row))
        log.info("%s: granted coordinator epoch %d to %s", row.id, claim.epoch, sender)
        if again and active is not None:  # asked again (it restarted, say): results again
            t.report_again(active)
        return answer

    async def _on_claim_as_acceptor(self, sender: str, claim: peer_pb2.TakeoverClaim,
                                    answer: peer_pb2.TakeoverAnswer) -> peer_pb2.TakeoverAnswer:
        """A claim of a workflow this agent holds no step of: as an acceptor of its
        committed round it is a member of the electorate all the same (Paxos Commit). It
        grants on the proof the claim carries, never on its records alone (a lying
        participant can plant one); agent/core/workflow/acceptor_grant.py decides."""
        t = self._takeovers
        a = t.agent
        wf = claim.workflow_id
        records = await t.proofs.records(wf)
        proof, proof_error = t.proofs.check(wf, claim)
        held_here = await self.records.get(wf) or (0, coordinator_of(wf))
        verdict = acceptor_grant(a.domain, sender, claim.epoch, held_here, records,
                                 proof, proof_error)
        if verdict.granted:
            try:  # the authority table's row too (the peer service checked it first)
                authorize("takeover_claim", sender, Facts(
                    workflow_id=wf, epoch=claim.epoch, participants=verdict.basis.participants))
            except Refused as e:
                count_refusal(a, sender, "takeover_claim", e)
                answer.error = e.detail
                return answer
            if verdict.outranked:
                # The COMMIT learned here of an earlier round contradicts the coordinator's
                # signed later round: a lie (its only participant's, or the coordinator's
                # own), set aside now; counted with the refused messages, by its reason.
                a.metrics.rejected_messages.labels(verdict.reason).inc()
                log.error("%s: granting epoch %d to %s over this acceptor's record: %s",
                          wf, claim.epoch, sender, verdict.detail)
        if verdict.refused:
            answer.error = verdict.detail
            if proof is None and proof_error is None and verdict.reason == "not_committed":
                return answer  # nothing known here, nothing shown: no fault of the sender
            count_refusal(a, sender, "takeover_claim", Refused(verdict.reason, verdict.detail))
            if verdict.reason == "proof_disagrees":
                log.error("%s: %s claimed epoch %d with a round that contradicts this"
                          " acceptor's record: %s", wf, sender, claim.epoch, verdict.detail)
            return answer
        answer.held_epoch, answer.holder = held_here
        if not verdict.granted:
            if (cert := t.certificates.proof_of(wf, *held_here)) is not None:
                answer.epoch_certificate.CopyFrom(cert)  # the holder's, verified here
            return answer
        await self.records.add(wf, claim.epoch, sender)
        if claim.HasField("epoch_certificate") \
                and not t.certificates.knows_proof(wf, claim.epoch, sender):
            # The winner tells the acceptors that granted it: kept for our denials.
            t.certificates.proven(wf, sender, claim.epoch_certificate, stepless=True)
        answer.granted = True
        answer.held_epoch, answer.holder = claim.epoch, sender
        # The round and electorate the grant is counted in: a certificate counts it only
        # if it is the committed round's.
        answer.committed_round = verdict.basis.round
        answer.electorate[:] = sorted(verdict.basis.acceptors)
        log.info("%s: granted coordinator epoch %d to %s (an acceptor holding no step,"
                 " shown round %d)", wf, claim.epoch, sender, verdict.basis.round)
        return answer
