"""The simulated agent's input boundary: the authority table, as the real one uses it.

A simulated message's `src` is what an envelope's verified sender is on the wire:
who sent it, unforgeable. What `src` may say is the authority table's business
(agent.core.identity.authority), consulted here with the facts the simulated
agent holds, before a core sees the message. The table's application to the Node's
messages is the Node's own (core/node/authority.py), shared with the daemon's node
engine (votes are checked through the Node's vote port, signed with the simulator's
fake keys: agent.py); what is the simulator's here is the counting of refusals in
the simulation's stats, and the submission check. A
PREPARE's signed submission is checked as a participant's shell checks it
(runtime/votes.py): signed for this coordinator, admitted under one workflow id only
(core/identity/submission_guard.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedorch.core.identity.authority import Refused
from fedorch.core.identity.submission_guard import Admission
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.node import authority
from fedorch.core.node.node import Node

if TYPE_CHECKING:
    from fedorch.core.negotiation.messages import TxInfo
    from fedorch.sim.negotiation.disk import WfInfo
    from fedorch.sim.negotiation.world import Member

# Simulated time starts at 0; signed submissions carry wall-clock ms, from here.
SIM_EPOCH_MS = 1_800_000_000_000
SUBMISSION_WINDOW_MS = 3_600_000


def sim_ms(now: float) -> int:
    return SIM_EPOCH_MS + int(now * 1000)


def check_submission(agent, now: float, tx: TxInfo, info: WfInfo) -> Admission | None:
    """The Node's own check of a PREPARE's submission (`Node.check_submission`), called
    through this name so that a test can take the defence away (tests/sim/negotiation/
    test_lying_domain.py shows the invariant failing then)."""
    return Node.check_submission(agent.node, now, tx, info)


def check_input(agent: Member, src: str, msg: object) -> None:
    """RemoteProtocolError unless `src` has authority over `msg` (the Node's authority
    table, core/node/authority.py, as the daemon's node engine applies it)."""
    try:
        authority.check(agent.node, src, msg)  # certificates: the Node's check
    except Refused as e:
        agent.sim.stats[f"refused {e.reason}"] += 1
        raise RemoteProtocolError(e.detail) from None


def check_acks(agent: Member, src: str, acks: tuple[object, ...]) -> tuple[object, ...]:
    """The acknowledgements of an `Acks` input `src` has authority over (the Node's
    authority table in one pass, authority.check_acks, as the node engine's boundary
    applies it); RemoteProtocolError when none has."""
    kept, refused = authority.check_acks(agent.node, src, acks)
    for e in refused:
        agent.sim.stats[f"refused {e.reason}"] += 1
    if not kept:
        raise RemoteProtocolError(refused[0].detail)
    return kept
