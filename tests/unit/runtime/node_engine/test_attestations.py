"""The node engine's audit evidence (runtime/node_engine/attestations.py): three Nodes
through their drivers, audited as the engine does with their domains' Ed25519 keys. The
coordinator's records hold what a proof needs, each piece holding under its signer's
public key: the COMMIT's signed votes, each other domain's signed result (checked as it
is recorded), the sealed submission and end; results are sealed once per turn, the
coordinator's attestations once per audit batch; a result whose evidence is not that
result's is recorded without."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.audit.proof_node import gather
from fedorch.core.identity.trust import TrustStore
from fedorch.core.node import Submit
from fedorch.core.node.records import ResultMsg
from fedorch.core.node.votes import (
    carried,
    evidence_holds,
    result_statement,
    seal_statements,
    statement_holds,
)
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.runtime.node_engine.test_audit import EVERYWHERE, Federation, chain, signed
from tests.unit.runtime.test_driver import NAMES

KEYS = {name: Ed25519PrivateKey.generate() for name in NAMES}
TRUST = TrustStore({name: key.public_key() for name, key in KEYS.items()})
WF = "d0.w1"


def verify(domain: str, data: bytes, signature: bytes) -> bool:
    return TRUST.verify(domain, data, signature, evidence=True)


def federation() -> Federation:
    return Federation({n: {"a": 2} for n in NAMES},
                      keys={n: (KEYS[n].sign, verify) for n in NAMES})


def run(fed: Federation) -> None:
    spec = chain()
    fed.agents["d0"].inbox.append(Submit(WF, spec, signed(spec), dict(EVERYWHERE)))
    fed.settle()
    assert fed.agents["d0"].disk.disk.rows[WF].state is WorkflowState.SUCCEEDED


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def test_the_coordinators_records_hold_evidence_under_each_signers_key():
    fed = federation()
    run(fed)
    d0 = fed.agents["d0"].audit
    certificate = d0.of("decision")[0]["certificate"]
    assert certificate["round"] == 1 and len(certificate["votes"]) == 3
    voters = set()
    for text in certificate["votes"]:
        voter = json.loads(carried(unb64(text)))[3]
        assert evidence_holds(verify, (WF, 1), voter, True, unb64(text))
        voters.add(voter)
    assert voters == set(NAMES)
    for r in d0.of("result_received"):
        statement = result_statement(WF, r["step"], r["attempt"], r["state"],
                                     r["outputs_sha256"], r["epoch"], r["domain"])
        assert statement_holds(verify, r["domain"], statement, unb64(r["evidence"])), r
    for kind, data in (("submission", d0.of("submitted")[0]),
                       ("final", d0.of("workflow_ended")[0])):
        raw = unb64(data["attestation"])
        statement = json.loads(carried(raw))
        assert statement["kind"] == kind and statement["domain"] == "d0"
        assert statement_holds(verify, "d0", carried(raw), raw)
        assert not statement_holds(verify, "d1", carried(raw), raw)
    final = json.loads(carried(unb64(d0.of("workflow_ended")[0]["attestation"])))
    assert final["round"] == 1 and final["state"] == "SUCCEEDED"
    assert {s: (v["domain"], v["state"], v["attempt"], v["epoch"])
            for s, v in final["steps"].items()} == {
        s: (d, "SUCCEEDED", 1, 0) for s, d in EVERYWHERE.items()}
    recorded = {r["step"]: r["outputs_sha256"]
                for r in d0.of("result_received") + d0.of("step_ended")}
    assert {s: v["outputs_sha256"] for s, v in final["steps"].items()} == recorded
    assert not fed.agents["d0"].evidence._hashes  # taken by the end
    # The pieces as a proof gathers them from the records (its acts, in order).
    bodies = [{"kind": k, "workflow": w, "data": d} for k, w, d in d0.entries]
    proof = gather(WF, bodies)
    assert set(proof["results"]) == {"s1", "s2"} and list(proof["certificates"]) == ["1"]
    # The participants record no evidence of their own: they sent it.
    for name in ("d1", "d2"):
        assert fed.agents[name].evidence.roots_signed >= 1
        assert not fed.agents[name].audit.of("result_received")


def test_results_are_sealed_once_per_turn_and_attestations_once_per_batch():
    fed = federation()
    run(fed)
    d0 = fed.agents["d0"]
    # Its attestations (a submission and an end) sealed as batches were taken: at most
    # one signature per batch, and no more than the acts that need one.
    assert 1 <= d0.evidence.roots_signed <= 2
    # Each participant sent one final result: one signature each.
    for name in ("d1", "d2"):
        assert fed.agents[name].evidence.roots_signed == 1


def test_only_this_domains_final_results_to_the_coordinator_are_sealed():
    fed = federation()
    run(fed)
    d1 = fed.agents["d1"].evidence
    ours = ResultMsg(WF, "s1", 1, "SUCCEEDED", {"ran": "s1"}, "")
    from fedorch.core.node.ready import Outgoing, Ready

    ready = Ready((), (Outgoing("d0", ours), Outgoing("d2", ours),
                       Outgoing("d0", replace(ours, step_id="s2")),
                       Outgoing("d0", replace(ours, state="RUNNING"))), (), (), (), ())
    sealed = d1.seal_results(ready)
    assert len(sealed.send_now) == 4
    to_coordinator, to_d2, not_ours, running = (o.msg for o in sealed.send_now)
    assert to_coordinator.evidence and not to_d2.evidence  # only its coordinator keeps it
    assert not not_ours.evidence  # s2 runs at d2: d1 does not speak for it
    assert not running.evidence   # only a final result is evidence
    empty = Ready((), (), (), (), (), ())
    assert d1.seal_results(empty) is empty


def test_a_result_whose_evidence_is_not_that_result_is_recorded_without():
    fed = federation()
    d2 = fed.agents["d2"]
    send = d2.send

    def tampering(dst: str, msg: object) -> None:
        if type(msg) is ResultMsg and msg.evidence and dst == "d0":
            # d2's result with evidence d1 signed (of the same statement but d1's).
            forged = seal_statements(KEYS["d1"].sign, [carried(msg.evidence)])[0]
            msg = replace(msg, evidence=forged)
        send(dst, msg)

    d2.send = tampering  # type: ignore[method-assign]
    run(fed)
    d0 = fed.agents["d0"]
    by_step = {r["step"]: r["evidence"] for r in d0.audit.of("result_received")}
    assert by_step["s1"] is not None and by_step["s2"] is None, by_step
    assert d0.evidence.refused == 1


def test_evidence_heard_is_bounded(monkeypatch):
    from fedorch.runtime.node_engine import attestations

    monkeypatch.setattr(attestations, "HEARD_MAX", 3)
    fed = federation()
    d0 = fed.agents["d0"].evidence
    for i in range(5):
        d0.heard("d1", ResultMsg(WF, f"s{i}", 1, "SUCCEEDED", {}, "", evidence=b"x"))
    d0.heard("d1", ResultMsg("d1.w", "s", 1, "SUCCEEDED", {}, "", evidence=b"x"))
    assert [k[1] for k in d0._heard] == ["s2", "s3", "s4"]  # not its own: not kept


def test_the_hashes_kept_for_ends_are_bounded(monkeypatch):
    from fedorch.runtime.node_engine import attestations

    monkeypatch.setattr(attestations, "HEARD_MAX", 2)
    d0 = federation().agents["d0"].evidence
    for i in range(3):
        d0.hashed(f"d0.w{i}", "s0", ("result",), "kept")
    assert list(d0._hashes) == ["d0.w1", "d0.w2"]  # the oldest dropped
