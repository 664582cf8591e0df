"""Who coordinates a workflow now: asked by a held-back participant whose coordinator is gone.

A participant that holds a workflow back (self-fencing after a restart, or a COMMIT
learned without its coordinator) asks the coordinator it follows until it answers
(runtime.in_doubt, `_ask_until_heard`). While that coordinator is lost here (LEFT, or
DEAD past its loss grace) no answer will come from it, but a successor may act already,
its claim missed here or still on its way. `ask` finds it by asking the candidates
directly, each once (their QueryDecision, as the coordinator is asked):

- Only a participant claims a takeover, and a successor proves its epoch only as a
  member of the electorate (agent/core/workflow/epoch_certificate.py, `verify`: the
  claimant is in the electorate its grants name). Under Paxos Commit the electorate is
  the committed round's acceptors, so every possible successor is one of them; under
  classic 2PC it is a participant of the committed round.
- So the other live participants this agent knows of are asked, then the round's
  acceptors that hold no step as far as this agent knows (an extra acceptor of a
  workflow on two domains, given a step by a re-placement while this agent was down or
  cut off, may have claimed and won since). An acceptor that still holds no step is no
  successor: it answers with what it learned, no certificate, and is passed over. Its
  grant record (`takeover_grants`) would name the successor, but that successor is an
  acceptor too, so it is asked directly anyway.

The successor answers with the step epochs and its epoch certificate; verified, the
takeover core follows it (`Proven`), and its answer is the coordinator's. Not found
(none acts yet, none answered, or the successor died too): the asking goes on with its
backoff; the successor's claim (sent to every member of the electorate until it
answers) or this agent's own takeover watch (the next epoch) ends it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fedorch.core.membership.swim_types import MemberState
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.context import PEER_RPC_TIMEOUT_S, Active
from fedorch.runtime.peers import PeerCallError

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.participant")


def swim_dead(agent: AgentContext, domain: str) -> bool:
    """Does SWIM hold `domain` DEAD or LEFT, within its loss grace or past it?"""
    membership = agent.membership
    view = membership.swim.member(domain) if membership is not None else None
    return view is not None and view.state in (MemberState.DEAD, MemberState.LEFT)


async def round_acceptors(agent: AgentContext, active: Active) -> list[str]:
    """The committed round's acceptors (Paxos Commit; none under classic 2PC): the row's
    copy (the takeover shell writes it there from the PREPARE this agent voted on), else
    that PREPARE's transaction itself (`hold_txs`)."""
    row = active.row
    if row.acceptors:
        return list(row.acceptors)
    info = await agent.store.get_hold_tx(row.id, row.round)
    return list(wire.tx_from_bytes(info.tx).acceptors) if info is not None else []


async def candidates(agent: AgentContext, active: Active) -> list[str]:
    """Whom to ask, in order: the other participants known here, then the round's
    acceptors that hold no step as known here (never this agent or the coordinator it
    follows)."""
    row = active.row
    placed = set(row.placement.values())
    known = {agent.domain, row.coordinator, ""}
    return sorted(placed - known) + sorted(
        set(await round_acceptors(agent, active)) - placed - known)


async def ask(agent: AgentContext,
              active: Active) -> tuple[tuple[str, int], peer_pb2.DecisionAnswer] | None:
    """The successor's answer, with the (coordinator, epoch) followed now that it proved
    itself; None when none was found (see the module's docstring)."""
    a = agent
    row = active.row
    for domain in await candidates(a, active):
        endpoint = a.endpoint_of(domain, row.endpoints)
        # Only a way to find the successor sooner, so kept cheap: a domain SWIM holds
        # DEAD is passed over even within its loss grace (a call to it would hold this
        # asking for its whole deadline; were it the successor, its claim and end
        # notice still come here).
        if not endpoint or swim_dead(a, domain):
            continue
        try:
            body, _ = await a.peers.call(
                endpoint, "QueryDecision", recipient=domain, expect="decision_answer",
                timeout=PEER_RPC_TIMEOUT_S, wait_for_ready=False,
                decision_query=peer_pb2.DecisionQuery(workflow_id=row.id, round=row.round))
        except PeerCallError:
            continue
        answer = body.decision_answer
        if a.active.get(row.id) is not active:
            return None
        if not answer.HasField("epoch_certificate") or not await \
                a.takeovers.follow_proven(active, domain, answer.epoch_certificate):
            continue
        log.info("%s: %s acts as coordinator in epoch %d (its certificate): asked it",
                 row.id, domain, active.row.epoch)
        return (active.row.coordinator, active.row.epoch), answer
    return None
