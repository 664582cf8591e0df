"""A trusted domain that lies in gossip, on real agents: the test holds us-east's key (a
compromised partner) and sends each forged claim over gRPC, signed and fresh, so that
authentication passes; the honest agents refuse each one for want of authority, count
it, and nothing changes. The lies of the negotiation (PREPAREs, votes, decisions,
results sent as NodeTurn messages) are test_node_engine_lying_domain.py's."""

from __future__ import annotations

import asyncio
import time

import pytest
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.membership import swim_codec
from fedorch.core.membership.swim_types import (
    MAX_INCARNATION,
    ClaimBody,
    ClaimKind,
    Gossip,
    sign_claim,
)
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2, swim_pb2
from fedorch.runtime.claim_signing import ClaimSigner

from tests.integration.conftest import DOMAINS
from tests.integration.federation import running_federation, state_name

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    with running_federation(tmp_path_factory.mktemp("gossip-liars"), DOMAINS) as fed:
        yield fed


@pytest.fixture
async def gossip_fed(federation):
    yield federation
    await federation.close_channels()

LIAR = "us-east"


def _seal(signer: Signer, recipient: str, **payload) -> peer_pb2.Envelope:
    return seal(signer, recipient=recipient, now_ms=int(time.time() * 1000),
                nonce=new_nonce(), **payload)


def _rejected(fed, domain: str, reason: str) -> float:
    return fed.metric(domain, "fedorch_rejected_messages_total", reason=reason) or 0.0


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
