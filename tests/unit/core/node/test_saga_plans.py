"""The saga's plan adopted by the holder of a later epoch (core/node/saga_plans.py):
a coordinator that drove a saga in an earlier epoch, then followed a later one whose
plan it holds, adopts that plan when it wins the next epoch, its own rows replaced;
of two holders of one epoch that told the end alike, one gone in a member's view
never drives there."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message, Submit
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import AckMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_compensating_takeover import (
    WF,
    Sagas,
    claims_held,
    rows,
    spec,
    two_claimants_told_the_end_on,
)


def test_a_coordinator_that_drove_a_saga_then_wins_a_later_epoch_adopts_that_epochs_plan():
    # d0 ran s0 itself, ended the workflow FAILED and drove its saga (s1's compensation
    # at d2 told); a claimant, d1, told the end on in epoch 1 and its plan: d0 follows
    # it, its rows kept, driven no more. d1 dies: d0 wins epoch 2 and adopts d1's plan,
    # its own rows of epoch 0 replaced by it (kept, they stopped the adoption: the saga
    # was driven by nobody), and finishes the saga, each attempt once.
    f = Sagas()
    f.step("d0", Submit(WF, spec(), placement={"s0": "d0", "s1": "d2", "s2": "d2"}))
    f.deliver()
    assert f.end("d0", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"
    assert f.end("d2", False, "boom")[1] == "s2"
    assert rows(f, "d0") == {"s0": ("PENDING", 0), "s1": ("RUNNING", 1)}
    plan = (("s0", "d0", 1), ("s1", "d2", 1))
    f.step("d0", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1)))
    f.step("d0", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1, owed=plan)))
    assert f.disks["d0"].epochs[WF] == (1, "d1")
    assert WF not in f.nodes["d0"].compensating.cores
    assert f.disks["d0"].plans[WF] == plan
    f.net = [m for m in f.net if "d1" not in m[:2]]
    f.kill("d1")
    f.run_until(f.now + 30.0)
    assert f.disks["d0"].epochs[WF] == (2, "d0")
    assert WF in f.nodes["d0"].compensating.cores  # it drives the plan
    assert f.nodes["d0"].stats["saga rows of an earlier epoch replaced by an adopted plan"]
    f.end("d2", True)  # s1's compensation (attempt 1, told in epoch 0) ends: to d0
    f.end("d0", True)  # then s0's, its own
    f.run_until(f.now + 30.0)
    assert rows(f, "d0") == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    assert sorted(f.compensations) == [("d0", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s1", 1, COMPENSATE))]


def test_a_claimant_keeps_its_saga_when_the_better_ranked_rival_is_gone_in_its_view():
    # d1 and d2 both told d0's end on in epoch 1; d1 ranks better, but d2's view says
    # d1 is DEAD: a gone holder never drives, so d2 keeps driving its own saga.
    f, late = two_claimants_told_the_end_on()
    f.deliver(keep=claims_held)
    f.step("d2", MemberState("d1", "DEAD"))
    for dst, msg in late:
        f.step(dst, Message("d0", msg))
    f.deliver(keep=claims_held)
    assert f.disks["d2"].epochs[WF] == (1, "d2")
    assert WF in f.nodes["d2"].compensating.cores
    assert not f.nodes["d2"].stats["saga yielded to a better claimant of its epoch"]


def test_a_member_following_a_gone_holder_follows_a_live_rival_of_its_epoch():
    # d2 yielded to d1, the better-ranked claimant of epoch 1, whose certificate it was
    # shown; d1 then dies for good (takeover soak seed 8901582: the certified winner
    # died after its end). A rival's end of that epoch, told alike, uncertified, is
    # followed all the same: a gone holder never drives.
    f, late = two_claimants_told_the_end_on()
    f.deliver(keep=claims_held)
    for dst, msg in late:
        f.step(dst, Message("d0", msg))
    f.deliver(keep=claims_held)
    assert f.disks["d2"].epochs[WF] == (1, "d1")
    f.nodes["d2"].takeover.proofs[WF] = (1, "d1", ())  # as if shown d1's certificate
    f.step("d2", MemberState("d1", "DEAD"))
    plans = f.nodes["d2"].compensating.plans
    plans.rival_end(f.now, WF, 1, "d0", WorkflowState.FAILED, ())
    assert f.nodes["d2"].state.epochs[WF] == (1, "d0")
    assert f.nodes["d2"].stats["saga driver gone: a live claimant of its epoch followed"] == 1


def test_a_claimant_tells_its_end_to_a_rival_of_its_epoch_it_never_knew_as_a_member():
    # d1 told d0's end on in epoch 1 and drives its saga. A rival claimant of epoch 1,
    # d5, tells it the same end: a new domain the original placed a step on while d1
    # was cut off, a placement d1 refused (not ended then) and never wrote, so no
    # member here. Refused, as a stranger's, the two drove epoch 1's saga for ever
    # (d5 resending its end to d1). Now it is acknowledged and answered with d1's end,
    # so d5 judges it where d1 is a member; d1 never follows a stranger.
    f, late = two_claimants_told_the_end_on()
    f.deliver(keep=claims_held)
    for dst, msg in late:
        if dst == "d1":
            f.step(dst, Message("d0", msg))
    assert f.disks["d1"].epochs[WF] == (1, "d1")
    assert "d5" not in f.nodes["d1"].replacement.domains_of(WF)
    f.net = []
    f.step("d1", Message("d5", FinalMsg(WF, WorkflowState.FAILED, 1)))
    to_d5 = [msg for src, dst, msg in f.net if (src, dst) == ("d1", "d5")]
    assert AckMsg(("final", WF, "d1")) in to_d5
    assert FinalMsg(WF, WorkflowState.FAILED, 1) in to_d5
    assert f.disks["d1"].epochs[WF] == (1, "d1")
    assert WF in f.nodes["d1"].compensating.cores
