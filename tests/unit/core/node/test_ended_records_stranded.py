"""A step's domain asks the coordinator it follows about a workflow that Node forgot
(core/node/ended_records.py, `query_answer`; restart_check.py, `on_query`): Nodes
driven by hand with coordinator takeover on and retention (test_retention_takeover.py's
federation), d0 the original coordinator.

The story (test_saga_gone_driver.py's, with retention): d0 ended the workflow FAILED,
then took the end a claimant, d1, told on in epoch 1 with no plan, and follows d1,
which dies for good. d0 is ended by a later epoch's holder, so it waits for no
domain's acknowledgement and forgets the workflow while d2 is down; d2, back, still
holds a step and asks d0. Before, d0's record told nothing (the end of an original that
follows a later holder), and d2 asked every 4 s for ever, holding its reservation."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from fedorch.core.node.ended_records import IF_DRIVER_GONE, NOTHING, EndedRecords
from fedorch.core.node.records import ClaimMsg, FinalMsg
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node import test_retention_takeover as rt
from tests.unit.core.node.stories import committed_in, d0_ended_following_d1_down
from tests.unit.core.node.test_domain_loss import WF, step
from tests.unit.core.node.test_restart_check import back
from tests.unit.core.node.test_saga_gone_driver import compensated, holds_of


def d0_forgets_while_d2_is_down(*, d1_seen_dead: bool = True) -> rt.Federation:
    """s0 on d1; s1 (with a compensate block) and s2 (after s0) on d2, none ended. d0
    and d2 go down; d0's tables say it ended the workflow FAILED and follows d1's
    epoch 1 (no plan told); d1 dies for good. d0 comes back (its view saying d1 DEAD
    with `d1_seen_dead`) and forgets the workflow while d2 is still down."""
    fed = committed_in(rt.Federation(), [step("s0"), compensated("s1"),
                                         step("s2", needs=("s0",))],
                       {"s0": "d1", "s1": "d2", "s2": "d2"})
    d0_ended_following_d1_down(fed)
    back(fed, "d0", dead=("d1",) if d1_seen_dead else ())
    fed.run_until(fed.now + 2 * rt.LATE + 10.0)
    assert WF not in fed.disks["d0"].final and WF not in fed.disks["d0"].rows
    assert fed.disks["d0"].ended_records[WF][:4] == (WorkflowState.FAILED, 1, "d1",
                                                     IF_DRIVER_GONE)
    assert WF not in fed.disks["d2"].final and holds_of(fed, "d2")
    back(fed, "d2", dead=("d1",))
    fed.deliver()
    return fed


def ended_within(fed: rt.Federation, name: str, seconds: float) -> WorkflowState | None:
    """Run until `name` has ended the workflow (its end is read before its own
    retention forgets it) or `seconds` have passed: the end it holds, if any."""
    deadline = fed.now + seconds
    while WF not in fed.disks[name].final and fed.now < deadline:
        fed.run_until(fed.now + 0.5)
    return fed.disks[name].final.get(WF)


def test_a_step_domain_asking_a_coordinator_that_forgot_is_told_the_end_from_its_record(
) -> None:
    """The saga's driver, d1, is gone in d0's view and the results d0 held owed no
    compensation: d0 tells d2 the end from its record, in epoch 0 as the original
    coordinator it follows, as it did while it kept the workflow (saga_gone_driver.py);
    d2 ends the workflow, lets its reservation go and asks no more; nothing is claimed
    and nothing is written at d0."""
    fed = d0_forgets_while_d2_is_down()
    assert ended_within(fed, "d2", 30.0) is WorkflowState.FAILED
    assert not holds_of(fed, "d2")
    assert not fed.nodes["d2"].restart_check.holds_back(WF)
    told = [m for to, m in fed.sent_by("d0", FinalMsg) if to == "d2"]
    assert [(m.state, m.epoch) for m in told][:1] == [(WorkflowState.FAILED, 0)]
    assert fed.nodes["d0"].stats["placement asked of a forgotten workflow: the end told"] >= 1
    assert not fed.sent_by("d0", ClaimMsg)
    assert WF not in fed.disks["d0"].final  # answered from the record, not known again


def test_while_the_sagas_driver_lives_the_record_tells_a_step_domain_nothing() -> None:
    """The same, but d1 is alive in d0's view: the saga's driver tells d2 the end with
    the plan it owes (takeover soak seed 5200672), so the record tells nothing."""
    fed = d0_forgets_while_d2_is_down(d1_seen_dead=False)
    assert ended_within(fed, "d2", 30.0) is None
    assert fed.nodes["d0"].stats["placement asked of a forgotten workflow: its driver lives"] >= 1
    assert not [m for to, m in fed.sent_by("d0", FinalMsg) if to == "d2"]
    assert WF not in fed.disks["d2"].final


def test_a_saga_driver_that_forgot_its_workflow_tells_the_end_in_the_epoch_it_drove_in(
) -> None:
    """What each record tells a placement question (ended_records.py `keep`, `query_
    answer`): the original that drove its workflow in epoch 0, granting none later,
    tells the end in epoch 0 (its saga, if any, over: retention forgot it only then;
    before, nothing, as while it drove); the holder of epoch 1 that made the end
    tells it in epoch 1 with its certificate, kept as the record's proof; an original
    that granted a later epoch than it follows tells nothing (that epoch's holder may
    drive a saga unknown here)."""
    state = SimpleNamespace(ended_records={}, final={}, epochs={}, granted={},
                            ended_proofs={}, plans={})
    proofs = {"d0.b": (1, "d1", ("grant",))}
    saga = SimpleNamespace(spec=spec_pb2.WorkflowSpec(name="w", steps=[compensated("s")]))
    node = SimpleNamespace(state=state, name="d1", stats=Counter(), takeover=None,
                           end_notices=SimpleNamespace(end_proof=proofs.get),
                           running=SimpleNamespace(info=lambda wf: saga))
    ends = EndedRecords(SimpleNamespace(n=node, policy=Retention(), knows=lambda wf: False))
    state.epochs["d0.b"] = (1, "d1")
    state.granted["d1.c"] = (1, "d2")
    for wf in ("d1.a", "d0.b", "d1.c"):
        state.final[wf] = WorkflowState.FAILED
        ends.keep(wf, 1000)
    assert {wf: rec[3] for wf, rec in state.ended_records.items()} == {
        "d1.a": 0, "d0.b": 1, "d1.c": NOTHING}
    assert ends.query_answer("d1.a") == (WorkflowState.FAILED, 0, ())
    assert ends.query_answer("d0.b") == (WorkflowState.FAILED, 1, ("grant",))
    assert ends.query_answer("d1.c") is None
