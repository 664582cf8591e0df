"""A participant's votes: a PREPARE checked, then answered YES (once durable) or NO.

A class of its own, built by Participation (agent/runtime/participation.py), which
hands it the PREPAREs behind its YES votes (kept in memory until their decision is
applied) and how to wake the in-doubt timer loop. A PREPARE that carries acceptors
(Paxos Commit) makes a YES of one record: the reservation, already PREPARED,
together with the PREPARE it answers (its TxInfo, spec and placement), durable
before the vote leaves (the core's reserve and confirm_yes run with no await between
them; the simulator also crashes agents between the two, a superset of what can
happen here). The hold is then in doubt (runtime.consensus) until a decision is
learned. A PREPARE without acceptors is classic 2PC: one PREPARED
record, and the coordinator is asked when the lease passes.

A PREPARE from a coordinator that took the workflow over (a re-placement round of
epoch >= 1) carries its epoch certificate (agent/core/workflow/epoch_certificate.py),
checked before anything else of it: against the trust store, against the committed
round and electorate this domain holds if it takes part in the workflow, and against
the epoch it holds (a lower one is refused). Its round must lie in that epoch's range.
The submitter's signed spec is then checked as vouched for by the coordinator the id
names, which vouched for it when it admitted the workflow. A refused certificate is a
NO with the reason, and nothing is reserved. The decision of such a round is checked
the same way (`check_certified_decision`). Every YES keeps the PREPARE's signed spec
(`prepare_submissions`, in the YES's own write): a participant that takes the workflow
over relays it in its own PREPAREs.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import (
    Facts,
    InvalidWorkflowId,
    Refused,
    authorize,
    check_workflow_id,
    coordinator_of,
)
from fedorch.core.identity.submission import SubmissionError, check_prepare_submission
from fedorch.core.identity.submission_guard import Admission
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import Key, TxInfo, check_tx
from fedorch.core.negotiation.participant import HoldState
from fedorch.core.workflow.constraints import constraint_refusal
from fedorch.core.workflow.epoch_certificate import (
    CertificateError,
    Certified,
    round_range,
    verify,
)
from fedorch.core.workflow.spec import SpecError, validate_spec
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime import telemetry
from fedorch.runtime.admitted_submissions import AdmittedSubmissions
from fedorch.runtime.dataflow_policy import prepare_context
from fedorch.runtime.keyed_locks import KeyedLocks
from fedorch.runtime.step_runs import reservation_row
from fedorch.runtime.store.store import HoldTxRow

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

HOLD_TX_MEMORY = 4096  # PREPAREs of YES votes kept in memory until their decision

log = logging.getLogger("fedorch.participant")


def kept_submission(req: peer_pb2.PrepareRequest) -> list[tuple[str, tuple]]:
    """The statement keeping the submitter's signed spec of a PREPARE voted YES on (see
    the module doc), if it carries one."""
    if not req.HasField("submission"):
        return []
    return [("INSERT OR IGNORE INTO prepare_submissions(workflow_id, round, submission)"
             " VALUES(?, ?, ?)", (req.workflow_id, req.round,
                                  req.submission.SerializeToString(deterministic=True)))]


async def stored_submission(agent: AgentContext, workflow_id: str,
                            round_: int) -> bytes:
    """The signed spec kept with our YES to (workflow, round), or b""."""
    rows = await agent.store.select(
        "SELECT submission FROM prepare_submissions WHERE workflow_id = ? AND round = ?",
        (workflow_id, round_))
    return bytes(rows[0][0]) if rows else b""


class Voting:
    """Votes on PREPAREs. `hold_txs`: the PREPAREs behind our YES votes, as written with
    them (Participation's: applying a COMMIT takes them from it); `wake`: a vote's
    reservation may move the in-doubt loop's timer earlier."""

    def __init__(self, agent: AgentContext, hold_txs: OrderedDict[Key, HoldTxRow],
                 wake: Callable[[], None]) -> None:
        self.agent = agent
        self._hold_txs = hold_txs
        self._wake = wake
        # Paxos Commit: one PREPARE at a time per transaction, so that a repeated PREPARE
        # never answers YES before the first one's record is durable.
        self._voting = KeyedLocks()  # by (workflow, round)
        # A client's signed spec is admitted under one workflow id only.
        self.submissions = AdmittedSubmissions(agent)

    async def prepare(self, coordinator: str, req: peer_pb2.PrepareRequest) -> peer_pb2.Envelope:
        """Vote on a PREPARE; the reply is the signed vote (YES only once durable)."""
        if (fault := self.agent.store.write_fault) is not None:
            # No YES can be made durable now: NO at once (nothing to write for a NO).
            return self._vote_no(coordinator, req, f"{self.agent.domain} cannot write its"
                                                   f" database ({fault})")
        await self.submissions.load()
        if req.acceptors:
            async with self._voting.hold((req.workflow_id, req.round)):
                return await self._prepare_paxos(coordinator, req)
        a = self.agent
        vote = peer_pb2.Vote(workflow_id=req.workflow_id, round=req.round, domain=a.domain,
                             steps=req.steps)
        try:
            asked, principal, admission = self._check_prepare(coordinator, req)
            out = a.participant.prepare(
                a.now(), workflow_id=req.workflow_id, round=req.round, coordinator=coordinator,
                data_labels=dict(req.spec.data), steps=asked,
                coordinator_endpoint=req.coordinator_endpoint,
                context=prepare_context(a, req, asked), principal=principal,
            )
        except (SpecError, RemoteProtocolError) as e:
            vote.yes, vote.reason = False, f"invalid PREPARE: {e}"
        else:
            vote.yes, vote.reason = out.yes, out.reason
            vote.lease_expires_at_ms = a.wall_ms_at(out.lease_expires)
            if out.hold is not None:
                admitted = self.submissions.record(admission)
                await a.store.save_reservation(reservation_row(out.hold, a.clock),
                                               also=[a.audit.vote(coordinator, req, vote),
                                                     *admitted, *kept_submission(req)])
                self._wake()
        a.metrics.votes.labels("yes" if vote.yes else "no").inc()
        telemetry.voted(req, vote)
        if not vote.yes:
            await a.audit.vote_alone(coordinator, req, vote)  # a YES is in its reservation's write
            log.info("refused %s round %d from %s: %s", req.workflow_id, req.round, coordinator,
                     vote.reason)
        return a.seal(coordinator, vote=vote)

    def _vote_no(self, coordinator: str, req: peer_pb2.PrepareRequest,
                 reason: str) -> peer_pb2.Envelope:
        a = self.agent
        a.metrics.votes.labels("no").inc()
        log.info("refused %s round %d from %s: %s", req.workflow_id, req.round, coordinator,
                 reason)
        vote = peer_pb2.Vote(workflow_id=req.workflow_id, round=req.round, domain=a.domain,
                             steps=req.steps, yes=False, reason=reason)
        telemetry.voted(req, vote)
        return a.seal(coordinator, vote=vote)

    async def _prepare_paxos(self, coordinator: str,
                             req: peer_pb2.PrepareRequest) -> peer_pb2.Envelope:
        """The YES of a Paxos Commit transaction (see the module docstring)."""
        a = self.agent
        key = (req.workflow_id, req.round)
        vote = peer_pb2.Vote(workflow_id=req.workflow_id, round=req.round, domain=a.domain,
                             steps=req.steps)
        try:
            asked, principal, admission = self._check_prepare(coordinator, req)
            # With the coordinator's signed round as received: our recovery ballots carry
            # it, for an acceptor makes records only of rounds its coordinator stated.
            tx = TxInfo(req.workflow_id, req.round, coordinator,
                        tuple(sorted(set(req.placement.values()))), tuple(req.acceptors),
                        wire.canonical(req.round_tx) if req.HasField("round_tx") else b"")
            check_tx(tx)
            out = a.participant.reserve(
                a.now(), workflow_id=req.workflow_id, round=req.round, coordinator=coordinator,
                data_labels=dict(req.spec.data), steps=asked,
                coordinator_endpoint=req.coordinator_endpoint, tx=tx,
                context=prepare_context(a, req, asked), principal=principal,
            )
        except (SpecError, RemoteProtocolError) as e:
            vote.yes, vote.reason = False, f"invalid PREPARE: {e}"
            out = None
        if out is not None:
            vote.yes, vote.reason = out.yes, out.reason
            vote.lease_expires_at_ms = a.wall_ms_at(out.lease_expires)
            if out.hold is not None and out.hold.state is HoldState.RESERVED:
                # The YES, with no await since the reservation: one record holds the
                # capacity, the PREPARED state and what it says YES to. Only once it is
                # durable may the vote leave.
                hold = a.participant.confirm_yes(a.now(), key)
                if hold is None:  # a RESERVED hold from before a restart, its lease past
                    await a.store.delete_reservation(*key)
                    vote.yes, vote.reason = False, "lease expired before the vote"
                else:
                    info = HoldTxRow(
                        req.workflow_id, req.round, wire.tx_bytes(tx),
                        req.spec.SerializeToString(deterministic=True), dict(req.placement),
                        req.coordinator_endpoint,
                        # Kept, not checked: an acceptor that gets it checks it
                        # (agent/runtime/round_proofs.py).
                        tx.round_tx)
                    admitted = self.submissions.record(admission)
                    await a.store.save_reservation(reservation_row(hold, a.clock), tx=info,
                                                   also=[a.audit.vote(coordinator, req, vote),
                                                         *admitted, *kept_submission(req)])
                    self._hold_txs[key] = info
                    while len(self._hold_txs) > HOLD_TX_MEMORY:
                        self._hold_txs.popitem(last=False)
                    self._wake()
                    vote.lease_expires_at_ms = a.wall_ms_at(hold.lease_expires)
                    if coordinator != a.domain:
                        a.consensus.track(tx, hold.lease_expires)
        a.metrics.votes.labels("yes" if vote.yes else "no").inc()
        telemetry.voted(req, vote)
        if not vote.yes:
            await a.audit.vote_alone(coordinator, req, vote)  # a YES is in its reservation's write
            log.info("refused %s round %d from %s: %s", req.workflow_id, req.round, coordinator,
                     vote.reason)
        return a.seal(coordinator, vote=vote)

    def _check_prepare(self, coordinator: str, req: peer_pb2.PrepareRequest
                       ) -> tuple[list[tuple[str, str]], str, Admission | None]:
        """The (step, capability) pairs asked of this domain, the submitter (qualified)
        whose signed spec the PREPARE carries, and its admission under this workflow id
        (to record with a YES); RemoteProtocolError when it does not hold."""
        a = self.agent
        certified = None
        if req.HasField("epoch_certificate"):
            certified = self.certified(coordinator, req.workflow_id, req.epoch_certificate)
        try:  # the peer service checked this already; a PREPARE may come other ways too
            authorize("prepare", coordinator, self._facts(req.workflow_id, certified))
        except Refused as e:
            a.metrics.rejected_messages.labels(e.reason).inc()
            raise RemoteProtocolError(e.detail) from None
        if req.round < 1:
            raise RemoteProtocolError("round must be at least 1")
        epoch = certified.epoch if certified is not None else 0
        if req.round not in round_range(epoch):
            raise RemoteProtocolError(
                f"round {req.round} is outside the rounds of coordinator epoch {epoch}"
                f" ({round_range(epoch).start}..{round_range(epoch).stop - 1})")
        validate_spec(req.spec, "PREPARE spec")
        steps = {s.id: s for s in req.spec.steps}
        asked = []
        for step_id in req.steps:
            if step_id not in steps:
                raise RemoteProtocolError(f"step {step_id!r} is not in the spec")
            if req.placement.get(step_id) != a.domain:
                raise RemoteProtocolError(f"step {step_id!r} is not placed on {a.domain}")
            # The spec's own bounds hold here whatever the coordinator's view said.
            if (why := constraint_refusal(steps[step_id], a.domain, a.config.labels)):
                raise RemoteProtocolError(why)
            asked.append((step_id, steps[step_id].capability))
        try:  # the exact spec a named principal asked for, vouched for by its coordinator
            # A successor relays the signed spec its workflow was admitted with: the
            # coordinator the id names vouched for it then.
            voucher = coordinator if certified is None else coordinator_of(req.workflow_id)
            submitter = check_prepare_submission(req.submission, coordinator=voucher,
                                                 spec=req.spec, trust=a.trust)
            admission = self.submissions.check(req.submission, req.workflow_id)
        except SubmissionError as e:
            a.metrics.rejected_messages.labels("bad_submission").inc()
            log.warning("PREPARE %s round %d from %s: %s", req.workflow_id, req.round,
                        coordinator, e)
            raise RemoteProtocolError(f"submission: {e}") from None
        return asked, submitter.qualified, admission

    # ---- epoch certificates ----------------------------------------------------------------

    def certified(self, sender: str, workflow_id: str,
                  cert: peer_pb2.EpochCertificate) -> Certified:
        """`cert` verified as the proof that `sender` coordinates `workflow_id` in its
        epoch, against what this agent holds of it; RemoteProtocolError (counted,
        logged) when it proves nothing. Changes nothing."""
        try:
            return self.certified_or_refused(sender, workflow_id, cert)
        except Refused as e:
            self.agent.metrics.rejected_messages.labels(e.reason).inc()
            log.warning("%s: refused the epoch certificate of %s: %s", workflow_id, sender,
                        e.detail)
            raise RemoteProtocolError(e.detail) from None

    def certified_or_refused(self, sender: str, workflow_id: str,
                             cert: peer_pb2.EpochCertificate) -> Certified:
        """As `certified`, Refused (not counted) instead: for the peer service, which
        refuses a PREPARE with a bad certificate as one its sender had no authority for."""
        known, _ = self.agent.takeovers.certificates.standing(workflow_id)
        try:
            return verify(cert, self.agent.trust, workflow_id=workflow_id, claimant=sender,
                          known=known)
        except CertificateError as e:
            raise Refused(e.reason, f"epoch certificate refused: {e.detail}") from None

    def prepare_facts(self, sender: str, req: peer_pb2.PrepareRequest) -> Facts:
        """What a PREPARE proves of its sender's authority, its certificate verified
        (Refused if it proves nothing)."""
        if not req.HasField("epoch_certificate"):
            return Facts(workflow_id=req.workflow_id)
        try:
            check_workflow_id(req.workflow_id)
        except InvalidWorkflowId as e:
            raise Refused("bad_workflow_id", str(e)) from None
        return self._facts(req.workflow_id,
                           self.certified_or_refused(sender, req.workflow_id,
                                                     req.epoch_certificate))

    def _facts(self, workflow_id: str, certified: Certified | None) -> Facts:
        if certified is None:
            return Facts(workflow_id=workflow_id)
        _, held = self.agent.takeovers.certificates.standing(workflow_id)
        return Facts(workflow_id=workflow_id, epoch=certified.epoch,
                     certified=(certified.epoch, certified.coordinator), held=held)

    def check_certified_decision(self, signer: str, decision: peer_pb2.Decision) -> bool:
        """A classic decision signed by a coordinator that took its workflow over: its
        certificate, epoch and round are checked as its PREPARE's were (True), or
        RemoteProtocolError / Refused. False: it carries no certificate (the coordinator
        the id names decides it; checked by the caller)."""
        if not decision.HasField("epoch_certificate"):
            return False
        wf = decision.workflow_id
        if signer != decision.coordinator:
            raise RemoteProtocolError("decision not signed by its coordinator")
        certified = self.certified(signer, wf, decision.epoch_certificate)
        authorize("prepare", signer, self._facts(wf, certified))  # the same authority
        if decision.round not in round_range(certified.epoch):
            raise RemoteProtocolError(f"round {decision.round} is outside the rounds of"
                                      f" coordinator epoch {certified.epoch}")
        if decision.HasField("replacement") and (
                decision.replacement.coordinator_epoch != certified.epoch
                or decision.replacement.coordinator != signer):
            raise RemoteProtocolError("a re-placement naming another coordinator epoch than"
                                      " its certificate's")
        return True
