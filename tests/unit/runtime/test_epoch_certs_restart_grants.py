"""A successor restarted after its takeover proves its epoch with the grants it kept on
disk, though the electors that granted them are now unreachable.

Agent alpha took over workflow gamma.… (original coordinator gamma, dead) in epoch 1:
the electorate is the committed round's acceptors {alpha, beta, gamma}. In its first
life its claim reaches beta, which grants; gamma answers nothing. Then alpha restarts
(a new Agent on the same data dir) while beta is unreachable too: its certificate is
built from the grant on disk (the bytes beta signed), which a third party verifies, and
its claim goes again only to gamma, whose grant it lacks. The re-placement path
(fresh_certificate: the claim to every member first) counts fresh grants only: with
beta and gamma silent no round may run; beta granting again makes one possible, and a
denial naming a later epoch with its certificate ends the wait with alpha following that
epoch (one without it is not followed: alpha still acts, no round runs).
A claim cut short by a restart, with a majority's grants already on disk, wins at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.identity.keys import init_keys, load_private_key
from fedorch.core.workflow.epoch_certificate import verify
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.agent import Agent, run_until_stopped
from fedorch.runtime.config import parse_config_text
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.epoch_grants import grant_statement
from fedorch.runtime.store.store import StepRow, Store, WorkflowRow

from tests.unit.runtime.waiting import until as _until

WF = "gamma.000000000001aaaaaaaa"
ELECTORATE = ["alpha", "beta", "gamma"]
DEADLINE_S = 30.0


class Peers:
    """What alpha's calls meet: a claim granted by the domains in `granting` (each grant
    signed by that domain), nothing from anyone else. Every call is recorded."""

    def __init__(self, signers: dict[str, Signer], granting: set[str]) -> None:
        self.signers = signers
        self.granting = granting
        self.calls: list[tuple[str, str]] = []
        self.sent: dict[str, peer_pb2.Envelope] = {}
        self.denying: dict[str, tuple[int, str]] = {}  # domain -> the epoch it holds
        self.proofs: dict[str, peer_pb2.EpochCertificate] = {}  # with a domain's denial

    async def call(self, endpoint: str, method: str, *, recipient: str, **payload):
        self.calls.append((method, recipient))
        claim = payload.get("takeover_claim")
        if method != "Takeover" or recipient not in self.granting or claim is None:
            raise PeerCallError("UNAVAILABLE", f"{recipient} is unreachable")
        if recipient in self.denying:
            held_epoch, holder = self.denying[recipient]
            answer = peer_pb2.TakeoverAnswer(workflow_id=claim.workflow_id, epoch=claim.epoch,
                                             held_epoch=held_epoch, holder=holder)
            if recipient in self.proofs:
                answer.epoch_certificate.CopyFrom(self.proofs[recipient])
            envelope = seal(self.signers[recipient], recipient="alpha", now_ms=0,
                            nonce=new_nonce(), takeover_answer=answer)
            return peer_pb2.Body.FromString(envelope.body), envelope
        answer = peer_pb2.TakeoverAnswer(
            workflow_id=claim.workflow_id, epoch=claim.epoch, granted=True,
            held_epoch=claim.epoch, holder="alpha", committed_round=1, electorate=ELECTORATE)
        envelope = seal(self.signers[recipient], recipient="alpha", now_ms=0,
                        nonce=new_nonce(), takeover_answer=answer)
        self.sent[recipient] = envelope
        return peer_pb2.Body.FromString(envelope.body), envelope

    def claims_to(self, domain: str) -> int:
        return self.calls.count(("Takeover", domain))


def _config(tmp: Path):
    return parse_config_text(
        "domain: alpha\nlisten: 127.0.0.1:1\ndata_dir: data\nkey_file: keys/alpha.key\n"
        "trust:\n  key_files: [keys/beta.pub, keys/gamma.pub]\n"
        "capabilities:\n  - {name: x, capacity: 4, executor: {type: builtin, name: echo}}\n"
        # No takeover of ours is due in the test; a claim round is short.
        "negotiation: {lease_s: 3600, takeover_after_s: 3600, prepare_timeout_s: 1}\n",
        "alpha.yaml", tmp)


async def _acting_successor(store: Store, *, acting: bool = True) -> None:
    """alpha coordinates WF in epoch 1 (its row says so; `acting` False: it claimed epoch
    1, its own grant on record, and stopped before it acted); step a SUCCEEDED here, step
    b still runs on beta, so the workflow does not end on its own."""
    spec = spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="a", capability="x"), spec_pb2.StepSpec(id="b", capability="x")])
    row = WorkflowRow(
        id=WF, name="w", coordinator="alpha" if acting else "gamma", state="RUNNING", spec=spec.SerializeToString(),
        placement={"a": "alpha", "b": "beta"}, round=1, acceptors=ELECTORATE,
        endpoints={"beta": "127.0.0.1:9", "gamma": "127.0.0.1:9"}, epoch=int(acting),
        granted_epoch=1, granted_to="alpha", created_ms=1, updated_ms=1)
    await store.save_workflow(row, [StepRow(WF, "a", "alpha", "SUCCEEDED", 1),
                                    StepRow(WF, "b", "beta", "RUNNING", 1)])


def _peer_signers(tmp: Path) -> dict[str, Signer]:
    """Keys for the whole electorate in the data dir's key folder; beta's and gamma's
    signers, for the peers the test plays."""
    keys = tmp / "keys"
    for domain in ELECTORATE:
        init_keys(domain, keys)
    return {d: Signer(d, load_private_key(keys / f"{d}.key")) for d in ("beta", "gamma")}


async def _on_disk(tmp: Path, *, acting: bool = True, also: tuple = ()) -> None:
    """The data dir as alpha's earlier life left it: `_acting_successor`, then `also`."""
    store = await Store.open(tmp / "data")
    try:
        await _acting_successor(store, acting=acting)
        if also:
            await store.apply(list(also))
    finally:
        await store.close()


async def _life(tmp: Path, peers: Peers, body: Callable) -> None:
    """One life of agent alpha on the data dir: started, `body(agent)` run, stopped."""
    store = await Store.open(tmp / "data")
    try:
        agent = Agent(_config(tmp), store)
        agent.peers.call = peers.call
        runner = asyncio.create_task(run_until_stopped(agent))
        try:
            async with asyncio.timeout(DEADLINE_S):
                await agent.ready.wait()
            await body(agent)
        finally:
            agent.stop()
            await runner
        assert agent.fatal is None, agent.fatal
    finally:
        await store.close()


async def test_a_restarted_successor_proves_its_epoch_with_the_grants_on_disk(tmp_path):
    signers = _peer_signers(tmp_path)
    await _on_disk(tmp_path)

    first = Peers(signers, granting={"beta"})

    async def first_life(agent: Agent) -> None:
        certs = agent.takeovers.certificates
        await _until(lambda: certs.certificate(WF), "beta's grant to make a certificate")

    await _life(tmp_path, first, first_life)
    granted = first.sent["beta"]

    second = Peers(signers, granting=set())  # beta is unreachable now, gamma still

    async def second_life(agent: Agent) -> None:
        certs = agent.takeovers.certificates
        cert = await _until(lambda: certs.certificate(WF), "the certificate from disk")
        certified = verify(cert, agent.trust, workflow_id=WF, claimant="alpha")
        assert (certified.epoch, certified.signers) == (1, frozenset({"alpha", "beta"}))
        kept = next(g for g in cert.grants if peer_pb2.Body.FromString(g.body).sender == "beta")
        assert (kept.body, kept.signature) == (granted.body, granted.signature)
        # Asked again: gamma, whose grant it lacks; beta, whose grant it holds, not.
        await _until(lambda: second.claims_to("gamma"), "the claim to gamma again")
        assert second.claims_to("beta") == 0
        # Before a re-placement round every member is asked, and only grants given now
        # count: beta and gamma answer nothing (dead, or cut off and holding a later
        # epoch: alpha cannot tell), so no round may run. The kept grant still proves
        # the epoch won (claims and denials carry it), it only counts for no round.
        fresh, why = await certs.fresh_certificate(WF, 0.5)
        assert fresh is None and second.claims_to("beta") >= 1
        assert "no majority of the takeover electorate (alpha, beta, gamma)" in why, why
        assert "granted: alpha;" in why, why
        assert verify(certs.certificate(WF), agent.trust, workflow_id=WF,
                      claimant="alpha").signers == frozenset({"alpha", "beta"})
        # beta reachable again and granting: a fresh majority, its new grant in it.
        second.granting.add("beta")
        fresh, why = await certs.fresh_certificate(WF, DEADLINE_S)
        assert fresh is not None and why == "", why
        regranted = next(g for g in fresh.grants
                         if peer_pb2.Body.FromString(g.body).sender == "beta")
        assert regranted.body == second.sent["beta"].body != granted.body
        assert verify(fresh, agent.trust, workflow_id=WF, claimant="alpha").signers == \
            frozenset({"alpha", "beta"})

    await _life(tmp_path, second, second_life)


def _epoch_two_for_beta(signers: dict[str, Signer]) -> peer_pb2.EpochCertificate:
    """beta's proof that it won epoch 2 (alpha cut off from it meanwhile): gamma's
    grant and its own (2 of 3)."""
    grants = [seal(signers[d], recipient="beta", now_ms=0, nonce=new_nonce(),
                   takeover_answer=peer_pb2.TakeoverAnswer(
                       workflow_id=WF, epoch=2, granted=True, held_epoch=2, holder="beta",
                       committed_round=1, electorate=ELECTORATE))
              for d in ("beta", "gamma")]
    return peer_pb2.EpochCertificate(workflow_id=WF, epoch=2, coordinator="beta",
                                     grants=grants)


async def test_a_successor_overtaken_by_a_later_epoch_gets_no_certificate(tmp_path):
    """beta answers the re-ask with a denial: it won epoch 2, and shows its certificate.
    alpha follows beta and gets no certificate, at the denial, not at the bound."""
    signers = _peer_signers(tmp_path)
    await _on_disk(tmp_path)
    peers = Peers(signers, granting={"beta"})

    async def life(agent: Agent) -> None:
        certs = agent.takeovers.certificates
        await _until(lambda: certs.certificate(WF), "beta's grant to make a certificate")
        peers.denying["beta"] = (2, "beta")
        peers.proofs["beta"] = _epoch_two_for_beta(signers)
        fresh, why = await certs.fresh_certificate(WF, DEADLINE_S)
        assert fresh is None and why == "coordinator epoch 1 is over here", why
        row = agent.active[WF].row
        assert (row.epoch, row.coordinator) == (2, "beta")

    await _life(tmp_path, peers, life)


async def test_a_later_epoch_on_a_members_word_alone_is_not_followed(tmp_path):
    """beta denies naming epoch 2 for gamma without proof: alpha keeps acting in epoch 1
    (counted, logged) and, with no fresh majority by the bound, runs no round."""
    signers = _peer_signers(tmp_path)
    await _on_disk(tmp_path)
    peers = Peers(signers, granting={"beta"})

    async def life(agent: Agent) -> None:
        certs = agent.takeovers.certificates
        await _until(lambda: certs.certificate(WF), "beta's grant to make a certificate")
        peers.denying["beta"] = (2, "gamma")
        fresh, why = await certs.fresh_certificate(WF, 0.5)
        assert fresh is None and "no majority" in why, why
        row = agent.active[WF].row
        assert (row.epoch, row.coordinator) == (1, "alpha")
        assert agent.takeovers.core_of(WF).coordinator == "alpha"
        assert agent.metrics.rejected_messages.labels("unproven_denial")._value.get() >= 1

    await _life(tmp_path, peers, life)


async def test_a_claim_cut_short_with_a_majority_on_disk_acts_after_the_restart(tmp_path):
    signers = _peer_signers(tmp_path)
    beta = Peers(signers, granting={"beta"})
    claim = peer_pb2.TakeoverClaim(workflow_id=WF, epoch=1)
    _, granted = await beta.call("", "Takeover", recipient="beta", takeover_claim=claim)
    await _on_disk(tmp_path, acting=False,  # then it stopped
                   also=(grant_statement(WF, "beta", 1, granted),))
    nobody = Peers(signers, granting=set())

    async def life(agent: Agent) -> None:
        row = agent.active[WF].row
        await _until(lambda: (row.coordinator, row.epoch) == ("alpha", 1), "alpha to act")
        cert = agent.takeovers.certificates.certificate(WF)
        assert cert is not None
        assert verify(cert, agent.trust, workflow_id=WF, claimant="alpha").signers == \
            frozenset({"alpha", "beta"})
        await _until(lambda: nobody.claims_to("gamma"), "the claim to gamma")
        # beta, which granted, is told once that alpha won (the claim with its
        # certificate); it is not asked for a grant it already gave.
        await _until(lambda: nobody.claims_to("beta") == 1, "the winner's claim to beta")

    await _life(tmp_path, nobody, life)
