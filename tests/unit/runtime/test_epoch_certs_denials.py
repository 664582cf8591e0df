"""A denial naming a later coordinator epoch is followed only on that epoch's proof.

Workflow omega.1 (original coordinator omega, gone) has the electorate alpha, delta,
eps, gamma, omega (a majority is 3). Agent alpha (the conftest's, real store and
shell) claims epoch 1 and asks eps:

- eps says it holds epoch 2 for delta and shows delta's certificate (delta, eps, gamma
  granted it): alpha follows delta at that answer;
- eps says so with nothing to show, or with a certificate of too few grants, or of
  another holder than the one it names: alpha keeps claiming epoch 1 (on disk too),
  and the denial is logged and counted (`unproven_denial`, and the certificate's own
  reason).

As a denier: alpha granted epoch 2 to delta on delta's claim carrying its certificate,
and keeps that proof; its denial of a claim of an earlier epoch, and its answer to the
original coordinator's ask of epoch 0, carry it, and it verifies with public keys only.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.workflow.epoch_certificate import verify
from fedorch.core.workflow.progress import Progress
from fedorch.core.workflow.takeover import Role, SendClaim
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.store.store import WorkflowRow

WF = "omega.1"
SPEC = spec_pb2.WorkflowSpec(name="one", steps=[
    spec_pb2.StepSpec(id=step, capability="x") for step in ("s", "t", "u")])
ELECTORATE = ["alpha", "delta", "eps", "gamma", "omega"]
KEYS = {d: Ed25519PrivateKey.generate() for d in ("delta", "eps", "gamma", "omega")}
SIGNERS = {d: Signer(d, k) for d, k in KEYS.items()}


def _certificate(winner: str, *voters: str, epoch: int = 2) -> peer_pb2.EpochCertificate:
    grants = [seal(SIGNERS[v], recipient=winner, now_ms=1, nonce=new_nonce(),
                   takeover_answer=peer_pb2.TakeoverAnswer(
                       workflow_id=WF, epoch=epoch, granted=True, held_epoch=epoch,
                       holder=winner, committed_round=1, electorate=ELECTORATE))
              for v in voters]
    return peer_pb2.EpochCertificate(workflow_id=WF, epoch=epoch, coordinator=winner,
                                     grants=grants)


def _refusals(agent: Agent) -> dict[str, float]:
    return {s.labels["reason"]: s.value
            for metric in agent.metrics.rejected_messages.collect() for s in metric.samples
            if s.name.endswith("_total")}


async def _claiming(agent: Agent, granted: tuple[int, str] = (1, "alpha")) -> Active:
    """alpha takes part in WF with gamma and delta; its own grant of `granted` on
    record (by default: alpha claims epoch 1, its core CLAIMING)."""
    for domain, key in KEYS.items():
        agent.trust.add(domain, key.public_key())
    row = WorkflowRow(id=WF, name="one", coordinator="omega", state="RUNNING",
                      spec=SPEC.SerializeToString(),
                      placement={"s": "alpha", "t": "gamma", "u": "delta"}, round=1,
                      acceptors=list(ELECTORATE), granted_epoch=granted[0],
                      granted_to=granted[1], created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, row.placement, "alpha"))
    agent.active[WF] = active
    await agent.save(active)
    await agent.takeovers.prepare(active)
    assert agent.takeovers.core_for(active) is not None
    return active


async def _asked_of_eps(agent: Agent, monkeypatch, active: Active,
                        answer: peer_pb2.TakeoverAnswer) -> None:
    """alpha's claim of epoch 1 goes to eps, which answers `answer`."""

    async def call(endpoint, method, **kwargs):
        assert method == "Takeover" and kwargs["recipient"] == "eps"
        return peer_pb2.Body(sender="eps", takeover_answer=answer), peer_pb2.Envelope()

    monkeypatch.setattr(agent.peers, "call", call)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    core = agent.takeovers.core_of(WF)
    assert core.role is Role.CLAIMING and core.epoch == 1
    await agent.takeovers.claims.until_answered(active, core, SendClaim("eps", 1))


def _denial(cert: peer_pb2.EpochCertificate | None = None,
            holder: str = "delta") -> peer_pb2.TakeoverAnswer:
    answer = peer_pb2.TakeoverAnswer(workflow_id=WF, epoch=1, held_epoch=2, holder=holder)
    if cert is not None:
        answer.epoch_certificate.CopyFrom(cert)
    return answer


async def _still_claiming(agent: Agent, active: Active) -> None:
    core = agent.takeovers.core_of(WF)
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 1, "alpha")
    stored = await agent.store.get_workflow(WF)
    assert (stored.granted_epoch, stored.granted_to, stored.coordinator) == (
        1, "alpha", "omega")
    assert active.row.coordinator == "omega"


# ---- a claimant denied ------------------------------------------------------------------


async def test_a_denial_relaying_the_later_epochs_certificate_is_followed(
        agent: Agent, monkeypatch) -> None:
    active = await _claiming(agent)
    await _asked_of_eps(agent, monkeypatch, active,
                        _denial(_certificate("delta", "delta", "eps", "gamma")))
    core = agent.takeovers.core_of(WF)
    assert (core.role, core.epoch, core.coordinator) == (Role.FOLLOWING, 2, "delta")
    stored = await agent.store.get_workflow(WF)
    assert (stored.epoch, stored.coordinator) == (2, "delta")  # followed, on disk
    assert _refusals(agent) == {}


async def test_a_denial_on_the_voters_word_alone_is_not_followed(agent: Agent,
                                                                 monkeypatch) -> None:
    active = await _claiming(agent)
    await _asked_of_eps(agent, monkeypatch, active, _denial())
    await _still_claiming(agent, active)
    assert _refusals(agent) == {"unproven_denial": 1.0}


async def test_a_denial_with_a_minority_certificate_is_not_followed(agent: Agent,
                                                                   monkeypatch) -> None:
    active = await _claiming(agent)
    await _asked_of_eps(agent, monkeypatch, active,
                        _denial(_certificate("delta", "delta", "eps")))  # 2 of 5
    await _still_claiming(agent, active)
    assert _refusals(agent) == {"minority_certificate": 1.0, "unproven_denial": 1.0}


async def test_a_certificate_of_another_holder_than_the_denial_names_is_no_proof(
        agent: Agent, monkeypatch) -> None:
    """gamma's real certificate, shown with a denial naming delta: not delta's proof."""
    active = await _claiming(agent)
    await _asked_of_eps(agent, monkeypatch, active,
                        _denial(_certificate("gamma", "delta", "eps", "gamma")))
    await _still_claiming(agent, active)
    assert _refusals(agent) == {"bad_certificate": 1.0, "unproven_denial": 1.0}


# ---- alpha denies, with the proof it holds ------------------------------------------------


async def test_a_granter_that_saw_the_winners_certificate_shows_it_when_it_denies(
        agent: Agent) -> None:
    await _claiming(agent, granted=(0, ""))
    cert = _certificate("delta", "delta", "eps", "gamma")
    claim = peer_pb2.TakeoverClaim(workflow_id=WF, epoch=2, epoch_certificate=cert)
    answer = await agent.takeovers.on_claim("delta", claim)
    assert answer.granted and (answer.held_epoch, answer.holder) == (2, "delta")
    # A rival's claim of an earlier epoch, and the original coordinator's ask: denied,
    # each with delta's proof, which a third party checks with public keys only.
    for sender, epoch in (("gamma", 1), ("omega", 0)):
        denial = await agent.takeovers.on_claim(
            sender, peer_pb2.TakeoverClaim(workflow_id=WF, epoch=epoch))
        assert not denial.granted and (denial.held_epoch, denial.holder) == (2, "delta")
        proof = verify(denial.epoch_certificate, agent.trust, workflow_id=WF,
                       claimant="delta")
        assert proof.epoch == 2 and proof.signers == {"delta", "eps", "gamma"}
    assert _refusals(agent) == {}


async def test_a_granter_shown_a_bad_certificate_keeps_none_and_counts_it(
        agent: Agent) -> None:
    """The claim is granted all the same (a later epoch), but its minority certificate
    is not kept, so alpha's denials carry nothing."""
    await _claiming(agent, granted=(0, ""))
    claim = peer_pb2.TakeoverClaim(workflow_id=WF, epoch=2,
                                   epoch_certificate=_certificate("delta", "delta"))
    answer = await agent.takeovers.on_claim("delta", claim)
    assert answer.granted
    denial = await agent.takeovers.on_claim(
        "omega", peer_pb2.TakeoverClaim(workflow_id=WF, epoch=0))
    assert not denial.granted and not denial.HasField("epoch_certificate")
    assert _refusals(agent) == {"minority_certificate": 1.0}
