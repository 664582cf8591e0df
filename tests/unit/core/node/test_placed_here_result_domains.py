"""A result of an older placement dropped as its step's new placement is taken here
(placed_here.py) takes its run's record with it (saga_results.py `ran_in`), as every
other path that drops or replaces a result does (running.py's end, replacement.py,
domain_loss_verdict.py): kept, the record names the lost domain's run for a result
no longer held, and a SUCCEEDED result the step's run here writes later is the only
one the record may speak of."""

from __future__ import annotations

from fedorch.core.node import StepEnded, Submit
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, dies, step
from tests.unit.core.node.test_placed_here import OnlyD1AndD2TakeA


def test_the_lost_domains_result_dropped_here_drops_its_run_record() -> None:
    """s1 (idempotent, with a compensation) SUCCEEDS on d1; its result reaches d2 only,
    recorded there as d1's run. d1 dies, s1 is placed again on d2: d1's result is
    dropped there, and its record with it."""
    fed = OnlyD1AndD2TakeA()
    s1 = step("s1", idempotent=True)
    s1.compensate.capability = "a"
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        s1, step("s2", needs=("s1",))]), placement={"s1": "d1", "s2": "d2"}))
    fed.deliver()
    fed.step("d1", StepEnded(*sorted(fed.running["d1"])[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: (src, dst) == ("d1", "d0"))
    fed.net = []
    assert fed.disks["d2"].results[WF]["s1"][1] is StepState.SUCCEEDED
    assert fed.disks["d2"].result_domains[WF] == {"s1": "d1"}
    dies(fed, "d1")
    assert fed.disks["d0"].placements[WF]["s1"][1] == "d2"
    assert fed.nodes["d2"].stats["result of an older placement dropped here"] == 1
    assert "s1" not in fed.disks["d2"].results.get(WF, {})
    assert "s1" not in fed.disks["d2"].result_domains.get(WF, {})
    # Run here now: its result is recorded as this run's.
    fed.end("d2", "s1")
    assert fed.disks["d2"].result_domains[WF] == {"s1": "d2"}
