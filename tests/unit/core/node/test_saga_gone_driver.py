"""A step's domain asks about a workflow whose saga's driver is gone
(agent/core/node/saga_gone_driver.py, called by restart_check.py's `_tell_end`): Nodes
driven by hand with coordinator takeover on, d0 the original coordinator; step attempts
end only when a test says so (test_domain_loss.py's federation).

The story of takeover soak seed 109000128: d0 ended the workflow FAILED, then took the
end a claimant, d1, told on in epoch 1 with no plan, and follows d1, which dies for
good; d2, back from a restart, still holds a step and asks d0, the coordinator it
follows. Before, d0 left the end to the saga's driver, which nobody was any more, and
d2 asked for ever, holding its reservation."""

from __future__ import annotations

from fedorch.core.node.inputs import CompensationEnded
from fedorch.core.node.records import ClaimMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.stories import d0_ended_following_d1_down
from tests.unit.core.node.test_domain_loss import WF, Federation, committed, step
from tests.unit.core.node.test_restart_check import back


def compensated(sid: str, *, needs: tuple[str, ...] = ()) -> spec_pb2.StepSpec:
    s = step(sid, needs=needs)
    s.compensate.CopyFrom(spec_pb2.Compensation(params_json="{}"))
    return s


def d0_follows_d1s_end_and_d1_dies(s1_ends: bool, *, seen_dead: bool = True) -> Federation:
    """s0 on d1; s1 (with a compensate block) and s2 (after s0) on d2. With `s1_ends`,
    s1 SUCCEEDS and its result reaches d0. Then d0 and d2 go down; d0's tables say it
    ended the workflow FAILED and follows d1's epoch 1 (d1 told it the end on, bare:
    no plan); d1 dies for good; d0 and d2 come back, their views saying d1 DEAD (d0's
    ALIVE, unless `seen_dead`). d2, holding s2 (waiting for s0), asks d0 for the
    placements."""
    fed = committed([step("s0"), compensated("s1"), step("s2", needs=("s0",))],
                    {"s0": "d1", "s1": "d2", "s2": "d2"})
    if s1_ends:
        fed.end("d2", "s1")
        assert fed.disks["d0"].results[WF]["s1"][1] is StepState.SUCCEEDED
    d0_ended_following_d1_down(fed)
    back(fed, "d0", dead=("d1",) if seen_dead else ())
    back(fed, "d2", dead=("d1",))
    fed.deliver()
    return fed


def holds_of(fed: Federation, name: str) -> list:
    return [h for h in fed.nodes[name].participant.holds() if h.workflow_id == WF]


def test_a_domain_asking_while_the_sagas_driver_is_gone_gets_the_saga_driven_and_the_end(
) -> None:
    """d0 holds s1's SUCCEEDED result, which owes a compensation at d2, and no plan (its
    driver, d1, told none and is gone): asked by d2, d0 makes that its plan and, d1
    DEAD past takeover_after_s, claims epoch 2; d2, which has not ended the workflow,
    grants it; d0 wins, adopts the plan, tells d2 the end and the plan in epoch 2 and
    asks s1's compensation; d2 runs it once, ends the workflow and lets its
    reservation go; the saga ends DONE at d0."""
    fed = d0_follows_d1s_end_and_d1_dies(s1_ends=True)
    assert fed.nodes["d2"].restart_check.holds_back(WF)
    assert holds_of(fed, "d2")
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d2"].final.get(WF) is WorkflowState.FAILED
    assert [m.epoch for _, m in fed.sent_by("d0", ClaimMsg)][:1] == [2]
    assert fed.disks["d0"].epochs[WF] == (2, "d0")
    assert fed.nodes["d0"].stats[
        "saga driver gone: the results here owe a plan, the next epoch claimed"] == 1
    assert fed.disks["d2"].epochs[WF] == (2, "d0")
    runs = [run for node, run in fed.started if node == "d2" and len(run) == 4]
    assert runs == [(WF, "s1", 1, "compensate")]
    fed.step("d2", CompensationEnded(WF, "s1", 1, True, ""))
    fed.deliver()
    assert fed.disks["d0"].compensations[(WF, "s1")].state == "COMPENSATED"
    assert not holds_of(fed, "d2")
    assert not fed.nodes["d2"].restart_check.holds_back(WF)


def test_a_domain_asking_while_the_sagas_driver_is_gone_is_told_the_end_if_nothing_is_owed(
) -> None:
    """d0 holds no SUCCEEDED result that owes a compensation (s1 never ended): no plan
    to claim for, and no driver alive to tell d2 the end, so d0 tells it now, as the
    original coordinator; d2 ends the workflow and lets its reservation go."""
    fed = d0_follows_d1s_end_and_d1_dies(s1_ends=False)
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d2"].final.get(WF) is WorkflowState.FAILED
    assert not holds_of(fed, "d2")
    told = [m for to, m in fed.sent_by("d0", FinalMsg) if to == "d2"]
    assert [(m.state, m.epoch) for m in told][:1] == [(WorkflowState.FAILED, 0)]
    assert not fed.sent_by("d0", ClaimMsg)
    assert fed.nodes["d0"].stats[
        "saga driver gone, nothing owed here: the end is the whole end"] >= 1


def test_a_domain_asking_while_the_sagas_driver_lives_is_told_nothing_by_another() -> None:
    """The same, but d1, the driver d0 follows, is alive in d0's view: d0 tells d2
    nothing and claims nothing; the driver tells the end with its plan (restart_check.py,
    `_tell_end`; takeover soak seed 5200672)."""
    fed = d0_follows_d1s_end_and_d1_dies(s1_ends=True, seen_dead=False)
    fed.run_until(fed.now + 30.0)
    assert fed.nodes["d2"].stats["placement asked after a restart"] >= 2
    assert fed.nodes["d0"].stats[
        "saga driver gone: the results here owe a plan, the next epoch claimed"] == 0
    assert not fed.sent_by("d0", ClaimMsg)
    assert not [m for to, m in fed.sent_by("d0", FinalMsg) if to == "d2"]
    assert WF not in fed.disks["d2"].final
