"""Sending one PREPARE and turning its answer into a vote for the coordinator core.

Shared by every round a coordinator runs: the admission rounds (runtime.coordination)
and the rounds that place a lost step again (runtime.replacement). The PREPARE for this
agent's own domain goes straight to its participation shell; any other goes through the
peer channel with the negotiation's prepare timeout. Whatever comes back, the core gets
exactly one VoteIn: the vote as received (its canonical bytes go into the commit
certificate), or a NO saying why there is none (unreachable, or an answer that is not
the vote this PREPARE asked for).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fedorch.core.negotiation.coordinator import SendPrepare, VoteIn
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.store import WorkflowRow

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext


async def send_prepare(a: AgentContext, row: WorkflowRow, action: SendPrepare,
                       request: peer_pb2.PrepareRequest, votes: asyncio.Queue) -> None:
    """Send `request` (the PREPARE of `action`) and put its vote on `votes`."""
    if action.domain == a.domain:
        envelope = await a.run_owned(a.participation.prepare(a.domain, request), "prepare")
        body = peer_pb2.Body.FromString(envelope.body)
    else:
        endpoint = a.endpoint_of(action.domain, row.endpoints)
        try:
            if endpoint is None:
                raise PeerCallError("UNKNOWN", "no endpoint known")
            body, envelope = await a.peers.call(
                endpoint, "Prepare", recipient=action.domain, expect="vote",
                timeout=_patience(a, request), prepare=request)
        except PeerCallError as e:
            await votes.put(VoteIn(action.round, action.domain, False,
                                   f"unreachable ({e.code})", b""))
            return
    vote = body.vote
    if vote.workflow_id != row.id or vote.round != action.round \
            or vote.domain != action.domain:
        await votes.put(VoteIn(action.round, action.domain, False,
                               "vote does not match the PREPARE", b""))
        return
    await votes.put(VoteIn(vote.round, vote.domain, vote.yes, vote.reason,
                           wire.canonical(envelope)))


def _patience(a: AgentContext, request: peer_pb2.PrepareRequest) -> float:
    """The call waits as long as the round does (runtime.membership.prepare_patience)."""
    base = a.config.negotiation.prepare_timeout_s
    if a.membership is None:
        return base
    return a.membership.prepare_timeout(base, len(request.spec.steps))
