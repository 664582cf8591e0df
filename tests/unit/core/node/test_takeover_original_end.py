"""A claim for a saga's open plan, denied with the claimant's own end by the original
coordinator as the holder of epoch 0, while the claimant follows a later epoch
(core/node/takeover_claim_answers.py, "The original's end below the epoch followed").

d0 tells FAILED (s1 failed at d2) before it makes it; d1 takes it, its acknowledgement
lost; d2 tells that end on in epoch 1 with its saga's plan (a claimant's Announce) and
dies for good; d3 is cut off. d1 follows epoch 1 and, its plan open and epoch 1's
holder gone, claims epoch 2; d0 answers with the end it told, as the holder of epoch 0,
and d1 answers d0's notices of epoch 0 with the later epoch, never acknowledged: before,
d0 stayed RUNNING and d1 claimed for ever (takeover soak seed 202101940 with a cut one
way). Now d1 tells the end on in epoch 2 and drives the saga: d0 follows it and ends
FAILED, and s0's compensation runs once. The same denial to a claimant that follows
no later epoch (the original is the driver it claimed past) changes nothing:
test_takeover_claims.py, a claimant that no domain granted."""

from __future__ import annotations

from fedorch.core.node import Message, Submit
from fedorch.core.node.compensating import COMPENSATE, CompensationEnded
from fedorch.core.node.records import AckMsg, ClaimMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_compensating_takeover import WF, Held
from tests.unit.core.node.test_takeover_claims import PLACEMENT, spec, views


def cut(src: str, dst: str, msg: object) -> bool:
    """d3 cut off; d1's acknowledgements to d0 lost (as d0's crash lost d6's)."""
    return "d3" in (src, dst) or ((src, dst) == ("d1", "d0") and isinstance(msg, AckMsg))


def claiming_past_epoch_1_against_the_originals_told_end() -> Held:
    f = Held()
    f.step("d0", Submit(WF, spec(), placement=PLACEMENT))
    f.deliver()
    assert f.end("d1", True)[1] == "s0"
    f.hold = cut
    assert f.end("d2", False, "boom")[1] == "s1"
    f.run_until(f.now + 2.0)
    assert f.nodes["d0"].domain_loss.held[WF] is WorkflowState.FAILED  # told, not made
    assert f.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    assert f.disks["d1"].final[WF] is WorkflowState.FAILED  # taken, its ack lost
    f.kill("d2")  # for good, after telling on the end in epoch 1, with its plan
    f.net = [m for m in f.net if not cut(*m)]
    f.step("d1", Message("d2", FinalMsg(WF, WorkflowState.FAILED, 1)),
           Message("d2", FinalMsg(WF, WorkflowState.FAILED, 1, owed=(("s0", "d1", 1),))))
    assert f.disks["d1"].epochs[WF] == (1, "d2")
    for name in ("d0", "d1"):
        views(f, name, d2="DEAD")
    return f


def test_a_claimant_denied_its_own_end_by_the_original_below_its_epoch_tells_it_on():
    f = claiming_past_epoch_1_against_the_originals_told_end()
    f.run_until(f.now + 30.0)
    d0, d1 = f.nodes["d0"], f.nodes["d1"]
    # d0 follows epoch 2 and ends FAILED: its told end, the same, is made so.
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED
    assert f.disks["d0"].epochs[WF] == (2, "d1")
    assert WF not in d0.domain_loss.held
    assert d1.stats["takeover claim denied with our end by the original below our epoch"] \
        == 1
    assert d1.stats["takeover claimant that ended told the end on"] == 1
    assert ("d0", FinalMsg(WF, WorkflowState.FAILED, 2)) in f.sent_by("d1", FinalMsg)
    # One driver: d1, in epoch 2; its claims are over.
    assert f.disks["d1"].epochs[WF] == (2, "d1")
    assert WF not in d1.takeover.cores
    claims = len(f.sent_by("d1", ClaimMsg))
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    f.step("d1", CompensationEnded(WF, "s0", 1, True, ""))
    f.run_until(f.now + 30.0)
    assert len(f.sent_by("d1", ClaimMsg)) == claims
    assert d1.compensating.of(WF)[1].value == "DONE"
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]  # run once
    assert f.disks["d0"].plans.get(WF, ()) == ()  # the saga's end told to d0 too

