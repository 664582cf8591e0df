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
        votes.put_nowait(_vote_in(row, action, peer_pb2.Body.FromString(envelope.body),
                                  envelope))
        return
    endpoint = a.endpoint_of(action.domain, row.endpoints)
    try:
        if endpoint is None:
            raise PeerCallError("UNKNOWN", "no endpoint known")
        body, envelope = await a.peers.call(
            endpoint, "Prepare", recipient=action.domain, expect="vote",
            timeout=_patience(a, request), prepare=request)
    except PeerCallError as e:
        votes.put_nowait(_unreachable(action, e))
        return
    votes.put_nowait(_vote_in(row, action, body, envelope))


def submit_prepare(a: AgentContext, row: WorkflowRow, action: SendPrepare,
                   request: peer_pb2.PrepareRequest, votes: asyncio.Queue
                   ) -> asyncio.Future | None:
    """send_prepare for another domain's PREPARE with no task waiting for the vote: the
    request joins its peer's lane and a done callback puts the vote on `votes` (a
    cancelled future puts nothing: its round's driver is gone). None when the call
    would not be batched (runtime.peers): the caller sends it with send_prepare."""
    endpoint = a.endpoint_of(action.domain, row.endpoints)
    if action.domain == a.domain or endpoint is None:
        return None
    sent = a.peers.submit(endpoint, "Prepare", recipient=action.domain, expect="vote",
                          timeout=_patience(a, request), prepare=request)
    if sent is None:
        return None

    def answered(future: asyncio.Future) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, PeerCallError):
            votes.put_nowait(_unreachable(action, error))
        elif error is not None:  # not a peer's doing: as a task, it would have failed
            a.task_failed(f"prepare {row.id}/{action.round} to {action.domain}", error)
        else:
            body, envelope = future.result()
            votes.put_nowait(_vote_in(row, action, body, envelope))

    sent.add_done_callback(answered)
    return sent


def _unreachable(action: SendPrepare, e: PeerCallError) -> VoteIn:
    return VoteIn(action.round, action.domain, False, f"unreachable ({e.code})", b"")


def _vote_in(row: WorkflowRow, action: SendPrepare, body: peer_pb2.Body,
             envelope: peer_pb2.Envelope) -> VoteIn:
    """The vote as received, or a NO if it is not the vote this PREPARE asked for."""
    vote = body.vote
    if vote.workflow_id != row.id or vote.round != action.round \
            or vote.domain != action.domain:
        return VoteIn(action.round, action.domain, False,
                      "vote does not match the PREPARE", b"")
    return VoteIn(vote.round, vote.domain, vote.yes, vote.reason, wire.canonical(envelope))


def _patience(a: AgentContext, request: peer_pb2.PrepareRequest) -> float:
    """The call waits as long as the round does (runtime.membership.prepare_patience)."""
    base = a.config.negotiation.prepare_timeout_s
    if a.membership is None:
        return base
    return a.membership.prepare_timeout(base, len(request.spec.steps))
