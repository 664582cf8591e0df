"""A claimant that takes its predecessor's end notice tells it on in its own epoch (the
shell's side of takeover.Announce): those that granted its claim refuse the lower
epoch's notice, and would otherwise wait for it for ever."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fedorch.core.workflow.lifecycle import Ended, WorkflowState
from fedorch.core.workflow.takeover import Role, SendClaim, Takeover
from fedorch.gen.fedorch.v1 import peer_pb2, status_pb2
from fedorch.runtime.context import Active
from fedorch.runtime.participation import Participation
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.store import WorkflowRow
from fedorch.runtime.takeover import Takeovers
from fedorch.runtime.takeover_claims import ClaimSender

from tests.unit.runtime.test_round_proofs import _Counter

WF = "coord.0123abcd"
PARTICIPANTS = {"p1", "p2", "p3"}


def _shells(me: str, *, epoch: int, coordinator: str, granted: tuple[int, str],
            core: Takeover | None) -> tuple[Participation, SimpleNamespace]:
    """Participation.on_cancel with the real Takeovers rule behind it; the end itself (a
    coordinator's end_with, a participant's local end) is recorded, not written."""
    row = WorkflowRow(id=WF, name="w", coordinator=coordinator, state="RUNNING", spec=b"",
                      placement={"a": "p1", "b": "p2", "c": "p3"}, round=1, epoch=epoch,
                      granted_epoch=granted[0], granted_to=granted[1])
    active = Active(row=row)
    seen = SimpleNamespace(ended_as_coordinator=[], ended_here=[], row=row)

    async def end_with(act: Active, end: Ended) -> bool:
        seen.ended_as_coordinator.append((act.row.epoch, act.row.coordinator, end.final))
        return True

    takeovers = Takeovers.__new__(Takeovers)
    takeovers._cores = {WF: core} if core is not None else {}
    takeovers._prepared = {WF} if core is not None else set()
    agent = SimpleNamespace(domain=me, active={WF: active}, takeovers=takeovers,
                            coordination=SimpleNamespace(end_with=end_with),
                            now=lambda: 100.0,
                            metrics=SimpleNamespace(rejected_messages=_Counter()))
    takeovers.agent = agent
    participation = Participation.__new__(Participation)
    participation.agent = agent

    async def end_here(workflow_id: str, end: Ended) -> None:
        seen.ended_here.append(end.final)
    participation._end_here = end_here  # type: ignore[method-assign]
    return participation, seen


def _claiming(me: str = "p1") -> Takeover:
    core = Takeover(me, "coord", PARTICIPANTS, epoch=1, coordinator=me, claiming=True)
    assert core.role is Role.CLAIMING
    return core


def _notice(epoch: int, state: int = status_pb2.WORKFLOW_STATE_FAILED) -> peer_pb2.CancelNotice:
    return peer_pb2.CancelNotice(workflow_id=WF, epoch=epoch, final_state=state,
                                 reason="a step failed")


@pytest.mark.parametrize("core", ["claiming", "restarted, not looked at yet"])
async def test_a_claimant_tells_its_predecessors_end_on_in_its_epoch(core: str) -> None:
    participation, seen = _shells("p1", epoch=0, coordinator="coord", granted=(1, "p1"),
                                  core=_claiming() if core == "claiming" else None)
    ack = await participation.on_cancel("coord", _notice(0))
    assert ack.ok, ack.error
    # Ended as the holder of epoch 1 (its end notices carry it), not only here.
    assert seen.ended_as_coordinator == [(1, "p1", WorkflowState.FAILED)]
    assert seen.ended_here == []


async def test_a_member_that_granted_the_claim_refuses_the_lower_epochs_end() -> None:
    follower = Takeover("p2", "coord", PARTICIPANTS, epoch=1, coordinator="p1")
    participation, seen = _shells("p2", epoch=1, coordinator="p1", granted=(1, "p1"),
                                  core=follower)
    assert not (await participation.on_cancel("coord", _notice(0))).ok
    assert (await participation.on_cancel("p1", _notice(1))).ok  # the claimant's: taken
    assert seen.ended_as_coordinator == [] and seen.ended_here == [WorkflowState.FAILED]


async def test_a_follower_of_the_old_coordinator_only_ends_here() -> None:
    follower = Takeover("p2", "coord", PARTICIPANTS)
    participation, seen = _shells("p2", epoch=0, coordinator="coord", granted=(0, ""),
                                  core=follower)
    assert (await participation.on_cancel("coord", _notice(0))).ok
    assert seen.ended_as_coordinator == [] and seen.ended_here == [WorkflowState.FAILED]


async def test_a_bad_end_changes_nothing_at_a_claimant() -> None:
    core = _claiming()
    participation, seen = _shells("p1", epoch=0, coordinator="coord", granted=(1, "p1"),
                                  core=core)
    ack = await participation.on_cancel("coord", _notice(0, status_pb2.WORKFLOW_STATE_RUNNING))
    assert not ack.ok and ack.error
    assert seen.ended_as_coordinator == [] and seen.ended_here == []
    assert (seen.row.epoch, seen.row.coordinator) == (0, "coord")
    assert core.role is Role.CLAIMING and not core.ended


# The end can reach a claimant in an answer too, not only in a notice: the coordinator it
# follows acknowledges a step result with the end ("its end notice is this"), or answers
# a question about the round with it. Each goes through Participation.ended.

@pytest.mark.parametrize("core", ["claiming", "restarted, not looked at yet"])
async def test_a_claimant_tells_on_an_end_its_coordinator_answered_with(core: str) -> None:
    participation, seen = _shells("p1", epoch=0, coordinator="coord", granted=(1, "p1"),
                                  core=_claiming() if core == "claiming" else None)
    await participation.ended(WF, status_pb2.WORKFLOW_STATE_CANCELLED, "cancelled: by request")
    assert seen.ended_as_coordinator == [(1, "p1", WorkflowState.CANCELLED)]
    assert seen.ended_here == []


async def test_a_follower_ends_an_answered_end_only_here() -> None:
    follower = Takeover("p2", "coord", PARTICIPANTS, epoch=1, coordinator="p1")
    participation, seen = _shells("p2", epoch=1, coordinator="p1", granted=(1, "p1"),
                                  core=follower)
    await participation.ended(WF, status_pb2.WORKFLOW_STATE_SUCCEEDED, "")
    assert seen.ended_as_coordinator == [] and seen.ended_here == [WorkflowState.SUCCEEDED]


async def test_an_answered_end_that_is_no_end_changes_nothing_at_a_claimant() -> None:
    core = _claiming()
    participation, seen = _shells("p1", epoch=0, coordinator="coord", granted=(1, "p1"),
                                  core=core)
    await participation.ended(WF, status_pb2.WORKFLOW_STATE_RUNNING, "")
    assert seen.ended_as_coordinator == [] and seen.ended_here == []
    assert core.role is Role.CLAIMING and not core.ended


async def test_a_claimant_that_announced_the_end_sends_its_claim_no_more() -> None:
    """The claim to a member that does not answer is resent until answered, but not
    after the end was told on: those end notices tell that member whom to follow."""
    core = _claiming()
    participation, seen = _shells("p1", epoch=0, coordinator="coord", granted=(1, "p1"),
                                  core=core)
    takeovers = participation.agent.takeovers
    takeovers.claims = ClaimSender(takeovers)
    sent: list[str] = []

    async def call(endpoint: str, method: str, **kwargs: object):
        sent.append(kwargs["recipient"])
        if len(sent) == 1:  # the end arrives while the first claim goes unanswered
            await participation.on_cancel("coord", _notice(0))
        raise PeerCallError("unavailable", "frozen")

    async def sleep(seconds: float) -> bool:
        return len(sent) < 5  # a bound for the test: the loop would go on for a day

    participation.agent.endpoint_of = lambda domain, endpoints: "127.0.0.1:1"
    participation.agent.peers = SimpleNamespace(call=call)
    participation.agent.sleep = sleep
    await takeovers.claims.until_answered(participation.agent.active[WF], core, SendClaim("p3", 1))
    assert core.ended and seen.ended_as_coordinator == [(1, "p1", WorkflowState.FAILED)]
    assert sent == ["p3"]
