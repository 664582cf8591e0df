"""A told end kept at a Node still in doubt (it voted YES and never learned the
decision), replaced by a later epoch's proven end (agent/core/node/told_ends.py),
let through the boundary (authority_ends.py, `_told_end_kept`). The takeover soak's
seed 197102921 (one way): d2, back from a crash in doubt, took the original's
loss-verdict FAILED of epoch 0, which the original never made (it granted epoch 1
next); epoch 1's holder ended the workflow SUCCEEDED, and its proven notice was
refused at d2 as "not committed here yet", so d2 kept FAILED against SUCCEEDED
everywhere else."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.inputs import Submit
from fedorch.core.node.records import AckMsg, FinalMsg, PrepareMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import WF, Federation, step
from tests.unit.core.node.test_told_ends import certificate


def d3_in_doubt_told_failed() -> Federation:
    """d0's workflow of s1 (d1), s2 (d2), s3 (d3), committed everywhere but at d3,
    which voted YES and heard nothing more; d0 tells d3 the end FAILED before making
    it (domain_loss.py) and is heard from no more."""
    fed = Federation()

    def d3_hears_only_prepares(src: str, dst: str, msg: object) -> bool:
        return dst == "d3" and not isinstance(msg, PrepareMsg)

    placement = {"s1": "d1", "s2": "d2", "s3": "d3"}
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(
        name="w", steps=[step(s) for s in placement]), placement=placement))
    fed.deliver(keep=d3_hears_only_prepares)
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    assert WF not in fed.disks["d3"].committed and fed.disks["d3"].info  # voted, in doubt
    fed.net.clear()
    fed.step("d3", Message("d0", FinalMsg(WF, WorkflowState.FAILED)))
    assert fed.disks["d3"].final[WF] is WorkflowState.FAILED  # kept at once, in doubt
    fed.net.clear()
    fed.silent.add("d0")
    return fed


def test_a_node_in_doubt_that_kept_a_told_end_takes_a_later_epochs_proven_end() -> None:
    """d1 wins epoch 1 on d0's, d1's and d2's grants and ends the workflow SUCCEEDED:
    its notice, with the certificate, replaces the FAILED d3 was told in doubt, which
    d0 never made; d3 keeps its proof and acknowledges."""
    fed = d3_in_doubt_told_failed()
    won = certificate(fed, "d1", ("d0", "d1", "d2"))
    ready = fed.step("d3", Message("d1", FinalMsg(WF, WorkflowState.SUCCEEDED, 1, won=won)))
    assert fed.refused == []
    assert fed.disks["d3"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d3"].end_proofs[WF] == (1, "d1", won)
    assert ("d1", AckMsg(("final", WF, "d3"))) in sent(ready)
    assert fed.nodes["d3"].stats["told end replaced by a later epoch's"] == 1


def test_a_node_in_doubt_takes_no_later_end_without_its_proof() -> None:
    """A later epoch's end with a certificate of no majority (two grants of four), or
    none, is refused in doubt as before: the told end stays."""
    fed = d3_in_doubt_told_failed()
    minority = certificate(fed, "d1", ("d1", "d2"))
    for won in (minority, ()):
        fed.step("d3", Message("d1", FinalMsg(WF, WorkflowState.SUCCEEDED, 1, won=won)))
        assert fed.disks["d3"].final[WF] is WorkflowState.FAILED
    assert len(fed.refused) == 2
    assert fed.nodes["d3"].stats["told end replaced by a later epoch's"] == 0
