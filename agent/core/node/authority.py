"""Who may say what to a Node: the authority table, applied to the Node's messages.

Theory of operation
-------------------
A message reaches a Node as `Message(src, msg)`, where `src` is who sent it,
unforgeable (on the wire: the signer of a verified envelope; in the simulator: the
simulated sender). Whether `src` may say `msg` is the authority table's business
(core/identity/authority.py: a domain speaks for its own votes and results, a
coordinator for its own workflows, a round's acceptors for that round). `check`
consults that table with the facts the Node holds (the rounds it takes part in, the
committed placements, the coordinator epochs it follows) *before* the Node steps the
message, and raises `Refused` (its `reason` a short label for counters) when `src`
has no authority. Both drivers use it: the daemon's node engine at its NodeTurn
boundary (runtime/node_engine/boundary.py) and the negotiation simulator
(sim/negotiation/boundary.py).

Two checks a signed wire makes with per-message signatures are made here by
content: a vote inside a COMMIT value must name its own transaction (`vote_raw`, the
Node's stand-in for a signed vote), and an acknowledgement names the domain that
sends it. Types this table does not know pass through untouched: a driver that takes
other inputs (the simulator's key records) checks those itself, and one that takes
only the Node's messages (the node engine) refuses every other type before this.

Pure: reads the Node, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedorch.core.identity.authority import Facts, Refused, authorize
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
from fedorch.core.node.records import (
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    FinalMsg,
    PrepareMsg,
    ResultMsg,
    VoteMsg,
)

__all__ = ["MESSAGE_TYPES", "Refused", "check"]

# Every message type a Node exchanges with its peers (what `check` has a rule for).
MESSAGE_TYPES = frozenset({
    PrepareMsg, VoteMsg, PaxosPrepare, Accept, Promise, Accepted, Reject, Decision,
    DecisionQuery, DecisionAnswer, DecisionAck, ResultMsg, FinalMsg, ClaimMsg,
    ClaimAnswerMsg, AckMsg,
})

_REPLIES = {Promise: "paxos_promise", Accepted: "paxos_accepted", Reject: "paxos_reject"}


def check(node: Any, src: str, msg: object,
          vote_raw: Callable[[Key, str, bool], bytes] | None = None, *,
          proven_epoch: Callable[[str, int, str], bool] | None = None) -> None:
    """Refused unless `src` has authority over `msg`, as `node` (a core.node.Node)
    knows the facts now. `vote_raw`: the Node's stand-in for a signed vote (default:
    the Node's own). `proven_epoch(workflow, epoch, domain)`: does an epoch certificate
    show `domain` won that coordinator epoch (the driver's evidence check; None: no
    end is taken on a certificate)."""
    raw = vote_raw if vote_raw is not None else node.vote_raw
    if isinstance(msg, PrepareMsg):
        authorize("prepare", src, Facts(workflow_id=msg.tx.workflow_id,
                                        coordinator=msg.tx.coordinator))
    elif isinstance(msg, VoteMsg):
        core = node.coordinators.get(msg.key[0])
        tx = core.tx() if core is not None else None
        authorize("vote", src, Facts(
            workflow_id=msg.key[0], named=msg.domain,
            participants=tx.participants if tx is not None and tx.key == msg.key else None))
    elif isinstance(msg, PaxosPrepare | Accept):
        tx = node.tx_of(msg.tx.key) or msg.tx
        kind = "paxos_prepare" if isinstance(msg, PaxosPrepare) else "paxos_accept"
        authorize(kind, src, Facts(workflow_id=msg.tx.workflow_id,
                                   coordinator=msg.tx.coordinator,
                                   participants=tx.participants))
        if isinstance(msg, Accept):
            _bound(raw, msg.tx.key, msg.value)
    elif isinstance(msg, Promise | Accepted | Reject):
        tx = node.tx_of(msg.key)
        # Our own acceptor passes on a proposer's vouched acceptance (never the wire).
        named = None if src == node.name else msg.acceptor
        authorize(_REPLIES[type(msg)], src, Facts(
            workflow_id=msg.key[0], named=named,
            acceptors=tx.acceptors if tx is not None else None))
        if isinstance(msg, Promise):
            _bound(raw, msg.key, msg.accepted_value)
        elif isinstance(msg, Accepted):
            _bound(raw, msg.key, msg.value)
    elif isinstance(msg, Decision):
        # Announced by a party only (of a transaction unknown here, as in classic 2PC:
        # the coordinator); a COMMIT also by its certificate (the Node's own check).
        tx = node.tx_of(msg.key)
        authorize("decision_notice", src, Facts(
            workflow_id=msg.key[0], participants=tx.participants if tx else ()))
        _bound(raw, msg.key, msg.value)
    elif isinstance(msg, DecisionQuery):
        authorize("decision_query", src, Facts(workflow_id=msg.key[0]))
    elif isinstance(msg, DecisionAnswer):
        tx = node.tx_of(msg.key)
        authorize("decision_answer", src, Facts(
            workflow_id=msg.key[0], named=msg.sender,
            participants=tx.participants if tx is not None else ()))
        _bound(raw, msg.key, msg.value)
    elif isinstance(msg, DecisionAck):
        core = node.coordinators.get(msg.key[0])
        tx = core.tx() if core is not None else None
        authorize("decision_ack", src, Facts(
            workflow_id=msg.key[0], named=msg.sender,
            participants=tx.participants if tx is not None else None))
    elif isinstance(msg, ResultMsg):
        authorize("step_result", src, Facts(workflow_id=msg.workflow_id,
                                            placed_on=_placed_on(node.state, msg)))
    elif isinstance(msg, FinalMsg):
        held, participants = _epoch_of(node.state, msg.workflow_id)
        if msg.epoch > 0 and held is None:
            raise Refused("not_known", f"an end of {msg.workflow_id} in epoch {msg.epoch},"
                                       " not committed here yet")
        if msg.won and held is not None and msg.epoch == held[0] and src != held[1] \
                and proven_epoch is not None \
                and proven_epoch(msg.workflow_id, msg.epoch, src):
            # Its epoch certificate: the holder of that epoch here claimed it and lost.
            held = (msg.epoch, src)
        authorize("cancel", src, Facts(workflow_id=msg.workflow_id, epoch=msg.epoch,
                                       held=held, participants=participants))
    elif isinstance(msg, ClaimMsg):
        authorize("takeover_claim", src, Facts(
            workflow_id=msg.workflow_id, epoch=msg.epoch,
            participants=_epoch_of(node.state, msg.workflow_id)[1]))
    elif isinstance(msg, ClaimAnswerMsg):
        authorize("takeover_answer", src, Facts(workflow_id=msg.workflow_id))
    elif isinstance(msg, AckMsg):
        if not msg.msg_id or msg.msg_id[-1] != src:
            raise Refused("impersonation", f"{src} acknowledged {msg.msg_id!r}")


def _bound(vote_raw: Callable[[Key, str, bool], bytes], key: Key,
           value: Value | None) -> None:
    """Every vote of a COMMIT value is one of this transaction (no replay from another)."""
    if value is None or not value.commit:
        return
    for v in value.votes:
        if v.raw != vote_raw(key, v.domain, v.yes) or v.round != key[1]:
            raise Refused("foreign_vote", f"a vote of another transaction in a value of {key}")


def _placed_on(d: Any, msg: ResultMsg) -> str | None:
    """The step's domain as this Node knows the committed placement. A result of a
    workflow not committed here yet is refused (unacknowledged, so it comes again);
    one of a workflow over here changes nothing and is let through to be acknowledged."""
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


def _epoch_of(d: Any, wf: str) -> tuple[tuple[int, str] | None, set[str] | None]:
    """The coordinator epoch held here for `wf` and its participants, if committed here."""
    row = d.rows.get(wf)
    info = row.info if row is not None else d.info.get((wf, d.committed[wf])) \
        if wf in d.committed else None
    if info is None or not info.placement:
        return None, None
    # The coordinator followed (or acted as): our own claim, not yet won, is no
    # coordinator, so the end its predecessor made meanwhile is still taken.
    return d.epochs.get(wf, (0, info.coordinator)), set(info.placement.values())
