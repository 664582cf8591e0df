"""A coordinator's own loss verdict, voided while it followed a later epoch, held again
when it wins one itself (core/node/takeover.py, Act; domain_loss.py, `verdict_stands`)."""

from __future__ import annotations

from fedorch.core.node import MemberState, Tick
from fedorch.core.node.records import FinalMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import WF, ticks_with_d1_results_lost
from tests.unit.core.node.test_placed_here_verdict import lost_and_d1_restored


def test_a_verdict_voided_while_following_is_told_again_when_its_coordinator_acts() -> None:
    """d0's verdict on s1 (no domain takes it again) waits for d1. d1, back, wins epoch
    1; d0 follows it and looks (`tick`: its held end is void) before its own claim of
    epoch 2, made past d1 its view said DEAD, is granted; its view says d1 ALIVE again
    by then, so its Act judges nothing anew. d1's reports of s1 never reach d0 (in
    classic 2PC takeover soak seed 200202472 the lost domain, told the step placed
    nowhere, never ran it; s1 was given back to d1 as d0 followed epoch 1). Acting, d0
    holds its verdict on record again, told in epoch 2, and the end is made
    everywhere; before, nothing told it: RUNNING for ever."""
    fed = lost_and_d1_restored()

    def epoch_2_claims(src: str, dst: str, msg: object) -> bool:
        return type(msg).__name__ in ("ClaimMsg", "ClaimAnswerMsg") \
            and getattr(msg, "epoch", 0) == 2

    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, FinalMsg) and src == "d0"
                or isinstance(msg, ResultMsg) and src == "d1" or epoch_2_claims(src, dst, msg))
    d0 = fed.nodes["d0"]
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    assert fed.disks["d0"].granted[WF] == (2, "d0")  # claimed, not won yet
    claims = [x for x in fed.net if epoch_2_claims(*x)]
    assert claims
    fed.net = []  # d1's reports lost
    fed.step("d0", Tick())
    assert not d0.domain_loss.holds(WF)
    assert d0.stats["loss verdict void: driven or ended elsewhere"] == 1
    fed.step("d0", MemberState("d1", "ALIVE"))
    fed.net = claims + fed.net
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, ResultMsg) and src == "d1")
    fed.net = []
    assert fed.disks["d0"].epochs[WF] == (2, "d0")
    ticks_with_d1_results_lost(fed)
    for n in ("d0", "d1"):
        assert fed.disks[n].final.get(WF) is WorkflowState.FAILED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED
