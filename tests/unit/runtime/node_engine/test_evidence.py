"""The node engine's takeover evidence (runtime/node_engine/evidence.py): grants signed
with real Ed25519 domain keys and checked with the trust store; a true certificate
holds, a forged, foreign or minority one does not, whatever a trusted liar signs."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.key_records import make_revocation
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.messages import VoteIn
from fedorch.core.node.records import ClaimAnswerMsg, FinalMsg, VoteMsg
from fedorch.core.node.takeover_grants import (
    GRANT_CONTEXT,
    SignedGrant,
    sign_grant,
    sign_round,
    statement,
)
from fedorch.core.node.votes import Votes, seal_votes, vote_statement
from fedorch.core.workflow.acceptor_grant import COMMIT, Round
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_engine.evidence import NodeEvidence, grant_signer, vote_signer

WF = "d0.0001"  # coordinated by d0, the domain its id names
ELECTORATE = frozenset({"d0", "d1", "d2"})
KEYS = {name: Ed25519PrivateKey.generate() for name in ("d0", "d1", "d2", "liar", "stranger")}
SIGNERS = {name: grant_signer(Signer(name, key)) for name, key in KEYS.items()}


def trust() -> TrustStore:
    """Every domain but the stranger is trusted: the liar too (a trusted domain that lies)."""
    return TrustStore({n: KEYS[n].public_key() for n in ("d0", "d1", "d2", "liar")})


def grant(granter: str, *, signed_by: str | None = None, wf: str = WF, epoch: int = 1,
          holder: str = "d1", electorate=ELECTORATE) -> SignedGrant:
    """`granter`'s grant, signed with `signed_by`'s key (its own by default)."""
    return sign_grant(SIGNERS[signed_by or granter], granter, wf, epoch, holder, electorate)


def holds(evidence: NodeEvidence, cert, *, epoch: int = 1, holder: str = "d1",
          known=ELECTORATE) -> bool:
    return evidence.certificate_holds(WF, epoch, holder, cert, known)


def test_a_true_certificate_holds_with_and_without_a_known_electorate() -> None:
    evidence = NodeEvidence(trust())
    cert = (grant("d1"), grant("d2"))
    assert holds(evidence, cert)
    assert holds(evidence, cert, known=None)
    assert holds(evidence, (grant("d0"), grant("d1"), grant("d2")))


def test_a_grant_forged_in_another_domains_name_is_refused() -> None:
    evidence = NodeEvidence(trust())
    # The liar is trusted, and signs d2's grant with its own key: not d2's signature.
    assert not holds(evidence, (grant("d1"), grant("d2", signed_by="liar")))
    assert "signature does not verify" in (evidence.last_refusal or "")
    # Its own grant signs, but it is no elector: d1's grant and its own are no majority.
    assert not holds(evidence, (grant("d1"), grant("liar")))
    # An untrusted key counts for nothing, even in the right name.
    assert not holds(evidence, (grant("d1"), grant("d2", signed_by="stranger")))
    # A grant whose carrier names another granter than its statement.
    relabelled = grant("d2")
    assert not holds(evidence, (grant("d1"), SignedGrant(
        "d0", relabelled.statement, relabelled.signature)))


def test_a_liar_cannot_shrink_the_electorate_a_checker_holds() -> None:
    evidence = NodeEvidence(trust())
    fake = frozenset({"d0", "d1", "liar"})
    cert = (grant("d1", electorate=fake), grant("liar", electorate=fake))
    assert not holds(evidence, cert)  # here the electorate is {d0, d1, d2}
    assert "electorate" in (evidence.last_refusal or "")
    # Grants that disagree on the electorate are refused outright.
    assert not holds(evidence, (grant("d1"), grant("d2", electorate=fake)), known=None)


def test_foreign_grants_are_refused() -> None:
    evidence = NodeEvidence(trust())
    other_wf = (grant("d1", wf="d0.0002"), grant("d2", wf="d0.0002"))
    assert not holds(evidence, other_wf)
    other_epoch = (grant("d1", epoch=2), grant("d2", epoch=2))
    assert not holds(evidence, other_epoch, epoch=1)
    assert holds(evidence, other_epoch, epoch=2)
    other_holder = (grant("d1", holder="d2"), grant("d2", holder="d2"))
    assert not holds(evidence, other_holder, holder="d1")
    # An electorate without the original coordinator (the id names d0) proves nothing.
    no_original = frozenset({"d1", "d2", "liar"})
    assert not holds(evidence, (grant("d1", electorate=no_original),
                                grant("d2", electorate=no_original)), known=None)


def test_a_minority_or_an_empty_certificate_is_refused() -> None:
    evidence = NodeEvidence(trust())
    assert not holds(evidence, (grant("d1"),))
    assert not holds(evidence, (grant("d1"), grant("d1")))  # one granter twice
    assert not holds(evidence, ())
    assert not holds(evidence, (grant("d1"), grant("d2")), epoch=0)


def test_the_signature_covers_the_context_and_the_bytes_as_carried() -> None:
    evidence = NodeEvidence(trust())
    raw = statement("d2", WF, 1, "d1", ELECTORATE)
    bare = SignedGrant("d2", raw, Signer("d2", KEYS["d2"]).sign(raw))  # no context
    assert not evidence.grant_holds(bare)
    assert not holds(evidence, (grant("d1"), bare))
    good = grant("d2")
    assert evidence.grant_holds(good)
    assert Signer("d2", KEYS["d2"]).sign(GRANT_CONTEXT + good.statement) == good.signature
    # A second spelling of the same facts (not the canonical bytes) is no statement.
    spaced = raw.replace(b",", b", ")
    assert not holds(evidence, (grant("d1"), SignedGrant(
        "d2", spaced, Signer("d2", KEYS["d2"]).sign(GRANT_CONTEXT + spaced))))


def test_a_certificate_still_holds_after_the_wire_codec_and_not_after_trust_removal() -> None:
    codec = node_codec()
    cert = (grant("d1"), grant("d2"))
    answer = codec.decode(codec.encode(ClaimAnswerMsg(WF, 1, True, 1, "d1", grant=cert[1])))
    final = codec.decode(codec.encode(FinalMsg(WF, WorkflowState.SUCCEEDED, 1, won=cert)))
    store = trust()
    evidence = NodeEvidence(store)
    assert answer.grant == cert[1] and evidence.grant_holds(answer.grant)
    assert holds(evidence, final.won)
    store.remove("d2")  # d2 no longer trusted here: its grant counts for nothing
    assert not evidence.grant_holds(answer.grant)
    assert not holds(evidence, final.won)


def test_a_round_proof_holds_only_as_the_original_coordinator_signed_it() -> None:
    evidence = NodeEvidence(trust())
    participants, acceptors = frozenset({"d1"}), frozenset({"d0", "d1", "d2"})
    proof = Round(1, participants, acceptors, COMMIT)
    stated = sign_round(SIGNERS["d0"], WF, 1, "d0", participants, acceptors)
    commit = (yes("d1"),)
    assert evidence.round_proof_holds(WF, proof, stated, commit)
    assert not evidence.round_proof_holds(WF, proof, None, commit)
    # Signed by the claimant, or a trusted liar, not by d0 whom the id names.
    assert not evidence.round_proof_holds(
        WF, proof, sign_round(SIGNERS["d1"], WF, 1, "d0", participants, acceptors), commit)
    assert not evidence.round_proof_holds(
        WF, proof, sign_round(SIGNERS["liar"], WF, 1, "liar", participants, acceptors),
        commit)
    # Another round, other participants or acceptors than the proof shows.
    for other in (Round(2, participants, acceptors, COMMIT),
                  Round(1, frozenset({"d1", "liar"}), acceptors, COMMIT),
                  Round(1, participants, frozenset({"d0", "d1", "liar"}), COMMIT)):
        assert not evidence.round_proof_holds(WF, other, stated, commit)
    # Not shown committed.
    assert not evidence.round_proof_holds(WF, Round(1, participants, acceptors, None), stated,
                                          commit)


def yes(voter: str, *, signed_by: str | None = None, round_: int = 1,
        wf: str = WF) -> VoteIn:
    """`voter`'s YES of (wf, round_), signed with `signed_by`'s key (its own by default)."""
    (raw,) = seal_votes(SIGNERS[signed_by or voter], [vote_statement((wf, round_), voter, True)])
    return VoteIn(round_, voter, True, "", raw)


def test_a_round_proofs_commit_is_believed_only_with_every_participants_signed_yes() -> None:
    evidence = NodeEvidence(trust())
    participants, acceptors = frozenset({"d1", "d2"}), frozenset({"d0", "d1", "d2", "liar"})
    proof = Round(1, participants, acceptors, COMMIT)
    stated = sign_round(SIGNERS["d0"], WF, 1, "d0", participants, acceptors)
    assert evidence.round_proof_holds(WF, proof, stated, (yes("d1"), yes("d2")))
    for commit in ((),  # the claimant's word alone
                   (yes("d1"),),  # a participant's YES missing
                   (yes("d1"), yes("d2", signed_by="liar")),  # made by a trusted liar
                   (yes("d1"), yes("d2", signed_by="stranger")),  # an untrusted key
                   (yes("d1"), yes("d2", round_=2)),  # a vote of another round
                   (yes("d1"), yes("d2", wf="d0.0002")),  # of another workflow
                   (yes("d1"), VoteIn(1, "d2", True, "", b"d0.0001/1/d2/yes"))):  # unsigned
        evidence.last_refusal = None
        assert not evidence.round_proof_holds(WF, proof, stated, commit), commit
        assert "COMMIT of round 1" in (evidence.last_refusal or "")


def test_a_vote_holds_as_its_voters_signature_over_the_bytes_as_received() -> None:
    store = trust()
    evidence = NodeEvidence(store)
    own = Votes("d1", vote_signer(Signer("d1", KEYS["d1"]), store), evidence.verify_vote)
    key = (WF, 1)
    codec = node_codec()
    batch = [(key, True), (("d0.0002", 1), True), (("d0.0003", 2), True)]
    sealed = own.seal(batch)  # one signature for the turn's three votes
    for (k, _), raw in zip(batch, sealed, strict=True):
        msg = codec.decode(codec.encode(VoteMsg(k, "d1", True, "", raw)))
        assert own.holds(k, "d1", True, msg.evidence)
    checker = Votes("d0", SIGNERS["d0"], evidence.verify_vote)
    raw = sealed[0]
    assert checker.holds(key, "d1", True, raw)
    assert not checker.holds(key, "d1", False, raw)  # the statement says YES
    assert not checker.holds(key, "d2", True, raw)  # and names d1
    assert not checker.holds((WF, 2), "d1", True, raw)
    assert not checker.holds(key, "d1", True, raw[:-1] + bytes([raw[-1] ^ 1]))  # signature
    assert not checker.holds(key, "d1", True, raw[:-70] + bytes([raw[-70] ^ 1]) + raw[-69:])
    assert not checker.holds(key, "d1", True, b"")
    assert not checker.holds(key, "d1", True, f"{WF}/1/d1/yes".encode())
    # d1 revokes its key: its votes count for nothing, those verified before included.
    d1 = KEYS["d1"]
    changed, refused = store.learn([make_revocation("d1", d1.public_key(), d1, serial=1,
                                                    now_ms=1_800_000_000_000)])
    assert changed and refused == 0
    assert not checker.holds(key, "d1", True, raw)
