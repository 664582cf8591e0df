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

The rules live by what they guard: authority_rounds.py the negotiation's (a round's
PREPARE, votes, Paxos messages, decisions and the votes inside a COMMIT value),
authority_steps.py who speaks for a step (its results, its placement told again or
asked, its compensation), authority_ends.py who tells a workflow's end and who claims
its coordination (end notices, takeover claims and their answers). This module holds
the table of one rule per message type and the two entry points.

What a message carries for the workflow's data is checked too, before the rule: a
step's outputs (a `ResultMsg`'s, and those a `PlacedMsg` hands a new domain in
`needs`) must be JSON data by the rule every status, stdin and audit hash applies
(core/workflow/values.py: string keys, finite numbers, UTF-8 text, nested at most
MAX_DEPTH). The checked decoding sees only that `outputs` is a dict; a dict of bytes, a
NaN, an int key or a nesting too deep would be taken, stored, handed to the steps that
need it and then break the status of its workflow (`values.write_object`), the audit
log's hash of it and every stdin it is copied into. Such a message is refused whole
(`not_json`), as a message without authority is: it never reaches the Node, and the
sender's resend, or its coordinator's query, brings a good one or nothing.

A PREPARE carries the workflow's spec, which the participant reads twice: at the
PREPARE it holds a slot for each step the message names, and at the COMMIT it builds the
workflow's `Progress` from the spec and the placement. A coordinator that lies (and
signs its own spec, so the submission check passes) could send a spec that breaks the
rules of a client's (core/workflow/spec.py `validate_spec`): params that are not a JSON
object, or a need naming no step, and the participant's Node raised at the COMMIT, after
its YES, and its driver stopped; a step needing itself, needs in a cycle, no steps, or
a held step not in the spec or not placed here, and the slot was held forever. The
PREPARE is refused whole (authority_spec.py: `not_json` for params, `bad_spec` for the
rest, with validate_spec's message; the spec before the rule, the held steps after it,
so a PREPARE sent to another domain is refused for who sent it), so the participant holds
nothing and votes nothing (the coordinator's round goes on without its vote, as after a
lost message). The whole `validate_spec` runs once per distinct spec (its verdict kept
by the spec's digest in a small memo); the held steps and the placement are checked
against it on every PREPARE.

An acknowledgement names the domain that sends it. The acknowledgements of one run of an
envelope come in as one `Acks` input (inputs.py): `check_acks` applies each one's rule
in one pass and keeps those that hold, so one that does not is refused alone. Types this
table does not know pass through untouched: a driver that takes other inputs (the
simulator's key records) checks those itself, and one that takes only the Node's
messages (the node engine) refuses every other type before this.

Pure: reads the Node, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Imported by module, not through the package: the Node's parts (early_results.py)
# apply this table, and the package imports the Node.
import fedorch.core.node.authority_claims as claims
import fedorch.core.node.authority_ends as ends
import fedorch.core.node.authority_rounds as rounds
import fedorch.core.node.authority_steps as steps
from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    Decision,
    DecisionAck,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
    Promise,
    Reject,
)
from fedorch.core.node.authority_spec import held_here, json_params, spec_steps
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
from fedorch.core.workflow import values

__all__ = ["ACK_TYPES", "MESSAGE_TYPES", "Refused", "check", "check_acks", "json_outputs",
           "json_params"]

def check(node: Any, src: str, msg: object, *,
          proven_epoch: Callable[[str, int, str, Any], bool] | None = None) -> None:
    """Refused unless `src` has authority over `msg`, as `node` (a core.node.Node)
    knows the facts now; votes checked through `node.votes` (votes.py).
    `proven_epoch(workflow, epoch, domain, certificate)`: does the
    certificate show `domain` won that coordinator epoch (default: the Node's takeover
    part's check through its evidence port; no takeover part: no end is taken on a
    certificate)."""
    # Run for every message a Node steps: the tables are asked by `in` and subscript,
    # the takeover part by attribute (getattr and .get were a call each, three a message).
    if proven_epoch is None:
        try:
            takeover = node.takeover
        except AttributeError:  # a Node-like without the part (some tests' stand-ins)
            takeover = None
        if takeover is not None:
            proven_epoch = takeover.proven
    cls = type(msg)
    if cls in _BY_TYPE:
        rule = _BY_TYPE[cls]
    else:  # a subclass of a message type (the simulator's), or no message
        cls = next((t for t in cls.__mro__ if t in _BY_TYPE), None)
        if cls is None:
            return  # a type this table does not know (see the header)
        rule = _BY_TYPE[cls]
    if cls is PrepareMsg:  # its spec first, what it asks held here after its rule
        where = f"a PREPARE of {msg.tx.workflow_id} from {src}"
        caps = spec_steps(msg.info.spec, where)
        rule(node, src, msg, node.votes, proven_epoch)
        held_here(node.name, msg, caps, where)
        return
    if cls in _DATA:  # the workflow's data it carries first (see the header)
        _DATA[cls](src, msg)
    rule(node, src, msg, node.votes, proven_epoch)


# One rule per message type, found by the message's type: the check runs on every
# message a Node steps, so it looks its rule up once rather than testing each type.
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
                rounds.decision_ack(node, src, ack, None, None)
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


def json_outputs(outputs: object, where: str) -> None:
    """Refused (`not_json`) unless `outputs` is a JSON object (see the header)."""
    if not isinstance(outputs, dict):
        raise Refused("not_json", f"{where}: outputs must be a JSON object,"
                                  f" got {type(outputs).__name__}")
    try:
        values.check(outputs, "outputs")
    except values.JsonValueError as e:
        raise Refused("not_json", f"{where}: {e}") from None


def _result_data(src: str, msg: ResultMsg) -> None:
    json_outputs(msg.outputs, f"a result of {msg.workflow_id}/{msg.step_id} from {src}")


def _placed_data(src: str, msg: PlacedMsg) -> None:
    for need in msg.needs:
        json_outputs(need[2], f"a placement in {msg.workflow_id} from {src}, need {need[0]}")


# The messages that carry a workflow's data, and its check (see the header).
_DATA: dict[type, Callable[[str, Any], None]] = {ResultMsg: _result_data,
                                            PlacedMsg: _placed_data}


def _ack(node: Any, src: str, msg: AckMsg, votes: Any, proven: Any) -> None:
    if not msg.msg_id or msg.msg_id[-1] != src:
        raise Refused("impersonation", f"{src} acknowledged {msg.msg_id!r}")


_BY_TYPE: dict[type, Callable[..., None]] = {
    PrepareMsg: rounds.prepare, VoteMsg: rounds.vote, PaxosPrepare: rounds.paxos_in,
    Accept: rounds.paxos_in, Promise: rounds.paxos_reply, Accepted: rounds.paxos_reply,
    Reject: rounds.paxos_reply, Decision: rounds.decision,
    DecisionQuery: rounds.decision_query, DecisionAnswer: rounds.decision_answer,
    DecisionAck: rounds.decision_ack, ResultMsg: steps.result, FinalMsg: ends.final,
    ClaimMsg: claims.claim, ClaimAnswerMsg: ends.claim_answer, AckMsg: _ack,
    CompensateMsg: steps.compensate, CompensatedMsg: steps.compensated,
    PlacedMsg: steps.placed, PlacementQuery: steps.placement_query,
    PlacementAnswer: steps.placement_answer,
}
# Every message type a Node exchanges with its peers (what `check` has a rule for).
MESSAGE_TYPES = frozenset(_BY_TYPE)
