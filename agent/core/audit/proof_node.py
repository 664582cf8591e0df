"""Proofs of node-engine workflows (format "fedorch-audit-proof/2"), built from the
coordinator's audit records and checked offline with public keys only.

Theory of operation
-------------------
The node engine signs nothing alone: each piece of a proof is a statement sealed in a
batch (core/node/votes.py: a statement's evidence is the statement, its Merkle path
and the signature of the batch's root, by the domain that states it;
runtime/node_engine/attestations.py makes them). The pieces, each checked over the
bytes carried, under the key of the domain with authority over it:

- `submission`: the coordinator's attestation (canonical JSON: the spec's SHA-256, the
  principal, the key it vouches for, the request id, what the submitter signed with
  the spec), the spec bytes and the submitter's own signature over them (checked as
  format 1 checks them, proof.py);
- `certificates`: per committed round (the workflow's, and each round that placed a
  step again: a step's placement epoch is that round's number), every participant's
  signed YES vote (`["vote", workflow, round, domain, true]`);
- `results`: per step run on another domain than the coordinator, that domain's
  signed final result (`["result", workflow, step, attempt, state, outputs sha256,
  placement epoch, domain]`);
- `final`: the coordinator's attestation of the end: state, reason, the committed
  round, and each step's state, attempt, domain, placement epoch and outputs' hash.

`check_node_proof` holds when: both attestations are the coordinator's, of this
workflow; the spec is the one attested (and signed by its submitter); the end lists
exactly the spec's steps; every step's domain voted YES in the round that placed it
(the committed round for epoch 0, round `epoch` after); each step that SUCCEEDED on
another domain has that domain's signed result, and any result carried says exactly
what the end says (state, attempt, outputs hash, epoch, domain); a workflow never
committed ran nothing and ended ABORTED or CANCELLED; a SUCCEEDED workflow has every
step SUCCEEDED; and the summary is exactly what all that says (so no field of the
file goes unchecked). A step run at the coordinator has no result of its own: the end
it signed is its word.

What a vote does not name: the spec. It names the workflow and the round; the
coordinator's attestations bind the workflow to the spec and the round to the end.
So, as with format 1 (whose votes name the round too), that each domain voted YES to
this very spec rests on the coordinator's word that the round's PREPARE carried it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from fedorch.core.audit.chain import canonical, canonical_object, unb64
from fedorch.core.audit.proof_submission import submitter_signature  # as format 1's
from fedorch.core.identity.clients import ClientKeys
from fedorch.core.identity.trust import TrustStore
from fedorch.core.node.votes import (
    carried,
    evidence_holds,
    result_statement,
    statement_holds,
)
from fedorch.gen.fedorch.v1 import spec_pb2

FORMAT = "fedorch-audit-proof/2"
_KEYS = {"format", "workflow", "summary", "submission", "certificates", "results", "final"}
_STEP_KEYS = {"state", "attempt", "domain", "epoch", "outputs_sha256"}
_RAN = frozenset({"SUCCEEDED", "FAILED"})

SUBMITTED, DECISION, RESULT, ENDED = ("submitted", "decision", "result_received",
                                      "workflow_ended")

__all__ = ["FORMAT", "build_node_proof", "check_node_proof", "gather", "is_node_submission"]


def is_node_submission(data: Mapping) -> bool:
    """A `submitted` record's data made by the node engine with evidence (its
    attestation is sealed evidence, not format 1's {statement, signature})."""
    return isinstance(data.get("attestation"), str)


def build_node_proof(workflow_id: str, records: Iterable[Mapping]) -> dict:
    """A format-2 proof from the decoded audit records (acts) of one workflow at its
    coordinator, in log order; ValueError naming what is missing or does not agree."""
    proof = gather(workflow_id, records)
    proof["summary"] = _summary(proof, None, None)
    return proof


def gather(workflow_id: str, records: Iterable[Mapping]) -> dict:
    """The pieces of a proof as the records hold them, its summary still empty."""
    submission = final = None
    certificates: dict[str, list[str]] = {}
    results: dict[str, tuple[int, str]] = {}  # step -> (attempt, evidence)
    for body in records:
        if body.get("workflow") != workflow_id:
            continue
        kind, data = body.get("kind"), body.get("data", {})
        if kind == SUBMITTED:
            submission = {"attestation": data.get("attestation"), "spec": data.get("spec"),
                          "client_signature": data.get("client_signature")}
        elif kind == DECISION and data.get("outcome") == "COMMIT" \
                and isinstance(data.get("certificate"), dict):
            cert = data["certificate"]
            certificates[str(int(cert["round"]))] = list(cert["votes"])
        elif kind == RESULT and data.get("evidence"):
            step, attempt = data["step"], int(data["attempt"])
            if attempt >= results.get(step, (0, ""))[0]:
                results[step] = (attempt, data["evidence"])
        elif kind == ENDED:
            final = data.get("attestation")
    if submission is None or not isinstance(submission["attestation"], str):
        raise ValueError(f"{workflow_id}: no attested submission in this log")
    if not isinstance(final, str):
        raise ValueError(f"{workflow_id} has not ended here (or its end carries no"
                         " attestation): a proof is built from the log of the coordinator"
                         " that ended it")
    return {"format": FORMAT, "workflow": workflow_id, "submission": submission,
            "certificates": dict(sorted(certificates.items())),
            "results": {step: ev for step, (_, ev) in sorted(results.items())},
            "final": final, "summary": {}}


def check_node_proof(proof: dict, trust: TrustStore, clients: ClientKeys | None) -> dict:
    """Check a format-2 proof with the public keys in `trust`; its summary, or
    ValueError naming the first thing that does not hold."""
    if set(proof) != _KEYS:
        raise ValueError(f"not a proof: expected exactly the keys {sorted(_KEYS)}")
    summary = _summary(proof, trust, clients)
    # As canonical text, not ==: 1.0 == 1 and True == 1 in Python, not in the file.
    if not isinstance(proof["summary"], dict) \
            or canonical(proof["summary"]) != canonical(summary):
        raise ValueError("summary does not match the signed evidence")
    return summary


def _attested(text: object, what: str, kind: str, workflow_id: str, coordinator: str,
              verify) -> dict:
    """The coordinator's attestation `text` (sealed evidence, base64) of `kind`."""
    raw = unb64(text, what)
    statement = carried(raw)
    if statement is None:
        raise ValueError(f"{what}: not sealed evidence")
    value = canonical_object(statement, what)
    if value.get("kind") != kind or value.get("workflow") != workflow_id:
        raise ValueError(f"{what}: not the {kind} of {workflow_id}")
    if value.get("domain") != coordinator:
        raise ValueError(f"{what}: made by {value.get('domain')!r}, not the coordinator"
                         f" {coordinator}")
    if not statement_holds(verify, coordinator, statement, raw):
        raise ValueError(f"{what}: bad signature of {coordinator!r}")
    return value


def _votes(certificates: object, workflow_id: str, verify) -> dict[int, list[str]]:
    """Round -> the domains whose signed YES of it the certificates hold."""
    if not isinstance(certificates, dict):
        raise ValueError("certificates: expected a map of rounds")
    voters: dict[int, list[str]] = {}
    for key, votes in certificates.items():
        if not isinstance(key, str) or not key.isdigit() or str(int(key)) != key:
            raise ValueError(f"certificates: {key!r} is not a round")
        round_ = int(key)
        if not isinstance(votes, list) or not votes:
            raise ValueError(f"certificates.{key}: expected a list of votes")
        domains = set()
        for i, text in enumerate(votes):
            what = f"certificates.{key}[{i}]"
            raw = unb64(text, what)
            statement = carried(raw)
            try:
                fact = json.loads(statement) if statement is not None else None
            except ValueError:
                fact = None
            if not (isinstance(fact, list) and len(fact) == 5 and fact[0] == "vote"
                    and isinstance(fact[3], str)):
                raise ValueError(f"{what}: not a signed vote")
            domain = fact[3]
            if not evidence_holds(verify, (workflow_id, round_), domain, True, raw):
                raise ValueError(f"{what}: not {domain}'s signed YES of {workflow_id}"
                                 f" round {round_}")
            if domain in domains:
                raise ValueError(f"{what}: {domain} twice")
            domains.add(domain)
        voters[round_] = sorted(domains)
    return voters


def _steps(final: Mapping, spec: spec_pb2.WorkflowSpec) -> dict[str, dict]:
    steps = final.get("steps")
    if not isinstance(steps, dict) or set(steps) != {s.id for s in spec.steps}:
        raise ValueError("final: does not list exactly the spec's steps")
    for step_id, s in steps.items():
        if not isinstance(s, dict) or set(s) != _STEP_KEYS \
                or not all(isinstance(s[k], str) for k in ("state", "domain",
                                                            "outputs_sha256")) \
                or not all(type(s[k]) is int and s[k] >= 0 for k in ("attempt", "epoch")):
            raise ValueError(f"final: step {step_id}: expected state, attempt, domain,"
                             " epoch, outputs_sha256")
    return steps


def _summary(proof: dict, trust: TrustStore | None, clients: ClientKeys | None) -> dict:
    """What the proof's evidence says; checks every signature when `trust` is given."""
    def verify(domain: str, data: bytes, signature: bytes) -> bool:
        return trust is None or trust.verify(domain, data, signature, evidence=True)

    workflow_id = proof["workflow"]
    if not isinstance(workflow_id, str):
        raise ValueError("workflow: expected text")
    coordinator = workflow_id.rpartition(".")[0]
    sub = proof["submission"]
    if not isinstance(sub, dict) or set(sub) != {"attestation", "spec", "client_signature"}:
        raise ValueError("submission: expected {attestation, spec, client_signature}")
    submitted = _attested(sub["attestation"], "submission", "submission", workflow_id,
                          coordinator, verify)
    final = _attested(proof["final"], "final", "final", workflow_id, coordinator, verify)
    spec_bytes = unb64(sub["spec"], "submission.spec")
    if submitted.get("spec_sha256") != hashlib.sha256(spec_bytes).hexdigest():
        raise ValueError("submission: the spec's hash differs from the signed one")
    signed = submitter_signature(sub, submitted, spec_bytes, coordinator, trust, clients)
    try:
        spec = spec_pb2.WorkflowSpec.FromString(spec_bytes)
    except Exception:  # DecodeError or anything the parser throws at junk
        raise ValueError("submission: the spec does not parse") from None
    steps = _steps(final, spec)
    votes = _votes(proof["certificates"], workflow_id, verify)
    committed = final.get("round")
    state = final.get("state")
    if committed is None:
        if votes or state not in ("ABORTED", "CANCELLED") \
                or any(s["state"] in _RAN for s in steps.values()):
            raise ValueError("final: a workflow never committed that ran or has votes")
    elif type(committed) is not int or committed not in votes:
        raise ValueError("certificates: no certificate of the committed round")
    results = proof["results"]
    if not isinstance(results, dict) or not set(results) <= set(steps):
        raise ValueError("results: not a map of the spec's steps")
    for step_id, s in sorted(steps.items()):
        if committed is not None:
            placed_in = s["epoch"] or committed
            if s["domain"] not in votes.get(placed_in, ()):
                raise ValueError(f"certificates: no YES of {s['domain']!r} in round"
                                 f" {placed_in}, which placed step {step_id}")
        _check_result(workflow_id, step_id, s, results.get(step_id), coordinator, verify)
    if state == "SUCCEEDED" and any(s["state"] != "SUCCEEDED" for s in steps.values()):
        raise ValueError("final: SUCCEEDED with a step that did not succeed")
    return {
        "workflow": workflow_id, "coordinator": coordinator,
        "principal": submitted.get("principal", ""), "signed": signed,
        "spec_sha256": submitted["spec_sha256"], "round": committed,
        "placement": {k: s["domain"] for k, s in sorted(steps.items())},
        "votes": {str(r): v for r, v in sorted(votes.items())},
        "state": state, "reason": final.get("reason", ""),
        "steps": {k: dict(s) for k, s in sorted(steps.items())},
    }


def _check_result(workflow_id: str, step_id: str, s: Mapping, evidence: object,
                  coordinator: str, verify) -> None:
    if evidence is None:
        if s["state"] == "SUCCEEDED" and s["domain"] != coordinator:
            raise ValueError(f"results: no signed result of step {step_id}")
        return
    if s["state"] not in _RAN:
        raise ValueError(f"results: step {step_id}: a result of a step that did not run")
    raw = unb64(evidence, f"results.{step_id}")
    expected = result_statement(workflow_id, step_id, s["attempt"], s["state"],
                                s["outputs_sha256"], s["epoch"], s["domain"])
    if not statement_holds(verify, s["domain"], expected, raw):
        raise ValueError(f"results: step {step_id}: not {s['domain']}'s signed result"
                         " that the final state names")
