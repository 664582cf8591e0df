"""A participant's side of re-placement (agent/core/node/placed_here.py): Nodes driven
by hand with coordinator takeover on, d0 coordinating (test_domain_loss.py's
federation); step attempts end only when a test says so."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import PlacedMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF, committed, dies, step


def test_a_lost_domains_failure_told_before_the_new_placement_is_dropped_with_it() -> None:
    """s1 (idempotent) runs on d1, s2 on d2 needs it. d1 dies, and d0 places s1 again;
    d1 comes back and reports its attempt FAILED (interrupted by its restart) to d2
    before d2 hears of the new placement. Kept, that failure skips s2 here for ever and
    the new domain's result is refused after it (takeover soak seed 4900902): it is
    dropped when the placement comes, and s2 runs on the new domain's result."""
    fed = committed([step("s1", idempotent=True), step("s2", needs=("s1",))],
                    {"s1": "d1", "s2": "d2"})
    def placed_to_d2(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, PlacedMsg) and dst == "d2"

    dies(fed, "d1", keep=placed_to_d2)
    held = [m for m in fed.net if placed_to_d2(*m)]
    assert held, "d0 placed s1 again"
    new_domain = held[0][2].domain
    fed.net = []
    failed = ResultMsg(WF, "s1", 1, StepState.FAILED, {}, "interrupted by an agent restart", 0)
    fed.step("d2", Message("d1", failed))
    assert fed.nodes["d2"].progress[WF].steps["s2"].state is StepState.SKIPPED
    for src, dst, msg in held:
        fed.step(dst, Message(src, msg))
    assert fed.nodes["d2"].stats["result of an older placement dropped here"] == 1
    assert "s1" not in fed.disks["d2"].results.get(WF, {})
    assert fed.nodes["d2"].progress[WF].steps["s2"].state is not StepState.SKIPPED
    fed.deliver()
    fed.end(new_domain, "s1")
    assert fed.nodes["d2"].progress[WF].steps["s1"].state is StepState.SUCCEEDED
    fed.end("d2", "s2")
    fed.tick(fed.now + 2.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
