"""Which agent a client's Watch or Cancel goes to: the coordinator of the highest epoch
known (here, the id's coordinator while reachable, else the live members' answers).
Reachable is read as the workflows read membership (Membership.state_for_work, the real
method, over the stand-in's SWIM states): a coordinator DEAD within its loss grace is
SUSPECT, still routed to; past its grace it is gone."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import grpc
import pytest
from fedorch.core.membership.swim_types import MemberState
from fedorch.gen.fedorch.v1 import status_pb2
from fedorch.runtime.client_routes import Route, Routes
from fedorch.runtime.membership import Membership
from fedorch.runtime.store.store import WorkflowRow

WID = "coord.0123456789abcdef"


@dataclass
class Member:
    domain: str
    state: str


@dataclass
class FakeAgent:
    domain: str = "outside"
    members_: dict[str, str] = field(default_factory=dict)
    rows: dict[str, WorkflowRow] = field(default_factory=dict)
    active: dict = field(default_factory=dict)
    # DEAD verdicts still within their loss grace (any other DEAD is acted on).
    held: set[str] = field(default_factory=set)

    # The membership's work-facing reading, as the agent's (over this stand-in's SWIM
    # states, trust and loss grace).
    state_for_work = Membership.state_for_work

    def __post_init__(self) -> None:
        self.membership = self
        self.store = self
        self.swim = self
        self.agent = self
        self.grace = self
        self.config = SimpleNamespace(negotiation=SimpleNamespace(takeover_after_s=10.0))

    @property
    def trust(self) -> set[str]:
        return set(self.members_)

    def get(self, domain: str) -> Member | None:
        state = self.members_.get(domain)
        return Member(domain, state) if state else None

    def member(self, domain: str) -> SimpleNamespace | None:  # SWIM's view
        state = self.members_.get(domain)
        return SimpleNamespace(state=MemberState(state)) if state else None

    def members(self) -> list[Member]:
        return [Member(d, s) for d, s in self.members_.items()]

    def lost(self, domain: str) -> str | None:  # the loss grace's: acted on, or None
        state = self.members_.get(domain)
        return state if state in ("DEAD", "LEFT") and domain not in self.held else None

    async def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        return self.rows.get(workflow_id)


class Unknown(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.NOT_FOUND, None, None, "no workflow")


def stubs(answers: dict[str, tuple[int, str] | None], asked: list[str]):
    """A stub per domain answering GetWorkflow with (epoch, coordinator), or NOT_FOUND."""
    def stub(domain: str):
        async def get_workflow(request, *, timeout: float):
            assert timeout > 0  # every call has a deadline
            asked.append(domain)
            answer = answers.get(domain)
            if answer is None:
                raise Unknown()
            return status_pb2.WorkflowStatus(id=request.id, epoch=answer[0],
                                             coordinator=answer[1])
        return SimpleNamespace(GetWorkflow=get_workflow)
    return stub


def row(epoch: int, coordinator: str, *, granted: tuple[int, str] = (0, ""),
        state: str = "RUNNING") -> WorkflowRow:
    return WorkflowRow(id=WID, name="w", spec=b"", coordinator=coordinator, state=state,
                       created_ms=1, updated_ms=1, placement={"a": "p1", "b": "p2"},
                       epoch=epoch, granted_epoch=granted[0], granted_to=granted[1])


async def test_the_ids_coordinator_while_reachable_without_asking_anyone():
    asked: list[str] = []
    agent = FakeAgent(members_={"coord": "SUSPECT", "p1": "ALIVE"})
    routes = Routes(agent, stubs({"p1": (1, "p1")}, asked))
    assert await routes.coordinator(WID) == Route(0, "coord")
    assert asked == []


async def test_a_dead_coordinator_gives_way_to_the_highest_epoch_the_members_hold():
    asked: list[str] = []
    agent = FakeAgent(members_={"coord": "DEAD", "p1": "ALIVE", "p2": "ALIVE",
                                "other": "ALIVE"})
    routes = Routes(agent, stubs({"p1": (1, "p1"), "p2": (0, "coord")}, asked))
    assert await routes.coordinator(WID) == Route(1, "p1")
    assert sorted(asked) == ["other", "p1", "p2"]  # live members only


async def test_with_no_successor_yet_the_known_coordinator_stays():
    agent = FakeAgent(members_={"coord": "DEAD", "p1": "ALIVE"})
    routes = Routes(agent, stubs({"p1": (0, "coord")}, []))
    assert await routes.coordinator(WID) == Route(0, "coord")


async def test_what_this_agent_holds_comes_first():
    asked: list[str] = []
    agent = FakeAgent(domain="p2", members_={"coord": "DEAD", "p1": "ALIVE"},
                      rows={WID: row(1, "p1")})
    routes = Routes(agent, stubs({}, asked))
    assert await routes.coordinator(WID) == Route(1, "p1")
    assert asked == []
    # A grant of a later epoch than the one followed counts: it names the claimant.
    agent.rows[WID] = row(1, "p1", granted=(2, "p2"))
    assert await routes.coordinator(WID) is None  # this agent: answered here


@pytest.mark.parametrize("state", ["DEAD", "LEFT", ""])
async def test_a_coordinator_gone_or_unknown_is_superseded(state):
    agent = FakeAgent(members_={"coord": state} if state else {})
    assert Routes(agent, stubs({}, [])).superseded(WID, Route(0, "coord"))


async def test_a_coordinator_alive_and_still_held_is_not_superseded():
    agent = FakeAgent(members_={"p1": "ALIVE"})
    assert not Routes(agent, stubs({}, [])).superseded(WID, Route(1, "p1"))


async def test_an_ended_workflow_is_known_as_ended_here():
    agent = FakeAgent(domain="p2", rows={WID: row(1, "p1", state="SUCCEEDED")})
    known, ended = await Routes(agent, stubs({}, [])).known_here(WID)
    assert (known, ended) == (Route(1, "p1"), True)


async def test_a_coordinator_dead_within_its_grace_is_still_routed_to():
    """SWIM holds coord DEAD, but its verdict has not stood for the loss grace here: it
    may be a stalled agent about to refute. The call goes to it, nobody is asked, and a
    watch on it is not dropped. Before, it was gone at once: the members were asked."""
    asked: list[str] = []
    agent = FakeAgent(members_={"coord": "DEAD", "p1": "ALIVE"}, held={"coord"})
    routes = Routes(agent, stubs({"p1": (0, "coord")}, asked))
    assert routes.reachable("coord") and not routes.gone("coord")
    assert await routes.coordinator(WID) == Route(0, "coord")
    assert asked == []
    assert not routes.superseded(WID, Route(0, "coord"))


async def test_past_its_grace_the_dead_coordinator_gives_way():
    """The same verdict once it has stood for the grace: gone, the members are asked and
    the successor they hold is routed to."""
    asked: list[str] = []
    agent = FakeAgent(members_={"coord": "DEAD", "p1": "ALIVE"}, held={"coord"})
    routes = Routes(agent, stubs({"p1": (1, "p1")}, asked))
    agent.held.clear()  # the grace passed
    assert routes.gone("coord") and not routes.reachable("coord")
    assert routes.superseded(WID, Route(0, "coord"))
    assert await routes.coordinator(WID) == Route(1, "p1")
    assert asked == ["p1"]


async def test_a_member_dead_within_its_grace_is_not_asked_for_a_later_epoch():
    """Asking is only a shortcut to a successor: a member SWIM does not hold ALIVE (DEAD
    within its grace here) is not asked, so that its silence holds no routing."""
    asked: list[str] = []
    agent = FakeAgent(members_={"coord": "LEFT", "p1": "DEAD", "p2": "ALIVE"},
                      held={"p1"})
    routes = Routes(agent, stubs({"p1": (1, "p1"), "p2": (0, "coord")}, asked))
    assert await routes.coordinator(WID) == Route(0, "coord")
    assert asked == ["p2"]
