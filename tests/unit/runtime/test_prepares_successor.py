"""A PREPARE from a coordinator that took the workflow over, at a participant that never
saw the workflow (agent alpha): accepted only with a valid epoch certificate; a forged or
minority one is refused with its reason, and nothing changes (SQLite rows, holds,
active workflows)."""

from __future__ import annotations

import grpc
import pytest
from fedorch.core.identity.envelope import new_nonce, seal
from fedorch.core.workflow.epoch_certificate import ROUNDS_PER_EPOCH
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.peer_service import PeerService

from tests.unit.runtime.fuzz_harness import Aborted, Harness

WF = "gamma.wf1"  # gamma coordinated it; beta took it over in epoch 1
ELECTORATE = ["alpha", "beta", "gamma"]


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.close()


def _grant(h: Harness, signer, *, electorate=ELECTORATE) -> peer_pb2.Envelope:
    answer = peer_pb2.TakeoverAnswer(workflow_id=WF, epoch=1, granted=True, held_epoch=1,
                                     holder="beta", committed_round=1, electorate=electorate)
    return seal(signer, recipient="beta", now_ms=h.agent.now_ms(), nonce=new_nonce(),
                takeover_answer=answer)


def _prepare(h: Harness, grants, round_: int) -> peer_pb2.Envelope:
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s", capability="x")])
    req = peer_pb2.PrepareRequest(
        workflow_id=WF, round=round_, spec=spec, steps=["s"], placement={"s": "alpha"},
        lease_ms=60_000, coordinator_endpoint="127.0.0.1:9",
        epoch_certificate=peer_pb2.EpochCertificate(workflow_id=WF, epoch=1,
                                                    coordinator="beta", grants=grants))
    return h.seal(h.beta, prepare=req)


def _refused(h: Harness, envelope) -> str:
    before = h.snapshot()
    result = h.call(PeerService(h.agent).Prepare, envelope)
    assert isinstance(result, Aborted), result
    assert result.code == grpc.StatusCode.PERMISSION_DENIED, (result.code, result.details)
    h.settle()
    assert h.snapshot() == before
    h.check_alive()
    return result.details


def test_a_minority_certificate_is_refused_and_changes_nothing(harness):
    details = _refused(harness, _prepare(harness, [_grant(harness, harness.beta)],
                                         ROUNDS_PER_EPOCH + 1))
    assert details.startswith("epoch certificate refused: ")
    assert "1 grant(s) (beta) of 3 electors; a majority is 2" in details


def test_a_forged_grant_is_refused_and_changes_nothing(harness):
    forged = _grant(harness, harness.gamma)
    forged.signature = bytes(64)
    details = _refused(harness, _prepare(harness, [_grant(harness, harness.beta), forged],
                                         ROUNDS_PER_EPOCH + 1))
    assert "epoch certificate refused" in details and "signature" in details


def test_grants_naming_two_electorates_are_refused(harness):
    other = _grant(harness, harness.gamma, electorate=["beta", "gamma", "mallory"])
    details = _refused(harness, _prepare(harness, [_grant(harness, harness.beta), other],
                                         ROUNDS_PER_EPOCH + 1))
    assert "electorate" in details


def test_a_valid_certificate_passes_and_its_round_must_be_its_epochs(harness):
    """A majority's grants prove beta's epoch; a round of epoch 0's range is still a NO
    (reserving nothing): rounds never collide between coordinators."""
    grants = [_grant(harness, harness.beta), _grant(harness, harness.gamma)]
    before = harness.snapshot()
    reply = harness.call(PeerService(harness.agent).Prepare, _prepare(harness, grants, 2))
    assert isinstance(reply, peer_pb2.Envelope), reply
    vote = peer_pb2.Body.FromString(reply.body).vote
    assert not vote.yes
    assert "outside the rounds of coordinator epoch 1" in vote.reason, vote.reason
    harness.settle()
    assert harness.snapshot() == before  # the audit tables are not in the snapshot
