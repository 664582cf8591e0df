"""A domain that follows a later epoch's holder that has not shown it won takes the
original coordinator's saga tells, and reports to the original too
(core/node/saga_unproven_holder.py).

The federation and workflow of tests/unit/core/node/test_compensating_takeover.py: d0
coordinates; s0 (d1) and s1 (d2, after s0) have a compensate block; s2 (d2, after s1)
fails. Messages go through the authority table (`Bounded`)."""

from __future__ import annotations

import pytest
from fedorch.core.node import MemberState, Message
from fedorch.core.node.authority import Refused, check
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import CompensatedMsg, CompensateMsg

from tests.unit.core.node.test_compensating_takeover import (
    Bounded,
    rows,
    saga_held_then_d2_follows_d1,
)
from tests.unit.core.node.test_takeover import WF


def followed_unproven_holder() -> tuple[Bounded, list]:
    """s2 failed at d2; d0 made its end FAILED and planned its saga, its tells held on
    the way (returned). d1, alive in every view, then told d2 the end bare in epoch 1
    (no certificate: a claimant that never won, as a late grant's end is told), and d2
    follows it; d0 was never told epoch 1."""
    f, held = saga_held_then_d2_follows_d1()
    f.silent.add("d1")
    for name in ("d0", "d2"):
        f.step(name, MemberState("d1", "ALIVE"))
    return f, held


def test_the_originals_tell_is_taken_and_its_saga_ends() -> None:
    # Takeover soak seed 128000131 (--one-way): the holder followed never drove, and
    # the original's tells were refused there for ever, the step uncompensated.
    f, held = followed_unproven_holder()
    check(f.nodes["d2"], "d0", CompensateMsg(WF, "s1", 1))  # not refused
    f.net = held
    f.deliver()
    assert WF not in f.disks["d0"].epochs  # epoch 0: its own saga
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE))]  # taken at d2
    f.end("d2", True)
    reports = f.sent_by("d2", CompensatedMsg)
    assert ("d0", CompensatedMsg(WF, "s1", 1, True)) in reports  # to the original
    assert ("d1", CompensatedMsg(WF, "s1", 1, True)) in reports  # and to the holder
    assert rows(f, "d0")["s1"] == ("COMPENSATED", 1)
    assert f.disks["d2"].comp_runs[(WF, "s1", 1)] == ("succeeded", "", True)  # acked


def test_an_attempt_told_by_both_runs_once() -> None:
    f, held = followed_unproven_holder()
    f.net = held
    f.deliver()
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE))]
    f.step("d2", Message("d1", CompensateMsg(WF, "s1", 1)))  # the holder tells it too
    f.step("d2", Message("d0", CompensateMsg(WF, "s1", 1)))  # and the original again
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE))]  # started once


def test_a_holder_whose_later_end_is_proven_here_is_the_only_driver() -> None:
    # A later epoch's end proven here (`end_proofs`): its holder drives, the original's
    # tell is refused as before.
    f, _ = followed_unproven_holder()
    f.nodes["d2"].state.end_proofs[WF] = (1, "d1", ())
    with pytest.raises(Refused):
        check(f.nodes["d2"], "d0", CompensateMsg(WF, "s1", 1))
