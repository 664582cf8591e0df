"""Where a client's Watch and Cancel go: the workflow's current coordinator.

A workflow's id names its original coordinator, but after a takeover another agent
coordinates it (a higher epoch). The coordinator to ask is the one of the highest
epoch known:

- here, if this agent knows the workflow: the coordinator it follows or granted an
  epoch to (`held`); if that is this agent, the call is answered here;
- else the one the id names, while membership shows it ALIVE or SUSPECT as the
  workflows read it (`state_for_work`: DEAD within its loss grace reads SUSPECT; the
  common case costs no question to anyone);
- otherwise (that coordinator is LEFT, DEAD past its grace, or unknown here) the live
  members are asked (GetWorkflow, local_only, each with a deadline) and the highest epoch any of
  them holds wins, if it is higher than what this agent knows.

A call that cannot reach the coordinator so found is routed again after a short
backoff, for at most `patience_s` (a takeover needs the DEAD verdict, then a claim):
then the caller gets UNAVAILABLE with a message saying to ask again by id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import grpc
from fedorch.core.identity.authority import coordinator_of
from fedorch.gen.fedorch.v1 import client_pb2
from fedorch.runtime.client_calls import SignedClientStub
from fedorch.runtime.convert import is_over
from fedorch.runtime.takeover import held

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

ASK_TIMEOUT_S = 5.0
REACHABLE = frozenset({"ALIVE", "SUSPECT"})
GONE = frozenset({"DEAD", "LEFT"})
FIRST_BACKOFF_S = 0.25
LAST_BACKOFF_S = 2.0
# Errors after which the same coordinator may answer later, or another one may.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class Route(NamedTuple):
    epoch: int
    domain: str


class Routes:
    def __init__(self, agent: AgentContext,
                 stub: Callable[[str], SignedClientStub | None]) -> None:
        self.agent = agent
        self._stub = stub

    def patience_s(self) -> float:
        """How long a call keeps routing to an unreachable coordinator: long enough for
        its DEAD verdict and a takeover (three times the takeover delay)."""
        return 3 * (self.agent.config.negotiation.takeover_after_s or 10.0)

    def _state(self, domain: str) -> str:
        """`domain`'s state as the workflows act on it (Membership.state_for_work): a
        coordinator DEAD within its loss grace is SUSPECT, still routed to. Its verdict
        may be false (a stalled agent refutes within the grace, and goes on coordinating),
        and a successor claims only once a participant has taken the coordinator as lost
        (its own grace passed) or silent past `takeover_after_s`: until then the members
        have no later epoch to route to (one this agent learns of is followed here
        first, `known_here`, `superseded`). A coordinator that did die refuses
        the forwarded call, which is routed again with the backoff, well within the
        patience (three times `takeover_after_s`). "": unknown (or no longer trusted)."""
        membership = self.agent.membership
        return membership.state_for_work(domain) if membership is not None else ""

    def reachable(self, domain: str) -> bool:
        return self._state(domain) in REACHABLE

    def gone(self, domain: str) -> bool:
        state = self._state(domain)
        return not state or state in GONE

    async def known_here(self, workflow_id: str) -> tuple[Route | None, bool]:
        """The coordinator this agent holds for the workflow (None: unknown here), and
        whether the workflow has ended here."""
        a = self.agent
        active = a.active.get(workflow_id)
        row = active.row if active is not None else await a.store.get_workflow(workflow_id)
        if row is None:
            return None, False
        epoch, holder = held(row)
        return Route(epoch, holder or coordinator_of(workflow_id)), is_over(row)

    def superseded(self, workflow_id: str, route: Route) -> bool:
        """Has this agent learned of a later coordinator than `route`, or seen it go?"""
        active = self.agent.active.get(workflow_id)
        if active is not None:
            epoch, holder = held(active.row)
            if epoch > route.epoch and holder != route.domain:
                return True
        return self.gone(route.domain)

    async def coordinator(self, workflow_id: str) -> Route | None:
        """The coordinator to send a call about the workflow to; None: this agent."""
        a = self.agent
        known, _ = await self.known_here(workflow_id)
        if known is None:
            known = Route(0, coordinator_of(workflow_id))
        if known.domain == a.domain:
            return None
        if self.reachable(known.domain):
            return known
        asked = await self.ask_members(workflow_id)
        best = max(asked.values(), key=lambda s: s.epoch, default=None)
        if best is not None and best.epoch > known.epoch and best.coordinator:
            known = Route(best.epoch, best.coordinator)
        return None if known.domain == a.domain else known

    async def ask_members(self, workflow_id: str) -> dict[str, object]:
        """The workflow's status as each live member that knows it holds it."""
        a = self.agent
        # SWIM's own ALIVE, not the work-facing state: asking is only a way to find a
        # later epoch, and one member that does not answer holds every routing for the
        # whole ASK_TIMEOUT_S, so a SUSPECT member, or one DEAD within its grace, is left
        # out (a successor acting is ALIVE to its followers' probes).
        asked = [m.domain for m in a.membership.members()
                 if m.state == "ALIVE" and m.domain and m.domain != a.domain]
        answers: dict[str, object] = {}

        async def ask(domain: str) -> None:
            stub = self._stub(domain)
            if stub is None:
                return
            try:
                answers[domain] = await stub.GetWorkflow(
                    client_pb2.GetWorkflowRequest(id=workflow_id, local_only=True),
                    timeout=ASK_TIMEOUT_S)
            except grpc.aio.AioRpcError:
                pass  # unknown there, or unreachable: the others answer

        async with asyncio.TaskGroup() as tg:
            for domain in asked:
                tg.create_task(ask(domain))
        return answers


class Backoff:
    """Waits between routing attempts, within a patience that restarts on progress."""

    def __init__(self, agent: AgentContext, patience_s: Callable[[], float]) -> None:
        self.agent = agent
        self.patience_s = patience_s  # read at the first wait: most calls never wait
        self._until: float | None = None
        self._wait = FIRST_BACKOFF_S

    def progressed(self) -> None:
        self._until, self._wait = None, FIRST_BACKOFF_S

    async def wait(self) -> bool:
        """Wait before the next attempt; False once patience is out (or the agent stops)."""
        now = self.agent.now()
        if self._until is None:
            self._until = now + self.patience_s()
        if now + self._wait > self._until:
            return False
        waited = await self.agent.sleep(self._wait)
        self._wait = min(self._wait * 2, LAST_BACKOFF_S)
        return waited
