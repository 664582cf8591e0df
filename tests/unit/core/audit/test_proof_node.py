"""Proofs of node-engine workflows (core/audit/proof_node.py, format 2): built from the
coordinator's records of sealed evidence, checked with public keys only; each forgery a
signer could try with its own key alone is refused, naming what does not hold."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.audit.chain import canonical
from fedorch.core.audit.proof import ProofError, build_proof, check_proof
from fedorch.core.audit.proof_node import FORMAT, gather
from fedorch.core.identity.trust import TrustStore
from fedorch.core.node.votes import (
    result_statement,
    seal_statements,
    seal_votes,
    vote_statement,
)
from fedorch.gen.fedorch.v1 import spec_pb2

WF = "c.w1"
KEYS = {name: Ed25519PrivateKey.generate() for name in ("c", "p1", "p2")}
TRUST = TrustStore({name: key.public_key() for name, key in KEYS.items()})
SPEC = spec_pb2.WorkflowSpec(name="audited", steps=[
    spec_pb2.StepSpec(id="a"), spec_pb2.StepSpec(id="b", needs=["a"]),
    spec_pb2.StepSpec(id="d", needs=["b"])])
PLACEMENT = {"a": "c", "b": "p1", "d": "p2"}
DIGEST = hashlib.sha256(b"{}").hexdigest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sealed(by: str, *statements: bytes) -> list[str]:
    return [b64(r) for r in seal_statements(KEYS[by].sign, list(statements))]


def attested(by: str, statement: dict) -> str:
    return sealed(by, canonical({**statement, "domain": by}))[0]


def votes(round_: int, *domains: str, wf: str = WF) -> list[str]:
    return [b64(seal_votes(KEYS[d].sign, [vote_statement((wf, round_), d, True)])[0])
            for d in domains]


def result(step: str, by: str, *, attempt: int = 1, state: str = "SUCCEEDED",
           epoch: int = 0, digest: str = DIGEST) -> str:
    return sealed(by, result_statement(WF, step, attempt, state, digest, epoch, by))[0]


def final_steps(**changes: dict) -> dict:
    steps = {s: {"state": "SUCCEEDED", "attempt": 1, "domain": d, "epoch": 0,
                 "outputs_sha256": DIGEST} for s, d in PLACEMENT.items()}
    for step, change in changes.items():
        steps[step] = {**steps[step], **change}
    return steps


def body(kind: str, **data: object) -> dict:
    return {"kind": kind, "workflow": WF, "time_ms": 1, "data": data}


def records(*, state: str = "SUCCEEDED", round_: int | None = 1,
            steps: dict | None = None, certificates: dict | None = None,
            results: dict | None = None) -> list[dict]:
    """The coordinator's records of WF, as the node engine writes them (audit.py)."""
    spec = SPEC.SerializeToString(deterministic=True)
    out = [body("submitted", spec=b64(spec), client_signature=None, principal="domain:c",
                attestation=attested("c", {"kind": "submission", "workflow": WF,
                                           "spec_sha256": hashlib.sha256(spec).hexdigest(),
                                           "principal": "domain:c"}))]
    for r, voters in (certificates if certificates is not None
                      else {1: ("c", "p1", "p2")}).items():
        out.append(body("decision", round=r, outcome="COMMIT",
                        certificate={"round": r, "votes": votes(r, *voters)}))
    for step, evidence in (results if results is not None
                           else {"b": result("b", "p1"), "d": result("d", "p2")}).items():
        out.append(body("result_received", step=step, attempt=1, evidence=evidence))
    out.append(body("workflow_ended", state=state, attestation=attested("c", {
        "kind": "final", "workflow": WF, "state": state, "reason": "", "round": round_,
        "steps": steps if steps is not None else final_steps()})))
    return out


def checked(proof: dict) -> dict:
    return check_proof(json.loads(json.dumps(proof)), TRUST)


def test_a_proof_of_sealed_evidence_checks_with_public_keys_only():
    proof = build_proof(WF, records())
    assert proof["format"] == FORMAT
    summary = checked(proof)
    assert summary["state"] == "SUCCEEDED" and summary["round"] == 1
    assert summary["placement"] == PLACEMENT and summary["votes"] == {"1": ["c", "p1", "p2"]}
    assert summary["signed"] is False  # no client signature in these records
    assert set(proof["results"]) == {"b", "d"}  # a ran at the coordinator: its end says


def refused(proof: dict, match: str) -> None:
    with pytest.raises(ProofError, match=match):
        checked(proof)


@pytest.mark.parametrize("case, match", [
    # A result another domain signed, or its own saying other outputs.
    ({"results": {"b": result("b", "p2"), "d": result("d", "p2")}}, "not p1's signed"),
    ({"results": {"b": result("b", "p1", digest="0" * 64), "d": result("d", "p2")}},
     "not p1's signed"),
    ({"results": {"b": result("b", "p1", attempt=2), "d": result("d", "p2")}},
     "not p1's signed"),
    # A SUCCEEDED step of another domain without its result.
    ({"results": {"b": result("b", "p1")}}, "no signed result of step d"),
    # A placed domain without its YES, or a YES of another round.
    ({"certificates": {1: ("c", "p1")}}, "no YES of 'p2'"),
    ({"certificates": {1: ("c", "p1"), 2: ("p2",)}}, "no YES of 'p2'"),
    # Placed again (epoch 5) with no certificate of that round.
    ({"steps": final_steps(d={"epoch": 5}),
      "results": {"b": result("b", "p1"), "d": result("d", "p2", epoch=5)}},
     "no YES of 'p2' in round 5"),
    # SUCCEEDED with a step that failed; never committed yet ran.
    ({"steps": final_steps(d={"state": "FAILED"}),
      "results": {"b": result("b", "p1"), "d": result("d", "p2", state="FAILED")}},
     "did not succeed"),
    ({"state": "ABORTED", "round_": None}, "never committed"),
])
def test_a_forgery_is_refused_naming_what_does_not_hold(case, match):
    """Each piece signed by its own signer, put together so that they disagree (the
    summary left as the honest proof's: the check names the disagreement first)."""
    forged = gather(WF, records(**case))
    forged["summary"] = build_proof(WF, records())["summary"]
    refused(forged, match)


def test_a_vote_of_another_workflow_or_round_counts_for_nothing():
    proof = build_proof(WF, records())
    for wf, round_ in (("c.w2", 1), (WF, 2)):
        forged = json.loads(json.dumps(proof))
        forged["certificates"]["1"][2] = votes(round_, "p2", wf=wf)[0]
        refused(forged, "not p2's signed YES of c.w1 round 1")


def test_a_step_placed_again_checks_with_its_rounds_certificate():
    proof = build_proof(WF, records(
        steps=final_steps(d={"epoch": 5}),
        certificates={1: ("c", "p1", "p2"), 5: ("p2",)},
        results={"b": result("b", "p1"), "d": result("d", "p2", epoch=5)}))
    assert checked(proof)["votes"] == {"1": ["c", "p1", "p2"], "5": ["p2"]}


def test_a_workflow_aborted_before_its_commit_proves_that():
    steps = final_steps(**{s: {"state": "PENDING", "attempt": 0, "outputs_sha256": ""}
                           for s in PLACEMENT})
    proof = build_proof(WF, records(state="ABORTED", round_=None, steps=steps,
                                    certificates={}, results={}))
    assert checked(proof)["round"] is None


def test_the_attestations_are_the_coordinators_own():
    proof = build_proof(WF, records())
    forged = dict(proof, final=attested("p1", {"kind": "final", "workflow": WF}))
    refused(forged, "made by 'p1', not the coordinator")
    raw = bytearray(base64.b64decode(proof["final"]))
    raw[-1] ^= 1
    refused(dict(proof, final=b64(bytes(raw))), "bad signature of 'c'")
    refused(dict(proof, submission={**proof["submission"],
                                    "spec": b64(b"\x0a\x01x")}), "hash differs")
    other = attested("c", {"kind": "submission", "workflow": "c.w2"})
    refused(dict(proof, submission={**proof["submission"], "attestation": other}),
            "not the submission of c.w1")


def test_the_summary_is_what_the_evidence_says():
    proof = build_proof(WF, records())
    proof["summary"]["placement"]["d"] = "p1"
    refused(proof, "summary does not match")
    proof = build_proof(WF, records())
    refused(dict(proof, extra=1), "expected exactly the keys")


def test_without_its_end_or_attestations_no_proof_is_built():
    with pytest.raises(ProofError, match="has not ended here"):
        build_proof(WF, records()[:-1])
