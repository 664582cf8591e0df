"""The results a workflow's end writes for its steps left unfinished here (Running.end_here)
keep the record of where each result's run was made in step (saga_results.py `ran_in`),
as every other path that writes a result does: a result of a run here, replaced by the
step's CANCELLED at the end (placed elsewhere since), leaves no record saying a run here
made it. The story of test_saga_older_result_after_restart.py, whose workflow SUCCEEDS."""

from __future__ import annotations

from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_compensating import WF
from tests.unit.core.node.test_saga_older_result_after_restart import (
    a_refused_after_the_drivers_restart,
    tick_until,
)
from tests.unit.core.node.test_saga_results import s0_compensated_beside_s1_and_s2


def test_the_end_drops_the_run_record_of_a_result_it_replaces() -> None:
    # s0 idempotent: a lost domain told the new placement drops its own result (its
    # own SUCCEEDED run of a step not idempotent it keeps: placed_started.py).
    spec = s0_compensated_beside_s1_and_s2()
    spec.steps[0].idempotent = True
    f = a_refused_after_the_drivers_restart(s2_ok=True, spec=spec)
    tick_until(f, lambda f: all(WF in f.disks[n].final for n in ("d0", "d1", "d2")))
    assert f.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    results = f.disks["d2"].results[WF]
    assert results["s0"][1] is StepState.CANCELLED  # written by the end here
    for name, disk in f.disks.items():
        for step, domain in disk.result_domains.get(WF, {}).items():
            assert disk.results[WF][step][1] is StepState.SUCCEEDED, (name, step, domain)
