"""Building a proof from one workflow's records (core/audit/proof.py `build_proof`)."""

from __future__ import annotations

import pytest
from fedorch.core.audit.proof import ENDED, SUBMITTED, ProofError, build_proof


def _body(kind: str, **data: object) -> dict:
    return {"kind": kind, "workflow": "c.w1", "time_ms": 1, "data": data}


def test_records_without_attestations_are_refused_naming_why() -> None:
    # As an agent on engine: node writes them (runtime/node_engine/audit.py).
    records = [_body(SUBMITTED, spec="", attestation=None, client_signature=None),
               _body(ENDED, state="SUCCEEDED", reason="", attestation=None)]
    with pytest.raises(ProofError, match="no attestations"):
        build_proof("c.w1", records)


def test_a_log_without_the_submission_is_not_its_coordinators() -> None:
    with pytest.raises(ProofError, match="is this domain its coordinator"):
        build_proof("c.w1", [_body(ENDED, state="SUCCEEDED", attestation=None)])
