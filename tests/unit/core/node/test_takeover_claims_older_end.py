"""A claimant takes no unproven end answered at an epoch below one it holds for another
domain (agent/core/node/takeover_claims.py, "A found end below an epoch held")."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import committed as loss_committed
from tests.unit.core.node.test_domain_loss import step

WF = "d0.w"


def test_a_claimant_following_epoch_1_leaves_the_originals_epoch_0_end() -> None:
    """d0's workflow: d0 dies, d1 wins epoch 1 (d2 granted it and follows it); d2, its
    view saying d1 DEAD, claims epoch 2. d0, back, answers that claim with its own end
    of epoch 0 (a loss verdict told and never made): d1 may have told another end in
    epoch 1, kept by a participant. d2 leaves it (takeover soak seed 148002554: d2 took
    FAILED and told it on in epoch 2, while d3 kept epoch 1's SUCCEEDED)."""
    fed = loss_committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d2"].epochs[WF] == (1, "d1")
    fed.step("d2", MemberState("d1", "DEAD"))
    fed.net = [m for m in fed.net if not (m[0] == "d2" and isinstance(m[2], ClaimMsg))]
    assert fed.disks["d2"].granted[WF] == (2, "d2")  # claimed, not won
    answer = ClaimAnswerMsg(WF, 2, False, 0, "d0", WorkflowState.FAILED)
    fed.step("d2", Message("d0", answer))
    assert WF not in fed.disks["d2"].final
    assert fed.nodes["d2"].stats["takeover found the end"] == 0
    assert fed.nodes["d2"].stats["takeover found end below a won epoch left"] == 1


def test_a_claimant_takes_an_end_answered_at_the_epoch_it_follows() -> None:
    """The same claim answered with an end by a member holding epoch 1 (d1's): taken
    and told on, as before."""
    fed = loss_committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead("d0")
    fed.step("d2", MemberState("d1", "DEAD"))
    fed.net = []
    answer = ClaimAnswerMsg(WF, 2, False, 1, "d1", WorkflowState.SUCCEEDED)
    fed.step("d2", Message("d1", answer))
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.nodes["d2"].stats["takeover found the end"] == 1
