"""The original coordinator (epoch 0) asks its electorate before it places a lost step
again (EpochCertificates.origin_mandate), and a member answers the ask from what it
holds, writing nothing (ClaimAnswers._on_origin_ask).

Asking: alpha coordinates WF (its id names alpha) with the committed round's acceptors
{alpha, beta, gamma, delta, eps}; a round may run once the fresh answers meet every
majority (3 of 5, alpha's own included). Cut off (nobody answers) the step's round may
not run; a member holding epoch 1 for another ends the wait when its denial carries
that epoch's certificate, and alpha follows that epoch; without one (a lying member, or
a forged or minority certificate) alpha follows nobody, keeps acting, counts it, and
the denial is no answer that lets a round run. With one participant (classic two-phase commit, electorate {alpha, beta}) no
takeover can win without alpha's grant: it places with no ask at all.

Answering: alpha takes part in gamma's workflow OTHER. gamma's ask is granted while
alpha holds epoch 0, denied naming the epoch it granted since; a participant's ask
is refused (the authority row); an extra acceptor holding no step answers from its
grant records; the ask writes nothing, and a later claim is granted after it as before.
"""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.workflow.progress import Progress
from fedorch.core.workflow.takeover import Role
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.store import WorkflowRow

WF = "alpha.000000000001cccccccc"      # coordinated by alpha
OTHER = "gamma.000000000002dddddddd"   # coordinated by gamma, alpha takes part
SPEC = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="a", capability="x",
                                                                 idempotent=True),
                                              spec_pb2.StepSpec(id="b", capability="x")])
ELECTORATE = ["alpha", "beta", "delta", "eps", "gamma"]
LONG_S = 3600.0  # a bound far beyond the test: only answers end the wait
SHORT_S = 0.3    # the bound of a wait no answer will end
KEYS = {d: Ed25519PrivateKey.generate() for d in ("beta", "delta", "eps", "gamma", "mallory")}
SIGNERS = {d: Signer(d, k) for d, k in KEYS.items()}


def _trusting(agent: Agent) -> None:
    for domain, key in KEYS.items():
        if domain != "mallory":  # not in the federation: its signatures prove nothing
            agent.trust.add(domain, key.public_key())


def _certificate(winner: str, *voters: str, epoch: int = 1,
                 signed_by: dict[str, str] | None = None) -> peer_pb2.EpochCertificate:
    """`winner`'s certificate of `epoch` of WF: each voter's grant, signed by the key of
    `signed_by[voter]` (a forgery) or its own."""
    signed_by = signed_by or {}
    grants = [seal(SIGNERS[signed_by.get(v, v)], recipient=winner, now_ms=1,
                   nonce=new_nonce(), takeover_answer=peer_pb2.TakeoverAnswer(
                       workflow_id=WF, epoch=epoch, granted=True, held_epoch=epoch,
                       holder=winner, committed_round=1, electorate=ELECTORATE))
              for v in voters]
    return peer_pb2.EpochCertificate(workflow_id=WF, epoch=epoch, coordinator=winner,
                                     grants=grants)


def _refusals(agent: Agent) -> dict[str, float]:
    return {s.labels["reason"]: s.value
            for metric in agent.metrics.rejected_messages.collect() for s in metric.samples
            if s.name.endswith("_total")}


class Electorate:
    """What alpha's asks meet: `holding` answers with the epoch it holds (0 for alpha:
    granted), anyone else is unreachable. Every ask is recorded."""

    def __init__(self, holding: dict[str, tuple[int, str]],
                 proofs: dict[str, peer_pb2.EpochCertificate] | None = None) -> None:
        self.holding = holding
        self.proofs = proofs or {}  # member -> the certificate its denial carries
        self.asked: list[tuple[str, int]] = []

    async def call(self, endpoint: str, method: str, *, recipient: str, timeout: float,
                   **payload):
        assert timeout > 0  # a deadline on every call
        claim = payload["takeover_claim"]
        self.asked.append((recipient, claim.epoch))
        if recipient not in self.holding:
            raise PeerCallError("UNAVAILABLE", f"{recipient} is unreachable")
        held_epoch, holder = self.holding[recipient]
        answer = peer_pb2.TakeoverAnswer(
            workflow_id=claim.workflow_id, epoch=claim.epoch, held_epoch=held_epoch,
            holder=holder, granted=(held_epoch, holder) == (0, "alpha"))
        if recipient in self.proofs:
            answer.epoch_certificate.CopyFrom(self.proofs[recipient])
        return peer_pb2.Body(sender=recipient, takeover_answer=answer), peer_pb2.Envelope()


async def _coordinating(agent: Agent, placement: dict[str, str],
                        acceptors: list[str]) -> Active:
    row = WorkflowRow(id=WF, name="w", coordinator="alpha", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement=dict(placement), round=1,
                      acceptors=list(acceptors), created_ms=1, updated_ms=1,
                      endpoints={d: "127.0.0.1:9" for d in ELECTORATE})
    active = agent.active[WF] = Active(row, Progress(SPEC, placement, "alpha"))
    await agent.save(active)
    await agent.takeovers.prepare(active)
    assert agent.takeovers.core_for(active) is not None
    return active


# ---- asking ---------------------------------------------------------------------------------


async def test_fresh_answers_meeting_every_majority_let_the_round_run(agent: Agent) -> None:
    await _coordinating(agent, {"a": "beta", "b": "gamma"}, ELECTORATE)
    electorate = Electorate({"beta": (0, "alpha"), "delta": (0, "alpha")})
    agent.peers.call = electorate.call
    place, why = await agent.takeovers.certificates.origin_mandate(WF, LONG_S)
    assert place and why == ""
    # Every other member asked about epoch 0, alpha itself not.
    assert {to for to, _ in electorate.asked} == {"beta", "delta", "eps", "gamma"}
    assert {epoch for _, epoch in electorate.asked} == {0}


async def test_cut_off_from_the_electorate_no_round_runs_and_says_why(agent: Agent) -> None:
    await _coordinating(agent, {"a": "beta", "b": "gamma"}, ELECTORATE)
    electorate = Electorate({"beta": (0, "alpha")})  # 2 of 5 with alpha: too few
    agent.peers.call = electorate.call
    place, why = await agent.takeovers.certificates.origin_mandate(WF, SHORT_S)
    assert not place
    assert "epoch 0" in why and "granted: alpha, beta;" in why and "3 needed" in why
    # The asks are owned by the wait: none is left running after it.
    assert not [t for t in asyncio.all_tasks() if "epoch 0 of" in t.get_name()]


async def test_a_member_holding_a_proven_later_epoch_ends_the_wait_and_alpha_follows_it(
        agent: Agent) -> None:
    """delta granted epoch 1 to gamma and shows gamma's certificate (gamma, delta, eps:
    3 of 5): alpha follows gamma at that answer, not at the bound."""
    _trusting(agent)
    active = await _coordinating(agent, {"a": "beta", "b": "gamma"}, ELECTORATE)
    electorate = Electorate({"beta": (0, "alpha"), "delta": (1, "gamma")},
                            {"delta": _certificate("gamma", "gamma", "delta", "eps")})
    agent.peers.call = electorate.call
    place, why = await agent.takeovers.certificates.origin_mandate(WF, LONG_S)
    assert not place and "epoch 0 is over" in why
    assert (active.row.epoch, active.row.coordinator) == (1, "gamma")
    stored = await agent.store.get_workflow(WF)
    assert (stored.epoch, stored.coordinator) == (1, "gamma")  # followed, on disk
    assert _refusals(agent) == {}


async def _not_followed(agent: Agent, active: Active, electorate: Electorate) -> str:
    """The ask ends at its bound with no round, alpha still the coordinator of epoch 0,
    on disk too. Returns why no round runs."""
    agent.peers.call = electorate.call
    place, why = await agent.takeovers.certificates.origin_mandate(WF, SHORT_S)
    assert not place and "granted: alpha, beta;" in why, why
    core = agent.takeovers.core_of(WF)
    assert (core.role, core.epoch, core.coordinator) == (Role.ACTING, 0, "alpha")
    assert (active.row.epoch, active.row.coordinator) == (0, "alpha")
    stored = await agent.store.get_workflow(WF)
    assert (stored.epoch, stored.coordinator, stored.granted_epoch) == (0, "alpha", 0)
    return why


async def test_a_lying_members_denial_without_proof_is_not_followed(agent: Agent) -> None:
    """delta says it holds epoch 1 for gamma, with nothing to show: alpha keeps acting,
    counts it, and the denial is no grant (too few answers: no round)."""
    _trusting(agent)
    active = await _coordinating(agent, {"a": "beta", "b": "gamma"}, ELECTORATE)
    why = await _not_followed(agent, active, Electorate({"beta": (0, "alpha"),
                                                         "delta": (1, "gamma")}))
    assert "epoch 1 claimed for gamma without proof" in why
    assert _refusals(agent) == {"unproven_denial": 1.0}


async def test_a_denial_with_a_minority_certificate_is_not_followed(agent: Agent) -> None:
    _trusting(agent)
    active = await _coordinating(agent, {"a": "beta", "b": "gamma"}, ELECTORATE)
    await _not_followed(agent, active, Electorate(
        {"beta": (0, "alpha"), "delta": (1, "gamma")},
        {"delta": _certificate("gamma", "gamma", "delta")}))  # 2 of 5
    assert _refusals(agent) == {"minority_certificate": 1.0, "unproven_denial": 1.0}


async def test_a_denial_with_a_forged_certificate_is_not_followed(agent: Agent) -> None:
    """eps's grant in it is signed by mallory's key: no proof of anything."""
    _trusting(agent)
    active = await _coordinating(agent, {"a": "beta", "b": "gamma"}, ELECTORATE)
    await _not_followed(agent, active, Electorate(
        {"beta": (0, "alpha"), "delta": (1, "gamma")},
        {"delta": _certificate("gamma", "gamma", "delta", "eps",
                               signed_by={"eps": "mallory"})}))
    assert _refusals(agent) == {"bad_signature": 1.0, "unproven_denial": 1.0}


async def test_a_certificate_of_another_epoch_than_the_denial_names_is_not_followed(
        agent: Agent) -> None:
    _trusting(agent)
    active = await _coordinating(agent, {"a": "beta", "b": "gamma"}, ELECTORATE)
    await _not_followed(agent, active, Electorate(
        {"beta": (0, "alpha"), "delta": (2, "gamma")},
        {"delta": _certificate("gamma", "gamma", "delta", "eps")}))  # epoch 1's
    assert _refusals(agent) == {"bad_certificate": 1.0, "unproven_denial": 1.0}


async def test_a_lying_member_cannot_stop_a_round_the_others_allow(agent: Agent) -> None:
    """beta and eps still hold epoch 0 for alpha (3 of 5 with alpha): the round runs
    whatever delta says."""
    await _coordinating(agent, {"a": "beta", "b": "gamma"}, ELECTORATE)
    electorate = Electorate({"beta": (0, "alpha"), "eps": (0, "alpha"),
                             "delta": (1, "gamma")})
    agent.peers.call = electorate.call
    place, why = await agent.takeovers.certificates.origin_mandate(WF, LONG_S)
    assert place and why == ""
    assert agent.takeovers.core_of(WF).coordinator == "alpha"


async def test_with_one_participant_the_original_places_without_asking(agent: Agent) -> None:
    await _coordinating(agent, {"a": "beta", "b": "beta"}, [])  # classic: {alpha, beta}
    electorate = Electorate({})
    agent.peers.call = electorate.call
    place, _ = await agent.takeovers.certificates.origin_mandate(WF, LONG_S)
    assert place and electorate.asked == []


async def test_a_cut_off_original_fails_the_lost_step_naming_the_domain(agent: Agent) -> None:
    """The whole path: a loss sends step a back; no fresh answers: it FAILS, naming
    beta, and no PREPARE left."""
    active = await _coordinating(agent, {"a": "beta", "b": "gamma"}, ELECTORATE)
    agent.peers.call = Electorate({}).call
    agent.config.negotiation.lease_s = SHORT_S
    replacements = agent.coordination.loss.replacements
    prepares: list[int] = []

    async def prepare(active, spec, action, votes) -> None:  # pragma: no cover - the bug
        prepares.append(action.round)

    replacements._prepare = prepare
    active.progress.domain_lost("beta", can_replace=True)
    assert active.progress.awaiting_placement() == ["a"]
    await replacements._replace(active, "a")
    step = active.progress.steps["a"]
    assert step.state.name == "FAILED" and "domain beta was lost" in step.error, step.error
    assert "epoch 0" in step.error and prepares == []


# ---- answering ------------------------------------------------------------------------------


async def _taking_part(agent: Agent, granted: tuple[int, str] = (0, "")) -> Active:
    row = WorkflowRow(id=OTHER, name="w", coordinator="gamma", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"a": "alpha", "b": "beta"},
                      round=1, acceptors=["alpha", "beta", "gamma"], created_ms=1,
                      updated_ms=1, granted_epoch=granted[0], granted_to=granted[1])
    active = agent.active[OTHER] = Active(row, Progress(SPEC, dict(row.placement), "alpha"))
    await agent.save(active)
    return active


def _ask(epoch: int = 0) -> peer_pb2.TakeoverClaim:
    return peer_pb2.TakeoverClaim(workflow_id=OTHER, epoch=epoch)


async def test_a_participant_holding_epoch_zero_answers_granted_and_writes_nothing(
        agent: Agent) -> None:
    await _taking_part(agent)
    before = await agent.store.get_workflow(OTHER)
    answer = await agent.takeovers.on_claim("gamma", _ask())
    assert answer.granted and (answer.held_epoch, answer.holder) == (0, "gamma")
    assert answer.committed_round == 1 and list(answer.electorate) == ["alpha", "beta", "gamma"]
    after = await agent.store.get_workflow(OTHER)
    assert (after.epoch, after.granted_epoch, after.granted_to, after.coordinator) == (
        before.epoch, before.granted_epoch, before.granted_to, before.coordinator)
    assert await agent.store.select("SELECT * FROM takeover_grants") == []
    # A later epoch's claim is granted after it exactly as without it.
    claim = await agent.takeovers.on_claim("beta", _ask(1))
    assert claim.granted and (claim.held_epoch, claim.holder) == (1, "beta")


async def test_a_participant_that_granted_a_later_epoch_denies_naming_it(agent: Agent) -> None:
    await _taking_part(agent, granted=(1, "beta"))
    answer = await agent.takeovers.on_claim("gamma", _ask())
    assert not answer.granted and (answer.held_epoch, answer.holder) == (1, "beta")
    assert not answer.HasField("epoch_certificate")  # none seen here: nothing to show


async def test_only_the_original_coordinator_may_ask_about_epoch_zero(agent: Agent) -> None:
    await _taking_part(agent)
    answer = await agent.takeovers.on_claim("beta", _ask())
    assert not answer.granted and answer.error


async def test_an_extra_acceptor_holding_no_step_answers_from_its_grant_records(
        agent: Agent) -> None:
    answer = await agent.takeovers.on_claim("gamma", _ask())
    assert answer.granted and (answer.held_epoch, answer.holder) == (0, "gamma")
    assert await agent.store.select("SELECT * FROM takeover_grants") == []
    await agent.takeovers.answers.records.add(OTHER, 2, "beta")
    answer = await agent.takeovers.on_claim("gamma", _ask())
    assert not answer.granted and (answer.held_epoch, answer.holder) == (2, "beta")
    assert await agent.store.select("SELECT epoch, holder FROM takeover_grants") == [
        (2, "beta")]
