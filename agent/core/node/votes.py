"""Votes in the Node: signed once per turn over a Merkle root; a NO by the spec's constraints.

Theory of operation
-------------------
A COMMIT is believed only with a YES of every participant (its certificate). For the
certificate to be evidence, and not its holder's word, each YES is signed by its voter:
a coordinator, acceptor or claimant that lies can show only the votes the voters made,
and no domain can speak for another (a vote signed by one domain names that domain).

A vote's statement is canonical bytes naming what it says, one encoding per fact:

    ["vote", workflow, round, domain, yes]

Signing each vote alone would cost a signature per vote and a verification per vote
and per agent that sees the certificate (every acceptor, every participant). So the
Node signs once per turn (`seal`, called as its Ready is handed out): the YES votes
the turn made are the leaves of a Merkle tree (SHA-256; a leaf is hashed after 0x00,
an inner node after 0x01, so neither can pass for the other; an odd node at a level
goes up unchanged), and its root is signed through the Node's signer port, after
VOTE_CONTEXT (so a root's signature is never an envelope, a grant or a stated round).
A vote's evidence (`VoteIn.raw`, `VoteMsg.evidence`) is then

    statement length (2 bytes, big-endian) | statement
    | path length (1 byte) | per step: side (1 byte, 0: sibling on the left) + hash (32)
    | the root's signature (the rest)

`holds` checks evidence over the bytes as received: the statement must be the one the
vote claims (workflow, round, domain, yes), the path leads from its leaf to a root, and
the root's signature verifies as the named domain's through the verifier port (the
daemon's trust store: an untrusted or revoked domain's signature counts for nothing; it
also remembers what it verified, so a root shared by many votes is verified once per
agent). Nothing is re-serialised: the facts are compared with the bytes carried.

Other statements, the same way (audit evidence, docs/audit.md). A domain that runs a
step signs its final result as a statement of its own, batched like votes (the results
of one driver turn are the leaves of one tree, one signature), and a coordinator signs
its audit attestations (a workflow's submission and end) per audit batch:

    ["result", workflow, step, attempt, state, outputs sha256, placement epoch, domain]
    {"kind": "submission" | "final", "workflow": ..., "domain": ...}  (canonical JSON)

Their roots are signed after STATEMENT_CONTEXT, not VOTE_CONTEXT: a root of votes is
never a root of statements, and the reverse, so a vote can never be shown as a result
or an attestation (nor one of these as a vote), whatever its bytes. `seal_statements`
makes their evidence (the layout above), `statement_holds` checks it over the bytes as
received against the statement expected, `carried` reads the statement carried (for a
checker that learns the facts from it, such as a proof's).

Ports: `sign(data) -> signature` (this domain's key) and `verify(domain, data,
signature) -> bool`. A Node given none uses `stand_in_signer(name)` and
`stand_in_verify`: keyed digests whose key is derived from the domain's name, which the
unit tests and the simulator give only to that domain's Node (so a liar given its own
cannot make another's); they are no secret, and the daemon never uses them.

What a participant votes NO on before its policy weighs a PREPARE: the steps asked of
it that their own spec forbids here (`constraints_refusal`). The spec is the
submitter's (signed, and checked as such before: the admit hook), the placement only
its coordinator's word: a step whose `constraints.domains` leave this domain out, or
whose `constraints.labels` this domain's labels (as the Node holds them now: set at
construction and by each `reconfigure`) do not match, gets a NO that says which and
why, in the shells' words ("invalid PREPARE: constraints: ..."). A NO, not a refusal
of the message: the coordinator aborts the round at once, excludes this domain for
those steps and places them again (or ends the workflow ABORTED naming the reason),
where without a vote its round would wait out its timeout and learn nothing. It is
the participant's to say: a coordinator that lies, or one that placed on an old
record of ours (labels changed since), is told the same. It is voted like the
policy's NO (participant.py `reserve`'s `refusal`): a round refused stays refused
when its PREPARE comes again, and a round already voted YES keeps its YES. Faults of
the evidence itself (a spec not signed by its submitter, one replayed under another
workflow id, one signed for another coordinator) stay refusals with no vote: nothing
is said to a coordinator that relays a forgery, and the reason of a replay, which
names another workflow, is not told to it.

Pure: hashing only; the signer and the verifier are passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence

from fedorch.core.negotiation.messages import Key
from fedorch.core.workflow.constraints import constraint_refusal
from fedorch.gen.fedorch.v1 import spec_pb2

__all__ = ["STATEMENT_CONTEXT", "VOTE_CONTEXT", "Votes", "carried", "constraints_refusal",
           "evidence_holds", "result_statement", "seal_statements", "seal_votes",
           "stand_in_signer", "stand_in_verify", "statement_holds", "vote_statement"]

VOTE_CONTEXT = b"fedorch/v1 node vote root\x00"
STATEMENT_CONTEXT = b"fedorch/v1 node statement root\x00"
MAX_STATEMENT = 0xFFFF  # its length is carried in 2 bytes

Signer = Callable[[bytes], bytes]
Verifier = Callable[[str, bytes, bytes], bool]

_LEAF, _INNER = b"\x00", b"\x01"
MAX_PATH = 40  # a tree of up to 2**40 votes: far beyond any turn


_string = json.encoder.encode_basestring  # a JSON string, as json.dumps writes it


def vote_statement(key: Key, domain: str, yes: bool) -> bytes:
    """The bytes a vote states (one encoding per fact): the canonical JSON array
    `["vote",workflow,round,domain,yes]` (json.dumps's, compact, not ASCII-escaped),
    written directly: it is made for every vote checked."""
    return (f'["vote",{_string(key[0])},{int(key[1])},{_string(domain)},'
            f'{"true" if yes else "false"}]').encode("utf-8", "surrogatepass")


def result_statement(workflow: str, step: str, attempt: int, state: str,
                     outputs_sha256: str, epoch: int, domain: str) -> bytes:
    """The bytes a final result states: the canonical JSON array `["result",workflow,
    step,attempt,state,outputs_sha256,epoch,domain]` (`domain`: the one that ran it;
    `epoch`: the placement it ran under), written directly like a vote's."""
    return (f'["result",{_string(workflow)},{_string(step)},{int(attempt)},'
            f'{_string(state)},{_string(outputs_sha256)},{int(epoch)},'
            f'{_string(domain)}]').encode("utf-8", "surrogatepass")


def _leaf(statement: bytes) -> bytes:
    return hashlib.sha256(_LEAF + statement).digest()


def _inner(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_INNER + left + right).digest()


def seal_votes(sign: Signer, statements: list[bytes]) -> list[bytes]:
    """The evidence of each vote statement (in order): one signature over their tree's
    root, after VOTE_CONTEXT."""
    return _seal(sign, VOTE_CONTEXT, statements)


def seal_statements(sign: Signer, statements: list[bytes]) -> list[bytes]:
    """The evidence of each other statement (results, attestations; in order): one
    signature over their tree's root, after STATEMENT_CONTEXT."""
    return _seal(sign, STATEMENT_CONTEXT, statements)


def _seal(sign: Signer, context: bytes, statements: list[bytes]) -> list[bytes]:
    if any(len(s) > MAX_STATEMENT for s in statements):
        raise ValueError("a statement longer than its 2-byte length can say")
    level = [_leaf(s) for s in statements]
    paths: list[list[bytes]] = [[] for _ in statements]
    at = list(range(len(statements)))  # each statement's index at the current level
    while len(level) > 1:
        up = [_inner(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            up.append(level[-1])  # an odd node goes up unchanged
        for s, i in enumerate(at):
            sibling = i ^ 1
            if sibling < len(level):
                side = b"\x00" if sibling < i else b"\x01"
                paths[s].append(side + level[sibling])
            at[s] = i // 2
        level = up
    signature = sign(context + level[0]) if level else b""
    return [len(s).to_bytes(2, "big") + s + bytes([len(p)]) + b"".join(p) + signature
            for s, p in zip(statements, paths, strict=True)]


def _root_of(raw: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(statement, root, signature) of evidence as carried; None if it is none."""
    if not isinstance(raw, bytes) or len(raw) < 3:
        return None
    n = int.from_bytes(raw[:2], "big")
    statement = raw[2:2 + n]
    at = 2 + n
    if len(statement) != n or len(raw) <= at:
        return None
    steps = raw[at]
    at += 1
    if steps > MAX_PATH or len(raw) < at + 33 * steps:
        return None
    sha256 = hashlib.sha256  # _leaf and _inner inlined: every vote checked walks its path
    node = sha256(_LEAF + statement).digest()
    for _ in range(steps):
        side, sibling = raw[at], raw[at + 1:at + 33]
        if side == 0:
            node = sha256(_INNER + sibling + node).digest()
        elif side == 1:
            node = sha256(_INNER + node + sibling).digest()
        else:
            return None
        at += 33
    return statement, node, raw[at:]


def evidence_holds(verify: Verifier, key: Key, domain: str, yes: bool, raw: bytes) -> bool:
    """`raw` is `domain`'s signed vote `yes` in round `key` (see the header)."""
    parts = _root_of(raw)
    if parts is None:
        return False
    statement, root, signature = parts
    if statement != vote_statement(key, domain, yes):
        return False
    try:
        return bool(verify(domain, VOTE_CONTEXT + root, signature))
    except Exception:  # a port's junk-argument failure: no vote
        return False


def carried(raw: object) -> bytes | None:
    """The statement `raw` carries, unchecked (None if `raw` is no evidence): a checker
    reads the facts from it, then checks it with `statement_holds`."""
    parts = _root_of(raw) if isinstance(raw, bytes) else None
    return parts[0] if parts is not None else None


def statement_holds(verify: Verifier, domain: str, statement: bytes, raw: bytes) -> bool:
    """`raw` is `domain`'s signed `statement` (a result or an attestation: signed after
    STATEMENT_CONTEXT), checked over the bytes as received."""
    parts = _root_of(raw)
    if parts is None or parts[0] != statement:
        return False
    try:
        return bool(verify(domain, STATEMENT_CONTEXT + parts[1], parts[2]))
    except Exception:  # a port's junk-argument failure: no statement
        return False


def constraints_refusal(domain: str, labels: Mapping[str, str], spec: spec_pb2.WorkflowSpec,
                        steps: Sequence[tuple[str, str]]) -> str:
    """Why `domain`, labelled `labels`, votes NO to a PREPARE asking it for `steps`
    ((step, capability) pairs) of `spec`: the first asked step, in the order asked,
    whose own constraints leave it out (see the header); "" when none does. A step the
    spec lacks is not judged here."""
    by_id = {s.id: s for s in spec.steps}
    for step_id, _ in steps:
        step = by_id.get(step_id)
        if step is not None and (why := constraint_refusal(step, domain, labels)):
            return f"invalid PREPARE: {why}"
    return ""


def _stand_in_key(name: str) -> bytes:
    return hashlib.sha256(b"fedorch node vote stand-in key\x00" + name.encode()).digest()


def stand_in_signer(name: str) -> Signer:
    """`name`'s stand-in signer (see the header): given to that domain's Node only."""
    key = _stand_in_key(name)
    return lambda data: hmac.new(key, data, hashlib.sha256).digest()


def stand_in_verify(domain: str, data: bytes, signature: bytes) -> bool:
    expected = hmac.new(_stand_in_key(domain), data, hashlib.sha256).digest()
    return isinstance(signature, bytes) and hmac.compare_digest(expected, signature)


class Votes:
    """A Node's vote port: signs the YES votes of each turn, checks others' evidence."""

    def __init__(self, name: str, sign: Signer | None, verify: Verifier | None) -> None:
        self.name = name
        self.sign = sign if sign is not None else stand_in_signer(name)
        self.verify = verify if verify is not None else stand_in_verify

    def holds(self, key: Key, domain: str, yes: bool, raw: bytes) -> bool:
        return evidence_holds(self.verify, key, domain, yes, raw)

    def seal(self, key_votes: list[tuple[Key, bool]]) -> list[bytes]:
        """Evidence for this domain's votes of one turn (one signature)."""
        return seal_votes(self.sign, [vote_statement(k, self.name, y) for k, y in key_votes])
