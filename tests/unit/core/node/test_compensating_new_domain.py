"""A step placed again by a successor is compensated in its new domain
(agent/core/node/compensating.py, "Steps placed again"), Nodes driven by hand through
the authority table (test_domain_loss.py's Federation): d0 coordinates and runs s0
(idempotent, with a `compensate` block) itself; s1 is on d1, s2 (capability c) on d2;
d3 offers `a` and runs nothing of the workflow until d1, the successor of d0 dead for
good, places s0 again there in epoch 1 (tests/sim takeover seed 198's shape)."""

from __future__ import annotations

from fedorch.core.node import Submit
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.inputs import CompensationEnded
from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, d0_dies_for_good, step
from tests.unit.core.node.test_replacement_successor import D2TakesNoA


def s0_placed_again_on_d3_by_d1_and_s2_failed(*, restart_d3: bool) -> D2TakesNoA:
    """s0 runs again on d3 (placed there by d1's round in epoch 1) and SUCCEEDS; d3
    restarts (`restart_d3`); then s2 FAILS at d2, and d1 ends the workflow FAILED in
    epoch 1, owing s0's compensation."""
    fed = D2TakesNoA()
    s0 = step("s0", idempotent=True)
    s0.compensate.CopyFrom(spec_pb2.Compensation(params_json='{"undo": true}'))
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        s0, step("s1"), spec_pb2.StepSpec(id="s2", capability="c")]),
        placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    fed.deliver()
    fed.end("d1", "s1")
    d0_dies_for_good(fed)
    assert fed.disks["d1"].placements[WF]["s0"][1:] == ("d3", "d0")
    assert fed.disks["d3"].committed[WF] in round_range(1)
    fed.end("d3", "s0")
    assert fed.disks["d1"].results[WF]["s0"][1] is StepState.SUCCEEDED
    if restart_d3:
        fed.restore("d3")
    fed.end("d2", "s2", ok=False)
    fed.tick(fed.now + 2.0)
    fed.deliver()
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    return fed


def compensations(fed: D2TakesNoA, name: str) -> list[tuple]:
    return sorted(r for r in fed.running[name] if len(r) == 4 and r[3] == COMPENSATE)


def test_the_successors_saga_compensates_a_step_it_placed_again_where_it_ran() -> None:
    """d1 plans s0's compensation in d3, not in d0 (dead, where s0 no longer runs); d3,
    which follows d1 in epoch 1 (its round's, and the end's), takes the tell, runs it
    once and reports it; d1 takes the report and the saga ends DONE."""
    for restart_d3 in (False, True):
        fed = s0_placed_again_on_d3_by_d1_and_s2_failed(restart_d3=restart_d3)
        assert fed.disks["d1"].compensations[(WF, "s0")].domain == "d3"
        assert fed.disks["d3"].final[WF] is WorkflowState.FAILED
        assert fed.disks["d3"].epochs[WF] == (1, "d1")
        assert compensations(fed, "d3") == [(WF, "s0", 1, COMPENSATE)]
        fed.step("d3", CompensationEnded(WF, "s0", 1, True, ""))
        fed.deliver()
        row = fed.disks["d1"].compensations[(WF, "s0")]
        assert (row.state, row.attempts) == ("COMPENSATED", 1)
        assert fed.disks["d3"].comp_runs[(WF, "s0", 1)] == ("succeeded", "", True)
        assert not [r for r in fed.refused if r[1] in ("not_coordinator", "not_placed")]
