"""A claimant takes no unproven end answered at an epoch below one it holds for another
domain, or below one it won itself before it followed another's later epoch
(agent/core/node/takeover_claims.py, "A found end below a won epoch")."""

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


def test_a_successor_that_won_epoch_1_and_granted_epoch_2_leaves_epoch_0s_end() -> None:
    """d0's workflow: d0 dies, d1 wins epoch 1; d2, its view saying d1 DEAD, claims
    epoch 2 and d1 grants it (d1 follows d2 now). d0, back, answers d1's claim of
    epoch 1, late, with its own end of epoch 0 (a loss verdict told and never made).
    d1 won epoch 1 (its certificate on record), so that end was never made and never
    will be; d1 follows epoch 2 and refuses epoch 0's end notice. It leaves the answer's
    end too (takeover soak seed 154300317 with a cut one way: d1 made epoch 0's FAILED
    its end while d2, deciding in epoch 2 with d1's grant, ended SUCCEEDED)."""
    fed = loss_committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d1"].certificates[WF][0] == 1
    fed.step("d2", MemberState("d1", "DEAD"))
    claims = [m for m in fed.net if m[0] == "d2" and isinstance(m[2], ClaimMsg)]
    fed.net = []
    for src, dst, msg in claims:
        if dst == "d1":
            fed.step("d1", Message(src, msg))
    assert fed.disks["d1"].epochs[WF] == (2, "d2")  # granted: d1 follows d2
    fed.net = []
    answer = ClaimAnswerMsg(WF, 1, False, 0, "d0", WorkflowState.FAILED)
    fed.step("d1", Message("d0", answer))
    assert WF not in fed.disks["d1"].final
    assert fed.nodes["d1"].stats["takeover found the end"] == 0
    assert fed.nodes["d1"].stats["takeover found end below a won epoch left"] == 1
