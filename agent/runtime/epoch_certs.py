"""Epoch certificates, the shell: the grants a successor keeps as evidence, and the
certificate its re-placement rounds carry (agent/core/workflow/epoch_certificate.py).

A part of Takeovers (agent/runtime/takeover.py), which feeds it every grant its claims
receive (`keep`) and which it asks to send the claim again (`fresh_certificate`). The
grants are the envelopes exactly as their signers sent them, kept only when they name
this agent's own committed round and electorate (one counted in another set proves
nothing to a third party). Each is written to the `epoch_grants` table
(agent/runtime/store/epoch_grants.py) before it counts, and read back (`restore`) when
the workflow's core is built again after a restart: a successor restored acting proves
its epoch from disk, and sends its claim again only to the members whose grant it
lacks, so electors that granted and died since still count (a grant is the signer's
word, durable on its side too: it never grants that epoch to another). `standing` is
what this agent holds of a workflow, to check a certificate against (runtime.votes).
The certificate also goes with the acting successor's claims and with its denial of a
rival's claim; `proven` checks one shown so, as the takeover core's `Proven` input (a
rival claimant of that epoch, or a follower of one, follows the winner at once).

Before each re-placement round the successor asks for a certificate of fresh grants
(`fresh_certificate`): its claim goes again to every member, and the round mandate
(agent/core/workflow/round_mandate.py) decides on the grants held from then on only.
The wait looks when a grant is held (`_hold` sets the workflow's event) or the
coordinator followed here changes (`wake`), never on a tick: its bound only ends it.
Every return from such a wait is counted in
fedorch_loop_wakeups_total{loop="epoch certificate wait"}.

The original coordinator (epoch 0) has no certificate to make, but the same gap: before
each re-placement round it asks every other member whether it still holds epoch 0 for
it (`origin_mandate`: a TakeoverClaim of epoch 0, answered without a write,
agent/runtime/takeover_grants.py), each ask one task of its own until answered or the
bound, all owned by the wait. The mandate's rule for epoch 0 decides (fresh answers
meeting every majority, its own included). A denial naming a later epoch goes to its
takeover core as the Deny it is, proven only when it carries that epoch's certificate
and the certificate verifies here (`proven_denial`): then the coordinator follows that
epoch at once and places nothing; without one it keeps acting (the core reports it
Unproven), and the denial is no grant. Its waits are counted with the successors'.

Denials carry proof when the denier has it (`proof_of`): its own certificate if it acts
in the epoch it holds, else the certificate of that epoch's holder it verified here
(`proven`: shown with that holder's claim, or with an answer). The winner sends its
claim, certificate included, once to every elector that granted it as soon as it wins
(the takeover core's `_won`), so every granter can prove its denials from then on, an
acceptor holding no step too (the granter a coordinator cut off from the winner may
still reach). Kept in memory: while the workflow is active here, and for an acceptor
holding no step (no workflow ends there) the latest `SHOWN_KEPT` workflows. Not on
disk: it would need a table of its own (a schema migration) for a copy of what the
winner holds durably and shows again (after its restart, before each re-placement
round); a restart here only delays a proof, and a denial without one is not followed,
which never makes two coordinators act.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from fedorch.core.identity.authority import Refused, coordinator_of
from fedorch.core.workflow.epoch_certificate import CertificateError, Known, verify
from fedorch.core.workflow.round_mandate import (
    Overtaken,
    Regranted,
    RoundMandate,
    Timer,
    Verdict,
)
from fedorch.core.workflow.takeover import (
    Action,
    Deny,
    Grant,
    Proven,
    Role,
    SendClaim,
    Takeover,
    majority,
)
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.context import PEER_RPC_TIMEOUT_S
from fedorch.runtime.peer_service import count_refusal
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.epoch_grants import grant_statement, grants_of
from fedorch.runtime.store.store import WorkflowRow
from google.protobuf.message import DecodeError

if TYPE_CHECKING:
    from fedorch.runtime.context import Active, AgentContext

log = logging.getLogger("fedorch.takeover")

LOOP = "epoch certificate wait"  # its label in fedorch_loop_wakeups_total
# Workflows whose winner's certificate is kept for our denials (see the header).
SHOWN_KEPT = 10_000


def held(row: WorkflowRow) -> tuple[int, str]:
    """The epoch and coordinator this agent holds for a workflow: the highest of the one
    it follows (or is) and the one it granted."""
    if row.granted_epoch > row.epoch:
        return row.granted_epoch, row.granted_to
    return row.epoch, row.coordinator


class Claims(Protocol):
    """What of Takeovers (agent/runtime/takeover.py) this needs."""

    agent: AgentContext

    def core_of(self, workflow_id: str) -> Takeover | None: ...

    def claim(self, active: Active, core: Takeover, action: SendClaim) -> None: ...

    def core_for(self, active: Active) -> Takeover | None: ...

    async def apply(self, active: Active, core: Takeover, actions: list[Action]) -> None: ...


class EpochCertificates:
    def __init__(self, takeovers: Claims) -> None:
        self._takeovers = takeovers
        # Workflow -> voter -> (epoch, the signed grant as received).
        self._grants: dict[str, dict[str, tuple[int, peer_pb2.Envelope]]] = {}
        # Workflow -> set when a grant is held, while waits on its certificate are out
        # (and how many: the last one out drops it).
        self._granted: dict[str, asyncio.Event] = {}
        self._waits: dict[str, int] = {}
        self.wakeups = 0
        self._counter = takeovers.agent.metrics.loop_wakeups.labels(LOOP)
        # Workflow -> the answers to the original coordinator's asks of epoch 0, while
        # its wait is out (None in it: the coordinator followed here changed).
        self._origin_answers: dict[str, asyncio.Queue] = {}
        # Workflow -> the latest certificate verified here of another's epoch (a winner's
        # claim or answer), for our denials to carry. Only workflows active here.
        self._shown: dict[str, peer_pb2.EpochCertificate] = {}

    def electorate_of(self, row: WorkflowRow) -> frozenset[str]:
        """The electorate this agent counts the workflow's grants in (see the core)."""
        core = self._takeovers.core_of(row.id)
        if core is not None:
            return core.electorate
        if row.acceptors:
            return frozenset(row.acceptors)
        return frozenset(row.placement.values()) | {coordinator_of(row.id)}

    def standing(self, workflow_id: str) -> tuple[Known | None, tuple[int, str] | None]:
        """What this agent holds of a workflow to check an epoch certificate against:
        the committed round and electorate (when it is a member, with its core built or
        the acceptors in its row), and the epoch and coordinator it holds."""
        active = self._takeovers.agent.active.get(workflow_id)
        if active is None:
            return None, None
        row = active.row
        known = None
        if self._takeovers.core_of(workflow_id) is not None or row.acceptors:
            known = Known(row.round, self.electorate_of(row))
        return known, held(row)

    async def keep(self, row: WorkflowRow, core: Takeover, voter: str,
                   answer: peer_pb2.TakeoverAnswer, envelope: peer_pb2.Envelope) -> None:
        """A grant to us, kept as evidence if it names our committed round and electorate
        (a grant counted in another set proves nothing to a third party): on disk first,
        so that it still counts after a restart, when its signer may be gone."""
        if not self._evidence(row, core.electorate, voter, answer):
            log.info("%s: %s granted epoch %d in round %d electorate %s, not ours: not"
                     " evidence", row.id, voter, answer.epoch, answer.committed_round,
                     list(answer.electorate))
            return
        clean = peer_pb2.Envelope(body=envelope.body, signature=envelope.signature)
        await self._takeovers.agent.store.apply(
            [grant_statement(row.id, voter, answer.epoch, clean)])
        self._hold(row.id, voter, answer.epoch, clean)

    @staticmethod
    def _evidence(row: WorkflowRow, electorate: frozenset[str], voter: str,
                  answer: peer_pb2.TakeoverAnswer) -> bool:
        return voter in electorate and answer.committed_round == row.round \
            and frozenset(answer.electorate) == electorate

    def _hold(self, workflow_id: str, voter: str, epoch: int,
              envelope: peer_pb2.Envelope) -> None:
        """Keep a grant in memory unless one of a later epoch is held for its voter."""
        grants = self._grants.setdefault(workflow_id, {})
        if voter not in grants or grants[voter][0] <= epoch:
            grants[voter] = (epoch, envelope)
            if (granted := self._granted.get(workflow_id)) is not None:
                granted.set()  # a wait for the certificate looks again

    async def restore(self, row: WorkflowRow, epoch: int) -> None:
        """The grants of `epoch` kept on disk for this workflow, back in memory (the core
        is about to be built again: a restart, or the workflow was forgotten here)."""
        electorate = self.electorate_of(row)
        for voter, envelope in (await grants_of(self._takeovers.agent.store, row.id,
                                                epoch)).items():
            try:
                answer = peer_pb2.Body.FromString(envelope.body).takeover_answer
            except DecodeError:  # our own write: not expected, but never a crash
                log.error("%s: the kept grant of %s does not parse; not evidence", row.id,
                          voter)
                continue
            if answer.epoch == epoch and self._evidence(row, electorate, voter, answer):
                self._hold(row.id, voter, epoch, envelope)

    def replay(self, workflow_id: str, core: Takeover, now: float) -> list[Action]:
        """The grants of the core's epoch held here, fed to a core built again after a
        restart as the grants they are: a claim cut short may have won already, and an
        acting successor sends its claim again only to the members it lacks."""
        voters = sorted(voter for voter, (epoch, _) in self._grants.get(workflow_id, {}).items()
                        if epoch == core.epoch)
        return [action for voter in voters
                for action in core.step(now, Grant(voter, core.epoch))]

    def proven(self, workflow_id: str, winner: str,
               certificate: peer_pb2.EpochCertificate,
               stepless: bool = False) -> Proven | None:
        """`winner`'s certificate, shown with its claim or its answer to ours, as the
        core's input (`Proven`) if it holds: the signed grants of a majority of the
        electorate this agent counts in, of its epoch, to `winner`. One that does not
        hold is refused, counted with its reason, and changes nothing (None). Kept for
        our denials if the workflow is active here, or `stepless` (an acceptor holding
        no step, which granted the winner)."""
        a = self._takeovers.agent
        known, _ = self.standing(workflow_id)
        try:
            proof = verify(certificate, a.trust, workflow_id=workflow_id, claimant=winner,
                           known=known)
        except CertificateError as e:
            count_refusal(a, winner, "takeover_claim", Refused(e.reason, e.detail))
            return None
        if winner != a.domain and (workflow_id in a.active or stepless):
            kept = self._shown.get(workflow_id)
            if kept is None or kept.epoch <= proof.epoch:
                self._shown.pop(workflow_id, None)
                self._shown[workflow_id] = certificate  # the newest last
                if len(self._shown) > SHOWN_KEPT:
                    del self._shown[next(iter(self._shown))]  # the oldest goes first
        return Proven(proof.epoch, winner)

    def proven_denial(self, workflow_id: str, voter: str,
                      answer: peer_pb2.TakeoverAnswer) -> bool:
        """Does a denial prove the epoch it names? Its certificate must be one of
        (held_epoch, holder) that verifies here (`proven`: signatures over the bytes as
        received, a majority of the electorate we count in). One that does not hold is
        counted with its reason; a denial without one is the core's to report."""
        if answer.granted or not answer.HasField("epoch_certificate") or not answer.holder:
            return False
        cert = answer.epoch_certificate
        if (cert.epoch, cert.coordinator) != (answer.held_epoch, answer.holder):
            count_refusal(self._takeovers.agent, voter, "takeover_answer",
                          Refused("bad_certificate",
                                  f"a denial naming epoch {answer.held_epoch} for"
                                  f" {answer.holder} carries a certificate of epoch"
                                  f" {cert.epoch} for {cert.coordinator}"))
            return False
        return self.proven(workflow_id, answer.holder, cert) is not None

    def proof_of(self, workflow_id: str, epoch: int,
                 holder: str) -> peer_pb2.EpochCertificate | None:
        """The certificate a denial naming (epoch, holder) carries, if this agent has it:
        its own (it acts in that epoch) or one verified here (`proven`)."""
        if epoch < 1:
            return None
        if holder == self._takeovers.agent.domain:
            cert = self.certificate(workflow_id)
            return cert if cert is not None and cert.epoch == epoch else None
        cert = self._shown.get(workflow_id)
        if cert is not None and (cert.epoch, cert.coordinator) == (epoch, holder):
            return cert
        return None

    def knows_proof(self, workflow_id: str, epoch: int, holder: str) -> bool:
        """Has a certificate of (epoch, holder) been verified here already?"""
        cert = self._shown.get(workflow_id)
        return cert is not None and (cert.epoch, cert.coordinator) == (epoch, holder)

    def certificate(self, workflow_id: str) -> peer_pb2.EpochCertificate | None:
        """The proof that this agent coordinates the workflow in its epoch: the signed
        grants of a majority of the electorate, ours included. None if it is not acting
        in an epoch >= 1, or holds too few grants as evidence (yet: those it lacks come
        with the answers to its claim, which goes again to the members it lacks)."""
        a = self._takeovers.agent
        core = self._takeovers.core_of(workflow_id)
        active = a.active.get(workflow_id)
        if core is None or active is None or core.role is not Role.ACTING or core.epoch < 1:
            return None
        kept = {voter: env for voter, (epoch, env)
                in self._grants.get(workflow_id, {}).items() if epoch == core.epoch}
        own = peer_pb2.TakeoverAnswer(
            workflow_id=workflow_id, epoch=core.epoch, granted=True, held_epoch=core.epoch,
            holder=a.domain, committed_round=active.row.round,
            electorate=sorted(core.electorate))
        kept[a.domain] = a.seal(a.domain, takeover_answer=own)
        if len(kept.keys() & core.electorate) < majority(core.electorate):
            return None
        return peer_pb2.EpochCertificate(workflow_id=workflow_id, epoch=core.epoch,
                                         coordinator=a.domain,
                                         grants=[kept[v] for v in sorted(kept)])

    async def fresh_certificate(self, workflow_id: str, bound_s: float
                                ) -> tuple[peer_pb2.EpochCertificate | None, str]:
        """A certificate made of fresh grants only, for one re-placement round: the claim
        goes again to every member, and only grants held from now on count
        (agent/core/workflow/round_mandate.py decides: a fresh majority, a later epoch
        held somewhere, or none by `bound_s`). The grants kept from before are not
        counted: a member that answers nothing may be dead, or cut off from us and
        holding a later epoch. Returns the certificate, or None and why not (our epoch
        is over: follow it; or no fresh majority: place nothing)."""
        a = self._takeovers.agent
        core = self._takeovers.core_of(workflow_id)
        active = a.active.get(workflow_id)
        if core is None or active is None or core.role is not Role.ACTING or core.epoch < 1:
            return None, "not acting in a coordinator epoch of a takeover"
        mandate = RoundMandate(a.domain, core.epoch, core.electorate, a.now(), bound_s)
        kept = self._grants.pop(workflow_id, {})
        granted = self._granted.setdefault(workflow_id, asyncio.Event())
        self._waits[workflow_id] = self._waits.get(workflow_id, 0) + 1
        try:
            for member in sorted(core.electorate - {a.domain}):
                self._takeovers.claim(active, core, SendClaim(member, core.epoch))
            while mandate.verdict is Verdict.ASKING and not a.stopping:
                granted.clear()  # before the look: a grant held from here on wakes us
                if self._takeovers.core_of(workflow_id) is not core or core.epoch \
                        != mandate.epoch or core.role is not Role.ACTING:
                    # Our core moved on (a proven later epoch, or a claim we granted).
                    mandate.step(a.now(), Overtaken(core.epoch, core.coordinator, True))
                    break
                for voter, (epoch, _) in sorted(self._grants.get(workflow_id, {}).items()):
                    if epoch == mandate.epoch:
                        mandate.step(a.now(), Regranted(voter))
                if mandate.step(a.now(), Timer()) is not Verdict.ASKING:
                    break
                try:
                    async with asyncio.timeout(max(0.0, mandate.deadline - a.now())):
                        await granted.wait()
                except TimeoutError:
                    pass
                finally:
                    self.wakeups += 1
                    self._counter.inc()
            cert = self.certificate(workflow_id) if mandate.verdict is Verdict.PLACE else None
        finally:
            self._waits[workflow_id] -= 1
            if not self._waits[workflow_id]:
                del self._waits[workflow_id], self._granted[workflow_id]
            # The kept grants go back as evidence of the epoch won (the claims' proof,
            # a rival's denial); they only never count for a round. Not for a workflow
            # forgotten meanwhile (it ended).
            if self._takeovers.core_of(workflow_id) is core:
                held_now = self._grants.setdefault(workflow_id, {})
                for voter, grant in kept.items():
                    if voter not in held_now or held_now[voter][0] < grant[0]:
                        held_now[voter] = grant
        if a.stopping:
            return None, "stopping"
        if mandate.verdict is Verdict.OVERTAKEN:
            return None, f"coordinator epoch {mandate.epoch} is over here"
        if cert is None:
            log.warning("%s: no fresh majority for a round of epoch %d: %s", workflow_id,
                        mandate.epoch, mandate.why_not())
            return None, mandate.why_not()
        return cert, ""

    async def origin_mandate(self, workflow_id: str, bound_s: float) -> tuple[bool, str]:
        """May the original coordinator (epoch 0) run one re-placement round now? Every
        other member of the electorate is asked whether it still holds epoch 0 for us;
        the round mandate decides on the answers (fresh answers meeting every majority,
        ours included; a later epoch held somewhere; or neither by `bound_s`). Returns
        whether to place, and why not (a later epoch: followed here now, the caller
        sees the coordinator changed; or too few answers: the step fails)."""
        a = self._takeovers.agent
        active = a.active.get(workflow_id)
        if active is None or active.row.coordinator != a.domain or active.row.epoch != 0:
            return False, "not the coordinator of epoch 0 here"
        row = active.row
        mandate = RoundMandate(a.domain, 0, self.electorate_of(row), a.now(), bound_s)
        if mandate.verdict is Verdict.PLACE:  # no later epoch can win without our grant
            return True, ""
        if workflow_id in self._origin_answers:  # pragma: no cover - one round at a time
            return False, "a mandate for this workflow is being asked already"
        answers: asyncio.Queue = asyncio.Queue()
        self._origin_answers[workflow_id] = answers
        try:
            async with asyncio.TaskGroup() as tg:
                asks = [tg.create_task(self._ask_origin(row, member, mandate.deadline, answers),
                                       name=f"epoch 0 of {workflow_id} asked of {member}")
                        for member in sorted(mandate.electorate - {a.domain})]
                try:
                    await self._decide_origin(active, mandate, answers)
                finally:
                    for ask in asks:
                        ask.cancel()
        finally:
            del self._origin_answers[workflow_id]
        if a.stopping:
            return False, "stopping"
        if mandate.verdict is Verdict.PLACE:
            return True, ""
        if mandate.verdict is Verdict.OVERTAKEN:
            return False, "coordinator epoch 0 is over here"
        log.warning("%s: no fresh answers enough for a round of epoch 0: %s", workflow_id,
                    mandate.why_not())
        return False, mandate.why_not()

    async def _decide_origin(self, active: Active, mandate: RoundMandate,
                             answers: asyncio.Queue) -> None:
        """Feed the answers to the mandate until its verdict (or the bound)."""
        a = self._takeovers.agent
        row = active.row
        while mandate.verdict is Verdict.ASKING and not a.stopping:
            if row.coordinator != a.domain or a.active.get(row.id) is not active:
                mandate.step(a.now(), Overtaken(row.epoch, row.coordinator, True))
                if mandate.verdict is Verdict.ASKING:  # ended or forgotten meanwhile
                    return
                continue
            try:
                async with asyncio.timeout(max(0.0, mandate.deadline - a.now())):
                    got = await answers.get()
            except TimeoutError:
                got = None
            finally:
                self.wakeups += 1
                self._counter.inc()
            if got is not None:
                voter, answer = got
                if answer.granted:
                    mandate.step(a.now(), Regranted(voter))
                elif answer.held_epoch > 0 and answer.holder != a.domain:
                    proven = self.proven_denial(row.id, voter, answer)
                    mandate.step(a.now(), Overtaken(answer.held_epoch, answer.holder, proven))
                    await self._follow_denial(active, voter, answer, proven)
            mandate.step(a.now(), Timer())

    async def _follow_denial(self, active: Active, voter: str,
                             answer: peer_pb2.TakeoverAnswer, proven: bool) -> None:
        """A member holds a later epoch: our core takes the denial as it takes one of a
        claim (proven, it follows that epoch, written before anything else happens
        here; unproven, it keeps acting and reports it)."""
        core = self._takeovers.core_for(active)
        if core is None or core.epoch != 0:
            return
        await self._takeovers.apply(active, core, core.step(
            self._takeovers.agent.now(),
            Deny(voter, 0, answer.held_epoch, answer.holder, proven)))

    async def _ask_origin(self, row: WorkflowRow, member: str, deadline: float,
                          answers: asyncio.Queue) -> None:
        """Ask one member about epoch 0 until it answers (one answer put in `answers`)
        or the deadline; a deadline on every call."""
        a = self._takeovers.agent
        backoff = 0.1
        while (left := deadline - a.now()) > 0:
            endpoint = a.endpoint_of(member, row.endpoints)
            if endpoint is not None:
                try:
                    body, _ = await a.peers.call(
                        endpoint, "Takeover", recipient=member, expect="takeover_answer",
                        timeout=min(PEER_RPC_TIMEOUT_S, left),
                        takeover_claim=peer_pb2.TakeoverClaim(workflow_id=row.id, epoch=0))
                except PeerCallError as e:
                    log.debug("epoch 0 of %s asked of %s: %s", row.id, member, e)
                else:
                    answer = body.takeover_answer
                    if answer.workflow_id == row.id and answer.epoch == 0 \
                            and not answer.in_doubt:
                        answers.put_nowait((member, answer))
                        return
            if not await a.sleep(min(backoff, max(0.0, deadline - a.now()))):
                return
            backoff = min(backoff * 2, 2.0)

    def wake(self, workflow_id: str) -> None:
        """The coordinator followed here changed (takeover shell): a wait looks again."""
        if (granted := self._granted.get(workflow_id)) is not None:
            granted.set()
        if (answers := self._origin_answers.get(workflow_id)) is not None:
            answers.put_nowait(None)

    def waiting(self, workflow_id: str) -> bool:
        """Whether a wait for the workflow's certificate is parked on its grants."""
        return workflow_id in self._granted

    def forget(self, workflow_id: str) -> None:
        self._grants.pop(workflow_id, None)
        self._shown.pop(workflow_id, None)
