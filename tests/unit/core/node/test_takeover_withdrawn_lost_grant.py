"""A member's grant of a claim lost on the way, the claim then withdrawn
(core/workflow/takeover_claiming.py, "A grant lost on the way"): the member follows the
claimant in the epoch it granted and refuses the original's older-epoch word; it asks
the claimant where the workflow stands (takeover_late_grants.py), and the claimant,
not driving, answered nothing: the workflow never ended there. Now the claimant,
asked, sends it the withdrawn claim again, the member grants it again, and the claim
is taken up with that grant: the workflow ends everywhere."""

from __future__ import annotations

from fedorch.core.node import MemberState
from fedorch.core.node.records import ClaimMsg, PlacementQuery
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, committed, step
from tests.unit.core.node.test_takeover_withdrawn import (
    run_s1_to_its_end,
    withdrawn_with_d1s_grants_held,
)


def lost_grant_then_the_withdrawal(fed) -> str:
    """As test_takeover_withdrawn.py's late grant, but d1's grants of epoch 1 never reach
    the new domain (each one, the first and those the claim timeouts ask again, is
    lost): the original denies the claim and the new domain withdraws it. The new
    domain's name."""
    new, lost, deliver = withdrawn_with_d1s_grants_held(fed)
    lost_grants = [m for m in fed.net if lost(*m)]
    assert lost_grants
    fed.net = [m for m in fed.net if not lost(*m)]  # lost, never delivered
    fed.deliver = deliver
    assert fed.disks["d1"].epochs[WF] == (1, new)  # it follows the claim all the same
    return new


def test_a_member_whose_grant_was_lost_before_the_withdrawal_is_not_stranded() -> None:
    s1 = spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], idempotent=True,
                           retries=1)
    fed = committed([step("s0"), s1], {"s0": "d0", "s1": "d1"})
    new = lost_grant_then_the_withdrawal(fed)
    fed.step("d0", MemberState("d1", "ALIVE"))  # d0's view sees d1 alive again
    run_s1_to_its_end(fed, new)
    for name in ("d0", "d1", new):
        assert fed.disks[name].final.get(WF) is WorkflowState.SUCCEEDED, name
    # d1 asked the new domain, which sent it the withdrawn claim again.
    assert any(dst == new for dst, _ in fed.sent_by("d1", PlacementQuery))
    assert fed.nodes[new].stats[
        "takeover withdrawn claim sent again to a member that asked"] >= 1
    assert any(dst == "d1" and m.epoch == 1 for dst, m in fed.sent_by(new, ClaimMsg))
    assert fed.disks[new].epochs[WF] == (1, new)  # it won epoch 1 and drove
    assert fed.nodes[new].stats[
        "takeover withdrawn claim taken up again on a member's grant"] == 1


def test_a_member_whose_grant_was_lost_is_not_stranded_when_it_stays_dead_in_d0s_view(
        ) -> None:
    """As above, d0's view saying d1 DEAD throughout: the claim taken up again shows
    d1's signed grant, which d0 counts as given, and grants it."""
    s1 = spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], idempotent=True,
                           retries=1)
    fed = committed([step("s0"), s1], {"s0": "d0", "s1": "d1"})
    new = lost_grant_then_the_withdrawal(fed)
    run_s1_to_its_end(fed, new)
    for name in ("d0", "d1", new):
        assert fed.disks[name].final.get(WF) is WorkflowState.SUCCEEDED, name
    assert fed.disks["d0"].epochs[WF] == (1, new)  # the original granted it
