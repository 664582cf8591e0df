"""A round's signed statement as its PREPAREs leave (agent/core/node/takeover_proofs.py,
`stated_prepare`): built once per round, and what is signed is what was built."""

from __future__ import annotations

from fedorch.core.node import Submit, takeover_grants, takeover_proofs
from fedorch.core.node.records import PrepareMsg
from fedorch.core.node.takeover_grants import ROUND_CONTEXT
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_takeover import WF, Federation, fake_verify


def test_a_rounds_statement_is_built_once_for_all_its_prepares(monkeypatch) -> None:
    """Three PREPAREs of one round: one statement built (the comparison's, then signed
    as it is), not one more inside the signing; each PREPARE carries d0's signature
    over exactly that statement."""
    built: list[tuple] = []
    real = takeover_grants.round_statement

    def counted(*of):
        built.append(of)
        return real(*of)

    monkeypatch.setattr(takeover_grants, "round_statement", counted)
    monkeypatch.setattr(takeover_proofs, "round_statement", counted)
    fed = Federation()
    spec = spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id=f"s{i}", capability="a") for i in (1, 2, 3)])
    fed.step("d0", Submit(WF, spec, placement={"s1": "d1", "s2": "d2", "s3": "d3"}))
    prepares = [msg for src, _, msg in fed.net if src == "d0" and type(msg) is PrepareMsg]
    assert len(prepares) == 3
    assert len(built) == 1, f"the round's statement was built {len(built)} times"
    statement = real(*built[0])
    for msg in prepares:
        assert fake_verify("d0", ROUND_CONTEXT + statement, msg.tx.round_tx)
