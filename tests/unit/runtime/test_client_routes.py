"""Which agent a client's Watch or Cancel goes to: the coordinator of the highest epoch
known (here, the id's coordinator while reachable, else the live members' answers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import grpc
import pytest
from fedorch.gen.fedorch.v1 import status_pb2
from fedorch.runtime.client_routes import Route, Routes
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

    def __post_init__(self) -> None:
        self.membership = self
        self.store = self
        self.config = SimpleNamespace(negotiation=SimpleNamespace(takeover_after_s=10.0))

    def get(self, domain: str) -> Member | None:
        state = self.members_.get(domain)
        return Member(domain, state) if state else None

    def members(self) -> list[Member]:
        return [Member(d, s) for d, s in self.members_.items()]

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
