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
      or a record of a later round decided COMMIT    -> REFUSE proof_disagrees (a lie)
    claimant no participant of the proof's round,
      nor the workflow's original coordinator        -> REFUSE not_participant
    the epoch held here forbids it (may_grant)       -> DENY (answered with what is held)
    otherwise                                        -> GRANT naming the proof's round and
                                                        its acceptors as the electorate
      ... with a record of an earlier round decided
      COMMIT                                         -> GRANT as above, reason
                                                        commit_outranked naming the round
                                                        (the record is the lie: below)

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

Why a "COMMIT" of an earlier round does not win (`commit_outranked`): the coordinator
signs round r2 only once every earlier round r1 < r2 of the workflow can never commit.
It starts r1 + 1 from two places alone (agent/core/negotiation/coordinator.py): a NO or
the deadline in PREPARING, where its write-once proposal cell of r1 is set to ABORT
first (the cell holds COMMIT only from the all-YES that moves it to DECIDING, and no
Accept of COMMIT leaves before it); or ABORT chosen by r1's acceptors in DECIDING. In
either case COMMIT can never be chosen in r1: only the coordinator proposes COMMIT at
ballot 0, a recovery proposer proposes it only when an acceptor accepted it, and none
did, or Paxos chose ABORT. The cell and the decision are on disk before r1 + 1's
PREPARE (and its signed round) is sent, and a restarted coordinator finishes only its
recorded round and starts none (coordinator_recovery), so a restart does not break
it. Round numbers are not reused (re-placement rounds come after the committed one,
are classic 2PC with no acceptors and carry no signed round). Every signed round and
every record is of the original coordinator, epoch 0: the authority table takes a
signed round, and a PaxosPrepare or Accept, only as the coordinator the workflow id
names states it (successors run classic rounds only). So no honest history holds a
COMMIT of r1 beside a signed r2 > r1: a record of r1 learned COMMIT beside a verified
proof of r2 is a lie, either by whoever made the "COMMIT" (the usual one: a domain that
was r1's only participant holds r1's true signed round and its own YES, so it can make
an acceptor that missed r1's ABORT record r1 and learn COMMIT of it from its signed
Decision), or by the coordinator itself (it signed r2 after r1 committed: a lie about
its own workflow, the only work it can harm). The coordinator's signed later round
outranks it: the grant is given, and the verdict says
`commit_outranked` with the rounds, for the shell to log and count as a contradiction
of the coordinator's own signed word, distinct from `proof_disagrees`. The records that
can outrank nothing still refuse: a COMMIT of the proof's own round that disagrees (two
electorates, one number: the coordinator's lie or the claimant's), and a COMMIT of a
later round (the proof's round is then the earlier one, which never committed: a
participant of an aborted round showing its true signed round and a "COMMIT" of its
own is the lie this refusal catches).
What it costs in safety, exactly: the verdict is the one this rule gives with those
earlier COMMIT records removed, which is what an acceptor that never heard of those
rounds answers, a state messages being lost can put any acceptor in; so the grant goes
through in no case that an acceptor having missed a round would not grant already.

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


# Granted over a record of an earlier round learned COMMIT: the coordinator's signed
# later round outranks it (the module docstring). A grant's reason, never a refusal's.
COMMIT_OUTRANKED = "commit_outranked"


@dataclass(frozen=True)
class Verdict:
    granted: bool
    # A fixed word: why refused; when granted, COMMIT_OUTRANKED or "" (denied: "").
    reason: str = ""
    detail: str = ""
    basis: Round | None = None  # granted: the round and electorate the grant names

    @property
    def refused(self) -> bool:
        return not self.granted and bool(self.reason)

    @property
    def outranked(self) -> bool:
        """Granted over a record that contradicts the coordinator's signed word: to be
        logged and counted by its reason, like a refusal, though the grant stands."""
        return self.granted and self.reason == COMMIT_OUTRANKED


def _refuse(reason: str, detail: str) -> Verdict:
    return Verdict(False, reason, detail)


def acceptor_grant(me: str, claimant: str, epoch: int, held: tuple[int, str],
                   records: Collection[Round], proof: Round | None = None,
                   proof_error: tuple[str, str] | None = None,
                   original: str = "") -> Verdict:
    """May acceptor `me`, holding (`held`) for the workflow and knowing `records` of its
    rounds, grant `epoch` to `claimant`, who showed `proof` (or a proof the shell
    refused: `proof_error` = (reason, detail))? See the table in the module docstring:
    only a proof grants; the records can only refuse one, but a COMMIT of an earlier
    round the proof outranks (granted all the same, reason COMMIT_OUTRANKED).
    `original`: the workflow's original coordinator (its id names it), which signed the
    round and may claim past a later epoch's gone holder (takeover_overtaken.py)."""
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
    outranked = []
    for r in records:
        if r.round == proof.round:
            if r.participants != proof.participants or r.acceptors != proof.acceptors \
                    or r.decided == ABORT:
                return _refuse("proof_disagrees",
                               f"round {proof.round} differs from the one accepted here")
        elif r.decided == COMMIT:
            if r.round > proof.round:
                return _refuse("proof_disagrees", f"round {r.round} committed here, not"
                                                  f" round {proof.round}")
            outranked.append(r.round)
    basis = proof
    if claimant not in basis.participants and (not original or claimant != original):
        return _refuse("not_participant",
                       f"{claimant} is no participant of round {basis.round}")
    if not may_grant(held[0], held[1], epoch, claimant):
        return Verdict(False)
    if outranked:
        rounds = ", ".join(str(r) for r in sorted(outranked))
        return Verdict(True, COMMIT_OUTRANKED,
                       f"round(s) {rounds} learned COMMIT here, yet the coordinator signed"
                       f" round {proof.round} and it committed: a coordinator starts a"
                       f" round only once the earlier ones can no longer commit, so the"
                       f" COMMIT learned here is a lie", basis)
    return Verdict(True, basis=basis)
