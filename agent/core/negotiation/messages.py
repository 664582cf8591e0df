"""Messages and actions of the commit protocol, as plain data (no I/O, no crypto).

Theory of operation
-------------------
Each admission round of a workflow is one transaction, keyed (workflow_id, round)
and never reused. Its outcome is decided by one consensus instance (Paxos Commit,
Gray & Lamport, with a single instance per transaction): the *acceptors* are a
list fixed by the coordinator when it sends PREPARE and carried in every PREPARE
(:class:`TxInfo`): the coordinator and the participant domains in name order,
up to `max_acceptors` (5 by default), and extra live members until there are at
least three when the federation has them. Paxos Commit needs 2F+1 acceptors to
survive F failures, whoever they are: a participant beyond the bound is no
acceptor, only a *learner*. It learns the decision from a majority of the
acceptors' Accepted (each acceptor sends its Accepted to every participant: about
A·N messages for A acceptors and N participants, not N²), or from the
coordinator's decision notice; in doubt it asks the acceptors and may propose a
recovery ballot to them, never accepting anything itself. A value is
A value is
*chosen* once a majority of the acceptors accepted it in the same ballot.

A value is COMMIT (carrying the YES vote of every participant: the commit
certificate) or ABORT. Ballot 0 belongs to the coordinator and skips phase 1;
every other ballot is (n, proposer) and needs a majority of promises first.

In the cores, votes and decisions are plain dataclasses; the shell signs what it
sends and verifies what it receives (a VoteIn's ``raw`` is the signed envelope,
so a certificate can be shown to a third party). The cores never trust a COMMIT
without the certificate: :func:`certifies` is the check every role applies.

Outputs are actions, run by the shell in the order given: a Persist* action
must be durable before any later Send leaves the agent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from fedorch.core.negotiation.errors import RemoteProtocolError

Key = tuple[str, int]  # (workflow_id, round): one transaction, never reused

# A participant's NO to a PREPARE whose round had closed there before it came (most
# often: the participants' recovery chose ABORT while the PREPARE was on its way). It is
# no refusal of the steps: the coordinator aborts the round but keeps the domain a
# candidate for them (Coordinator._fail_round).
ROUND_DECIDED = "round already decided"


@dataclass(frozen=True, order=True)
class Ballot:
    """A Paxos ballot, ordered by (n, proposer); ballot 0 is the coordinator's."""

    n: int
    proposer: str


@dataclass(frozen=True)
class VoteIn:
    """A verified vote, as the shell parsed it from a signed envelope."""

    round: int
    domain: str
    yes: bool
    reason: str
    raw: bytes  # the envelope as received: it goes into the commit certificate


@dataclass(frozen=True)
class Value:
    """What the consensus instance decides: COMMIT with its certificate, or ABORT."""

    commit: bool
    votes: tuple[VoteIn, ...] = ()  # every participant's YES (COMMIT only), by domain


ABORT = Value(False)


class _KeyOnce:
    """`TxInfo.key`, worked out on its first read and kept in the instance's dict: a
    non-data descriptor, so every later read finds that entry without a call (a property
    was a call each, and the negotiation reads a round's key on every message of it).
    Sound for a frozen dataclass only, whose fields never change after construction; the
    entry is no field (the codec, equality and hashing read the fields)."""

    def __get__(self, tx: TxInfo | None, owner: type | None = None) -> Any:
        if tx is None:
            return self
        key = tx.__dict__["key"] = (tx.workflow_id, tx.round)
        return key


@dataclass(frozen=True)
class TxInfo:
    """A transaction as the coordinator fixed it at PREPARE time.

    `round_tx`: the coordinator's signed statement of this transaction (the shells: a
    serialized signed envelope; the Node: its signature of `round_statement`,
    core/node/takeover_proofs.py; opaque to the cores), carried by every PaxosPrepare
    and Accept made of it: an acceptor makes a record only of a round its coordinator stated (see
    acceptor.py). Not part of the transaction's identity: two copies of one round are
    equal whether or not, and under which signature, they carry it.

    `created_ms`: when its coordinator began the round (its wall clock, ms), in the
    signed statement too (takeover_grants.round_statement). Part of the identity: the
    acceptors refuse a round past its life by it (acceptor.py). 0: not stated (a
    classic 2PC workflow round, which has no acceptors, or a round of an older
    release): such a round has no life and is never forgotten."""

    workflow_id: str
    round: int
    coordinator: str
    participants: tuple[str, ...]  # sorted
    acceptors: tuple[str, ...]     # sorted; fixed for the life of the transaction
    round_tx: bytes = field(default=b"", compare=False, repr=False)
    created_ms: int = 0

    key = _KeyOnce()  # (workflow_id, round): read some 20 to 30 times a workflow

    @property
    def majority(self) -> int:
        return len(self.acceptors) // 2 + 1


def certifies(tx: TxInfo, value: Value) -> bool:
    """ABORT always; COMMIT when it carries a YES of this round from every participant."""
    if not value.commit:
        return True
    voters = {v.domain for v in value.votes if v.yes and v.round == tx.round}
    return voters >= set(tx.participants)


def check_value(tx: TxInfo, value: Value) -> None:
    if not certifies(tx, value):
        raise RemoteProtocolError(
            f"COMMIT of {tx.workflow_id} round {tx.round} lacks a YES vote of a participant"
        )


def check_tx(tx: TxInfo) -> None:
    """The shape every TxInfo from the wire must have."""
    if tx.round < 1:
        raise RemoteProtocolError("round must be at least 1")
    if not tx.participants or not tx.acceptors:
        raise RemoteProtocolError("a transaction needs participants and acceptors")
    if tx.coordinator not in tx.acceptors:
        raise RemoteProtocolError("acceptors must include the coordinator")
    if not set(tx.participants) <= set(tx.acceptors) and len(tx.acceptors) < 3:
        # A participant that is no acceptor depends on a majority of them: with fewer
        # than three, the coordinator alone (or with one other) would decide for it.
        raise RemoteProtocolError(
            "acceptors must include every participant, or be at least three")
    if not set(tx.participants) <= set(tx.acceptors) \
            and not set(tx.acceptors) <= {tx.coordinator, *tx.participants}:
        # Members that hold no step make up the number only when every participant is
        # an acceptor already (fewer than three): never in place of a participant.
        raise RemoteProtocolError(
            "acceptors that leave a participant out must be the coordinator and participants")
    if list(tx.acceptors) != sorted(set(tx.acceptors)):
        raise RemoteProtocolError("acceptors must be sorted and distinct")


# ---- consensus messages (Paxos) ------------------------------------------------


@dataclass(frozen=True)
class PaxosPrepare:
    """Phase 1a: ask an acceptor to promise `ballot` (never ballot 0)."""

    tx: TxInfo
    ballot: Ballot


@dataclass(frozen=True)
class Promise:
    """Phase 1b: the promise, with what this acceptor accepted before (if anything)."""

    key: Key
    ballot: Ballot
    acceptor: str
    accepted_ballot: Ballot | None
    accepted_value: Value | None


@dataclass(frozen=True)
class Accept:
    """Phase 2a: accept `value` in `ballot`.

    `proposer_accepted`: the proposer, an acceptor of the transaction, has accepted
    `value` in `ballot` itself, durably, before sending this. Signed by the proposer,
    that statement counts at the receiver as the proposer acceptor's Accepted. A
    proposer that is no acceptor (a participant beyond `max_acceptors`) never says so.
    """

    tx: TxInfo
    ballot: Ballot
    value: Value
    proposer_accepted: bool = False


@dataclass(frozen=True)
class Accepted:
    """Phase 2b."""

    key: Key
    ballot: Ballot
    acceptor: str
    value: Value


@dataclass(frozen=True)
class Reject:
    """The acceptor promised a higher ballot; `promised` tells the proposer how high."""

    key: Key
    ballot: Ballot
    acceptor: str
    promised: Ballot


# ---- decisions -------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A decision notice. `chosen`: this value is the transaction's outcome."""

    key: Key
    value: Value
    sender: str
    chosen: bool = True
    # A workflow's own COMMIT sent by its coordinator (the Node's part: placed_here.py,
    # `moved_away`): the steps the round placed on the recipient that are placed
    # elsewhere now, as (step, placement epoch, domain, lost domain) each; taken there
    # as told placements before anything starts. Empty everywhere else.
    moved: tuple[tuple[str, int, str, str], ...] = ()


@dataclass(frozen=True)
class DecisionQuery:
    key: Key
    sender: str
    # The round as the asker holds it (TxInfo.coordinator and created_ms, signed with
    # the round): an acceptor that forgot the round holds them against its horizon of
    # that coordinator's rounds and answers PAST_LIFE (acceptor.py, `past_life`).
    # "" and 0: not stated (a re-placement's question). The question is the same
    # whatever it states: only its key and asker compare.
    coordinator: str = field(default="", compare=False)
    created_ms: int = field(default=0, compare=False)


class AnswerStatus(enum.Enum):
    DECIDED = "decided"            # value holds the decision
    UNKNOWN = "unknown"            # in progress, or in doubt itself
    NOT_PREPARED = "not_prepared"  # never voted YES here (NO voter, or no PREPARE seen)
    FORGOTTEN = "forgotten"        # committed; the certificate was collected (all acked)
    # The round is older than its life here (Acceptor, `round_life_ms`): every ballot of
    # it is refused, and this agent holds no decision of it to tell.
    PAST_LIFE = "past_life"


@dataclass(frozen=True)
class DecisionAnswer:
    key: Key
    sender: str
    status: AnswerStatus
    value: Value | None = None


@dataclass(frozen=True)
class DecisionAck:
    """A participant holds the COMMIT: the coordinator may collect its record."""

    key: Key
    sender: str


ConsensusMessage = PaxosPrepare | Promise | Accept | Accepted | Reject | Decision


# ---- actions shared by the consensus cores --------------------------------------


@dataclass(frozen=True)
class Send:
    to: str
    msg: object


@dataclass(frozen=True)
class PersistProposal:
    """The coordinator's write-once proposal cell (compare-and-set) for one round.

    COMMIT is only ever proposed by the coordinator, and only after this cell
    holds COMMIT; a timeout or presumed abort must set it to ABORT first. Once
    set it never changes, so one coordinator never proposes both values.
    """

    round: int
    value: Value


@dataclass(frozen=True)
class PersistBallot:
    """The highest ballot this proposer used for `key`: durable before its PaxosPrepare.

    A restarted proposer starts above it (pass it back as `floor`), so no ballot
    is ever used twice, with two different values, across a crash.
    """

    key: Key
    ballot: Ballot


@dataclass(frozen=True)
class Learned:
    """A chosen decision this agent learned: persist it, apply it, then send what follows.

    `by_coordinator`: chosen in the coordinator's own ballot (0) and learned from its
    acceptors while this participant still waited within its lease: as fresh as the
    coordinator's own notice. False: learned without the coordinator (a recovery
    ballot, a Decision from an acceptor or another participant, an answer to a query),
    which says nothing of what the coordinator did since (self-fencing,
    agent/core/workflow/self_fencing.py)."""

    key: Key
    value: Value
    tx: TxInfo
    by_coordinator: bool = False
