"""A workflow's negotiation rounds as the console shows them: each decision and its votes.

What the Node decided is in this domain's hash-chained audit log, one `decision`
record per round it decided (node_engine/audit.py, docs/audit.md). A
COMMIT's record holds its certificate, `{"round", "votes"}`: each participant's YES as
the COMMIT holds it, sealed by its voter (core/node/votes.py: the statement
`["vote", workflow, round, domain, true]`, a Merkle path and the root's signature).

So a round's outcome is read from the record, and each vote is shown only
once it is checked over the bytes as stored: the statement it carries names this
workflow and round, and its root's signature verifies as the domain the statement
names (the trust store, as evidence: a key rotated away from still counts). A vote
that does not check is left out (only verified votes are evidence); the page says how
many were on record. The record names no signer (it is this domain's
own act, in its own log): the round is decided by this domain, the one whose log it
is. An ABORT's record holds no votes (its refusals are in the status). The steps a voter said YES for are not in its statement: those shown are the
steps the workflow's status places on that domain.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fedorch.core.node.votes import carried, evidence_holds
from fedorch.gen.fedorch.v1 import status_pb2

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

__all__ = ["DecidedRound", "RoundView", "VoteView", "decided_rounds", "node_decisions"]

log = logging.getLogger("fedorch.console")

Verifier = Callable[[str, bytes, bytes], bool]


@dataclass(frozen=True)
class VoteView:
    domain: str
    yes: bool
    reason: str
    steps: tuple[str, ...]
    verified: bool


@dataclass
class RoundView:
    round: int
    outcome: str = ""  # COMMIT | ABORT | "" (no decision on record here)
    decided_by: str = ""
    verified: bool = False
    collected: bool = False  # a COMMIT whose certificate was collected keeps no votes
    from_audit: bool = False  # the node engine's: read from this domain's audit log
    votes_on_record: int = 0  # (node engine) the signed votes its record holds
    votes: list[VoteView] = field(default_factory=list)
    refusals: list[status_pb2.Refusal] = field(default_factory=list)


def node_decisions(agent: AgentContext, s: status_pb2.WorkflowStatus,
                 rounds: dict[int, RoundView], records: list) -> None:
    """The rounds this domain decided, with each verified YES, from its audit records."""
    placed: dict[str, list[str]] = {}
    for st in s.steps:
        placed.setdefault(st.domain, []).append(st.id)
    decided = decided_rounds(records, s.id, lambda domain, data, sig: (
        agent.trust.verify(domain, data, sig, evidence=True)))
    for number, d in decided.items():
        view = rounds.setdefault(number, RoundView(number))
        view.outcome, view.from_audit, view.votes_on_record = d.outcome, True, d.on_record
        view.votes = [VoteView(domain=v, yes=True, reason="", steps=tuple(placed.get(v, ())),
                               verified=True) for v in d.voters]


@dataclass
class DecidedRound:
    outcome: str  # COMMIT | ABORT ("" when the record names neither)
    on_record: int = 0  # the votes its certificate holds
    voters: list[str] = field(default_factory=list)  # those whose signed YES verified


def decided_rounds(records: Iterable, workflow_id: str,
                   verify: Verifier) -> dict[int, DecidedRound]:
    """The rounds this domain's `decision` records of the workflow decided, by number."""
    rounds: dict[int, DecidedRound] = {}
    for record in records:
        if record.kind != "decision":
            continue
        data = _data(record)
        round_ = data.get("round")
        if type(round_) is not int or round_ < 1:
            continue
        outcome = data.get("outcome")
        decided = DecidedRound(outcome if outcome in ("COMMIT", "ABORT") else "")
        certificate = data.get("certificate")
        raws = certificate.get("votes") if isinstance(certificate, dict) else None
        raws = raws if isinstance(raws, list) else []
        decided.on_record = len(raws)
        decided.voters = sorted({voter for raw in raws if (
            voter := _checked_voter(raw, workflow_id, round_, verify)) is not None})
        rounds[round_] = decided
    return rounds


def _data(record) -> dict:
    try:
        body = record.decoded()
    except (ValueError, UnicodeDecodeError):
        return {}
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def _checked_voter(text: object, workflow_id: str, round_: int,
                   verify: Verifier) -> str | None:
    """The domain whose signed YES in this round `text` (base64) is; None if it is not
    one (undecodable, another workflow's or round's, or its signature does not verify)."""
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
        statement = json.loads(carried(raw) or b"null")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not (isinstance(statement, list) and len(statement) == 5 and statement[0] == "vote"
            and statement[1] == workflow_id and statement[2] == round_
            and isinstance(statement[3], str) and statement[4] is True):
        return None
    voter = statement[3]
    return voter if evidence_holds(verify, (workflow_id, round_), voter, True, raw) else None
