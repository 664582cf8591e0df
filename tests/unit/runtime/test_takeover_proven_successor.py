"""A successor that won its epoch shows its epoch certificate, with its claims and with
its denials of a rival's claim; a rival claimant of that epoch (or a follower of one)
verifies it and follows the winner at once (the core's `Proven`), instead of waiting its
claim timeout to find out by denials (then, the lower name, overthrowing the winner in
the next epoch). A certificate that does not hold changes nothing and is counted.

Agent alpha (the conftest's, real store and shell) takes part in beta's workflow with
gamma; the committed round's acceptors, the electorate, are alpha, beta and gamma.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.workflow.epoch_certificate import verify
from fedorch.core.workflow.progress import Progress
from fedorch.core.workflow.takeover import Role, SendClaim
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.store.store import WorkflowRow

from tests.unit.runtime.test_self_fencing_restart import SPEC

WF = "beta.1"
ELECTORATE = ["alpha", "beta", "gamma"]
KEYS = {d: Ed25519PrivateKey.generate() for d in ("beta", "gamma")}
SIGNERS = {d: Signer(d, k) for d, k in KEYS.items()}


def _trusting(agent: Agent) -> None:
    for domain, key in KEYS.items():
        agent.trust.add(domain, key.public_key())


async def _taking_part(agent: Agent, *, epoch: int = 0, coordinator: str = "beta",
                       granted: tuple[int, str] = (0, "")) -> Active:
    _trusting(agent)
    row = WorkflowRow(id=WF, name="one", coordinator=coordinator, state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"s": "alpha", "t": "gamma"},
                      round=1, acceptors=list(ELECTORATE), epoch=epoch,
                      granted_epoch=granted[0], granted_to=granted[1],
                      created_ms=1, updated_ms=1)
    return await holding(agent, row)


async def holding(agent: Agent, row: WorkflowRow) -> Active:
    """alpha holds `row`'s workflow, saved, its takeover core built (as its first look
    does)."""
    active = Active(row, Progress(SPEC, row.placement, "alpha"))
    agent.active[row.id] = active
    await agent.save(active)
    await agent.takeovers.prepare(active)
    assert agent.takeovers.core_for(active) is not None
    return active


def _grant(voter: str, to: str, epoch: int = 1) -> peer_pb2.Envelope:
    answer = peer_pb2.TakeoverAnswer(workflow_id=WF, epoch=epoch, granted=True,
                                     held_epoch=epoch, holder=to, committed_round=1,
                                     electorate=ELECTORATE)
    return seal(SIGNERS[voter], recipient=to, now_ms=1, nonce=new_nonce(),
                takeover_answer=answer)


def _certificate(winner: str, *voters: str, epoch: int = 1) -> peer_pb2.EpochCertificate:
    return peer_pb2.EpochCertificate(workflow_id=WF, epoch=epoch, coordinator=winner,
                                     grants=[_grant(v, winner, epoch) for v in voters])


def _refusals(agent: Agent) -> dict[str, float]:
    return {s.labels["reason"]: s.value
            for metric in agent.metrics.rejected_messages.collect() for s in metric.samples
            if s.name.endswith("_total")}


# ---- a claim with the winner's proof ----------------------------------------------------


async def test_a_rival_claimant_follows_a_proven_winner_and_grants_it(agent: Agent) -> None:
    """alpha claimed epoch 1 itself (its own grant on record); gamma won epoch 1 with
    beta's grant and its own, and its claim shows them: alpha follows gamma and grants
    it (gamma then stops asking). Before: denied (alpha holds epoch 1), and the two
    duelled until a claim timeout."""
    active = await _taking_part(agent, granted=(1, "alpha"))
    core = agent.takeovers.core_of(WF)
    assert core.role is Role.CLAIMING and core.epoch == 1
    claim = peer_pb2.TakeoverClaim(workflow_id=WF, epoch=1,
                                   epoch_certificate=_certificate("gamma", "beta", "gamma"))
    answer = await agent.takeovers.on_claim("gamma", claim)
    assert answer.granted and (answer.held_epoch, answer.holder) == (1, "gamma")
    assert (core.role, core.epoch, core.coordinator) == (Role.FOLLOWING, 1, "gamma")
    row = await agent.store.get_workflow(WF)
    assert (row.epoch, row.coordinator, row.granted_epoch, row.granted_to) == (
        1, "gamma", 1, "gamma")
    assert active.row.coordinator == "gamma"
    assert _refusals(agent) == {}


async def test_a_minority_certificate_changes_nothing_and_is_counted(agent: Agent) -> None:
    await _taking_part(agent, granted=(1, "alpha"))
    core = agent.takeovers.core_of(WF)
    claim = peer_pb2.TakeoverClaim(workflow_id=WF, epoch=1,
                                   epoch_certificate=_certificate("gamma", "gamma"))
    answer = await agent.takeovers.on_claim("gamma", claim)
    assert not answer.granted and (answer.held_epoch, answer.holder) == (1, "alpha")
    assert (core.role, core.coordinator) == (Role.CLAIMING, "alpha")
    row = await agent.store.get_workflow(WF)
    assert (row.granted_epoch, row.granted_to, row.coordinator) == (1, "alpha", "beta")
    assert _refusals(agent) == {"minority_certificate": 1.0}


async def test_a_certificate_of_another_than_the_claimant_changes_nothing(
        agent: Agent) -> None:
    """beta's certificate, shown by gamma: no proof that gamma won anything."""
    await _taking_part(agent, granted=(1, "alpha"))
    claim = peer_pb2.TakeoverClaim(workflow_id=WF, epoch=1,
                                   epoch_certificate=_certificate("beta", "beta", "gamma"))
    answer = await agent.takeovers.on_claim("gamma", claim)
    assert not answer.granted
    assert agent.takeovers.core_of(WF).coordinator == "alpha"
    assert _refusals(agent) == {"bad_certificate": 1.0}


# ---- an answer with the winner's proof --------------------------------------------------


async def test_a_claimant_denied_by_the_proven_winner_follows_it(agent: Agent,
                                                                monkeypatch) -> None:
    """alpha claims epoch 1 and asks gamma, which won it: gamma's denial carries its
    certificate, and alpha follows gamma on that answer. Before: a rival noted, the
    claim timeout waited, then (alpha the lower name) epoch 2 claimed against gamma."""
    active = await _taking_part(agent, granted=(1, "alpha"))
    core = agent.takeovers.core_of(WF)

    async def call(endpoint, method, **kwargs):
        assert method == "Takeover" and kwargs["recipient"] == "gamma"
        answer = peer_pb2.TakeoverAnswer(
            workflow_id=WF, epoch=1, held_epoch=1, holder="gamma",
            epoch_certificate=_certificate("gamma", "beta", "gamma"))
        return peer_pb2.Body(takeover_answer=answer), peer_pb2.Envelope()

    monkeypatch.setattr(agent.peers, "call", call)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    await agent.takeovers.claims.until_answered(active, core, SendClaim("gamma", 1))
    assert (core.role, core.epoch, core.coordinator) == (Role.FOLLOWING, 1, "gamma")
    assert active.row.coordinator == "gamma"


async def test_a_denial_with_a_proof_of_another_than_the_answerer_is_only_a_denial(
        agent: Agent, monkeypatch) -> None:
    active = await _taking_part(agent, granted=(1, "alpha"))
    core = agent.takeovers.core_of(WF)

    async def call(endpoint, method, **kwargs):
        answer = peer_pb2.TakeoverAnswer(
            workflow_id=WF, epoch=1, held_epoch=1, holder="beta",
            epoch_certificate=_certificate("beta", "beta", "gamma"))
        return peer_pb2.Body(takeover_answer=answer), peer_pb2.Envelope()

    monkeypatch.setattr(agent.peers, "call", call)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    await agent.takeovers.claims.until_answered(active, core, SendClaim("gamma", 1))
    assert (core.role, core.coordinator) == (Role.CLAIMING, "alpha")  # a rival, noted


# ---- the winner shows its proof ----------------------------------------------------------


async def _acting(agent: Agent) -> Active:
    """alpha won epoch 1 with beta's grant (kept as evidence) and its own."""
    active = await _taking_part(agent, epoch=1, coordinator="alpha", granted=(1, "alpha"))
    core = agent.takeovers.core_of(WF)
    assert core.role is Role.ACTING
    agent.takeovers.certificates._hold(WF, "beta", 1, _grant("beta", "alpha"))
    return active


async def test_an_acting_successor_denies_a_rival_with_its_certificate(agent: Agent) -> None:
    await _acting(agent)
    answer = await agent.takeovers.on_claim(
        "gamma", peer_pb2.TakeoverClaim(workflow_id=WF, epoch=1))
    assert not answer.granted and (answer.held_epoch, answer.holder) == (1, "alpha")
    assert answer.HasField("epoch_certificate")
    proof = verify(answer.epoch_certificate, agent.trust, workflow_id=WF, claimant="alpha")
    assert proof.epoch == 1 and proof.signers == {"alpha", "beta"}


async def test_an_acting_successors_claim_carries_its_certificate(agent: Agent,
                                                                 monkeypatch) -> None:
    active = await _acting(agent)
    core = agent.takeovers.core_of(WF)
    sent: list[peer_pb2.TakeoverClaim] = []

    async def call(endpoint, method, **kwargs):
        sent.append(kwargs["takeover_claim"])
        answer = peer_pb2.TakeoverAnswer(workflow_id=WF, epoch=1, granted=True,
                                         held_epoch=1, holder="alpha")
        return peer_pb2.Body(takeover_answer=answer), peer_pb2.Envelope()

    monkeypatch.setattr(agent.peers, "call", call)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    await agent.takeovers.claims.until_answered(active, core, SendClaim("gamma", 1))
    (claim,) = sent
    proof = verify(claim.epoch_certificate, agent.trust, workflow_id=WF, claimant="alpha")
    assert proof.epoch == 1


async def test_a_claim_that_has_not_won_carries_no_certificate(agent: Agent,
                                                              monkeypatch) -> None:
    active = await _taking_part(agent, granted=(1, "alpha"))
    core = agent.takeovers.core_of(WF)
    sent: list[peer_pb2.TakeoverClaim] = []

    async def call(endpoint, method, **kwargs):
        sent.append(kwargs["takeover_claim"])
        answer = peer_pb2.TakeoverAnswer(workflow_id=WF, epoch=1, held_epoch=1, holder="gamma")
        return peer_pb2.Body(takeover_answer=answer), peer_pb2.Envelope()

    monkeypatch.setattr(agent.peers, "call", call)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    await agent.takeovers.claims.until_answered(active, core, SendClaim("gamma", 1))
    assert len(sent) == 1 and not sent[0].HasField("epoch_certificate")


async def test_an_acting_successor_answers_a_decision_query_with_its_certificate(
        agent: Agent) -> None:
    """A participant whose coordinator is gone asks the others (runtime.in_doubt): the
    successor's answer carries the step epochs and its proof."""
    from fedorch.runtime.peer_service import PeerService

    await _acting(agent)
    body = peer_pb2.Body(sender="gamma", decision_query=peer_pb2.DecisionQuery(
        workflow_id=WF, round=1))
    kind, answer = await PeerService(agent)._query_decision(body)
    assert kind == "decision_answer" and dict(answer.step_epochs) == {"s": 0, "t": 0}
    proof = verify(answer.epoch_certificate, agent.trust, workflow_id=WF, claimant="alpha")
    assert proof.epoch == 1


async def test_a_follower_answers_a_decision_query_without_a_certificate(
        agent: Agent) -> None:
    from fedorch.runtime.peer_service import PeerService

    await _taking_part(agent, epoch=1, coordinator="gamma", granted=(1, "gamma"))
    body = peer_pb2.Body(sender="gamma", decision_query=peer_pb2.DecisionQuery(
        workflow_id=WF, round=1))
    _, answer = await PeerService(agent)._query_decision(body)
    assert not answer.step_epochs and not answer.HasField("epoch_certificate")
