"""A self-contained proof of one workflow, built from its coordinator's audit records
and checked offline with public keys only.

What it holds, each piece signed by the domain with authority over it:

- `submission`: the coordinator's attestation of the submission (the spec's SHA-256,
  the submitting principal, the public key it vouches for as that principal's, the
  request id), the spec's bytes exactly as the submitter signed them, and
  `client_signature`, the submitter's own Ed25519 signature over them
  (agent/core/identity/submission.py). A spec submitted without identity is signed by
  the coordinator's domain key as ``domain:NAME``. Logs from before signed submissions
  have no `client_key` in the attestation and a null signature: the principal is then
  the coordinator's word alone, and the summary says `"signed": false`.
- `certificate`: the COMMIT decision as the coordinator signed it (the spec, the
  placement, and every participant's signed YES vote), or null for a workflow that was
  never committed.
- `results`: per step, the result as the domain that ran it signed it (state, attempt,
  outputs).
- `final`: the coordinator's attestation of how the workflow ended, with each step's
  state, attempt and the SHA-256 of its outputs.
- `summary`: what the above says, in plain JSON; `check` recomputes it and refuses a
  proof whose summary differs, so that nothing in the file is unchecked.

`check_proof` raises ProofError naming the first thing that does not hold.

A node-engine workflow's records hold evidence sealed in batches instead (one
signature per batch of statements, core/node/votes.py): its proof is format
"fedorch-audit-proof/2" (proof_node.py). `build_proof` makes it from such records,
`check_proof` checks either format by the file's `format`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from fedorch.core.audit import proof_node
from fedorch.core.audit.chain import canonical, open_attestation, sha256_hex, unb64
from fedorch.core.audit.proof_submission import ProofError, submitter_signature
from fedorch.core.identity.clients import ClientKeys
from fedorch.core.identity.envelope import AuthError, open_evidence
from fedorch.core.identity.trust import TrustStore
from fedorch.core.workflow import values
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2, status_pb2

FORMAT = "fedorch-audit-proof/1"
_KEYS = {"format", "workflow", "summary", "submission", "certificate", "results", "final"}

# Audit record kinds the proof is built from (written by agent/runtime/audit.py).
SUBMITTED = "submitted"
DECISION = "decision"
RESULT = "result_received"
STEP_ENDED = "step_ended"
ENDED = "workflow_ended"


def outputs_hash(result: peer_pb2.StepResult) -> str:
    """SHA-256 of a result's outputs as canonical JSON text."""
    return outputs_value_hash(values.read_object(result, "outputs"))


def outputs_value_hash(outputs: Mapping[str, values.JsonValue]) -> str:
    """The same hash from the outputs themselves: canonical text read back is the same
    text, so there is no need to build a result message only to hash it."""
    return sha256_hex(values.dumps(dict(outputs)).encode("utf-8"))


def build_proof(workflow_id: str, records: Iterable[Mapping]) -> dict:
    """A proof from the decoded audit records of one workflow at its coordinator (in log
    order); ProofError when they lack what a proof needs."""
    records = list(records)
    if any(body.get("kind") == SUBMITTED and body.get("workflow") == workflow_id
           and proof_node.is_node_submission(body.get("data", {})) for body in records):
        try:  # the node engine's evidence: format 2 (proof_node.py)
            return proof_node.build_node_proof(workflow_id, records)
        except (ValueError, KeyError, TypeError) as e:
            raise ProofError(str(e)) from None
    submission = certificate = final = None
    results: dict[str, tuple[int, str]] = {}  # step -> (attempt, evidence)
    for body in records:
        if body.get("workflow") != workflow_id:
            continue
        kind, data = body.get("kind"), body.get("data", {})
        if kind == SUBMITTED:
            submission = {"attestation": data["attestation"], "spec": data["spec"],
                          "client_signature": data.get("client_signature")}
        elif kind == DECISION and data.get("outcome") == "COMMIT" and data.get("certificate"):
            certificate = data["certificate"]
        elif kind in (RESULT, STEP_ENDED) and data.get("evidence"):
            step, attempt = data["step"], int(data["attempt"])
            if attempt >= results.get(step, (0, ""))[0]:
                results[step] = (attempt, data["evidence"])
        elif kind == ENDED:
            final = data["attestation"]
    if submission is None:
        raise ProofError(f"no submission of {workflow_id} in this log: is this domain its"
                         " coordinator?")
    if submission["attestation"] is None:  # engine: node, run without its evidence
        raise ProofError(f"{workflow_id}: its records carry no attestations (written by"
                         " an agent on engine: node before it kept them), so no proof can"
                         " be built")
    if final is None:
        raise ProofError(f"{workflow_id} has not ended (or its end is not in this log)")
    proof = {"format": FORMAT, "workflow": workflow_id, "submission": submission,
             "certificate": certificate,
             "results": {step: evidence for step, (_, evidence) in sorted(results.items())},
             "final": final, "summary": {}}
    proof["summary"] = _summary(proof, None)
    return proof


def check_proof(proof: object, trust: TrustStore, clients: ClientKeys | None = None) -> dict:
    """Check a proof with the public keys in `trust`; returns its summary. `clients`:
    client keys the checker holds; the key the coordinator vouched for a principal
    listed there must be that one."""
    if isinstance(proof, dict) and proof.get("format") == proof_node.FORMAT:
        try:  # a node-engine workflow's proof (proof_node.py)
            return proof_node.check_node_proof(proof, trust, clients)
        except ProofError:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise ProofError(str(e)) from None
    if not isinstance(proof, dict) or set(proof) != _KEYS:
        raise ProofError(f"not a proof: expected exactly the keys {sorted(_KEYS)}")
    if proof["format"] != FORMAT:
        raise ProofError(f"unknown format {proof['format']!r}")
    summary = _summary(proof, trust, clients)
    # As canonical text, not ==: 1.0 == 1 and True == 1 in Python, not in the file.
    if not isinstance(proof["summary"], dict) or canonical(proof["summary"]) != canonical(summary):
        raise ProofError("summary does not match the signed evidence")
    return summary


def _summary(proof: dict, trust: TrustStore | None, clients: ClientKeys | None = None) -> dict:
    """What the proof's evidence says; checks every signature when `trust` is given."""
    verifier = trust.verify if trust is not None else (lambda *_: True)
    workflow_id = proof["workflow"]
    if not isinstance(workflow_id, str):
        raise ProofError("workflow: expected text")
    coordinator = workflow_id.rpartition(".")[0]
    try:
        sub = proof["submission"]
        if not isinstance(sub, dict) or set(sub) != {"attestation", "spec", "client_signature"}:
            raise ProofError("submission: expected {attestation, spec, client_signature}")
        submitted = open_attestation(sub["attestation"], verifier, "submission")
        final = open_attestation(proof["final"], verifier, "final")
        spec_bytes = unb64(sub["spec"], "submission.spec")
    except ValueError as e:
        raise ProofError(str(e)) from None
    for name, statement, kind in (("submission", submitted, "submission"),
                                  ("final", final, "final")):
        if statement.get("kind") != kind or statement.get("workflow") != workflow_id:
            raise ProofError(f"{name}: not the {kind} of {workflow_id}")
        if statement["domain"] != coordinator:
            raise ProofError(f"{name}: signed by {statement['domain']}, not the coordinator"
                             f" {coordinator}")
    if hashlib.sha256(spec_bytes).hexdigest() != submitted.get("spec_sha256"):
        raise ProofError("submission: the spec's hash differs from the signed one")
    signed = submitter_signature(sub, submitted, spec_bytes, coordinator, trust, clients)
    try:
        spec = spec_pb2.WorkflowSpec.FromString(spec_bytes)
    except Exception:  # DecodeError or anything the parser throws at junk
        raise ProofError("submission: the spec does not parse") from None
    decision = _certificate(proof["certificate"], trust, workflow_id, coordinator, spec)
    placement = dict(decision.placement) if decision is not None else {}
    steps = final.get("steps")
    if not isinstance(steps, dict) or set(steps) != {s.id for s in spec.steps}:
        raise ProofError("final: does not list exactly the spec's steps")
    results = proof["results"]
    if not isinstance(results, dict) or not set(results) <= set(steps):
        raise ProofError("results: not a map of the spec's steps")
    if decision is None and (results or final.get("state") not in ("ABORTED", "CANCELLED")):
        raise ProofError("certificate: missing for a workflow that ran")
    for step_id, claimed in sorted(steps.items()):
        _check_step(workflow_id, step_id, claimed, results.get(step_id), placement, trust)
    if final.get("state") == "SUCCEEDED" and any(
            s.get("state") != "SUCCEEDED" for s in steps.values()):
        raise ProofError("final: SUCCEEDED with a step that did not succeed")
    return {
        "workflow": workflow_id, "coordinator": coordinator,
        "principal": submitted.get("principal", ""), "signed": signed,
        "spec_sha256": submitted["spec_sha256"],
        "round": decision.round if decision is not None else None,
        "placement": placement,
        "voters": sorted(set(placement.values())),
        "state": final.get("state"), "reason": final.get("reason", ""),
        "steps": {k: dict(v) for k, v in sorted(steps.items())},
    }


def _certificate(certificate: object, trust: TrustStore | None, workflow_id: str,
                 coordinator: str, spec: spec_pb2.WorkflowSpec) -> peer_pb2.Decision | None:
    if certificate is None:
        return None
    try:
        envelope = _envelope(certificate, "certificate")
        body = _open(envelope, trust, "decision")
    except (ValueError, AuthError) as e:
        raise ProofError(f"certificate: {e}") from None
    decision = body.decision
    if body.sender != coordinator or decision.coordinator != coordinator \
            or decision.workflow_id != workflow_id:
        raise ProofError(f"certificate: not {coordinator}'s decision on {workflow_id}")
    if decision.outcome != peer_pb2.OUTCOME_COMMIT:
        raise ProofError("certificate: not a COMMIT")
    if decision.spec != spec:
        raise ProofError("certificate: commits another spec than the one submitted")
    voters = set()
    for raw in decision.votes:
        try:
            vote_body = _open(raw, trust, "vote")
        except AuthError as e:
            raise ProofError(f"certificate: vote: {e}") from None
        v = vote_body.vote
        if vote_body.sender != v.domain or not v.yes or v.workflow_id != workflow_id \
                or v.round != decision.round:
            raise ProofError(f"certificate: a bad vote from {vote_body.sender}")
        voters.add(v.domain)
    missing = set(decision.placement.values()) - voters
    if missing:
        raise ProofError(f"certificate: no YES vote of {sorted(missing)}")
    return decision


def _envelope(text: object, what: str) -> peer_pb2.Envelope:
    data = unb64(text, what)
    try:
        return peer_pb2.Envelope.FromString(data)
    except Exception:  # DecodeError, or anything the parser throws at junk
        raise ValueError(f"{what}: not a signed message") from None


def _open(envelope: peer_pb2.Envelope, trust: TrustStore | None, kind: str) -> peer_pb2.Body:
    if trust is not None:
        return open_evidence(envelope, trust, expect=kind)
    try:
        return peer_pb2.Body.FromString(envelope.body)
    except Exception:
        raise AuthError("malformed message body") from None


_RAN = frozenset({"SUCCEEDED", "FAILED"})


def _check_step(workflow_id: str, step_id: str, claimed: object, evidence: object,
                placement: dict[str, str], trust: TrustStore | None) -> None:
    if not isinstance(claimed, dict) or set(claimed) != {"state", "attempt", "domain",
                                                          "outputs_sha256"}:
        raise ProofError(f"final: step {step_id}: expected state, attempt, domain,"
                         " outputs_sha256")
    if placement and claimed["domain"] != placement.get(step_id):
        raise ProofError(f"final: step {step_id} is not placed on {claimed['domain']}")
    if evidence is None:
        if claimed["state"] == "SUCCEEDED":
            raise ProofError(f"results: no signed result of step {step_id}")
        return
    try:
        envelope = _envelope(evidence, f"results.{step_id}")
        body = _open(envelope, trust, "step_result")
        result = body.step_result
        digest = outputs_hash(result)
    except (ValueError, AuthError) as e:
        raise ProofError(f"results: step {step_id}: {e}") from None
    state = status_pb2.StepState.Name(result.state).removeprefix("STEP_STATE_")
    if body.sender != result.domain or result.domain != placement.get(step_id) \
            or result.step_id != step_id:
        raise ProofError(f"results: step {step_id}: not signed by the domain it ran on")
    if state not in _RAN or result.workflow_id != workflow_id:
        raise ProofError(f"results: step {step_id}: not a final result")
    if (state, result.attempt, digest) != (claimed["state"], claimed["attempt"],
                                           claimed["outputs_sha256"]):
        raise ProofError(f"results: step {step_id}: the signed result differs from the"
                         " final state")


def dumps(proof: dict) -> str:
    return json.dumps(proof, indent=2, sort_keys=True) + "\n"


__all__ = ["FORMAT", "ProofError", "build_proof", "check_proof", "dumps", "outputs_hash",
           "outputs_value_hash"]
