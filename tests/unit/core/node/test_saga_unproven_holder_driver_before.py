"""A domain that followed a later epoch's driver, then granted the original's claim of
a still later epoch, takes that driver's saga tells and reports to it
(core/node/saga_unproven_holder.py, "The driver before the grant").

The federation and workflow of tests/unit/core/node/test_compensating_takeover.py: d0
coordinates; s1 (d2) has a compensate block and SUCCEEDED; s2 (d2) failed. Messages
go through the authority table (`Bounded`)."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message
from fedorch.core.node.authority import check
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import (
    ClaimAnswerMsg,
    ClaimMsg,
    CompensatedMsg,
    CompensateMsg,
    FinalMsg,
)
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_compensating_takeover import (
    Bounded,
    saga_held_then_d2_follows_d1,
)
from tests.unit.core.node.test_takeover import WF


def d2_grants_the_original_after_d1() -> Bounded:
    """d2 follows d1, which told it the end and the saga's plan in epoch 1; d0, the
    original, claims epoch 2 for that open plan, and d2 grants it (it follows d0 in
    epoch 2 from then on, d0 never showing it won)."""
    f, _ = saga_held_then_d2_follows_d1()
    f.silent.add("d1")
    for name in ("d0", "d2"):
        f.step(name, MemberState("d1", "ALIVE"))
    f.step("d2", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1,
                                        owed=(("s1", "d2", 2),))))
    f.net = []
    f.step("d2", Message("d0", ClaimMsg(WF, 2)))
    answers = [m[2] for m in f.net if isinstance(m[2], ClaimAnswerMsg)]
    assert [a.granted for a in answers] == [True]
    assert f.disks["d2"].epochs[WF] == (2, "d0")
    f.net = []
    return f


def test_the_driver_followed_before_the_grant_is_taken_and_reported_to() -> None:
    # Takeover soak seed 150000018 (--one-way): d3 followed d0, the driver of epoch 1,
    # then granted the original d2's claim of epoch 2; d2, told the saga over, told d3
    # the end bare in epoch 2 and drove nothing; a late result reopened d0's saga, and
    # d0's tell of s1's compensation was refused at d3 for ever.
    f = d2_grants_the_original_after_d1()
    check(f.nodes["d2"], "d1", CompensateMsg(WF, "s1", 1))  # not refused
    f.step("d2", Message("d1", CompensateMsg(WF, "s1", 1)))
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE))]
    f.end("d2", True)
    reports = f.sent_by("d2", CompensatedMsg)
    assert ("d1", CompensatedMsg(WF, "s1", 1, True)) in reports  # to the driver before
    assert ("d0", CompensatedMsg(WF, "s1", 1, True)) in reports  # and to the holder
