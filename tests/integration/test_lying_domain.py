"""A trusted domain that lies, on real agents: the test holds us-east's key (a
compromised partner) and sends each forgery over gRPC, signed and fresh, so that
authentication passes; the honest agents refuse each one for want of authority,
count it, and nothing changes."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from fedorch.core.identity.envelope import Signer, new_nonce, open_evidence, seal
from fedorch.core.identity.trust import TrustStore
from fedorch.core.membership import swim_codec
from fedorch.core.membership.swim_types import (
    MAX_INCARNATION,
    ClaimBody,
    ClaimKind,
    Gossip,
    sign_claim,
)
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2, status_pb2, swim_pb2
from fedorch.runtime.claim_signing import ClaimSigner

from tests.integration.conftest import DOMAINS
from tests.integration.federation import running_federation, state_name, step_states
from tests.submissions import signed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    # The forgeries below go through the shells' peer RPCs (Prepare, Paxos, Decide,
    # ReportStep, CancelWorkflow): test_node_engine_lying_domain.py sends the same lies
    # as NodeTurn messages to node-engine agents.
    shells = {name: {**body, "engine": "shells"} for name, body in DOMAINS.items()}
    with running_federation(tmp_path_factory.mktemp("liars"), shells) as fed:
        yield fed


@pytest.fixture(scope="module")
def any_engine(tmp_path_factory):
    """The federation on the engine the suite runs (membership is the same code on both)."""
    with running_federation(tmp_path_factory.mktemp("gossip-liars"), DOMAINS) as fed:
        yield fed


@pytest.fixture
async def gossip_fed(any_engine):
    yield any_engine
    await any_engine.close_channels()

LIAR = "us-east"
SPEC = parse_spec_text("name: lie\nsteps:\n  - {id: report, capability: report.publish}\n",
                       "test")


def _seal(signer: Signer, recipient: str, **payload) -> peer_pb2.Envelope:
    return seal(signer, recipient=recipient, now_ms=int(time.time() * 1000),
                nonce=new_nonce(), **payload)


def _prepare(workflow_id: str, acceptors: tuple[str, ...] = ()) -> peer_pb2.PrepareRequest:
    return peer_pb2.PrepareRequest(workflow_id=workflow_id, round=1, spec=SPEC,
                                   steps=["report"], placement={"report": "partner"},
                                   acceptors=acceptors, submission=signed(SPEC))


def _reservations(fed, domain: str, workflow_id: str) -> list[tuple]:
    return fed.rows(domain, "SELECT state FROM reservations WHERE workflow_id=?",
                    (workflow_id,))


async def _refused(fed, domain: str, method: str, envelope: peer_pb2.Envelope,
                   code: grpc.StatusCode = grpc.StatusCode.PERMISSION_DENIED) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.peer_call(domain, method, envelope)
    assert err.value.code() == code, err.value
    return err.value.details()


def _rejected(fed, domain: str, reason: str) -> float:
    return fed.metric(domain, "fedorch_rejected_messages_total", reason=reason) or 0.0


async def test_prepares_for_another_coordinators_workflow_or_a_bad_id_are_refused(fed):
    liar = fed.signer(LIAR)
    before = await asyncio.to_thread(_rejected, fed, "partner", "not_coordinator")
    for workflow_id in ("eu-west.0123456789abcdef0123", f"{LIAR}.eu-west.abc"):
        details = await _refused(fed, "partner", "Prepare",
                                 _seal(liar, "partner", prepare=_prepare(workflow_id)))
        assert "not its workflow" in details
        assert _reservations(fed, "partner", workflow_id) == []
    for workflow_id in (f"{LIAR}.../../etc", f"{LIAR}.a\x00b", f"{LIAR}.a\nb", f"{LIAR}."):
        details = await _refused(fed, "partner", "Prepare",
                                 _seal(liar, "partner", prepare=_prepare(workflow_id)),
                                 grpc.StatusCode.INVALID_ARGUMENT)
        assert "invalid workflow id" in details
        assert _reservations(fed, "partner", workflow_id) == []
    after = await asyncio.to_thread(_rejected, fed, "partner", "not_coordinator")
    assert after == before + 2
    # The same id check guards the Client API.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.client("partner").GetWorkflow(
            client_pb2.GetWorkflowRequest(id="eu-west.../x"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # In a batch, the forged item alone is refused.
    batch = peer_pb2.BatchRequest(items=[peer_pb2.Body(prepare=_prepare("eu-west.b9"))])
    reply = await fed.peer_call("partner", "Batch", _seal(liar, "partner", batch=batch))
    trust = TrustStore.from_files([fed.workdir / "keys" / "partner.pub"])
    results = open_evidence(reply, trust, expect="batch_reply").batch_reply.results
    assert results[0].error_code == "PERMISSION_DENIED"
    assert _reservations(fed, "partner", "eu-west.b9") == []


async def test_outsiders_cannot_abort_a_round_nor_end_a_workflow(fed):
    """eu-west (played honestly by the test) prepares partner in a Paxos Commit round
    whose acceptors are eu-west and partner; the liar, no acceptor, sends Accepted(ABORT)
    in its own name and in eu-west's, an ABORT decision, a COMMIT with the votes it saw,
    and an end notice. The reservation stays PREPARED; eu-west's real ABORT releases it."""
    coordinator, liar = fed.signer("eu-west"), fed.signer(LIAR)
    workflow_id = "eu-west.0a0b0c0d0e0f10111213"
    vote = await fed.peer_call("partner", "Prepare", _seal(
        coordinator, "partner", prepare=_prepare(workflow_id, ("eu-west", "partner"))))
    assert peer_pb2.Body.FromString(vote.body).vote.yes
    assert _reservations(fed, "partner", workflow_id) == [("prepared",)]
    abort = peer_pb2.PaxosValue(outcome=peer_pb2.OUTCOME_ABORT)
    for acceptor in (LIAR, "eu-west"):
        for n in (1, 2):
            accepted = peer_pb2.PaxosAccepted(
                workflow_id=workflow_id, round=1, ballot=peer_pb2.Ballot(n=n, proposer=LIAR),
                acceptor=acceptor, value=abort)
            envelope = _seal(liar, "partner", paxos_accepted=accepted)
            if acceptor == LIAR:  # authentic but no acceptor of the round
                reply = await fed.peer_call("partner", "Paxos", envelope)
                ack = peer_pb2.Body.FromString(reply.body).ack
                assert not ack.ok and "not" in ack.error and "acceptor" in ack.error
            else:  # in an acceptor's name
                assert "in the name of" in await _refused(fed, "partner", "Paxos", envelope)
    for outcome, votes in ((peer_pb2.OUTCOME_ABORT, []), (peer_pb2.OUTCOME_COMMIT, [vote])):
        decision = _seal(liar, "", decision=peer_pb2.Decision(
            workflow_id=workflow_id, round=1, outcome=outcome, coordinator="eu-west",
            votes=votes))
        reply = await fed.peer_call("partner", "Decide", _seal(
            liar, "partner", decision_notice=peer_pb2.DecisionNotice(decision=decision)))
        ack = peer_pb2.Body.FromString(reply.body).ack
        assert not ack.ok and "neither its coordinator nor a participant" in ack.error
    # A decision of a workflow partner knows no transaction of (classic 2PC), signed by
    # the liar as if it were the coordinator.
    classic = _seal(liar, "", decision=peer_pb2.Decision(
        workflow_id="eu-west.00aa00bb00cc00dd00ee", round=1, outcome=peer_pb2.OUTCOME_ABORT,
        coordinator=LIAR))
    reply = await fed.peer_call("partner", "Decide", _seal(
        liar, "partner", decision_notice=peer_pb2.DecisionNotice(decision=classic)))
    ack = peer_pb2.Body.FromString(reply.body).ack
    assert not ack.ok and "does not belong to coordinator" in ack.error
    await _refused(fed, "partner", "CancelWorkflow", _seal(
        liar, "partner", cancel=peer_pb2.CancelNotice(workflow_id=workflow_id, reason="lie")))
    # A result for partner's own step, before partner has the COMMIT: the placement of
    # the PREPARE it voted on says whose step it is; nothing is kept for later.
    reply = await fed.peer_call("partner", "ReportStep", _seal(
        liar, "partner", step_result=peer_pb2.StepResult(
            workflow_id=workflow_id, step_id="report", attempt=999, domain=LIAR,
            state=status_pb2.STEP_STATE_FAILED, error="forged by the liar")))
    ack = peer_pb2.Body.FromString(reply.body).ack
    assert not ack.ok and "placed on 'partner'" in ack.error
    assert fed.rows("partner", "SELECT * FROM steps WHERE workflow_id=?", (workflow_id,)) == []
    assert _reservations(fed, "partner", workflow_id) == [("prepared",)]
    assert await asyncio.to_thread(_rejected, fed, "partner", "not_acceptor") >= 2
    # The genuine decision of its coordinator is taken.
    decision = _seal(coordinator, "", decision=peer_pb2.Decision(
        workflow_id=workflow_id, round=1, outcome=peer_pb2.OUTCOME_ABORT,
        coordinator="eu-west"))
    reply = await fed.peer_call("partner", "Decide", _seal(
        coordinator, "partner", decision_notice=peer_pb2.DecisionNotice(decision=decision)))
    assert peer_pb2.Body.FromString(reply.body).ack.ok
    assert _reservations(fed, "partner", workflow_id) == []


async def test_a_result_for_a_step_the_liar_did_not_run_is_refused(fed):
    workflow_id = await fed.submit("eu-west", "name: r\nsteps:\n"
                                   "  - {id: extract, capability: data.extract}\n")
    status = await fed.wait_state("eu-west", workflow_id)
    assert state_name(status) == "SUCCEEDED"
    liar = fed.signer(LIAR)
    forged = dict(workflow_id=workflow_id, step_id="extract", attempt=999,
                  state=status_pb2.STEP_STATE_FAILED, error="forged by the liar")
    reply = await fed.peer_call("eu-west", "ReportStep", _seal(
        liar, "eu-west", step_result=peer_pb2.StepResult(domain=LIAR, **forged)))
    ack = peer_pb2.Body.FromString(reply.body).ack
    assert not ack.ok and "placed on" in ack.error
    assert "in the name of" in await _refused(fed, "eu-west", "ReportStep", _seal(
        liar, "eu-west", step_result=peer_pb2.StepResult(domain="eu-west", **forged)))
    assert fed.rows("eu-west", "SELECT domain, state, attempts FROM steps WHERE"
                    " workflow_id=?", (workflow_id,)) == [("eu-west", "SUCCEEDED", 1)]
    assert step_states(await fed.status("eu-west", workflow_id))["extract"][0] == "SUCCEEDED"


def _gossip(signer: Signer, recipient: str, address: str, *bodies: ClaimBody):
    claim_signer = ClaimSigner(signer)
    claims = tuple(sign_claim(b, signer.domain, claim_signer) for b in bodies)
    batch = swim_pb2.SwimBatch(reply_to=address,
                               messages=[swim_codec.encode(Gossip(signer.domain, claims))])
    return _seal(signer, recipient, swim=batch)


async def _member(fed, observer: str, domain: str) -> client_pb2.MemberInfo:
    reply = await fed.client(observer).ListMembers(client_pb2.ListMembersRequest(), timeout=5)
    return next(m for m in reply.members if m.domain == domain)


async def test_liveness_claims_and_records_speak_only_for_their_own_domain(gossip_fed):
    fed = gossip_fed
    liar = fed.signer(LIAR)
    address = fed.address(LIAR)
    top = MAX_INCARNATION - 1
    # DEAD and SUSPECT about two honest members at the top of the range: refused (the
    # Swim call handles its claims before it answers, so the view is checked right after).
    await fed.peer_call("eu-west", "Swim", _gossip(
        liar, "eu-west", address,
        ClaimBody(ClaimKind.DEAD, "partner", top, LIAR),
        ClaimBody(ClaimKind.SUSPECT, "partner", top, LIAR)))
    await fed.peer_call("partner", "Swim", _gossip(
        liar, "partner", address, ClaimBody(ClaimKind.DEAD, "eu-west", top, LIAR)))
    partner = await _member(fed, "eu-west", "partner")
    assert partner.state == client_pb2.MEMBER_STATE_ALIVE and partner.incarnation < top
    assert (await _member(fed, "partner", "eu-west")).state == client_pb2.MEMBER_STATE_ALIVE
    assert await asyncio.to_thread(_rejected, fed, "eu-west", "accusation_out_of_reach") >= 2
    # The liar's own record, naming partner with a label partner does not have.
    held = (await _member(fed, "eu-west", LIAR)).incarnation
    record = peer_pb2.DomainRecord(domain="partner", labels={"zone": "vault"},
                                   capabilities=[peer_pb2.CapabilityInfo(
                                       name="report.publish", capacity=2, available=2)])
    await fed.peer_call("eu-west", "Swim", _gossip(
        liar, "eu-west", address,
        ClaimBody(ClaimKind.ALIVE, LIAR, held + 1, LIAR, address, record_version=10**6,
                  record=record.SerializeToString())))
    seen = await _member(fed, "eu-west", LIAR)
    assert seen.incarnation == held + 1  # the claim was taken; its record was not
    assert "zone" not in seen.labels and not seen.capabilities
    assert "zone" not in (await _member(fed, "eu-west", "partner")).labels
    assert await asyncio.to_thread(_rejected, fed, "eu-west", "record_not_own") >= 1
    # A step wanting zone=vault finds no domain: nothing ran on partner.
    wants_vault = ("name: v\nsteps:\n  - {id: s, capability: report.publish,"
                   " constraints: {labels: {zone: vault}}}\n")
    workflow_id = await fed.submit("eu-west", wants_vault)
    aborted = await fed.wait_state("eu-west", workflow_id)
    assert state_name(aborted) == "ABORTED", aborted
    assert "partner: no label zone" in aborted.reason, aborted.reason
    # us-east, seeing a claim of its own it did not make, outbids it: it comes back whole.
    async def whole() -> bool:
        m = await _member(fed, "eu-west", LIAR)
        return m.incarnation > held + 1 and bool(m.capabilities)
    deadline = time.monotonic() + 30
    while not await whole():
        assert time.monotonic() < deadline, "us-east never refuted the liar's claim"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(("constraints", "why"), [
    ({"domains": ["eu-west"]}, "may run only in eu-west, not partner"),
    ({"labels": {"cloud": "aws"}}, "wants cloud=aws; partner has cloud=onprem"),
])
async def test_a_prepare_placing_a_step_against_its_own_constraints_gets_no(
        fed, constraints, why):
    """The liar coordinates its own workflow (authority holds) but places the step where
    the submitter's spec forbids: partner checks the step's constraints against its own
    name and labels, votes NO saying why, and holds nothing."""
    spec = parse_spec_text("name: bound\nsteps:\n  - {id: report, capability: report.publish}\n",
                           "test")
    spec.steps[0].constraints.domains.extend(constraints.get("domains", []))
    spec.steps[0].constraints.labels.update(constraints.get("labels", {}))
    workflow_id = f"{LIAR}.0123456789abcdef{len(why):04d}"
    prepare = peer_pb2.PrepareRequest(workflow_id=workflow_id, round=1, spec=spec,
                                      steps=["report"], placement={"report": "partner"},
                                      submission=signed(spec))
    reply = await fed.peer_call("partner", "Prepare",
                                _seal(fed.signer(LIAR), "partner", prepare=prepare))
    trust = TrustStore.from_files([fed.workdir / "keys" / "partner.pub"])
    vote = open_evidence(reply, trust, expect="vote").vote
    assert not vote.yes
    assert vote.reason == f"invalid PREPARE: constraints: step 'report' {why}"
    assert _reservations(fed, "partner", workflow_id) == []
