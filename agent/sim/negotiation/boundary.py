"""The simulated agent's input boundary: the authority table, as the real one uses it.

A simulated message's `src` is what an envelope's verified sender is on the wire:
who sent it, unforgeable. What `src` may say is the authority table's business
(agent.core.identity.authority), consulted here with the facts the simulated
agent holds, before a core sees the message. The simulator's messages carry no
signatures, so two checks the wire makes with signatures are made here instead:
a vote inside a COMMIT value must be one of that very transaction (the wire's
vote envelope names its workflow and round), and an acknowledgement names the
domain that sends it. A PREPARE's signed submission is checked as a participant's shell
checks it (runtime/votes.py): signed for this coordinator, admitted under one workflow
id only (core/identity/submission_guard.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.identity.submission_guard import Admission
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    Decision,
    DecisionAck,
    DecisionAnswer,
    DecisionQuery,
    Key,
    PaxosPrepare,
    Promise,
    Reject,
    Value,
)
from fedorch.core.node.node import Node
from fedorch.sim.negotiation.disk import (
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    FinalMsg,
    PrepareMsg,
    ResultMsg,
    VoteMsg,
)
from fedorch.sim.negotiation.takeover import SimEvidence

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


_REPLIES = {Promise: "paxos_promise", Accepted: "paxos_accepted", Reject: "paxos_reject"}


def vote_raw(key: Key, domain: str, yes: bool) -> bytes:
    """What stands for a signed vote in the simulator: it names its transaction."""
    return f"{key[0]}/{key[1]}/{domain}/{'yes' if yes else 'no'}".encode()


def _bound(key: Key, value: Value | None) -> None:
    """Every vote of a COMMIT value is one of this transaction (no replay from another)."""
    if value is None or not value.commit:
        return
    for v in value.votes:
        if v.raw != vote_raw(key, v.domain, v.yes) or v.round != key[1]:
            raise RemoteProtocolError(f"a vote of another transaction in a value of {key}")


def check_input(agent: Member, src: str, msg: object) -> None:
    """RemoteProtocolError unless `src` has authority over `msg` (see the table)."""
    try:
        _check(agent, src, msg)
    except Refused as e:
        agent.sim.stats[f"refused {e.reason}"] += 1
        raise RemoteProtocolError(e.detail) from None


def _check(agent: Member, src: str, msg: object) -> None:
    if isinstance(msg, PrepareMsg):
        authorize("prepare", src, Facts(workflow_id=msg.tx.workflow_id,
                                        coordinator=msg.tx.coordinator))
    elif isinstance(msg, VoteMsg):
        core = agent.coordinators.get(msg.key[0])
        tx = core.tx() if core is not None else None
        authorize("vote", src, Facts(
            workflow_id=msg.key[0], named=msg.domain,
            participants=tx.participants if tx is not None and tx.key == msg.key else None))
    elif isinstance(msg, PaxosPrepare | Accept):
        tx = agent._tx_of(msg.tx.key) or msg.tx
        kind = "paxos_prepare" if isinstance(msg, PaxosPrepare) else "paxos_accept"
        authorize(kind, src, Facts(workflow_id=msg.tx.workflow_id,
                                   coordinator=msg.tx.coordinator,
                                   participants=tx.participants))
        if isinstance(msg, Accept):
            _bound(msg.tx.key, msg.value)
    elif isinstance(msg, Promise | Accepted | Reject):
        tx = agent._tx_of(msg.key)
        # Our own acceptor passes on a proposer's vouched acceptance (never the wire).
        named = None if src == agent.name else msg.acceptor
        authorize(_REPLIES[type(msg)], src, Facts(
            workflow_id=msg.key[0], named=named,
            acceptors=tx.acceptors if tx is not None else None))
        if isinstance(msg, Promise):
            _bound(msg.key, msg.accepted_value)
        elif isinstance(msg, Accepted):
            _bound(msg.key, msg.value)
    elif isinstance(msg, Decision):
        # Announced by a party only (of a transaction unknown here, as in classic 2PC:
        # the coordinator); a COMMIT also by its certificate (the agent's handler).
        tx = agent._tx_of(msg.key)
        authorize("decision_notice", src, Facts(
            workflow_id=msg.key[0], participants=tx.participants if tx else ()))
        _bound(msg.key, msg.value)
    elif isinstance(msg, DecisionQuery):
        authorize("decision_query", src, Facts(workflow_id=msg.key[0]))
    elif isinstance(msg, DecisionAnswer):
        tx = agent._tx_of(msg.key)
        authorize("decision_answer", src, Facts(
            workflow_id=msg.key[0], named=msg.sender,
            participants=tx.participants if tx is not None else ()))
        _bound(msg.key, msg.value)
    elif isinstance(msg, DecisionAck):
        core = agent.coordinators.get(msg.key[0])
        tx = core.tx() if core is not None else None
        authorize("decision_ack", src, Facts(
            workflow_id=msg.key[0], named=msg.sender,
            participants=tx.participants if tx is not None else None))
    elif isinstance(msg, ResultMsg):
        authorize("step_result", src, Facts(workflow_id=msg.workflow_id,
                                            placed_on=_placed_on(agent, msg)))
    elif isinstance(msg, FinalMsg):
        held, participants = _epoch_of(agent, msg.workflow_id)
        if msg.epoch > 0 and held is None:
            raise Refused("not_known", f"an end of {msg.workflow_id} in epoch {msg.epoch},"
                                       " not committed here yet")
        if msg.won and held is not None and msg.epoch == held[0] and src != held[1] \
                and SimEvidence(agent.sim).certificate_holds(msg.workflow_id, msg.epoch, src):
            # Its epoch certificate: the holder of that epoch here claimed it and lost.
            held = (msg.epoch, src)
        authorize("cancel", src, Facts(workflow_id=msg.workflow_id, epoch=msg.epoch,
                                       held=held, participants=participants))
    elif isinstance(msg, ClaimMsg):
        authorize("takeover_claim", src, Facts(workflow_id=msg.workflow_id, epoch=msg.epoch,
                                               participants=_epoch_of(agent, msg.workflow_id)[1]))
    elif isinstance(msg, ClaimAnswerMsg):
        authorize("takeover_answer", src, Facts(workflow_id=msg.workflow_id))
    elif isinstance(msg, AckMsg):
        if not msg.msg_id or msg.msg_id[-1] != src:
            raise Refused("impersonation", f"{src} acknowledged {msg.msg_id!r}")


def _placed_on(agent: Member, msg: ResultMsg) -> str | None:
    """The step's domain as this agent knows the committed placement. A result of a
    workflow not committed here yet is refused (unacknowledged, so it comes again);
    one of a workflow over here changes nothing and is let through to be acknowledged."""
    d = agent.disk
    wf = msg.workflow_id
    row = d.rows.get(wf)
    if row is not None:
        placement = row.info.placement
    elif wf in d.committed and (wf, d.committed[wf]) in d.info:
        placement = d.info[(wf, d.committed[wf])].placement
    elif wf in d.final:
        return None
    else:
        raise Refused("not_known", f"a result of {wf}, not committed here yet")
    return placement.get(msg.step_id, "")


def _epoch_of(agent: Member, wf: str) -> tuple[tuple[int, str] | None, set[str] | None]:
    """The coordinator epoch held here for `wf` and its participants, if committed here."""
    d = agent.disk
    row = d.rows.get(wf)
    info = row.info if row is not None else d.info.get((wf, d.committed[wf])) \
        if wf in d.committed else None
    if info is None or not info.placement:
        return None, None
    # The coordinator followed (or acted as): our own claim, not yet won, is no
    # coordinator, so the end its predecessor made meanwhile is still taken.
    return d.epochs.get(wf, (0, info.coordinator)), set(info.placement.values())
