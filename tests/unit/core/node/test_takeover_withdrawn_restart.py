"""A claim withdrawn, and the grants a claim holds, across the claimant's restart
(core/workflow/takeover_claiming.py, Withdrawn, "Restarted"): what it withdrew is kept
in `withdrawn`, the members' signed grants of its claim in `claim_grants`, each in the
write of the change that makes it, and read back on restore."""

from __future__ import annotations

from fedorch.core.node import MemberState, MemberViews
from fedorch.core.node.records import ClaimMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.takeover import Role
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, committed, dies, step
from tests.unit.core.node.test_replacement import new_domain
from tests.unit.core.node.test_takeover_withdrawn import (
    both_crash_the_new_domain_back_first,
    original_back_seeing_d1_dead,
    run_s1_to_its_end,
    withdrawn_with_d1s_grants_held,
)


def s1_placed_again():
    s1 = spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], idempotent=True,
                           retries=3)  # attempts die with the restarts
    return committed([step("s0"), s1], {"s0": "d0", "s1": "d1"})


def withdrawn_its_late_grant_held(fed) -> str:
    """d1 is back before the new domain's claim of epoch 1, its view saying the original
    alive: it grants the claim, and its answer is held on the network; the original,
    back, its view saying d1 DEAD, denies the claim as itself, and the new domain
    withdraws it. d1's grant is still held. The new domain's name."""
    new, _, deliver = withdrawn_with_d1s_grants_held(fed)
    assert fed.disks[new].withdrawn[WF] == 1  # in the write of the withdrawal
    fed.deliver = deliver
    return new


def test_a_late_grant_after_the_claimants_restart_takes_the_withdrawn_claim_up_again(
        ) -> None:
    """The new domain restarts after its withdrawal, before d1's late grant reaches it,
    its view saying the original alive. Before, what it withdrew was in memory only:
    the grant was dropped, d1 followed it in epoch 1 and refused the original's epoch-0
    word for ever (the workflow never ended there). Now the withdrawn epoch is read
    back, the grant takes the claim up again, and the workflow ends everywhere in it."""
    fed = s1_placed_again()
    new = withdrawn_its_late_grant_held(fed)
    fed.restore(new)
    fed.step(new, MemberViews(tuple(MemberState(m, "ALIVE") for m in ("d0", "d2", "d3")
                                    if m != new)))
    fed.deliver()  # the late grant
    assert fed.nodes[new].stats[
        "takeover withdrawn claim taken up again on a member's grant"] == 1
    assert fed.disks[new].granted[WF] == (1, new) and WF not in fed.disks[new].withdrawn
    fed.step("d0", MemberState("d1", "ALIVE"))
    run_s1_to_its_end(fed, new)
    for name in ("d0", "d1", new):
        assert fed.disks[name].final.get(WF) is WorkflowState.SUCCEEDED, name
    assert fed.disks[new].epochs[WF] == (1, new)


def test_a_claimant_restarted_after_a_withdrawal_does_not_claim_again_at_once() -> None:
    """The new domain withdraws (no member granted it) and restarts, its view still
    saying the original DEAD. Before, restarted, it claimed the withdrawn epoch again
    at once, to be denied at once (and again at every restart). Now it waits
    `takeover_after_s` from its first look, as after the withdrawal itself, and its
    claim then is of the epoch withdrawn, not below it."""
    fed = s1_placed_again()
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    fed.end("d0", "s0")
    both_crash_the_new_domain_back_first(fed, new)
    others = [MemberState(m, "ALIVE") for m in ("d2", "d3") if m != new]
    fed.step(new, MemberViews((MemberState("d0", "DEAD"), MemberState("d1", "DEAD"),
                               MemberState("d2", "ALIVE"), *others)))
    fed.deliver()
    original_back_seeing_d1_dead(fed, new)
    fed.run_until(fed.now + 6.0)
    assert fed.nodes[new].takeover.cores[WF].role is Role.FOLLOWING
    assert fed.disks[new].withdrawn[WF] == 1 and fed.disks[new].granted[WF] == (0, "d0")
    fed.silent.add("d0")  # no answer from the original: the claim stands as made
    fed.restore(new)
    after = fed.nodes[new].takeover.after_s
    sent = len(fed.sent_by(new, ClaimMsg))
    restarted = fed.now
    fed.step(new, MemberViews((MemberState("d0", "DEAD"), MemberState("d1", "DEAD"),
                               MemberState("d2", "ALIVE"), *others)))
    fed.deliver()
    fed.run_until(restarted + after * 0.9)
    assert len(fed.sent_by(new, ClaimMsg)) == sent  # quiet, as after the withdrawal
    fed.run_until(restarted + after * 1.1)
    claims = fed.sent_by(new, ClaimMsg)[sent:]
    assert claims and {c.epoch for _, c in claims} == {1}


def test_a_restarted_claimant_still_shows_the_members_grants_it_held() -> None:
    """d1's late grant takes the claim up again, and the new domain restarts before the
    original answers its claim. Before, the grants a claim held were in memory only:
    restarted, it showed none, the original (its view saying d1 DEAD) denied it, and it
    withdrew again, d1 following it in epoch 1 unless back to grant again. Now d1's
    signed grant, kept with the claim, is counted and shown again: the original grants
    the claim on it, d1 dies for good meanwhile, and the workflow ends in epoch 1."""
    fed = s1_placed_again()
    new = withdrawn_its_late_grant_held(fed)

    def to_d0(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == (new, "d0")
    fed.deliver(keep=to_d0)  # the late grant; the claim taken up again waits
    assert fed.disks[new].claim_grants[WF][0] == 1
    assert [g.granter for g in fed.disks[new].claim_grants[WF][1]] == ["d1"]
    fed.net = [m for m in fed.net if not to_d0(*m)]  # lost with the restart
    fed.restore(new)
    dies(fed, "d1", told=("d0", "d2", "d3"))
    core = fed.nodes[new].takeover.cores[WF]
    assert core.role is Role.CLAIMING and "d1" in core._grants
    sent = len(fed.sent_by(new, ClaimMsg))
    fed.step(new, MemberViews(tuple(MemberState(m, "ALIVE") for m in ("d0", "d2", "d3")
                                    if m != new) + (MemberState("d1", "DEAD"),)))
    fed.run_until(fed.now + 1.0)
    shown = [c for to, c in fed.sent_by(new, ClaimMsg)[sent:] if to == "d0"]
    assert shown and [g.granter for g in shown[0].grants] == ["d1"]
    run_s1_to_its_end(fed, new)
    assert fed.nodes[new].stats["takeover claim withdrawn"] == 0  # not again
    for name in ("d0", new):
        assert fed.disks[name].final.get(WF) is WorkflowState.SUCCEEDED, name
    assert fed.disks[new].epochs[WF] == (1, new)
    assert fed.disks["d0"].epochs[WF] == (1, new)  # the original granted it
