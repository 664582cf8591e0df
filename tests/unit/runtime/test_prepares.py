"""send_prepare: the coordinator's own vote waits until the round's other PREPAREs are
handed to gRPC (RoundSends), and a PREPARE that fails before it leaves releases it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from fedorch.core.negotiation.coordinator import SendPrepare
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.prepares import RoundSends, send_prepare
from fedorch.runtime.store.store import WorkflowRow

ROW = WorkflowRow(id="c1.w", name="w", coordinator="c1", state="NEGOTIATING", spec=b"")
PLACEMENT = {"a": "c1", "b": "c2"}


class FakeAgent:
    """The coordinator c1: its own vote is recorded; a call to c2 is held until
    `release` (it is handed to gRPC at once), or fails before leaving with `refuse`."""

    domain = "c1"

    def __init__(self, refuse: bool = False) -> None:
        self.order: list[str] = []
        self.release = asyncio.Event()
        self.refuse = refuse
        self.participation = SimpleNamespace(prepare=self._own_vote)
        self.peers = SimpleNamespace(call=self._call)
        self.config = SimpleNamespace(negotiation=SimpleNamespace(prepare_timeout_s=5.0))
        self.membership = None

    def endpoint_of(self, domain, known=None):
        return "127.0.0.1:1"

    async def run_owned(self, coro, name):
        return await coro

    async def _own_vote(self, coordinator, request):
        self.order.append("own vote")
        return peer_pb2.Envelope(body=peer_pb2.Body(vote=peer_pb2.Vote(
            workflow_id=request.workflow_id, round=request.round, domain="c1",
            yes=True)).SerializeToString())

    async def _call(self, endpoint, method, *, recipient, expect, timeout, prepare,
                    on_sent=None):
        if self.refuse:
            raise PeerCallError("UNAVAILABLE", "down")
        self.order.append(f"{recipient} sent")
        if on_sent is not None:
            on_sent()
        await self.release.wait()
        body = peer_pb2.Body(vote=peer_pb2.Vote(workflow_id=prepare.workflow_id,
                                                round=prepare.round, domain=recipient,
                                                yes=True))
        return body, peer_pb2.Envelope(body=body.SerializeToString())


def _prepare(domain: str) -> tuple[SendPrepare, peer_pb2.PrepareRequest]:
    return (SendPrepare(domain, 1, ("a",) if domain == "c1" else ("b",), PLACEMENT),
            peer_pb2.PrepareRequest(workflow_id=ROW.id, round=1))


async def _round(a: FakeAgent) -> list:
    """The driver's order: the own PREPARE first, then the other; each on a task."""
    votes: asyncio.Queue = asyncio.Queue()
    sends = RoundSends()
    sends.sending("c2")  # announced before any task runs, as Coordination._act does
    own = asyncio.create_task(send_prepare(a, ROW, *_prepare("c1"), votes, sends))
    other = asyncio.create_task(send_prepare(a, ROW, *_prepare("c2"), votes, sends))
    got = [await asyncio.wait_for(votes.get(), 5)]
    a.release.set()
    got.append(await asyncio.wait_for(votes.get(), 5))
    await asyncio.gather(own, other)
    return got


async def test_the_own_vote_waits_until_the_other_prepares_are_out():
    a = FakeAgent()
    votes = await _round(a)
    assert a.order == ["c2 sent", "own vote"]
    assert [v.domain for v in votes] == ["c1", "c2"] and all(v.yes for v in votes)


async def test_a_prepare_that_fails_before_leaving_does_not_hold_the_own_vote():
    a = FakeAgent(refuse=True)
    votes = await _round(a)
    assert a.order == ["own vote"]
    assert {(v.domain, v.yes) for v in votes} == {("c1", True), ("c2", False)}


async def test_without_round_sends_the_own_vote_goes_at_once():
    a = FakeAgent()
    votes: asyncio.Queue = asyncio.Queue()
    await send_prepare(a, ROW, *_prepare("c1"), votes)
    assert a.order == ["own vote"] and (await votes.get()).domain == "c1"
