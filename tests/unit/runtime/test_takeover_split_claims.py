"""The takeover shell carries out the split-claims rule (agent/core/workflow/takeover_split.py):
a rival claimant of our epoch that answered itself is asked again soon through the
shell's own timer (not at the claim timeout), and its grant, once it has yielded, wins
the epoch; a claimant that learns from the denials that the epoch is lost for it
follows the better-ranked rival at once, persisted before anything leaves.

Agent alpha (the conftest's, real store and shell) takes part in beta's workflow with
gamma; the electorate is alpha, beta and gamma (test_takeover_proven_successor's set-up).
"""

from __future__ import annotations

from fedorch.core.workflow.progress import Progress
from fedorch.core.workflow.takeover import Role, SendClaim
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.store.store import WorkflowRow

from tests.unit.runtime.test_self_fencing_restart import SPEC
from tests.unit.runtime.test_takeover_proven_successor import WF, _grant, _taking_part


class Clock:
    """The agent's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _answering(agent: Agent, monkeypatch, answers: list) -> list[str]:
    asked: list[str] = []

    async def call(endpoint, method, **kwargs):
        asked.append(kwargs["recipient"])
        answer, envelope = answers.pop(0)
        return peer_pb2.Body(takeover_answer=answer), envelope

    monkeypatch.setattr(agent.peers, "call", call)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    return asked


def _denial(holder: str) -> tuple[peer_pb2.TakeoverAnswer, peer_pb2.Envelope]:
    return peer_pb2.TakeoverAnswer(workflow_id=WF, epoch=1, held_epoch=1,
                                   holder=holder), peer_pb2.Envelope()


def _granted(voter: str) -> tuple[peer_pb2.TakeoverAnswer, peer_pb2.Envelope]:
    envelope = _grant(voter, "alpha")
    return peer_pb2.Body.FromString(envelope.body).takeover_answer, envelope


async def test_a_rival_that_answered_itself_is_asked_again_soon_and_its_grant_wins(
        agent: Agent, monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(agent, "now", clock)
    active = await _taking_part(agent, granted=(1, "alpha"))  # alpha claims epoch 1
    core = agent.takeovers.core_of(WF)
    assert core.role is Role.CLAIMING
    sent: list[SendClaim] = []
    monkeypatch.setattr(agent.takeovers, "claim",
                        lambda active, core, action: sent.append(action))
    asked = _answering(agent, monkeypatch, [_denial("gamma"), _granted("gamma")])
    await agent.takeovers._look(WF)  # its first look: the claim cut short goes again
    assert sent == [SendClaim("beta", 1), SendClaim("gamma", 1)]
    sent.clear()

    # gamma claimed epoch 1 too: it refuses, naming itself.
    await agent.takeovers.claims.until_answered(active, core, SendClaim("gamma", 1))
    assert core.role is Role.CLAIMING and core.get_timer() == clock.t + core.rival_again_s
    assert core.get_timer() < clock.t + core.claim_timeout_s
    await agent.takeovers._look(WF)  # not due yet
    assert sent == []
    clock.t += core.rival_again_s
    await agent.takeovers._look(WF)  # the shell's timer: gamma asked again
    assert sent == [SendClaim("gamma", 1)]

    # gamma heard alpha's denial of its own claim meanwhile, yielded, and grants now.
    await agent.takeovers.claims.until_answered(active, core, sent[0])
    assert asked == ["gamma", "gamma"]
    assert (core.role, core.epoch) == (Role.ACTING, 1)
    assert (active.row.epoch, active.row.coordinator) == (1, "alpha")
    stored = await agent.store.get_workflow(WF)
    assert (stored.epoch, stored.coordinator) == (1, "alpha")


async def test_a_better_ranked_rival_that_answered_itself_is_followed_at_once(
        agent: Agent, monkeypatch) -> None:
    """alpha and aardvark, the better rank, both claimed epoch 1 of beta's workflow;
    aardvark refuses alpha's claim naming itself: alpha follows it at once, on disk
    before anything else, with no claim timeout passed (its vote of epoch 1 is
    aardvark's now, never its own again)."""
    monkeypatch.setattr(agent, "now", Clock())
    row = WorkflowRow(id=WF, name="one", coordinator="beta", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"s": "alpha", "t": "aardvark"},
                      round=1, acceptors=["aardvark", "alpha", "beta"], epoch=0,
                      granted_epoch=1, granted_to="alpha", created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, row.placement, "alpha"))
    agent.active[WF] = active
    await agent.save(active)
    await agent.takeovers.prepare(active)
    core = agent.takeovers.core_for(active)
    assert core is not None and core.role is Role.CLAIMING and core.epoch == 1
    _answering(agent, monkeypatch, [_denial("aardvark")])
    await agent.takeovers.claims.until_answered(active, core, SendClaim("aardvark", 1))
    assert (core.role, core.epoch, core.coordinator) == (Role.FOLLOWING, 1, "aardvark")
    stored = await agent.store.get_workflow(WF)
    assert (stored.granted_epoch, stored.granted_to) == (1, "aardvark")
    assert (stored.epoch, stored.coordinator) == (1, "aardvark")
    assert core.get_timer() is None  # no claim left: aardvark is watched as any coordinator
