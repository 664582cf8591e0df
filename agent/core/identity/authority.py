"""Authority: who may say what, about what, in which round. One table, pure.

A signature (agent.core.identity.envelope) proves who spoke; it does not make the
speaker right. A trusted domain may send anything it can sign, so every claim is
taken only from the domain with authority over it (the fault model, ARCHITECTURE.md
section 5): a coordinator for its own workflows, a round's acceptors for that round,
a step's domain for that step's result, a domain for its own record and liveness.

`RULES` holds one row per kind of message: the negotiation and progress messages a
Node takes from its peers (agent/core/node/authority.py applies the rows to them), the
key records every envelope may carry (TrustStore.learn), and membership's claims (the
`swim` row; its checks are `record_is_own` and `accusation_in_reach` below).
`authorize(kind, sender, facts)` checks a message against its row with the facts the
receiver has: the message's own fields and what the receiver holds of its transaction,
placement or epoch. A refusal raises `Refused`, whose `reason` is a short fixed word:
it labels `fedorch_rejected_messages_total{reason}`, so the label set stays bounded.

Workflow ids are checked here too, by the one function the client service uses
for ids from clients: `<coordinator domain>.<local part>`, the local part without
dots, so the coordinator an id names is never in doubt (`rpartition(".")` and a
prefix test must agree), and nothing a command executor or a log line could
misread ("../", NUL, newlines) gets through.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import NamedTuple

from fedorch.core.identity.keys import is_valid_domain

# The local part: what Coordination.submit makes (hex), and what tests and the
# simulator use (letters, digits, '_', '-'); never a dot, a slash or a control byte.
_LOCAL_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_WORKFLOW_ID_CHARS = 63 + 1 + 64


class InvalidWorkflowId(ValueError):
    """A workflow id that no coordinator makes; the message says what is wrong."""


# Well-formed ids seen lately: each is checked once, not at every message about it (a
# three-domain workflow's id reaches `authorize` about 16 times at its coordinator).
# Only ids that passed are kept, so a peer sending bad ids fills nothing; the set is
# emptied when full, so it stays bounded (about 2 MB) whatever arrives.
_WELL_FORMED: dict[str, None] = {}
WELL_FORMED_KEPT = 16_384


def check_workflow_id(workflow_id: object) -> str:
    """Return `workflow_id` if well formed, else raise InvalidWorkflowId.

    The one check for ids from clients and from peers alike."""
    if type(workflow_id) is str and workflow_id in _WELL_FORMED:
        return workflow_id
    if not isinstance(workflow_id, str) or not workflow_id:
        raise InvalidWorkflowId("a workflow id is required")
    if len(workflow_id) > MAX_WORKFLOW_ID_CHARS:
        raise InvalidWorkflowId(f"workflow id longer than {MAX_WORKFLOW_ID_CHARS} characters")
    coordinator, dot, local = workflow_id.rpartition(".")
    if not dot or not is_valid_domain(coordinator) or not _LOCAL_ID_RE.fullmatch(local):
        raise InvalidWorkflowId(
            f"invalid workflow id {workflow_id!r}: expected <coordinator domain>.<id>, the id"
            " of 1-64 characters from A-Z, a-z, 0-9, '_', '-'")
    if type(workflow_id) is str:  # not a subclass, whose equality could be its own
        if len(_WELL_FORMED) >= WELL_FORMED_KEPT:
            _WELL_FORMED.clear()
        _WELL_FORMED[workflow_id] = None
    return workflow_id


def coordinator_of(workflow_id: str) -> str:
    """The domain that coordinates a (well-formed) workflow id."""
    return workflow_id.rpartition(".")[0]


class Who(enum.Enum):
    """Who has authority over a kind of message."""

    EPOCH_COORDINATOR = ("the coordinator of the epoch it names: epoch 0 the one its workflow"
                         " id names, a later one the participant that took the workflow over")
    CERTIFIED_COORDINATOR = ("the coordinator its workflow id names, or the coordinator of"
                             " a later epoch proven by its epoch certificate")
    CLAIMANT = ("a participant of the committed workflow, for itself (epoch 0: the"
                " coordinator its workflow id names, asking whether it still holds it)")
    PROPOSER = "the transaction's coordinator or one of its participants"
    ACCEPTOR = "an acceptor of the transaction, in its own name"
    PARTICIPANT = "a participant of the transaction"
    PARTY = "the transaction's coordinator or one of its participants (those asked)"
    STEP_DOMAIN = "the domain the step is placed on, in its own name"
    ANY = "any trusted domain, about its own knowledge only"
    SUBJECT = "the domain a claim is about (accusers: at incarnations it published)"


@dataclass(frozen=True)
class Rule:
    kind: str    # the Body payload field
    who: Who
    about: str   # what the message may concern
    epoch: str   # which round / incarnation it may name


RULES: dict[str, Rule] = {r.kind: r for r in (
    # A successor (coordinator takeover) places lost steps again: its PREPARE carries
    # the epoch certificate (agent/core/workflow/epoch_certificate.py), checked by the
    # participant before anything else of the PREPARE.
    Rule("prepare", Who.CERTIFIED_COORDINATOR,
         "a workflow of the sender's (epoch 0), or one it coordinates in a later epoch by"
         " its certificate, with steps placed on the recipient",
         "round >= 1 in the epoch's own range; a round already decided here is refused"
         " (Participant); a certificate below the epoch held here is refused"),
    # Coordinator takeover (agent/core/workflow/takeover.py): an end comes from the
    # coordinator of the epoch it names; one below the epoch the recipient holds is over.
    Rule("cancel", Who.EPOCH_COORDINATOR, "a workflow the sender coordinates in its epoch",
         "the epoch held here or a later one; an end is final"),
    Rule("takeover_claim", Who.CLAIMANT,
         "a committed workflow the recipient takes part in, the claimant a participant",
         "granted once per epoch (takeover.may_grant); below the held epoch: denied;"
         " epoch 0 only from the original coordinator, answered, never granted anew"),
    Rule("takeover_answer", Who.ANY, "the claim the recipient sent, in the answerer's name",
         "the epoch claimed"),
    # Signed by a party, whoever relays it: a full set of YES votes is no proof that
    # COMMIT was chosen (a recovery ballot may have chosen ABORT over the coordinator's
    # proposal), so an outsider who saw the votes must not announce COMMIT with them.
    Rule("decision_notice", Who.PARTY,
         "a transaction known here, the decision signed by its coordinator or a"
         " participant: COMMIT with a signed YES of every participant; classic 2PC (not"
         " known here): signed and sent by the coordinator", "the round the decision names"),
    Rule("decision_query", Who.ANY, "a well-formed workflow id", "any round"),
    Rule("step_result", Who.STEP_DOMAIN,
         "a step the recipient's placement puts on the sender", "the committed round"),
    Rule("paxos_prepare", Who.PROPOSER, "the transaction of its PREPARE, if known here",
         "a ballot owned by the sender, at most BALLOT_LEAD above the highest held;"
         " ballot 0 is the coordinator's"),
    Rule("paxos_accept", Who.PROPOSER, "the transaction of its PREPARE, if known here",
         "as paxos_prepare; a COMMIT carries its certificate"),
    Rule("paxos_promise", Who.ACCEPTOR, "a transaction whose acceptors include the sender",
         "the ballot it answers"),
    Rule("paxos_accepted", Who.ACCEPTOR, "a transaction whose acceptors include the sender",
         "the ballot it answers"),
    Rule("paxos_reject", Who.ACCEPTOR, "a transaction whose acceptors include the sender",
         "the ballot it answers; a promise at most BALLOT_LEAD above it"),
    Rule("decision_ack", Who.PARTICIPANT, "a transaction the recipient coordinates",
         "the round it acknowledges"),
    Rule("swim", Who.SUBJECT,
         "ALIVE/LEFT claims and domain records by their own domain; SUSPECT/DEAD by any",
         "accusations at most ACCUSATION_LEAD above the incarnation held for the subject"),
    # Key rotation and revocation records ride outside the envelope's signature, relayed
    # by anyone: the "sender" is the domain whose key signed the record. Only a domain's
    # own keys (current or earlier, of its chain) rotate or revoke its key
    # (TrustStore.learn; key_records.derive follows only its own chain).
    Rule("key_record", Who.SUBJECT,
         "a rotation or revocation of the signing domain's own key, signed by keys of its"
         " chain (rotation: old and new; revocation: the key itself or its successor)",
         "a rotation's serial above the one before it in the chain"),
    # Replies: taken only as the answer of the domain asked, and checked as these rows say.
    Rule("vote", Who.PARTICIPANT, "a round the recipient coordinates, in the voter's name",
         "the round asked; a later round's vote is late"),
    Rule("decision_answer", Who.PARTY,
         "a transaction the sender was asked about: a COMMIT with its certificate",
         "the round asked"),
)}


class Refused(Exception):
    """A message whose sender has no authority over what it says."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # a fixed word: the metric's label
        self.detail = detail


class Facts(NamedTuple):
    """What the receiver knows when it checks a message. Fields left empty are not
    known yet (the message's own fields come first, the receiver's state later).

    Immutable, and a named tuple rather than a frozen dataclass: one is built for
    nearly every message a Node steps (core/node/authority.py), and a frozen
    dataclass's __init__ (one object.__setattr__ per field) cost three times as much."""

    workflow_id: str | None = None
    named: str | None = None           # the author the payload names (vote, acceptor, result)
    coordinator: str | None = None     # the coordinator a transaction in the payload names
    acceptors: Collection[str] | None = None     # the transaction as known here
    participants: Collection[str] | None = None  # the transaction as known here
    placed_on: str | None = None       # step results: the step's domain as placed here
    epoch: int | None = None           # the coordinator epoch the message names
    held: tuple[int, str] | None = None  # the epoch and coordinator known here
    # (epoch, coordinator) an epoch certificate the receiver verified proves
    certified: tuple[int, str] | None = None


_NO_FACTS = Facts()


def authorize(kind: str, sender: str, facts: Facts = _NO_FACTS) -> Rule:
    """The rule of `kind` if `sender` may send it with these facts; Refused otherwise."""
    rule = RULES.get(kind)
    if rule is None:
        raise Refused("unknown_kind", f"{kind or 'no payload'} is no peer message")
    wf = facts.workflow_id
    if wf is not None and (type(wf) is not str or wf not in _WELL_FORMED):
        try:
            check_workflow_id(wf)
        except InvalidWorkflowId as e:
            raise Refused("bad_workflow_id", str(e)) from None
    named = facts.named
    if named is not None and named != sender:
        raise Refused("impersonation", f"{sender} sent a {kind} in the name of {named!r}")
    if facts.coordinator is not None and wf is not None \
            and facts.coordinator != coordinator_of(wf):
        raise Refused("foreign_workflow",
                      f"{wf!r} does not belong to coordinator {facts.coordinator!r}")
    _CHECKS[rule.who](kind, sender, facts)
    return rule


def _coordinator(kind: str, sender: str, facts: Facts) -> None:
    if facts.workflow_id is None or coordinator_of(facts.workflow_id) != sender:
        raise Refused("not_coordinator",
                      f"{sender} sent a {kind} about {facts.workflow_id!r}, not its workflow")


def _epoch_coordinator(kind: str, sender: str, facts: Facts) -> None:
    epoch = facts.epoch or 0
    if epoch == 0:
        _coordinator(kind, sender, facts)
    if facts.held is None:
        return  # a later epoch: checked once the recipient has looked the workflow up
    _held_by_sender(kind, sender, facts, epoch)
    if epoch > facts.held[0]:
        _participant(kind, sender, facts)


def _held_by_sender(kind: str, sender: str, facts: Facts, epoch: int) -> None:
    """The epoch the recipient holds is not later than `epoch`, nor held by another."""
    assert facts.held is not None
    held_epoch, holder = facts.held
    if epoch < held_epoch:
        raise Refused("stale_epoch",
                      f"{sender} sent a {kind} of {facts.workflow_id!r} as coordinator of"
                      f" epoch {epoch}; {holder} coordinates it in epoch {held_epoch}")
    if epoch == held_epoch and sender != holder:
        raise Refused("not_coordinator",
                      f"{sender} sent a {kind} of {facts.workflow_id!r} in epoch {epoch},"
                      f" which {holder} holds")


def _certified_coordinator(kind: str, sender: str, facts: Facts) -> None:
    epoch = facts.epoch or 0
    if epoch == 0:
        _coordinator(kind, sender, facts)
        return
    # The original coordinator too: it claims a later epoch past a holder gone in its
    # view (agent/core/workflow/takeover_overtaken.py), and, won, its rounds are that
    # epoch's, proven by its certificate as any holder's are.
    if facts.certified is None:
        return  # a later epoch: checked once the recipient has verified the certificate
    if facts.certified != (epoch, sender):
        raise Refused("not_coordinator",
                      f"{sender} sent a {kind} of {facts.workflow_id!r} in epoch {epoch}; its"
                      f" certificate proves epoch {facts.certified[0]} of"
                      f" {facts.certified[1]}")
    if facts.held is not None:
        _held_by_sender(kind, sender, facts, epoch)


def _claimant(kind: str, sender: str, facts: Facts) -> None:
    if facts.epoch is not None and facts.epoch < 1:
        # Epoch 0 is the original coordinator's: it asks whether it still holds it
        # (before a re-placement round, agent/core/workflow/round_mandate.py); the
        # answer grants nothing new. Anyone else claiming it is stale.
        if facts.workflow_id is not None and sender == coordinator_of(facts.workflow_id):
            return
        raise Refused("stale_epoch", f"{sender} claimed epoch 0 of {facts.workflow_id!r},"
                                     " which is its original coordinator's")
    _participant(kind, sender, facts)


def _proposer(kind: str, sender: str, facts: Facts) -> None:
    coordinator = facts.coordinator or (
        coordinator_of(facts.workflow_id) if facts.workflow_id else None)
    if facts.participants is not None and sender != coordinator \
            and sender not in facts.participants:
        raise Refused("not_proposer",
                      f"{sender} proposes in {facts.workflow_id!r} but takes no part in it")


def _party(kind: str, sender: str, facts: Facts) -> None:
    coordinator = facts.coordinator or (
        coordinator_of(facts.workflow_id) if facts.workflow_id else None)
    if facts.participants is not None and sender != coordinator \
            and sender not in facts.participants:
        raise Refused("not_party",
                      f"{sender} sent a {kind} of {facts.workflow_id!r}, being neither its"
                      " coordinator nor a participant")


def _acceptor(kind: str, sender: str, facts: Facts) -> None:
    if facts.acceptors is not None and sender not in facts.acceptors:
        raise Refused("not_acceptor",
                      f"{sender} answers as an acceptor of {facts.workflow_id!r}, which it"
                      " is not")


def _participant(kind: str, sender: str, facts: Facts) -> None:
    if facts.participants is not None and sender not in facts.participants:
        raise Refused("not_participant",
                      f"{sender} sent a {kind} of {facts.workflow_id!r}, where it takes no part")


def _step_domain(kind: str, sender: str, facts: Facts) -> None:
    if facts.placed_on is not None and facts.placed_on != sender:
        raise Refused("not_step_domain",
                      f"{sender} reported a step of {facts.workflow_id!r} placed on"
                      f" {facts.placed_on!r}")


def _nothing_more(kind: str, sender: str, facts: Facts) -> None:
    pass


_CHECKS = {
    Who.EPOCH_COORDINATOR: _epoch_coordinator,
    Who.CERTIFIED_COORDINATOR: _certified_coordinator,
    Who.CLAIMANT: _claimant,
    Who.PROPOSER: _proposer,
    Who.ACCEPTOR: _acceptor,
    Who.PARTICIPANT: _participant,
    Who.PARTY: _party,
    Who.STEP_DOMAIN: _step_domain,
    Who.ANY: _nothing_more,
    Who.SUBJECT: _nothing_more,  # per claim: see record_is_own and accusation_in_reach
}


# ---- membership claims --------------------------------------------------------------

# How far above the incarnation this member holds for a subject an accusation (SUSPECT,
# DEAD, signed by another member) may name. Only the subject raises its incarnation
# (a refutation, a new record, a restart); an honest accuser names the one it holds,
# which may be a few ahead of ours (a refutation or record we have not heard yet).
# Without a bound one signed DEAD at the top of the range leaves the subject nothing
# to refute with (its refutation must be higher, and the range is exhausted), and it
# is dead everywhere for good. With it a liar moves the subject at most this far per
# message the subject must answer: 2**63 / 1024 messages, never exhausted. A restarted
# subject (its incarnation jumps to the clock) is accused at the old value until its
# new ALIVE claim arrives; our own probes cover the gap.
ACCUSATION_LEAD = 1024


def accusation_in_reach(incarnation: int, held: int | None) -> bool:
    """May an accusation at `incarnation` be believed about a member held at `held`
    (None: not known here; its own ALIVE claim comes first, so none is believed)?"""
    return held is not None and incarnation <= held + ACCUSATION_LEAD


def record_is_own(subject: str, record_domain: str) -> bool:
    """A domain record is believed only as its own domain's: the claim that carries it
    is signed by `subject`, so the record must name `subject` and no other domain."""
    return record_domain == subject


# How far above the highest ballot an acceptor holds for a transaction (promised or
# accepted; 0 for none) a proposer's ballot may be, and how far above its own ballot
# a proposer believes an acceptor's promise. An honest proposer goes one above the
# highest it has seen, so ballots climb in small steps. Without a bound one PaxosPrepare
# at the top of the uint64 range leaves no higher ballot for anyone: that transaction
# could never be decided again by a recovery ballot.
BALLOT_LEAD = 1024


def ballot_in_reach(n: int, held: int) -> bool:
    """May a ballot `n` be taken where the highest ballot held is `held`?"""
    return 0 <= n <= held + BALLOT_LEAD
