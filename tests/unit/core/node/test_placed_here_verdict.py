"""A void loss verdict of ours on a step's placement, and that step placed again by
another coordinator's round, in the Node (agent/core/node/placed_here.py, `take`): Nodes
driven by hand with coordinator takeover on, d0 the workflow's original coordinator
(test_domain_loss.py's federation)."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message, Tick
from fedorch.core.node.records import ClaimMsg, FinalMsg, PlacedMsg, ResultMsg
from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import (
    WF,
    Federation,
    lost_where_no_other_domain_takes_it,
    result,
)


def lost_and_d1_restored() -> Federation:
    """s1 lost with d1, no other domain taking it (d0's verdict waits for d1); d1
    restored, its view saying d0 DEAD and then ALIVE again."""
    fed = lost_where_no_other_domain_takes_it()
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
             MemberState("d3", "ALIVE"))
    fed.step("d1", MemberState("d0", "ALIVE"))
    return fed


def test_a_void_verdict_goes_when_another_coordinators_placement_is_taken() -> None:
    """d0's verdict on s1 (lost with d1, no domain taking it) waits for d1; d1, back,
    wins epoch 1 and d0 follows it: the verdict is void, its end never made, yet on
    record, and deferred in d0's progress. d1 places s1 again on d3 (told to d2); d0
    wins epoch 2 with d2's grant, which carries that placement: d0 takes it, and the
    verdict goes with the placement it judged, so d3's result is taken, not refused as
    one after a terminal one (2PC takeover soak seed 163201385: the old coordinator,
    holding the later epoch, refused it for ever, the workflow RUNNING for ever)."""
    fed = lost_and_d1_restored()
    # d1's reports of s1 lost on the way, d0's end notices and claims held back.
    fed.deliver(keep=lambda src, dst, msg: src == "d1" and isinstance(msg, ResultMsg)
                or src == "d0" and isinstance(msg, (FinalMsg, ClaimMsg)))
    claims = [m for m in fed.net if isinstance(m[2], ClaimMsg)]  # d0's, for epoch 2
    fed.net = []
    d0 = fed.nodes["d0"]
    fed.step("d0", Tick())
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    assert not d0.domain_loss.holds(WF)
    assert d0.stats["loss verdict void: driven or ended elsewhere"] == 1
    assert result(fed, "d0", "s1")[1] is StepState.FAILED  # on record still
    # d1, epoch 1's holder, placed s1 again on d3 and told d2 (a round of its epoch).
    epoch = round_range(1).start + 1
    won = fed.disks["d1"].certificates[WF][1]
    fed.step("d2", Message("d1", PlacedMsg(WF, "s1", "d3", epoch, "d1", held_epoch=1,
                                           won=won)))
    assert fed.disks["d2"].placements[WF]["s1"] == (epoch, "d3", "d1")
    fed.net = [m for m in claims if m[1] == "d2"]  # its grant wins d0 the epoch, and
    fed.deliver(keep=lambda src, dst, msg: dst == "d3")  # carries the placement
    fed.net = []  # d3 hears nothing of it before it reports
    assert fed.disks["d0"].epochs[WF] == (2, "d0")
    assert fed.disks["d0"].placements[WF]["s1"] == (epoch, "d3", "d1")
    assert "s1" not in fed.disks["d0"].results.get(WF, {})  # the void verdict went with it
    fed.step("d0", Message("d3", ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {"x": 1}, "",
                                           epoch=epoch)))
    assert d0.stats["result after a terminal one refused"] == 0
    assert result(fed, "d0", "s1")[:2] == (1, StepState.SUCCEEDED)
