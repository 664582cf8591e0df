"""The winner of a coordinator epoch sends its certificate to the electors that granted
it; a granter then proves its denials with it.

Workflow beta.1 (original coordinator beta, cut off) has the electorate alpha, beta,
gamma (a majority is 2). Two real agents, alpha (the conftest's) and gamma (built here
the same way), each with its own store and key, trusting each other's public key:
alpha claims epoch 1 and asks gamma, whose answer is gamma's own shell's (the RPC is
bridged in process). gamma's grant wins the epoch; at once alpha's claim goes again to
gamma, now with alpha's certificate, which gamma verifies and keeps. The original
coordinator beta, cut off from alpha but not from gamma, asks gamma before a round
(epoch 0): gamma's denial names epoch 1 for alpha and carries the certificate, which
beta checks with public keys only. Without the winner's claim, the same denial is
gamma's word only. An extra acceptor holding no step keeps the winner's proof as well.
"""

from __future__ import annotations

import asyncio

from fedorch.core.identity.envelope import new_nonce, seal
from fedorch.core.identity.keys import init_keys, load_public_key_file
from fedorch.core.workflow.epoch_certificate import verify
from fedorch.core.workflow.progress import Progress
from fedorch.core.workflow.takeover import Role, SendClaim
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.config import parse_config_text
from fedorch.runtime.store.store import Store, WorkflowRow

from tests.unit.runtime.test_round_proofs import (
    ACCEPTORS,
    SIGNERS,
    TRUST,
    _acceptor,
    proven_claim,
)
from tests.unit.runtime.test_round_proofs import WF as STEPLESS_WF

WF = "beta.1"
SPEC = spec_pb2.WorkflowSpec(name="one", steps=[
    spec_pb2.StepSpec(id="s", capability="x"), spec_pb2.StepSpec(id="t", capability="x")])
ELECTORATE = ["alpha", "beta", "gamma"]
DEADLINE_S = 10.0


async def _taking_part(agent: Agent, granted: tuple[int, str]) -> Active:
    row = WorkflowRow(id=WF, name="one", coordinator="beta", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"s": "alpha", "t": "gamma"},
                      round=1, acceptors=list(ELECTORATE), granted_epoch=granted[0],
                      granted_to=granted[1], created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, row.placement, agent.domain))
    agent.active[WF] = active
    await agent.save(active)
    await agent.takeovers.prepare(active)
    assert agent.takeovers.core_for(active) is not None
    return active


async def _run(agent: Agent, tmp_path, monkeypatch, *, deliver_winners_claim: bool
               ) -> tuple[Agent, list[peer_pb2.TakeoverClaim]]:
    """alpha wins epoch 1 with gamma's grant; returns gamma (its store still open: the
    caller closes it) and every claim alpha sent to gamma."""
    init_keys("gamma", tmp_path / "gamma-keys")
    config = parse_config_text(
        "domain: gamma\nlisten: 127.0.0.1:1\ndata_dir: gamma-data\n"
        "key_file: gamma-keys/gamma.key\n", "gamma.yaml", tmp_path)
    gamma = Agent(config, await Store.open(tmp_path / "gamma-data"))
    agent.trust.add("gamma", load_public_key_file(tmp_path / "gamma-keys/gamma.pub")[1])
    gamma.trust.add("alpha", load_public_key_file(tmp_path / "keys/alpha.pub")[1])
    active = await _taking_part(agent, granted=(1, "alpha"))  # alpha claims epoch 1
    await _taking_part(gamma, granted=(0, ""))
    core = agent.takeovers.core_of(WF)
    claims: list[peer_pb2.TakeoverClaim] = []
    told = asyncio.Event()

    async def bridge(endpoint, method, **kwargs):
        assert method == "Takeover" and kwargs["recipient"] == "gamma"
        claim = kwargs["takeover_claim"]
        claims.append(claim)
        if claim.HasField("epoch_certificate"):
            told.set()
            if not deliver_winners_claim:
                raise asyncio.CancelledError  # never reached gamma; the task ends
        answer = await gamma.takeovers.on_claim("alpha", claim)
        envelope = gamma.seal("alpha", takeover_answer=answer)
        return peer_pb2.Body(sender="gamma", takeover_answer=answer), envelope

    monkeypatch.setattr(agent.peers, "call", bridge)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    async with asyncio.TaskGroup() as tg:
        monkeypatch.setattr(agent, "_tg", tg)  # the claims alpha spawns are owned here
        # As the core's SendClaim is sent: a task of its own, which gamma's grant, the
        # one that wins, answers; the claim again must not be taken for it.
        agent.takeovers.claim(active, core, SendClaim("gamma", 1))
        await asyncio.wait_for(told.wait(), DEADLINE_S)
        assert (core.role, core.epoch) == (Role.ACTING, 1)
        monkeypatch.setattr(agent, "_tg", None)
    return gamma, claims


async def _origin_asks_gamma(gamma: Agent) -> peer_pb2.TakeoverAnswer:
    denial = await gamma.takeovers.on_claim(
        "beta", peer_pb2.TakeoverClaim(workflow_id=WF, epoch=0))
    assert not denial.granted and (denial.held_epoch, denial.holder) == (1, "alpha")
    return denial


async def test_the_winners_certificate_reaches_its_granter_which_proves_its_denial(
        agent: Agent, tmp_path, monkeypatch) -> None:
    gamma, claims = await _run(agent, tmp_path, monkeypatch, deliver_winners_claim=True)
    try:
        # The claim, then once won the claim again with the certificate (to gamma only:
        # beta granted nothing).
        assert [c.HasField("epoch_certificate") for c in claims] == [False, True]
        denial = await _origin_asks_gamma(gamma)
        proof = verify(denial.epoch_certificate, gamma.trust, workflow_id=WF,
                       claimant="alpha")
        assert proof.epoch == 1 and proof.signers == {"alpha", "gamma"}
    finally:
        await gamma.store.close()


async def test_a_granter_the_winner_never_told_denies_on_its_word_only(
        agent: Agent, tmp_path, monkeypatch) -> None:
    gamma, claims = await _run(agent, tmp_path, monkeypatch, deliver_winners_claim=False)
    try:
        assert [c.HasField("epoch_certificate") for c in claims] == [False, True]
        denial = await _origin_asks_gamma(gamma)
        assert not denial.HasField("epoch_certificate")
    finally:
        await gamma.store.close()


# ---- an acceptor holding no step -----------------------------------------------------


def _acceptor_certificate(*voters: str) -> peer_pb2.EpochCertificate:
    grants = [seal(SIGNERS[v], recipient="p1", now_ms=1, nonce=new_nonce(),
                   takeover_answer=peer_pb2.TakeoverAnswer(
                       workflow_id=STEPLESS_WF, epoch=1, granted=True, held_epoch=1,
                       holder="p1", committed_round=1, electorate=sorted(ACCEPTORS)))
              for v in voters]
    return peer_pb2.EpochCertificate(workflow_id=STEPLESS_WF, epoch=1, coordinator="p1",
                                     grants=grants)


async def test_an_acceptor_holding_no_step_keeps_the_winners_proof_for_its_denials(
        tmp_path) -> None:
    """x, the extra acceptor of coord's workflow (p1 its one participant), granted p1
    epoch 1; p1 won and its claim again carries its certificate (p1 and x granted):
    x keeps it, and its answer to coord's ask of epoch 0 carries it. A claim with a
    minority certificate is granted all the same, and nothing is kept."""
    store = await Store.open(tmp_path / "data")
    try:
        shell, _ = _acceptor(store)
        assert (await shell.on_claim("p1", proven_claim(1))).granted
        ask = peer_pb2.TakeoverClaim(workflow_id=STEPLESS_WF, epoch=0)
        before = await shell.on_claim("coord", ask)
        assert (before.held_epoch, before.holder) == (1, "p1")
        assert not before.HasField("epoch_certificate")  # not told yet: its word only
        minority = proven_claim(1)
        minority.epoch_certificate.CopyFrom(_acceptor_certificate("p1"))
        assert (await shell.on_claim("p1", minority)).granted
        assert not (await shell.on_claim("coord", ask)).HasField("epoch_certificate")
        won = proven_claim(1)
        won.epoch_certificate.CopyFrom(_acceptor_certificate("p1", "x"))
        assert (await shell.on_claim("p1", won)).granted
        denial = await shell.on_claim("coord", ask)
        assert not denial.granted and (denial.held_epoch, denial.holder) == (1, "p1")
        proof = verify(denial.epoch_certificate, TRUST, workflow_id=STEPLESS_WF,
                       claimant="p1")
        assert proof.epoch == 1 and proof.signers == {"p1", "x"}
    finally:
        await store.close()
