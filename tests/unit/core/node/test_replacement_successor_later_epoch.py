"""A successor asking its fresh majority wins a later epoch meanwhile
(agent/core/node/replacement_successor.py), Nodes driven by hand as in
test_replacement_successor.py: d0 coordinates s0 (on d0 itself, idempotent), s1 (d1)
and s2 (d2); d0 dies for good, d1 takes over in epoch 1 and asks again for epoch 1
to place s0 again."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg

from tests.unit.core.node.test_domain_loss import WF
from tests.unit.core.node.test_replacement_successor import (
    s0_lost_with_d0,
    succeeds_with_one_run_each,
)


def test_a_successor_that_wins_a_later_epoch_while_it_asks_asks_again_in_it() -> None:
    """d1's re-ask of epoch 1 is lost on its way to d2; d2's answer to an earlier claim
    denies epoch 1 with epoch 2 held by d0, gone in d1's view, and no proof: d1 claims
    epoch 3 past it and wins it with d2's grant. Acting in epoch 3, it asks
    again for s0, still waiting to be placed, and places it: the ask of epoch 1 still
    under way made it ask nothing, then was dropped as of an epoch over, and s0 waited
    for ever, the workflow RUNNING at every member (takeover soak seed 107034)."""
    def re_ask_lost(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, ClaimMsg) and src == "d1" and dst == "d2" \
            and msg.epoch == 1 and bool(msg.won)

    fed = s0_lost_with_d0(keep=re_ask_lost)
    d1 = fed.nodes["d1"]
    assert d1.stats["re-placement: fresh majority asked"] == 1
    assert d1.stats["re-placement: fresh majority granted"] == 0
    fed.net = []  # lost
    fed.step("d1", Message("d2", ClaimAnswerMsg(WF, 1, False, 2, "d0")))
    fed.deliver()
    assert d1.stats["takeover acting coordinator claimed past an unproven gone holder"] == 1
    assert fed.evidence.acting[(WF, 3)] == "d1"
    assert d1.domain_loss.epoch(WF) == 3
    fed.run_until(fed.now + 10.0)
    assert d1.stats["re-placement: fresh majority granted"] == 1
    _, new, lost = fed.disks["d1"].placements[WF]["s0"]
    assert lost == "d0" and new in ("d2", "d3")
    succeeds_with_one_run_each(fed, new)
