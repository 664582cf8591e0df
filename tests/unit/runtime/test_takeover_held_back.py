"""A workflow held back here while its coordinator is dead hears from the successor
within about one round trip of the takeover, not after a claim timeout or two.

Three pieces, each failing on the code before:

- A participant that holds a vote of a workflow but has not learned its decision (in
  doubt, just restarted) answers a takeover claim "in doubt here" (`in_doubt`): no
  grant, no refusal counted. Before, it answered as an acceptor holding no step: a
  refusal (`no_proof`) of an honest claim.
- The claimant asks such a participant again from its shortest pause, not after its
  claim timeout (`prepare_timeout_s`, 20 s in the integration test): the participant
  learns the COMMIT within a recovery ballot and grants. Before, the answer ended the
  claim's sending; the participant, its own takeover watch seeing the coordinator DEAD,
  then claimed the same epoch itself, and the duel took two claim timeouts.
- A held-back workflow's asking turns to the coordinator followed now as soon as this
  agent follows it (it granted the successor's claim), not after the pause the dead
  coordinator's silence grew to.

And who is asked: a coordinator DEAD within its loss grace is still asked (it may only
have stalled), and only past the grace are the others asked instead; among them the
committed round's acceptors that hold no step as this agent knows, one of which may
act as successor.
"""

from __future__ import annotations

import asyncio

from fedorch.core.membership.swim_types import MemberState
from fedorch.core.negotiation.participant import Hold, HoldState
from fedorch.core.workflow.takeover import Act, Role, SendClaim, Takeover, Watch
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import in_doubt as in_doubt_module
from fedorch.runtime import takeover_claims
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.store import WorkflowRow

from tests.unit.runtime.test_self_fencing import Forever, Views
from tests.unit.runtime.test_self_fencing_restart import SPEC, WF, _earlier_life
from tests.unit.runtime.waiting import until as _until

# ---- the answer of a participant in doubt ------------------------------------------------


async def test_a_participant_in_doubt_answers_a_claim_in_doubt_and_grants_nothing(
        agent: Agent) -> None:
    """alpha voted YES in beta's workflow and has not learned the decision (no row yet):
    gamma's claim is answered `in_doubt`, with nothing granted, kept or counted."""
    agent.participant.restore([Hold(WF, 1, "beta", HoldState.PREPARED, [("s", "x")],
                                    agent.now() + 30, coordinator_endpoint="127.0.0.1:9")])
    answer = await agent.takeovers.on_claim(
        "gamma", peer_pb2.TakeoverClaim(workflow_id=WF, epoch=1))
    assert answer.in_doubt and not answer.granted and answer.error
    assert (answer.held_epoch, answer.holder) == (0, "")
    assert await agent.store.select("SELECT * FROM takeover_grants") == []
    assert await agent.store.get_workflow(WF) is None
    assert agent.metrics.rejected_messages._metrics == {}  # not a refusal


async def test_a_domain_with_no_vote_of_the_workflow_is_not_in_doubt(agent: Agent) -> None:
    """Only a vote held makes an answer `in_doubt`: a domain that knows nothing of the
    workflow answers as an acceptor holding no step (nothing known here), as before."""
    answer = await agent.takeovers.on_claim(
        "gamma", peer_pb2.TakeoverClaim(workflow_id=WF, epoch=1))
    assert not answer.in_doubt and not answer.granted and answer.error


# ---- the claimant asks a participant in doubt again soon ----------------------------------


def _claimant(agent: Agent) -> tuple[Active, Takeover, list[SendClaim]]:
    """alpha claims epoch 1 of beta's workflow (beta DEAD), electorate {alpha, beta,
    gamma}: it needs gamma's grant."""
    row = WorkflowRow(id=WF, name="one", coordinator="beta", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"s": "alpha", "t": "gamma"},
                      round=1, acceptors=["alpha", "beta", "gamma"], created_ms=1,
                      updated_ms=1)
    active = Active(row)
    agent.active[WF] = active
    core = Takeover("alpha", "beta", {"alpha", "gamma"}, acceptors=row.acceptors,
                    claim_timeout_s=20.0)
    claims = [x for x in core.step(agent.now(), Watch("DEAD")) if isinstance(x, SendClaim)]
    assert core.role is Role.CLAIMING and [c.to for c in claims] == ["beta", "gamma"]
    return active, core, claims


async def test_a_claim_answered_in_doubt_goes_again_from_the_shortest_pause(
        agent: Agent, monkeypatch) -> None:
    """gamma is down for three tries (the pause grows), then up and in doubt, then it
    has learned the COMMIT and grants: the claim goes again 0.2 s after the in-doubt
    answer, and the grant makes alpha act. Before, the in-doubt answer (a refusal then)
    ended the sending: no grant until the claim timeout, 20 s later."""
    active, core, claims = _claimant(agent)
    answers = ["down", "down", "down", "in doubt", "granted"]
    asked: list[str] = []
    pauses: list[float] = []

    async def call(endpoint, method, **kwargs):
        assert method == "Takeover" and kwargs["recipient"] == "gamma"
        asked.append(answers[len(asked)])
        answer = peer_pb2.TakeoverAnswer(workflow_id=WF, epoch=1)
        if asked[-1] == "down":
            raise PeerCallError("unavailable", "gamma cannot be reached")
        if asked[-1] == "in doubt":
            answer.in_doubt, answer.error = True, "in doubt here"
        else:
            answer.granted, answer.held_epoch, answer.holder = True, 1, "alpha"
        return peer_pb2.Body(takeover_answer=answer), peer_pb2.Envelope()

    async def no_wait(seconds: float) -> bool:  # the pauses are read, not waited out
        pauses.append(seconds)
        return True

    applied: list[object] = []

    async def apply(active_, core_, actions):
        applied.extend(actions)

    async def keep(*args):
        return None

    shell = agent.takeovers
    monkeypatch.setattr(agent.peers, "call", call)
    monkeypatch.setattr(agent, "sleep", no_wait)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    monkeypatch.setattr(shell, "apply", apply)
    monkeypatch.setattr(shell.certificates, "keep", keep)
    await asyncio.wait_for(shell.claims.until_answered(active, core, claims[1]), 10)
    assert asked == answers
    assert pauses == [0.2, 0.4, 0.8, takeover_claims.IN_DOUBT_AGAIN_S]
    assert pauses[-1] < pauses[-2]  # from the shortest pause again
    # Won with gamma's grant: gamma hears the winner's claim (its certificate) once.
    assert applied == [Act(1), SendClaim("gamma", 1)] and core.role is Role.ACTING


async def test_a_participant_that_stays_in_doubt_is_asked_with_the_backoff(
        agent: Agent, monkeypatch) -> None:
    """One that says "in doubt" every time is not asked more often than an unreachable
    one: the shortest pause once, then the backoff grows to its cap."""
    active, core, claims = _claimant(agent)
    pauses: list[float] = []

    async def call(endpoint, method, **kwargs):
        answer = peer_pb2.TakeoverAnswer(workflow_id=WF, epoch=1, in_doubt=True)
        return peer_pb2.Body(takeover_answer=answer), peer_pb2.Envelope()

    async def counted_wait(seconds: float) -> bool:
        pauses.append(seconds)
        return len(pauses) < 8  # then "stopping": the sending ends

    monkeypatch.setattr(agent.peers, "call", call)
    monkeypatch.setattr(agent, "sleep", counted_wait)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    await asyncio.wait_for(agent.takeovers.claims.until_answered(active, core, claims[1]), 10)
    assert pauses == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert core.role is Role.CLAIMING


# ---- the asking turns to the successor at once ----------------------------------------------


class Looked(Views):
    """Membership as the asking reads it, each look at a member noted."""

    def __init__(self, agent: Agent, **states: MemberState) -> None:
        super().__init__(agent, **states)
        self.looked_at: list[str] = []

    def member(self, name: str):
        self.looked_at.append(name)
        return super().member(name)


def _restarted(agent: Agent, *, trusting=None, views=Views,
               **view_args) -> tuple[Agent, Forever]:
    """The agent again on the same store, with membership `views(restarted, **view_args)`
    (trusting the test's keys first, if `trusting`) and an executor whose steps run
    until cancelled."""
    restarted = Agent(agent.config, agent.store)
    if trusting is not None:
        trusting(restarted)
    restarted.membership = views(restarted, **view_args)
    executor = Forever()
    restarted.executors["x"] = executor  # type: ignore[assignment]
    return restarted, executor


def _decision_queries(*, only: str | None = None, unreachable: tuple[str, ...] = (),
                      certificate: peer_pb2.EpochCertificate | None = None):
    """Peer calls as the asking makes them (QueryDecision alone), each recipient noted in
    `asked`: one in `unreachable` cannot be reached, any other answers that s and t are
    placed as they were (step epochs 0), showing `certificate` if given. `only`: the one
    recipient the test allows. Returns (call, asked)."""
    asked: list[str] = []

    async def call(endpoint, method, **kwargs):
        assert method == "QueryDecision", method
        to = kwargs["recipient"]
        asked.append(to)
        assert only is None or to == only, f"{to} was asked"
        if to in unreachable:
            raise PeerCallError("unavailable", f"{to} cannot be reached")
        answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True,
                                         step_epochs={"s": 0, "t": 0})
        if certificate is not None:
            answer.epoch_certificate.CopyFrom(certificate)
        return peer_pb2.Body(decision_answer=answer), None

    return call, asked


def _answer_with(restarted: Agent, monkeypatch, call) -> None:
    """Peer calls of the restarted agent answered by `call`; its deliveries dropped."""
    def deliver(domain, method, **payload):
        async def nothing():
            return None
        return nothing()

    monkeypatch.setattr(restarted.peers, "call", call)
    monkeypatch.setattr(restarted, "endpoint_of", lambda domain, endpoints=None:
                        "127.0.0.1:9")
    restarted.deliver = deliver  # type: ignore[method-assign]


async def test_a_held_back_workflow_asks_the_successor_as_soon_as_it_follows_it(
        agent: Agent, monkeypatch) -> None:
    """alpha restarted with beta's workflow on disk (its idempotent step s interrupted):
    nothing of it starts until its coordinator answers. beta is DEAD here, so it is not
    asked, and the asking pauses (30 s here, so that a pause waited out shows). gamma
    takes over: its claim reaches alpha, which grants it and follows gamma; the asking
    goes to gamma at once, whose answer (s still placed here) starts the retry. Before,
    the asking slept out its pause first."""
    monkeypatch.setattr(in_doubt_module, "ASK_AGAIN_FIRST_S", 30.0)
    await _earlier_life(agent)
    restarted, executor = _restarted(agent, views=Looked, beta=MemberState.DEAD,
                                     gamma=MemberState.ALIVE)
    views = restarted.membership
    # A DEAD coordinator is not asked. gamma answers as it will once it acts; without
    # its certificate (it shows none here) that is no answer of the coordinator
    # followed, until alpha follows it.
    call, asked = _decision_queries(only="gamma")
    _answer_with(restarted, monkeypatch, call)
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        active = restarted.active[WF]
        in_doubt = restarted.participation.in_doubt
        # Looked at beta once to resolve the interrupted attempt, once more in the
        # asking of the held-back retry, which then pauses (nothing else to await).
        await _until(lambda: views.looked_at.count("beta") >= 2,
                     "the held-back workflow was not being asked about")
        # beta is gone: gamma was asked whether it acts (it did not show a certificate).
        assert set(asked) <= {"gamma"} and not executor.started.is_set()
        asked_before = len(asked)

        answer = await restarted.takeovers.on_claim(
            "gamma", peer_pb2.TakeoverClaim(workflow_id=WF, epoch=1))
        assert answer.granted and (active.row.coordinator, active.row.epoch) == ("gamma", 1)
        await asyncio.wait_for(executor.started.wait(), 10)  # well before the 30 s pause
        assert asked[asked_before:] == ["gamma"]  # as the coordinator followed, at once
        step = active.progress.steps["s"]
        assert step.state.name == "RUNNING" and step.attempts == 2
        assert in_doubt._followed_changed == {}  # the asking ended
        active.running["s"].cancel()
        restarted.stop()


# ---- the held-back participant finds the successor itself --------------------------------


async def _restarted_with_gamma_acting(agent: Agent, monkeypatch, certificate):
    """alpha restarted with beta's workflow (round 1) on disk, its idempotent step s
    interrupted; beta is DEAD here, and no claim of the successor ever reaches alpha
    (alpha was down while it went, say). gamma, the other participant, acts in epoch 1
    and answers QueryDecision with the step epochs and `certificate`."""
    from tests.unit.runtime.test_takeover_proven_successor import _trusting

    await _earlier_life(agent, round=1)
    restarted, executor = _restarted(agent, trusting=_trusting, beta=MemberState.DEAD,
                                     gamma=MemberState.ALIVE)
    call, asked = _decision_queries(only="gamma", certificate=certificate)
    _answer_with(restarted, monkeypatch, call)
    return restarted, executor, asked


async def test_a_held_back_participant_whose_coordinator_is_gone_finds_the_successor(
        agent: Agent, monkeypatch) -> None:
    """No claim reaches alpha; it asks the other participant itself, which shows that it
    acts in epoch 1 (its certificate: beta's grant and its own): alpha follows gamma,
    takes its answer (s still placed here) and starts the retry. Before, alpha asked
    nobody while beta was DEAD, and waited for a claim or an end notice."""
    from tests.unit.runtime.test_takeover_proven_successor import _certificate

    restarted, executor, asked = await _restarted_with_gamma_acting(
        agent, monkeypatch, _certificate("gamma", "beta", "gamma"))
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        active = restarted.active[WF]
        await restarted.takeovers.prepare(active)  # as its first look does
        await asyncio.wait_for(executor.started.wait(), 10)
        assert "gamma" in asked
        assert (active.row.coordinator, active.row.epoch) == ("gamma", 1)
        row = await restarted.store.get_workflow(WF)
        assert (row.coordinator, row.epoch) == ("gamma", 1)  # followed, on disk
        assert active.progress.steps["s"].attempts == 2
        active.running["s"].cancel()
        restarted.stop()


async def test_an_answer_without_a_valid_certificate_is_not_taken(agent: Agent,
                                                                  monkeypatch) -> None:
    """gamma shows only its own grant (a minority): not followed, its answer not taken,
    nothing started; the refusal is counted."""
    from tests.unit.runtime.test_takeover_proven_successor import _certificate, _refusals

    restarted, executor, asked = await _restarted_with_gamma_acting(
        agent, monkeypatch, _certificate("gamma", "gamma"))
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        active = restarted.active[WF]
        await restarted.takeovers.prepare(active)
        await _until(lambda: len(asked) >= 3, "gamma was not asked again")
        assert not executor.started.is_set() and active.running == {}
        assert active.row.coordinator == "beta"
        assert not restarted.participation.runs.fencing.heard_in_this_life(WF)
        assert _refusals(restarted).get("minority_certificate", 0) >= 1
        restarted.stop()


# ---- a coordinator DEAD within its loss grace is still asked -------------------------------


async def _restarted_under_a_verdict(agent: Agent, monkeypatch, call):
    """alpha restarted with beta's workflow on disk (its idempotent step s interrupted);
    SWIM holds beta DEAD, a verdict that has not stood for the loss grace here yet
    (`views.held`); gamma, the other participant, is ALIVE. Peer calls go to `call`."""
    await _earlier_life(agent)
    restarted, executor = _restarted(agent, held={"beta"}, beta=MemberState.DEAD,
                                     gamma=MemberState.ALIVE)
    views = restarted.membership
    _answer_with(restarted, monkeypatch, call)
    return restarted, views, executor


async def test_a_coordinator_dead_within_its_loss_grace_is_asked_and_its_answer_taken(
        agent: Agent, monkeypatch) -> None:
    """beta was only stalled: DEAD in SWIM's view here, within its grace, it answers
    (s still placed here), and the retry starts on its answer. Before, beta was not
    asked from the verdict on: gamma was (it shows no certificate), and nothing started
    until the verdict was withdrawn or a successor took over."""
    call, asked = _decision_queries()
    restarted, _, executor = await _restarted_under_a_verdict(agent, monkeypatch, call)
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        active = restarted.active[WF]
        await _until(executor.started.is_set, "beta's answer started nothing")
        assert set(asked) == {"beta"}
        assert (active.row.coordinator, active.row.epoch) == ("beta", 0)
        assert active.progress.steps["s"].attempts == 2
        active.running["s"].cancel()
        restarted.stop()


async def test_past_its_loss_grace_the_coordinator_is_asked_no_more(
        agent: Agent, monkeypatch) -> None:
    """beta did die: within its grace it is asked (unreachable), and only it; once the
    verdict has stood for the grace, beta is lost here: the asking turns to the other
    participants (gamma, which shows no certificate) and beta is asked no more."""
    monkeypatch.setattr(in_doubt_module, "ASK_AGAIN_FIRST_S", 0.01)
    monkeypatch.setattr(in_doubt_module, "ASK_AGAIN_MAX_S", 0.05)
    call, asked = _decision_queries(unreachable=("beta",))
    restarted, views, executor = await _restarted_under_a_verdict(agent, monkeypatch, call)
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        await _until(lambda: asked.count("beta") >= 3, "beta, within its grace, not asked")
        assert set(asked) == {"beta"}
        views.held.clear()  # beta's verdict stood for the grace: its loss is acted on
        await _until(lambda: "gamma" in asked, "the other participant was not asked")
        beta_asked = asked.count("beta")
        await _until(lambda: asked.count("gamma") >= 3, "gamma was not asked again")
        assert asked.count("beta") == beta_asked
        assert not executor.started.is_set()  # gamma showed no certificate
        restarted.stop()


async def test_a_held_back_participant_finds_a_successor_among_the_round_acceptors(
        agent: Agent, monkeypatch) -> None:
    """beta's workflow on two domains (s here, t on beta), the round's acceptors alpha,
    beta and delta (an extra one, holding no step as alpha knows). alpha restarted, beta
    DEAD past its grace; delta, given a step by a re-placement while alpha was down,
    acts in epoch 1. No claim reaches alpha: it asks delta, which shows its certificate,
    follows it and starts the retry on its answer. Before, only the participants alpha
    knew of were asked (none besides beta), and alpha waited for a claim."""
    from tests.unit.runtime.test_who_coordinates import acting, certificate, trusting

    await _earlier_life(agent, {"s": "alpha", "t": "beta"}, round=1,
                        acceptors=["alpha", "beta", "delta"])
    restarted, executor = _restarted(agent, trusting=trusting, beta=MemberState.DEAD,
                                     delta=MemberState.ALIVE)
    asked: list[str] = []

    async def call(endpoint, method, **kwargs):
        assert method == "QueryDecision" and kwargs["recipient"] == "delta"
        asked.append(kwargs["recipient"])
        return peer_pb2.Body(decision_answer=acting(
            certificate("delta", "beta", "delta"))), None

    _answer_with(restarted, monkeypatch, call)
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        active = restarted.active[WF]
        await restarted.takeovers.prepare(active)  # as its first look does
        await _until(executor.started.is_set, "the successor was not found")
        assert set(asked) == {"delta"}
        assert (active.row.coordinator, active.row.epoch) == ("delta", 1)
        assert active.progress.steps["s"].attempts == 2
        active.running["s"].cancel()
        restarted.stop()
