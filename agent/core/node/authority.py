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

A PaxosPrepare or Accept that would make an acceptor's first record of a round must
also state a round its coordinator stated (with coordinator takeover composed, whose
part signs the rounds: takeover_proofs.check_stated), as the shells' acceptor checks
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

An acknowledgement names the domain that sends it. The acknowledgements of one run of
an envelope come in as one `Acks` input (inputs.py): `check_acks` applies each one's
rule in one pass and keeps those that hold, so one that does not is refused alone. Types this table does not know
pass through untouched: a driver that takes other inputs (the simulator's key
records) checks those itself, and one that takes only the Node's messages (the node
engine) refuses every other type before this.

Pure: reads the Node, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedorch.core.identity.authority import Facts, Refused, authorize, coordinator_of
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
    CompensatedMsg,
    CompensateMsg,
    FinalMsg,
    PlacedMsg,
    PlacementAnswer,
    PlacementQuery,
    PrepareMsg,
    ResultMsg,
    VoteMsg,
)
from fedorch.core.workflow.epoch_certificate import epoch_of_round

__all__ = ["ACK_TYPES", "MESSAGE_TYPES", "Refused", "check", "check_acks"]

def check(node: Any, src: str, msg: object, *,
          proven_epoch: Callable[[str, int, str, Any], bool] | None = None) -> None:
    """Refused unless `src` has authority over `msg`, as `node` (a core.node.Node)
    knows the facts now; votes checked through `node.votes` (votes.py).
    `proven_epoch(workflow, epoch, domain, certificate)`: does the
    certificate show `domain` won that coordinator epoch (default: the Node's takeover
    part's check through its evidence port; no takeover part: no end is taken on a
    certificate)."""
    if proven_epoch is None and getattr(node, "takeover", None) is not None:
        proven_epoch = node.takeover.proven
    rule = _BY_TYPE.get(type(msg))
    if rule is None:  # a subclass of a message type (the simulator's), or no message
        rule = next((_BY_TYPE[t] for t in type(msg).__mro__ if t in _BY_TYPE), None)
        if rule is None:
            return  # a type this table does not know (see the header)
    rule(node, src, msg, node.votes, proven_epoch)


# One rule per message type, found by the message's type: the check runs on every
# message a Node steps, so it looks its rule up once rather than testing each type.

def _prepare(node: Any, src: str, msg: PrepareMsg, votes: Any, proven: Any) -> None:
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
    held, _ = _epoch_of(node.state, wf)
    granted = node.state.granted.get(wf)
    if granted is not None and (held is None or granted[0] > held[0]):
        held = granted
    authorize("prepare", src, Facts(workflow_id=wf, epoch=epoch, certified=certified,
                                    held=held))


def _vote(node: Any, src: str, msg: VoteMsg, votes: Any, proven: Any) -> None:
    core = node.coordinators.get(msg.key[0])
    tx = core.tx() if core is not None else None
    authorize("vote", src, Facts(
        workflow_id=msg.key[0], named=msg.domain,
        participants=tx.participants if tx is not None and tx.key == msg.key else None))
    if msg.yes and not votes.holds(msg.key, msg.domain, True, msg.evidence):
        raise Refused("forged_vote", f"{src}'s YES of {msg.key} without its signed"
                                     " statement")


def _paxos_in(node: Any, src: str, msg: PaxosPrepare | Accept, votes: Any,
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


def _paxos_reply(node: Any, src: str, msg: Promise | Accepted | Reject, votes: Any,
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


def _decision(node: Any, src: str, msg: Decision, votes: Any, proven: Any) -> None:
    # Announced by a party only (of a transaction unknown here, as in classic 2PC:
    # the coordinator); a COMMIT also by its certificate (the Node's own check).
    tx = node.tx_of(msg.key)
    if not _successors_round(tx, src):
        authorize("decision_notice", src, Facts(
            workflow_id=msg.key[0], participants=tx.participants if tx else ()))
    _bound(node, votes, msg.key, msg.value)


def _decision_query(node: Any, src: str, msg: DecisionQuery, votes: Any,
                    proven: Any) -> None:
    authorize("decision_query", src, Facts(workflow_id=msg.key[0]))


def _decision_answer(node: Any, src: str, msg: DecisionAnswer, votes: Any,
                     proven: Any) -> None:
    tx = node.tx_of(msg.key)
    if not (_successors_round(tx, src) and msg.sender == src):
        authorize("decision_answer", src, Facts(
            workflow_id=msg.key[0], named=msg.sender,
            participants=tx.participants if tx is not None else ()))
    _bound(node, votes, msg.key, msg.value)


def _successors_round(tx: Any, src: str) -> bool:
    """Is `src` the coordinator of a successor's round held here (its epoch's range):
    one whose PREPARE showed that epoch's certificate here (`_prepare`), so it speaks
    for its round's decision as the original does for its own?"""
    return tx is not None and src == tx.coordinator and epoch_of_round(tx.round) >= 1


def _decision_ack(node: Any, src: str, msg: DecisionAck, votes: Any, proven: Any) -> None:
    core = node.coordinators.get(msg.key[0])
    tx = core.tx() if core is not None else None
    if tx is not None and tx.key != msg.key:
        tx = None  # another round's (a re-placement round's: replacement.py checks it)
    authorize("decision_ack", src, Facts(
        workflow_id=msg.key[0], named=msg.sender,
        participants=tx.participants if tx is not None else None))


def _result(node: Any, src: str, msg: ResultMsg, votes: Any, proven: Any) -> None:
    placed = _placed_on(node.state, msg)
    moved = node.state.placements.get(msg.workflow_id, {}).get(msg.step_id)
    if moved is not None and src in (moved[1], moved[2]):
        # A step placed again (replacement.py): its new domain speaks for it, and the
        # one it was lost with may still report; the Node refuses an older placement's
        # result by its epoch (running.py), and counts it.
        placed = src
    elif placed is not None and src != placed and node.member_loss.gone(placed):
        held, _ = _epoch_of(node.state, msg.workflow_id)
        if held is not None and src == held[1]:
            # The coordinator followed here relays the result of a step whose domain
            # this Node's view says is gone (Running.relay_gone_results: it held it,
            # the producer died before it reached this Node).
            return
    authorize("step_result", src, Facts(workflow_id=msg.workflow_id, placed_on=placed))


def _placed(node: Any, src: str, msg: PlacedMsg, votes: Any, proven: Any) -> None:
    # A new placement is told by the coordinator that placed the step again
    # (replacement.py): the original, whatever epoch is followed here (it tells on a
    # placement it decided after it follows a later epoch, and the holder of that
    # epoch and its followers take it, a committed round's fact, and acknowledge it),
    # or a successor, the holder of its epoch (its own round, or a handover).
    d = node.state
    coordinator = coordinator_of(msg.workflow_id)
    if src == coordinator:
        return
    held, _ = _epoch_of(d, msg.workflow_id)
    if held is not None and src == held[1]:
        # The holder of the epoch followed here: its own round's placement, or one it
        # tells again, handing the round's COMMIT out (replacement_handover.py).
        return
    if msg.held_epoch >= 1 and msg.won and proven is not None \
            and (held is None or msg.held_epoch >= held[0]) \
            and proven(msg.workflow_id, msg.held_epoch, src, msg.won):
        # A successor tells it, showing its epoch's certificate: a new domain not
        # committed here yet, or a member that has not followed it yet, takes it from
        # the holder (replacement_successor.py, replacement_handover.py).
        return
    raise Refused("not_coordinator", f"{src} told a new placement in"
                                     f" {msg.workflow_id}, coordinated by {coordinator}")


def _placement_query(node: Any, src: str, msg: PlacementQuery, votes: Any,
                     proven: Any) -> None:
    # A restarted participant asks where the steps are (restart_check.py): one of the
    # workflow's domains as known here (unknown here: nothing is answered anyway).
    _, participants = _epoch_of(node.state, msg.workflow_id)
    if participants is not None and src not in participants:
        raise Refused("not_party", f"{src} asked the placements of {msg.workflow_id},"
                                   " in which it places no step")


def _placement_answer(node: Any, src: str, msg: PlacementAnswer, votes: Any,
                      proven: Any) -> None:
    # Only the coordinator asked, the one followed or granted here, answers it.
    d = node.state
    held, _ = _epoch_of(d, msg.workflow_id)
    granted = d.granted.get(msg.workflow_id, (0, ""))
    holder = granted[1] if held is not None and granted[0] > held[0] \
        else held[1] if held is not None else None
    if src != holder:
        raise Refused("not_coordinator", f"{src} answered where the steps of"
                                         f" {msg.workflow_id} are, coordinated by {holder}")


def _final(node: Any, src: str, msg: FinalMsg, votes: Any,
           proven_epoch: Callable[[str, int, str, Any], bool] | None) -> None:
    held, participants = _epoch_of(node.state, msg.workflow_id)
    if held is None and msg.epoch >= 1 and msg.won and proven_epoch is not None \
            and _replacement_yes(node, msg.workflow_id) \
            and proven_epoch(msg.workflow_id, msg.epoch, src, msg.won):
        # The holder of a later epoch answers a new domain in doubt on a re-placement
        # round with the end it made (replacement_handover.py): its YES is released.
        return
    if held is None and _elector_only(node, msg.workflow_id):
        _final_at_elector(node, src, msg, proven_epoch)
        return
    if msg.epoch > 0 and held is None:
        raise Refused("not_known", f"an end of {msg.workflow_id} in epoch {msg.epoch},"
                                   " not committed here yet")
    if held is None:
        # Not committed here (a new domain), it may still have granted a later epoch to
        # a claimant, as an acceptor: an elector takes an end only while it holds no
        # later epoch (domain_loss.py), or the winner drives on while it has ended the
        # workflow (takeover soak seed 10000987). Our own claim is no coordinator yet.
        granted = node.state.granted.get(msg.workflow_id, (0, ""))
        if granted[0] > msg.epoch and granted[1] != node.name:
            held = granted
    if msg.won and held is not None and msg.epoch == held[0] and src != held[1] \
            and proven_epoch is not None \
            and proven_epoch(msg.workflow_id, msg.epoch, src, msg.won):
        # Its epoch certificate: the holder of that epoch here claimed it and lost.
        held = (msg.epoch, src)
    if held is not None and msg.epoch < held[0] \
            and node.state.final.get(msg.workflow_id) == msg.state \
            and participants is not None and src in participants \
            and not msg.won and not msg.settled:
        # An end told on in an epoch since overtaken (a claimant that learned the end
        # before its claim won: the takeover core's Announce), to a member that has
        # ended the workflow alike: taken only to be acknowledged (Running.on_final
        # does nothing else with the end of a workflow ended here), or the claimant
        # would resend it until the workflow is forgotten, and it is kept until
        # acknowledged. Another end (an original coordinator's loss verdict,
        # domain_loss.py, after a successor ended it on results) is refused below,
        # never acknowledged: the verdict would be made on our word; its sender is
        # told the later epoch's end and follows it.
        return
    if held is not None and msg.epoch == held[0] >= 1 and src != held[1] \
            and node.state.final.get(msg.workflow_id) == msg.state \
            and participants is not None \
            and (src in participants or src == msg.workflow_id.rpartition(".")[0]):
        # A rival claimant's end of the epoch held here for another (two claimants of
        # one epoch that both told on the end they learned): the same end, taken only
        # to settle who drives the saga (saga_plans.rival_end: the better end is
        # followed, the other acknowledged), or both would resend for ever.
        return
    if held is not None and msg.epoch < held[0] and participants is not None \
            and (src in participants or src == msg.workflow_id.rpartition(".")[0]) \
            and node.running.end_proof(msg.workflow_id) is not None:
        # An end told in an epoch since overtaken, to a member that ended the workflow
        # in a later one and keeps that end's proof: let through only to be answered
        # with that end and proof, never acknowledged nor taken (Running.on_final,
        # `answer_overtaken`): its sender (an original coordinator back after its
        # successor ended the workflow and died) follows the later epoch.
        return
    authorize("cancel", src, Facts(workflow_id=msg.workflow_id, epoch=msg.epoch,
                                   held=held, participants=participants))


def _elector_only(node: Any, wf: str) -> bool:
    """Does this Node hold no step and no vote of `wf` (with takeover: an elector
    only, an acceptor of its committed round, whether its records say so or its
    Accept was lost)? It keeps a held end told to it (elector_ends.py)."""
    d = node.state
    return getattr(node, "takeover", None) is not None and wf not in d.rows \
        and wf not in d.committed and not node.participant.keys_of(wf)


def _final_at_elector(node: Any, src: str, msg: FinalMsg,
                      proven: Callable[[str, int, str, Any], bool] | None) -> None:
    """An end at an elector holding no step: from the coordinator of the epoch it names,
    never below the epoch it granted or followed (it acknowledges an end only while it
    holds no later epoch: the argument of domain_loss.py); a successor's with its
    certificate. An older epoch's end reaches it only to be answered with the later end
    it keeps (Running.answer_overtaken), or, none kept, with the later epoch it holds
    (elector_ends.py)."""
    d = node.state
    wf = msg.workflow_id
    followed = d.epochs.get(wf, (0, coordinator_of(wf)))
    granted = d.granted.get(wf, (0, ""))
    held = granted if granted[0] > followed[0] else followed
    if msg.epoch < held[0] and (wf not in d.final or node.running.end_proof(wf) is not None):
        return  # answered, never acknowledged: with the later end, or the later epoch
    if msg.epoch >= 1:
        if not msg.won or proven is None or not proven(wf, msg.epoch, src, msg.won):
            raise Refused("not_coordinator", f"{src} told an end of {wf} in epoch"
                                             f" {msg.epoch} without its certificate")
        if msg.epoch == held[0]:
            held = (msg.epoch, src)  # it won the epoch we granted (to it or a rival)
    authorize("cancel", src, Facts(workflow_id=wf, epoch=msg.epoch, held=held))


def _replacement_yes(node: Any, wf: str) -> bool:
    """Does this Node hold a YES of a re-placement round of `wf` (replacement.py)?"""
    d = node.state
    return any(getattr(d.info.get(k), "lost", "") for k in node.participant.keys_of(wf))


def _claim(node: Any, src: str, msg: ClaimMsg, votes: Any, proven: Any) -> None:
    # A participant claims; so may the original coordinator, told of a later epoch whose
    # holder is gone (agent/core/workflow/takeover_overtaken.py): grants decide.
    d = node.state
    participants = _epoch_of(d, msg.workflow_id)[1]
    if participants is not None:
        participants = participants | {coordinator_of(msg.workflow_id)}
        # And the claimant granted an epoch here: a rival our claim yielded to
        # (core/workflow/takeover_split.py: it "wins with our vote"), maybe a new domain
        # whose placement never reached us; refused, it never could (2PC seed 9100469).
        granted = d.granted.get(msg.workflow_id, (0, ""))
        if granted[0] >= 1:
            participants.add(granted[1])
    authorize("takeover_claim", src, Facts(
        workflow_id=msg.workflow_id, epoch=msg.epoch, participants=participants))


def _claim_answer(node: Any, src: str, msg: ClaimAnswerMsg, votes: Any, proven: Any) -> None:
    authorize("takeover_answer", src, Facts(workflow_id=msg.workflow_id))


def _compensate(node: Any, src: str, msg: CompensateMsg, votes: Any, proven: Any) -> None:
    # Only the workflow's coordinator as known here tells a compensation: the holder
    # of the epoch followed (a successor after a takeover), else the original one; a
    # coordinator whose epoch is over here is refused (compensating.py).
    d = node.state
    held, _ = _epoch_of(d, msg.workflow_id)
    if held is None:
        # Not committed here: forgotten (retention), or never known. The step's domain
        # had it committed, so this is no tell to take: the Node answers it failed at
        # once and writes nothing (compensating.run_here), so its driver is not left
        # resending for ever.
        return
    if src != held[1] and not _recorded_for_the_original(d, src, msg) \
            and not _original_of_a_gone_holder(node, src, msg, held):
        raise Refused("not_coordinator", f"{src} told a compensation of"
                                         f" {msg.workflow_id}, coordinated by {held[1]}"
                                         f" in epoch {held[0]}")


def _recorded_for_the_original(d: Any, src: str, msg: CompensateMsg) -> bool:
    """A tell from the workflow's original coordinator of an attempt that ended here:
    answered with its record, never run (the record is the attempt's idempotency key).
    An original that a later epoch's driver never told its end (that driver gone for
    good) drives the saga on in epoch 0: so its saga ends too."""
    recorded = d.comp_runs.get((msg.workflow_id, msg.step_id, msg.attempt))
    return recorded is not None and recorded[0] != "running" \
        and src == msg.workflow_id.rpartition(".")[0]


def _original_of_a_gone_holder(node: Any, src: str, msg: CompensateMsg,
                               held: tuple[int, str]) -> bool:
    """A tell from the workflow's original coordinator while the holder of the later
    epoch followed here is gone in this Node's view (DEAD or LEFT): that holder will
    never tell it, and the original, which no later end reached, drives the saga in
    epoch 0; the tell is taken and reported to it (compensating.py, `reports_to`)."""
    return held[0] >= 1 and src == msg.workflow_id.rpartition(".")[0] \
        and node.member_loss.gone(held[1])


def _compensated(node: Any, src: str, msg: CompensatedMsg, votes: Any, proven: Any) -> None:
    # Only the step's domain reports its compensation: a step placed again
    # (replacement.py), its new domain, where it ran and its compensation is planned
    # now, or the one it was lost with (which answers a tell it refuses, or one its
    # driver made before it knew the new placement).
    placed = _placed_on(node.state, msg)  # reads its workflow and step only
    moved = node.state.placements.get(msg.workflow_id, {}).get(msg.step_id)
    if moved is not None and src in (moved[1], moved[2]):
        return
    if placed is not None and src != placed:
        raise Refused("not_placed", f"{src} reported the compensation of"
                                    f" {msg.workflow_id}/{msg.step_id}, placed on {placed}")


def check_acks(node: Any, src: str, acks: tuple[object, ...]
               ) -> tuple[tuple[object, ...], list[Refused]]:
    """The acknowledgements of an `Acks` input (inputs.py) `src` has authority over, and
    a refusal for each other one: each checked by its own rule, as its own message
    would be, in one pass (the rule looked up once per type, the sender verified once
    for the envelope). A field the rule cannot read is refused as `malformed`."""
    kept: list[object] = []
    refused: list[Refused] = []
    for ack in acks:
        cls = type(ack)
        try:
            if cls is AckMsg:
                _ack(node, src, ack, None, None)
            elif cls is DecisionAck:
                _decision_ack(node, src, ack, None, None)
            else:
                raise Refused("not_an_ack", f"{cls.__name__} in acknowledgements from {src}")
        except Refused as e:
            refused.append(e)
            continue
        except (TypeError, AttributeError, IndexError, KeyError, ValueError) as e:
            refused.append(Refused("malformed", f"{type(e).__name__}: {e}"))
            continue
        kept.append(ack)
    return (acks if not refused else tuple(kept)), refused


ACK_TYPES = frozenset({AckMsg, DecisionAck})  # what an `Acks` input carries


def _ack(node: Any, src: str, msg: AckMsg, votes: Any, proven: Any) -> None:
    if not msg.msg_id or msg.msg_id[-1] != src:
        raise Refused("impersonation", f"{src} acknowledged {msg.msg_id!r}")


_BY_TYPE: dict[type, Callable[..., None]] = {
    PrepareMsg: _prepare, VoteMsg: _vote, PaxosPrepare: _paxos_in, Accept: _paxos_in,
    Promise: _paxos_reply, Accepted: _paxos_reply, Reject: _paxos_reply,
    Decision: _decision, DecisionQuery: _decision_query, DecisionAnswer: _decision_answer,
    DecisionAck: _decision_ack, ResultMsg: _result, FinalMsg: _final, ClaimMsg: _claim,
    ClaimAnswerMsg: _claim_answer, AckMsg: _ack, CompensateMsg: _compensate,
    CompensatedMsg: _compensated, PlacedMsg: _placed, PlacementQuery: _placement_query,
    PlacementAnswer: _placement_answer,
}
# Every message type a Node exchanges with its peers (what `check` has a rule for).
MESSAGE_TYPES = frozenset(_BY_TYPE)


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


def _placed_on(d: Any, msg: ResultMsg | CompensatedMsg) -> str | None:
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
    # The participants: the committed placement's, and each step's placed again since
    # (replacement.py): its new domain and the one it was lost on (a new domain knows
    # of the lost one only so, and hears its takeover claims); a new domain committed by
    # its own round knows it from the round's `lost` too, its own placement maybe over
    # (2PC takeover soak seed 4920613: that domain's end refused, a reservation held for
    # ever). Safe: a participant at every other Node; this view only comes to agree.
    participants = set(info.placement.values()) | {info.lost}
    for _, domain, lost in d.placements.get(wf, {}).values():
        participants |= {domain, lost}
    participants.discard("")
    return d.epochs.get(wf, (0, info.coordinator)), participants
