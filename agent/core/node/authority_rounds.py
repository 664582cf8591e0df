"""The negotiation's authority rules: who may send a round's messages to a Node.

Theory of operation
-------------------
One rule per message of a round, looked up by authority.py's table (`check`): a
PREPARE from the workflow's coordinator (a later epoch's range: from that epoch's
holder with its certificate), a vote from the domain it names, a Paxos message from
the round's coordinator or acceptors, a decision from a party of the round (or a
successor's for its own round), each through the authority table of
core/identity/authority.py with the facts the Node holds.

A PaxosPrepare or Accept that would make an acceptor's first record of a round must
also state a round its coordinator stated (with coordinator takeover composed, whose
part signs the rounds: takeover_proofs.check_stated), as the shells' acceptor checked
a round's signature before its first record.

Votes are evidence (votes.py): a YES carries its voter's signed statement, checked
here through the Node's vote port (`node.votes`) over the bytes as received, when it
reaches its coordinator and inside every COMMIT value a message carries (an Accept,
a Promise, an Accepted, a decision, an answer): each vote must be its named voter's,
signed, of this very round. A forged, missing or foreign vote, or one whose voter is
not trusted (or revoked) where the port checks trust, refuses the whole message
(`forged_vote`), so a coordinator, acceptor or claimant that lies cannot speak for
another domain. A value this Node already holds for that round (its own proposal or
decision, its acceptor's, a decision it learned) is not checked again: each of its
votes was checked as it was taken here, and every Accepted and decision of a round
repeats the certificate. Whether the votes cover every participant is the Node's
check of the value (check_value).

Pure: reads the Node, changes nothing.
"""

from __future__ import annotations

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
from fedorch.core.node.authority_steps import epoch_of
from fedorch.core.node.records import PrepareMsg, VoteMsg
from fedorch.core.workflow.epoch_certificate import epoch_of_round


def prepare(node: Any, src: str, msg: PrepareMsg, votes: Any, proven: Any) -> None:
    wf = msg.tx.workflow_id
    epoch = epoch_of_round(msg.tx.round)
    if epoch == 0:
        authorize("prepare", src, Facts(workflow_id=wf, coordinator=msg.tx.coordinator))
        return
    # A round of a later epoch's range: a successor's re-placement round
    # (replacement_successor.py), from the holder of that epoch only, its certificate
    # shown and verified here (a domain new to the workflow included), and refused by
    # a Node that holds a later epoch (an older epoch's placement is over).
    certified = None
    if msg.held_epoch == epoch and msg.won and src == msg.tx.coordinator \
            and proven is not None and proven(wf, epoch, src, msg.won):
        certified = (epoch, src)
    if certified is None:
        raise Refused("bad_certificate", f"{src} sent a PREPARE of {wf} round"
                                         f" {msg.tx.round} (epoch {epoch}) without a"
                                         " certificate of that epoch that holds here")
    held, _ = epoch_of(node.state, wf)
    granted = node.state.granted.get(wf)
    if granted is not None and (held is None or granted[0] > held[0]):
        held = granted
    authorize("prepare", src, Facts(workflow_id=wf, epoch=epoch, certified=certified,
                                    held=held))


def vote(node: Any, src: str, msg: VoteMsg, votes: Any, proven: Any) -> None:
    tx = node.coordinators.tx(msg.key[0])  # an ended core's from its record
    authorize("vote", src, Facts(
        workflow_id=msg.key[0], named=msg.domain,
        participants=tx.participants if tx is not None and tx.key == msg.key else None))
    if msg.yes and not votes.holds(msg.key, msg.domain, True, msg.evidence):
        raise Refused("forged_vote", f"{src}'s YES of {msg.key} without its signed"
                                     " statement")


def paxos_in(node: Any, src: str, msg: PaxosPrepare | Accept, votes: Any,
              proven: Any) -> None:
    tx = node.tx_of(msg.tx.key) or msg.tx
    kind = "paxos_prepare" if isinstance(msg, PaxosPrepare) else "paxos_accept"
    authorize(kind, src, Facts(workflow_id=msg.tx.workflow_id,
                               coordinator=msg.tx.coordinator,
                               participants=tx.participants))
    if isinstance(msg, Accept):
        _bound(node, votes, msg.tx.key, msg.value)
    takeover = getattr(node, "takeover", None)
    if takeover is not None and node.name in msg.tx.acceptors \
            and node.acceptor.record(msg.tx.key) is None:
        # Before our acceptor's first record of the round: one its coordinator stated
        # (takeover_proofs.check_stated: its word, the PREPARE held here, or its
        # signature of the round, which exists where takeover is composed).
        takeover.proof.check_stated(src, msg.tx)


def paxos_reply(node: Any, src: str, msg: Promise | Accepted | Reject, votes: Any,
                 proven: Any) -> None:
    tx = node.tx_of(msg.key)
    # Our own acceptor passes on a proposer's vouched acceptance (never the wire).
    named = None if src == node.name else msg.acceptor
    kind = "paxos_promise" if isinstance(msg, Promise) else "paxos_accepted" \
        if isinstance(msg, Accepted) else "paxos_reject"
    authorize(kind, src, Facts(
        workflow_id=msg.key[0], named=named,
        acceptors=tx.acceptors if tx is not None else None))
    if isinstance(msg, Promise):
        _bound(node, votes, msg.key, msg.accepted_value)
    elif isinstance(msg, Accepted):
        _bound(node, votes, msg.key, msg.value)


def decision(node: Any, src: str, msg: Decision, votes: Any, proven: Any) -> None:
    # Announced by a party only (of a transaction unknown here, as in classic 2PC:
    # the coordinator); a COMMIT also by its certificate (the Node's own check).
    tx = node.tx_of(msg.key)
    if not _successors_round(tx, src):
        authorize("decision_notice", src, Facts(
            workflow_id=msg.key[0], participants=tx.participants if tx else ()))
    _bound(node, votes, msg.key, msg.value)


def decision_query(node: Any, src: str, msg: DecisionQuery, votes: Any,
                    proven: Any) -> None:
    authorize("decision_query", src, Facts(workflow_id=msg.key[0]))


def decision_answer(node: Any, src: str, msg: DecisionAnswer, votes: Any,
                     proven: Any) -> None:
    tx = node.tx_of(msg.key)
    if not (_successors_round(tx, src) and msg.sender == src):
        # Those asked: its parties, and its acceptors (termination.py, coordinator_doubt.py:
        # one beyond the participants answers PAST_LIFE or the decision it holds).
        authorize("decision_answer", src, Facts(
            workflow_id=msg.key[0], named=msg.sender,
            participants=(*tx.participants, *tx.acceptors) if tx is not None else ()))
    _bound(node, votes, msg.key, msg.value)


def _successors_round(tx: Any, src: str) -> bool:
    """Is `src` the coordinator of a successor's round held here (its epoch's range):
    one whose PREPARE showed that epoch's certificate here (`prepare`), so it speaks
    for its round's decision as the original does for its own?"""
    return tx is not None and src == tx.coordinator and epoch_of_round(tx.round) >= 1


def decision_ack(node: Any, src: str, msg: DecisionAck, votes: Any, proven: Any) -> None:
    tx = node.coordinators.tx(msg.key[0])  # an ended core's from its record
    if tx is not None and tx.key != msg.key:
        tx = None  # another round's (a re-placement round's: replacement.py checks it)
    authorize("decision_ack", src, Facts(
        workflow_id=msg.key[0], named=msg.sender,
        participants=tx.participants if tx is not None else None))


def _bound(node: Any, votes: Any, key: Key, value: Value | None) -> None:
    """Every vote of a COMMIT value is its voter's signed vote of this transaction
    (votes.Votes.holds: no replay from another, no vote made for another domain)."""
    if value is None or not value.commit or _held(node, key, value):
        return
    for v in value.votes:
        if v.round != key[1]:
            raise Refused("foreign_vote", f"a vote of another transaction in a value of {key}")
        if not votes.holds(key, v.domain, v.yes, v.raw):
            raise Refused("forged_vote", f"a vote of {v.domain} in a COMMIT of {key} that"
                                         f" is not {v.domain}'s signed vote")


def _held(node: Any, key: Key, value: Value) -> bool:
    """`value` is one this Node already holds for `key` (its own proposal or decision,
    its acceptor's accepted or decided value, a decision it learned): each of its votes
    was checked as it was taken here, so a copy of it (every Accepted, decision and
    answer of a round repeats the certificate) is not checked again."""
    d = node.state
    if value == d.learned.get(key) or value == d.records.get(key) \
            or value == d.cells.get(key):
        return True
    rec = node.acceptor.record(key)
    return rec is not None and (value == rec.accepted_value or value == rec.decided)
