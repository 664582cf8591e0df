"""Signed takeover grants and the epoch certificates made of them, in the Node.

Theory of operation
-------------------
A claimant of coordinator epoch e acts only once a majority of the workflow's
electorate granted e to it (agent/core/workflow/takeover.py). Others must be able to
check that it did, from what arrives, without trusting the claimant: a member that
follows a proven winner, a denial that relays a winner's proof, an end notice that
overrides a lost claim (takeover.py, takeover_claims.py). So every grant the Node gives
is a small signed statement (`SignedGrant`):

    granter, workflow, epoch, holder, electorate

made through the signer port the Node is given (`GrantSigner`: a callable over the
statement's bytes; the daemon signs with its domain's Ed25519 key, runtime/node_engine/
evidence.py; the simulator with a fake only the granting agent can make,
sim/negotiation/takeover.py). It travels in the grant's answer (`ClaimAnswerMsg.grant`).
The claimant keeps the grants of the epoch it claims (`Collected`, in memory: a claim
of a restarted claimant is granted again, the grants being the same statement); once
it acts, its certificate (`Certificate`, the grants of that epoch, its own included)
is written in the `certificates` table with its Act, so a restarted successor shows it
again, and is carried by its claims, its denials and its end notices (`won`).

The statement is a canonical JSON array with a context prefix of its own, so it can
never be mistaken for an envelope body, a SWIM claim or another statement; the
signature is over the bytes as carried, and the facts are read back from those same
bytes (`parse`), never from the carrier's word.

`check` accepts a certificate for (workflow, epoch, holder) only when:
1. each grant's signature verifies as its named granter's (the verifier port: the
   daemon's trust store, so an untrusted or revoked key signs nothing), and its
   statement names this workflow, epoch and holder, and that granter;
2. every grant names the same electorate, which holds the original coordinator (the one
   the id names). Not necessarily the holder: a participant beyond `max_acceptors` is
   no elector, yet may claim and win on the electors' grants (core/workflow/takeover.py);
   its certificate must prove it like any other, or its end notices would replace no
   told end kept elsewhere (told_ends.py; takeover soak seed 8450680). Nothing is lost
   by it: what makes a certificate is (4), a majority of the electorate's own grants
   naming that holder, which no one but those electors can sign;
3. where the checker knows the electorate itself (it takes part in the workflow), it is
   that one;
4. the distinct granters that are members of it are a majority of it.
A trusted domain that lies can sign only its own grants: it cannot make another domain's
(1), nor count a domain outside the electorate (4), nor shrink the electorate where the
checker knows it (3); elsewhere the electorate must still hold the original coordinator
and a majority of honest members' grants naming it (2, 4).
The holder need not be a member, for any checker: a participant beyond
`max_acceptors` claims and wins on a majority of the members' grants, its own not
counted (agent/core/workflow/takeover.py), and each member grants an epoch once, so
such a certificate proves the epoch won whoever holds it. Refused, a rival claimant of
that epoch never followed the winner and both drove the workflow's saga (takeover soak
seed 8302142), and a candidate new to the workflow refused the winner's PREPARE of a
step placed again. Asking membership of the holder bought nothing: with the electorate
holding the original coordinator, a majority of it needs a signer other than one liar
unless the original is that liar, who could then name an electorate of itself alone
either way.

A round proof (`check_round`, an acceptor holding no step shown the committed round)
is the original coordinator's signed round and its COMMIT's certificate, a signed YES
of every participant of that round (`check_commit`, over core/node/votes.py's
evidence, verified with the same verifier).

Pure: no I/O, no keys; the signer and the verifier are passed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass

from fedorch.core.negotiation.messages import VoteIn
from fedorch.core.node.votes import evidence_holds
from fedorch.core.workflow.acceptor_grant import Round
from fedorch.core.workflow.takeover_events import majority

__all__ = ["GRANT_CONTEXT", "ROUND_CONTEXT", "Certificate", "Collected", "GrantFacts",
           "GrantSigner", "GrantVerifier", "SignedEvidence", "SignedGrant", "StatedRound",
           "check", "check_commit", "check_round", "parse", "round_statement", "sign_grant",
           "sign_round", "statement", "stated_created_ms"]

GRANT_CONTEXT = b"fedorch/v1 node takeover grant\x00"

# signer's statement -> signature; (granter, statement, signature) -> valid.
GrantSigner = Callable[[bytes], bytes]
GrantVerifier = Callable[[str, bytes, bytes], bool]


@dataclass(frozen=True)
class SignedGrant:
    """One member's grant of an epoch, as it signed it (`statement`: the bytes signed,
    after GRANT_CONTEXT)."""

    granter: str
    statement: bytes
    signature: bytes


# A winner's proof: the grants of its epoch (a majority of the electorate among them).
Certificate = tuple[SignedGrant, ...]


@dataclass(frozen=True)
class GrantFacts:
    granter: str
    workflow_id: str
    epoch: int
    holder: str
    electorate: tuple[str, ...]  # sorted, no repeats


def statement(granter: str, workflow_id: str, epoch: int, holder: str,
              electorate: Collection[str]) -> bytes:
    """The bytes a grant signs (after GRANT_CONTEXT): canonical, one encoding per fact."""
    return json.dumps(["grant", granter, workflow_id, epoch, holder,
                       sorted(set(electorate))],
                      separators=(",", ":"), ensure_ascii=False).encode()


def parse(raw: bytes) -> GrantFacts | None:
    """The facts of a statement; None if the bytes are not one (or not canonical)."""
    try:
        v = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(v, list) or len(v) != 6 or v[0] != "grant":
        return None
    _, granter, wf, epoch, holder, electorate = v
    if not (isinstance(granter, str) and isinstance(wf, str) and isinstance(holder, str)
            and type(epoch) is int and isinstance(electorate, list)
            and all(isinstance(e, str) for e in electorate)):
        return None
    facts = GrantFacts(granter, wf, epoch, holder, tuple(electorate))
    if statement(granter, wf, epoch, holder, electorate) != raw:
        return None  # one encoding per fact: no second spelling of one grant
    return facts


def sign_grant(sign: GrantSigner, granter: str, workflow_id: str, epoch: int,
               holder: str, electorate: Collection[str]) -> SignedGrant:
    raw = statement(granter, workflow_id, epoch, holder, electorate)
    return SignedGrant(granter, raw, sign(GRANT_CONTEXT + raw))


def check(cert: Certificate, verify: GrantVerifier, *, workflow_id: str, epoch: int,
          holder: str, known: Collection[str] | None = None) -> str | None:
    """Why `cert` does not prove that `holder` won `epoch` of `workflow_id`; None if it
    does (see the header). `known`: the electorate as the checker holds it, if it does."""
    if epoch < 1:
        return "a takeover's epoch is 1 or more"
    if not isinstance(cert, tuple) or not cert:
        return "no grant"
    original = workflow_id.rpartition(".")[0]
    named: tuple[str, ...] | None = None
    granters: set[str] = set()
    for g in cert:
        if not isinstance(g, SignedGrant) or not isinstance(g.statement, bytes) \
                or not isinstance(g.signature, bytes) or not isinstance(g.granter, str):
            return "not a signed grant"
        facts = parse(g.statement)
        if facts is None:
            return f"{g.granter}'s grant is no grant statement"
        if (facts.granter, facts.workflow_id, facts.epoch, facts.holder) \
                != (g.granter, workflow_id, epoch, holder):
            return f"{g.granter}'s grant is of another workflow, epoch, holder or granter"
        if not verify(g.granter, GRANT_CONTEXT + g.statement, g.signature):
            return f"{g.granter}'s grant: the signature does not verify"
        if named is None:
            named = facts.electorate
        elif named != facts.electorate:
            return "the grants name different electorates"
        granters.add(g.granter)
    assert named is not None
    electorate = frozenset(named)
    if original not in electorate:
        return (f"the electorate {sorted(electorate)} lacks the original coordinator"
                f" {original}")
    if known is not None and frozenset(known) and frozenset(known) != electorate:
        return (f"the grants name the electorate {sorted(electorate)}; here it is"
                f" {sorted(known or ())}")
    voters = granters & electorate
    if len(voters) < majority(electorate):
        return (f"{len(voters)} grant(s) of {len(electorate)} electors; a majority is"
                f" {majority(electorate)}")
    return None


ROUND_CONTEXT = b"fedorch/v1 node stated round\x00"


@dataclass(frozen=True)
class StatedRound:
    """A round as its coordinator stated it, signed (`statement`: the bytes signed,
    after ROUND_CONTEXT): what shows an acceptor that holds no step which round
    committed (acceptor_grant.py), made for a round with such an acceptor."""

    coordinator: str
    statement: bytes
    signature: bytes


def round_statement(workflow_id: str, round_: int, coordinator: str,
                    participants: Collection[str], acceptors: Collection[str],
                    created_ms: int = 0) -> bytes:
    """The bytes a round's signature signs (after ROUND_CONTEXT). `created_ms`: the
    round's creation time, its coordinator's wall ms (TxInfo.created_ms), by which every
    acceptor refuses the round past its life (acceptor.py); a round stated without one
    (0) has the six elements it had before."""
    facts: list = ["round", workflow_id, round_, coordinator, sorted(set(participants)),
                   sorted(set(acceptors))]
    if created_ms:
        facts.append(created_ms)
    return json.dumps(facts, separators=(",", ":"), ensure_ascii=False).encode()


def stated_created_ms(raw: bytes) -> int:
    """The creation time a round statement states (0: none, or no statement)."""
    try:
        v = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return 0
    if isinstance(v, list) and len(v) == 7 and type(v[6]) is int and v[6] > 0:
        return v[6]
    return 0


def sign_round(sign: GrantSigner, workflow_id: str, round_: int, coordinator: str,
               participants: Collection[str], acceptors: Collection[str],
               created_ms: int = 0) -> StatedRound:
    raw = round_statement(workflow_id, round_, coordinator, participants, acceptors,
                          created_ms)
    return sign_statement(sign, coordinator, raw)


def sign_statement(sign: GrantSigner, coordinator: str, raw: bytes) -> StatedRound:
    """A round statement already built (`round_statement`) signed as `sign_round` does:
    the PREPARE's path builds it once to compare, and signs that (takeover_proofs.py)."""
    return StatedRound(coordinator, raw, sign(ROUND_CONTEXT + raw))


def check_round(stated: StatedRound | None, verify: GrantVerifier, *, workflow_id: str,
                proof: Round) -> str | None:
    """Why `stated` does not show `proof`'s round as the original coordinator (the one
    the id names) signed it; None if it does, and the proof says COMMIT."""
    if proof.decided != "COMMIT":
        return f"round {proof.round} is not shown committed"
    if not isinstance(stated, StatedRound) or not isinstance(stated.statement, bytes) \
            or not isinstance(stated.signature, bytes):
        return "no signed round"
    original = workflow_id.rpartition(".")[0]
    expected = round_statement(workflow_id, proof.round, original, proof.participants,
                               proof.acceptors, stated_created_ms(stated.statement))
    if stated.coordinator != original or stated.statement != expected:
        return f"the signed round is not round {proof.round} of {workflow_id} as shown"
    if not verify(original, ROUND_CONTEXT + stated.statement, stated.signature):
        return f"the signed round: {original}'s signature does not verify"
    return None


def check_commit(commit: tuple[VoteIn, ...], verify: GrantVerifier, *, workflow_id: str,
                 proof: Round) -> str | None:
    """Why `commit` is not a COMMIT certificate of `proof`'s round (a signed YES of that
    round from each of its participants, core/node/votes.py); None if it is. A vote
    that does not verify as its named voter's refuses the whole proof."""
    if not isinstance(commit, tuple) or not commit:
        return f"the COMMIT of round {proof.round} is shown without its certificate"
    key = (workflow_id, proof.round)
    yes = set()
    for v in commit:
        if not isinstance(v, VoteIn) or v.round != proof.round \
                or not evidence_holds(verify, key, v.domain, v.yes, v.raw):
            return f"a vote in the COMMIT of round {proof.round} that is not its voter's"
        if v.yes:
            yes.add(v.domain)
    if not proof.participants <= yes:
        return (f"the COMMIT of round {proof.round} lacks a signed YES of"
                f" {sorted(proof.participants - yes)}")
    return None


class Collected:
    """The grants a claimant received for the epoch it claims, per workflow (memory)."""

    def __init__(self) -> None:
        self._by_wf: dict[str, tuple[int, dict[str, SignedGrant]]] = {}

    def add(self, wf: str, epoch: int, grant: SignedGrant) -> None:
        held = self._by_wf.get(wf)
        if held is None or held[0] < epoch:
            held = (epoch, {})
            self._by_wf[wf] = held
        if held[0] == epoch:
            held[1][grant.granter] = grant

    def of(self, wf: str, epoch: int) -> dict[str, SignedGrant]:
        held = self._by_wf.get(wf)
        return dict(held[1]) if held is not None and held[0] == epoch else {}

    def forget(self, wf: str) -> None:
        self._by_wf.pop(wf, None)

    def reset(self) -> None:
        self._by_wf = {}


class SignedEvidence:
    """The takeover part's evidence port (takeover.TakeoverEvidence) over signed
    statements: `verify` checks one signature (the daemon's trust store, the simulator's
    fake keys), a grant's, a signed round's or a vote root's; `commit_known`, what more
    a round proof must meet beyond its signed round and its COMMIT's signed votes (a
    test's hook; None: nothing more, as in the daemon and the simulator)."""

    def __init__(self, verify: GrantVerifier,
                 commit_known: Callable[[str, Round], bool] | None = None) -> None:
        self.verify = verify
        self.commit_known = commit_known
        self.last_refusal: str | None = None  # why the last certificate refused was

    def certificate_holds(self, wf: str, epoch: int, coordinator: str,
                          certificate: Certificate,
                          electorate: frozenset[str] | None) -> bool:
        why = check(certificate, self.verify, workflow_id=wf, epoch=epoch,
                    holder=coordinator, known=electorate)
        if why is not None:
            self.last_refusal = why
        return why is None

    def grant_holds(self, grant: SignedGrant) -> bool:
        return self.verify(grant.granter, GRANT_CONTEXT + grant.statement, grant.signature)

    def round_signed(self, stated: StatedRound) -> bool:
        """`stated` is signed by the coordinator it names, over its statement as carried
        (an acceptor's check of a round before its first record of it)."""
        return self.verify(stated.coordinator, ROUND_CONTEXT + stated.statement,
                           stated.signature)

    def round_proof_holds(self, wf: str, proof: Round, stated: StatedRound | None,
                          commit: tuple[VoteIn, ...] = ()) -> bool:
        """The proof's round is one the original coordinator signed (`stated`: its
        signed statement of the round, verified over the bytes as carried, naming the
        proof's participants and acceptors), shown COMMIT with its certificate
        (`commit`: a signed YES of that round from every participant it names, each
        checked as its voter's through `verify`, core/node/votes.py; see
        check_commit), and `commit_known` if set."""
        why = check_round(stated, self.verify, workflow_id=wf, proof=proof) \
            or check_commit(commit, self.verify, workflow_id=wf, proof=proof)
        if why is not None:
            self.last_refusal = why
            return False
        return self.commit_known is None or self.commit_known(wf, proof)
