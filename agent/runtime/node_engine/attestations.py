"""The node engine's audit evidence: what a proof of a workflow needs, signed cheaply.

Theory of operation
-------------------
A proof (docs/audit.md, format "fedorch-audit-proof/2", core/audit/proof_node.py) shows
a third party, with public keys only, that the coordinator took a spec, that every
domain it placed a step on voted YES to that round, that each step's domain produced
the outputs with the hash the end names, and how the coordinator says it ended. Each
piece is signed by the domain with authority over it; signing each alone would cost a
signature per piece and per workflow, so every piece is a statement sealed in a batch
(core/node/votes.py: the statements of a batch are the leaves of a Merkle tree, one
signature over its root; a statement's evidence is statement + path + signature):

- votes: the Node signs its YES votes per driver turn already; a COMMIT's value holds
  every participant's as received, which the coordinator's `decision` record keeps
  (its `certificate`: the round and each vote's evidence);
- results: a domain that ran a step signs its final result (SUCCEEDED or FAILED) as it
  leaves for the workflow's coordinator (`seal_results`, on the Ready of the turn
  that sends it: the turn's results share one signature; a resend is sealed again in
  its own turn). The statement (votes.result_statement) names the workflow, the step,
  the attempt, the state, the outputs' SHA-256, the placement epoch and the domain;
  only a step this domain's view places here is sealed (a result the coordinator
  relays for a gone domain is not this domain's word);
- the coordinator keeps the evidence of each result it hears (`heard`, as the message
  comes in) until the result's row is recorded, and then checks it over the bytes as
  received against what is recorded, as the placed domain's (`result_evidence`,
  through the trust store, which verifies a root shared by a turn's results once): a
  result whose evidence does not hold is recorded without (a warning names it), and a
  proof of that workflow fails for that step;
- the coordinator's attestations (a workflow's submission, its end) are canonical
  JSON objects (with "domain"), made with the acts they belong to and
  sealed together when the audit batch is written (`seal_pending`, from
  NodeAuditLog.take): one signature per audit transaction, at most 1/BATCH_S a second.

A step run at the coordinator needs no result of its own: the end it signs names it.

Bounded: the evidence heard and not yet recorded is kept for at most HEARD_MAX results
(oldest dropped first: a result that never reaches a record, being refused, for one),
and the outputs' hashes kept for the end's attestation (`hashed`: so the end hashes
no outputs again) for at most HEARD_MAX workflows (one whose end is made elsewhere
never takes them; one dropped is hashed again at its end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from fedorch.core.audit.chain import b64, canonical
from fedorch.core.node.ready import Outgoing, Ready
from fedorch.core.node.records import CoordRow, ResultMsg
from fedorch.core.node.votes import result_statement, seal_statements, statement_holds
from fedorch.core.workflow.progress import StepState

__all__ = ["Attestations", "HEARD_MAX"]

log = logging.getLogger("fedorch.node_engine")

HEARD_MAX = 4096
_RAN = frozenset({StepState.SUCCEEDED, StepState.FAILED})

Signer = Callable[[bytes], bytes]
Verifier = Callable[[str, bytes, bytes], bool]


def _coordinator_of(wf: str) -> str:
    return wf.rpartition(".")[0]


class Attestations:
    """One agent's signing and checking of audit evidence (see the header). `sign`: the
    domain key's signer; `verify(domain, data, signature)`: the trust store's, as
    evidence; `outputs_sha256`: the audit log's hash of a result's outputs."""

    def __init__(self, domain: str, node: Any, sign: Signer, verify: Verifier,
                 outputs_sha256: Callable[[Any], str]) -> None:
        self.domain = domain
        self.node = node
        self.sign = sign
        self.verify = verify
        self.outputs_sha256 = outputs_sha256
        self._heard: dict[tuple[str, str, int], tuple[str, ResultMsg]] = {}
        self._pending: list[tuple[dict, bytes]] = []  # (act data, its statement)
        # The outputs' hashes the coordinator's records computed, for its end's
        # attestation: workflow -> {step: (the result recorded, its hash)}.
        self._hashes: dict[str, dict[str, tuple[tuple, str]]] = {}
        self.roots_signed = 0  # signatures made here (results' and attestations')
        self.refused = 0       # results heard whose evidence did not hold

    # ---- results sent: sealed per turn ------------------------------------------------

    def seal_results(self, ready: Ready) -> Ready:
        """The Ready with this domain's final results to their coordinators sealed (one
        signature for the turn's); the same Ready when it sends none."""
        at = [(q, i) for q, outs in enumerate((ready.send_now, ready.send_after_write))
              for i, out in enumerate(outs) if self._to_seal(out)]
        if not at:
            return ready
        queues = [list(ready.send_now), list(ready.send_after_write)]
        statements = []
        for q, i in at:
            m = queues[q][i].msg
            statements.append(result_statement(
                m.workflow_id, m.step_id, m.attempt, str(m.state),
                self.outputs_sha256(m.outputs), m.epoch, self.domain))
        for (q, i), raw in zip(at, seal_statements(self.sign, statements), strict=True):
            out = queues[q][i]
            queues[q][i] = Outgoing(out.to, replace(out.msg, evidence=raw))
        self.roots_signed += 1
        # The same lengths: the Node's advance drops what it handed out by count.
        return ready._replace(send_now=tuple(queues[0]), send_after_write=tuple(queues[1]))

    def _to_seal(self, out: Outgoing) -> bool:
        m = out.msg
        if type(m) is not ResultMsg or m.evidence or m.state not in _RAN:
            return False
        wf = m.workflow_id
        coordinator = _coordinator_of(wf)
        return out.to == coordinator != self.domain and self._runs_here(wf, m.step_id)

    def _runs_here(self, wf: str, step: str) -> bool:
        # Asked of every result sent: `in` and subscripts, not five .get calls.
        d = self.node.state
        placements = d.placements
        if wf in placements and step in placements[wf]:
            return placements[wf][step][1] == self.domain
        if wf not in d.committed or (wf, d.committed[wf]) not in d.info:
            return False
        placement = d.info[(wf, d.committed[wf])].placement
        return step in placement and placement[step] == self.domain

    # ---- results heard: checked when recorded ----------------------------------------

    def heard(self, src: str, msg: ResultMsg) -> None:
        """A result came in (before the Node sees it): its evidence, kept until its
        row is recorded, if this domain coordinates its workflow."""
        if not msg.evidence or _coordinator_of(msg.workflow_id) != self.domain:
            return
        heard = self._heard
        heard[(msg.workflow_id, msg.step_id, msg.attempt)] = (src, msg)
        if len(heard) > HEARD_MAX:
            del heard[next(iter(heard))]

    def result_evidence(self, wf: str, step: str, attempt: int, state: str,
                        outputs_sha256: str, domain: str, epoch: int) -> tuple[int, str | None]:
        """(placement epoch, evidence as base64 or None) of a result recorded now from
        `domain`: what it sent, if that says this very result as `domain`'s."""
        src, msg = self._heard.pop((wf, step, attempt), ("", None))
        if msg is None:
            return epoch, None
        statement = result_statement(wf, step, attempt, state, outputs_sha256,
                                     msg.epoch, domain)
        if src != domain or not statement_holds(self.verify, domain, statement,
                                                msg.evidence):
            self.refused += 1
            log.warning("result of %s/%s attempt %d from %s: its signed statement is not"
                        " that result (recorded without evidence)", wf, step, attempt, src)
            return epoch, None
        return msg.epoch, b64(msg.evidence)

    # ---- the coordinator's attestations: sealed per audit batch ---------------------

    def attest(self, data: dict, statement: Mapping[str, object]) -> None:
        """`data["attestation"]` becomes this domain's signed `statement` (with its
        "domain") when the batch it is written in is sealed; None until then."""
        data["attestation"] = None
        self._pending.append((data, canonical({**statement, "domain": self.domain})))

    def seal_pending(self) -> None:
        """Seal every attestation made since the last call, with one signature."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        sealed = seal_statements(self.sign, [s for _, s in pending])
        for (data, _), raw in zip(pending, sealed, strict=True):
            data["attestation"] = b64(raw)
        self.roots_signed += 1

    def submission(self, row: CoordRow, data: dict) -> None:
        """A submission's attestation:
        the spec's hash, the principal and the key vouched for, the request id and
        what the submitter signed with the spec."""
        signed = row.info.submission
        if signed is None:
            return
        self.attest(data, {
            "kind": "submission", "workflow": row.workflow_id,
            "spec_sha256": data["spec_sha256"], "principal": signed.principal,
            "client_key": b64(signed.public_key), "request_id": signed.request_id,
            "signed_request_id": signed.request_id, "signed_at_ms": signed.issued_at_ms,
            "signed_coordinator": signed.coordinator})

    def hashed(self, wf: str, step: str, result: tuple, digest: str) -> None:
        """The coordinator recorded `result` of `step`, whose outputs hash `digest`:
        kept for the end's attestation, which then hashes none of them again."""
        hashes = self._hashes
        hashes.setdefault(wf, {})[step] = (result, digest)
        if len(hashes) > HEARD_MAX:  # workflows that end elsewhere (a successor's end)
            del hashes[next(iter(hashes))]

    def forget(self, wf: str) -> None:
        self._hashes.pop(wf, None)

    def final(self, row: CoordRow, results: Mapping[str, tuple], data: dict) -> None:
        """A workflow's end: its state and reason, its committed round, and each
        step's state, attempt, domain, placement epoch and outputs' hash."""
        wf = row.workflow_id
        hashed = self._hashes.pop(wf, {})
        moved = self.node.state.placements.get(wf, {})
        progress = self.node.progress.get(wf)
        steps = {}
        placement = row.info.placement
        for spec_step in row.info.spec.steps:  # `in` and subscripts: no .get per step
            sid = spec_step.id
            epoch, domain = (moved[sid][0], moved[sid][1]) if sid in moved \
                else (0, placement[sid] if sid in placement else "")
            result = results[sid] if sid in results else None
            if result is not None:
                attempt, state, outputs, _ = result
                known = hashed[sid] if sid in hashed else None
                digest = known[1] if known is not None and known[0] is result \
                    else self.outputs_sha256(outputs)
            elif progress is not None and sid in progress.steps:
                s = progress.steps[sid]
                attempt, state, digest = s.attempts, s.state, ""
            else:
                attempt, state, digest = 0, StepState.PENDING, ""
            steps[sid] = {"state": str(state), "attempt": int(attempt), "domain": domain,
                          "epoch": int(epoch), "outputs_sha256": digest}
        self.attest(data, {"kind": "final", "workflow": wf, "state": row.state.name,
                           "reason": row.reason,
                           "round": row.round if row.committed else None,
                           "steps": steps})
