"""An acceptor that holds no step answers a takeover claim: on what it grants.

Theory of operation
-------------------
Under Paxos Commit the takeover electorate of a workflow is its committed round's
acceptors (agent/core/workflow/takeover.py). An *extra* acceptor holds no step and no
workflow row: what it knows of the workflow is its acceptor records, one per round it
heard of (the round's participants and acceptors, and its decision if learned). It may
have heard of none: its Accept was lost and the coordinator died. It is still a member
of the electorate, and with two domains and the coordinator dead its grant is the one
the surviving participant needs.

A grant must say which committed round and electorate it is counted in (so that it is
evidence in the successor's epoch certificate), and go only to a participant of that
round. So a claim must carry a *proof* (`Round` with `decided` COMMIT): the round as its
original coordinator signed it (participants, acceptors) and a COMMIT decision of that
round with a signed YES of every participant. The shell checks the signatures over the
bytes as received and hands this core the facts, or the reason it refused them
(`proof_error`); this core decides:

    proof refused by the shell                       -> REFUSE (the shell's reason)
    no proof, a record naming this domain            -> REFUSE no_proof (a record is no
                                                        proof: see below)
    no proof, no record naming this domain           -> REFUSE not_committed
    proof not a COMMIT, or this domain not among
      its acceptors                                  -> REFUSE not_committed / not_acceptor
    proof of round r, a record of r that differs
      (participants, acceptors) or decided ABORT,
      or a record of another round decided COMMIT    -> REFUSE proof_disagrees (a lie)
    claimant no participant of the proof's round     -> REFUSE not_participant
    the epoch held here forbids it (may_grant)       -> DENY (answered with what is held)
    otherwise                                        -> GRANT naming the proof's round and
                                                        its acceptors as the electorate

Why a record alone never grants: an acceptor record holds the transaction as its
*proposer* stated it, and a recovery proposer is any participant the transaction names,
as the transaction itself says (the authority table can check no more: the acceptor
holds no step, so it has no PREPARE to compare with). A trusted domain may therefore
send a PaxosPrepare of a round of its own making, naming itself the only participant,
to any acceptor, and the record it leaves would make it a participant of that round.
The proof is the round as the coordinator the workflow id names signed it, which no
participant can forge; the coordinator signs it for every round that has an acceptor
holding no step (agent/runtime/round_proofs.py), so an honest claimant always has one.
A record still serves as what this acceptor accepted or learned: a proof that
contradicts it is refused.

Why a proof must show a COMMIT and not only a round: a participant of a round that
aborted (the workflow committed a later round, without it) holds that round's signed
PREPARE too. Were its grant given, it and the extra acceptor would be a majority of the
aborted round's three acceptors, enough for a certificate a stranger accepts. Only one
round of a workflow commits with acceptors (re-placement rounds are classic 2PC), so a
COMMIT fixes the one electorate every member counts in. The COMMIT decision is a
party's word, as everywhere in fedorch (a full set of YES votes does not prove COMMIT
on its own; the decision's signer vouches for it and its lie is provable).

Why an acceptor's own record wins: it is what it accepted, on its own disk. A proof that
contradicts it is a lie by someone (the claimant, or the coordinator that signed two
rounds with one number) and is refused and counted, never merged.

One grant per epoch is the caller's: `may_grant` over the epoch held in the acceptor's
`takeover_grants` row, written before the answer leaves.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from fedorch.core.workflow.takeover import may_grant

COMMIT = "COMMIT"
ABORT = "ABORT"


@dataclass(frozen=True)
class Round:
    """A Paxos Commit round of one workflow as an acceptor knows it (its record) or as a
    claim proves it (its coordinator's signed round and a COMMIT of it)."""

    round: int
    participants: frozenset[str]
    acceptors: frozenset[str]
    decided: str | None = None  # COMMIT, ABORT, or None (not known)


@dataclass(frozen=True)
class Verdict:
    granted: bool
    reason: str = ""        # a fixed word when refused ("" when granted or denied)
    detail: str = ""
    basis: Round | None = None  # granted: the round and electorate the grant names

    @property
    def refused(self) -> bool:
        return not self.granted and bool(self.reason)


def _refuse(reason: str, detail: str) -> Verdict:
    return Verdict(False, reason, detail)


def acceptor_grant(me: str, claimant: str, epoch: int, held: tuple[int, str],
                   records: Collection[Round], proof: Round | None = None,
                   proof_error: tuple[str, str] | None = None) -> Verdict:
    """May acceptor `me`, holding (`held`) for the workflow and knowing `records` of its
    rounds, grant `epoch` to `claimant`, who showed `proof` (or a proof the shell
    refused: `proof_error` = (reason, detail))? See the table in the module docstring:
    only a proof grants; the records can only refuse one."""
    if proof_error is not None:
        return _refuse(*proof_error)
    if proof is None:
        if any(me in r.acceptors for r in records):
            return _refuse("no_proof", "a grant here needs the round as its coordinator"
                                       " signed it and its COMMIT; a record is no proof")
        return _refuse("not_committed", "the workflow is not committed here")
    if proof.decided != COMMIT:
        return _refuse("not_committed", f"round {proof.round} is not shown committed")
    if me not in proof.acceptors:
        return _refuse("not_acceptor", f"{me} is no acceptor of round {proof.round}")
    for r in records:
        same = r.round == proof.round
        if same and (r.participants != proof.participants
                     or r.acceptors != proof.acceptors or r.decided == ABORT):
            return _refuse("proof_disagrees",
                           f"round {proof.round} differs from the one accepted here")
        if not same and r.decided == COMMIT:
            return _refuse("proof_disagrees", f"round {r.round} committed here, not"
                                              f" round {proof.round}")
    basis = proof
    if claimant not in basis.participants:
        return _refuse("not_participant",
                       f"{claimant} is no participant of round {basis.round}")
    if not may_grant(held[0], held[1], epoch, claimant):
        return Verdict(False)
    return Verdict(True, basis=basis)
