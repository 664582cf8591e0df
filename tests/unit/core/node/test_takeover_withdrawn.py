"""A claim withdrawn (core/workflow/takeover_claiming.py, `deny`): a re-placement's new
domain, restarted mid-attempt while the original coordinator was down, claims epoch 1;
back, the original denies it (no live majority could grant it) and drives on; the new
domain, whose own grant counts in no electorate and whom no member granted, follows it
again, asks it where its steps are, runs its step and reports to it, and the workflow
ends (takeover soak seed 118000384: the claim stood for ever, the restarted new domain
asked itself where its step was placed, and the workflow stayed RUNNING)."""

from __future__ import annotations

from collections.abc import Callable

from fedorch.core.node import MemberState, MemberViews
from fedorch.core.node.records import ClaimAnswerMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.takeover import Role
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, committed, dies, step
from tests.unit.core.node.test_replacement import new_domain


def both_crash_the_new_domain_back_first(fed, new: str) -> None:
    """The new domain crashes mid-attempt, then the original; the new one comes back
    first (the original stays down)."""
    for name in (new, "d0"):
        fed.silent.add(name)
        fed.running[name] = set()
    fed.silent.discard(new)
    fed.restore(new)


def original_back_seeing_d1_dead(fed, new: str) -> None:
    """The original comes back, its view saying d1 DEAD (d2 and d3 alive), and the new
    domain's view sees it alive again."""
    fed.silent.discard("d0")
    fed.restore("d0")
    fed.step("d0", MemberViews((MemberState("d1", "DEAD"), MemberState("d2", "ALIVE"),
                                MemberState("d3", "ALIVE"))))
    fed.step(new, MemberState("d0", "ALIVE"))
    fed.deliver()


def test_a_new_domain_denied_by_the_original_it_claimed_past_follows_it_again() -> None:
    s1 = spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], idempotent=True,
                           retries=1)
    fed = committed([step("s0"), s1], {"s0": "d0", "s1": "d1"})
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    assert new not in fed.disks["d0"].rows[WF].acceptors  # outside the electorate
    fed.end("d0", "s0")
    assert [r[1] for r in fed.running[new]] == ["s1"]  # started on the new domain
    # The new domain crashes mid-attempt, then the original; the new one comes back
    # first, its view saying the original DEAD: it claims epoch 1.
    both_crash_the_new_domain_back_first(fed, new)
    others = [MemberState(m, "ALIVE") for m in ("d2", "d3") if m != new]
    fed.step(new, MemberViews((MemberState("d0", "DEAD"), MemberState("d1", "DEAD"),
                               MemberState("d2", "ALIVE"), *others)))
    fed.deliver()
    assert fed.disks[new].granted[WF] == (1, new)  # its own claim, which cannot win
    assert not fed.running[new]  # held: nobody it follows confirmed its placement
    # The original is back, seeing d1 DEAD: asked again, it denies the claim.
    original_back_seeing_d1_dead(fed, new)
    fed.run_until(fed.now + 30.0)
    assert (False, 0, "d0") in [(a.granted, a.held_epoch, a.holder)
                                for _, a in fed.sent_by("d0", ClaimAnswerMsg)]
    assert fed.nodes[new].takeover.cores.get(WF) is None \
        or fed.nodes[new].takeover.cores[WF].role is Role.FOLLOWING
    assert WF not in fed.disks["d0"].epochs  # the original never followed the claim
    assert sorted(fed.running[new]) == [(WF, "s1", 2)]  # let go: the retry runs
    fed.end(new, "s1")
    fed.run_until(fed.now + 10.0)
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED
    assert fed.disks[new].final[WF] is WorkflowState.SUCCEEDED


def withdrawn_with_d1s_grants_held(fed) -> tuple[str, Callable, Callable]:
    """d1 is back before the new domain's claim of epoch 1, its view saying the original
    alive (every other view saying d1 DEAD, a false verdict: d1 hears the new placement
    of its step, so it knows the new domain and may grant it): it grants the claim, and
    every answer of its granting it is held on the network; the original, back, its
    view saying d1 DEAD, denies the claim as itself, and the new domain withdraws it.
    The new domain's name, what holds d1's grants (`fed.deliver` still holds them), and
    the federation's own deliver."""
    for name in ("d0", "d2", "d3"):
        fed.step(name, MemberState("d1", "DEAD"))
    fed.deliver()
    new = new_domain(fed, "s1")
    assert fed.disks["d1"].placements[WF]["s1"][1] == new
    fed.end("d0", "s0")
    both_crash_the_new_domain_back_first(fed, new)
    fed.step("d1", MemberState("d0", "ALIVE"))  # its view: d0 alive, it may grant

    def held(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d1", new) and isinstance(msg, ClaimAnswerMsg) \
            and msg.granted
    deliver = fed.deliver
    fed.deliver = lambda rounds=200, keep=None: deliver(rounds, keep=held)
    others = [MemberState(m, "ALIVE") for m in ("d2", "d3") if m != new]
    fed.step(new, MemberViews((MemberState("d0", "DEAD"), MemberState("d1", "ALIVE"),
                               MemberState("d2", "ALIVE"), *others)))
    fed.deliver()
    fed.run_until(fed.now + 11.0)  # d1, first in line, claims nothing: passed over
    assert fed.disks[new].granted[WF] == (1, new)
    assert fed.disks["d1"].granted[WF] == (1, new)  # granted; its answer held back
    original_back_seeing_d1_dead(fed, new)
    fed.run_until(fed.now + 6.0)
    assert fed.nodes[new].takeover.cores[WF].role is Role.FOLLOWING  # withdrawn
    assert fed.nodes[new].stats["takeover claim withdrawn"] >= 1
    return new, held, deliver


def late_grant_after_the_withdrawal(fed) -> str:
    """d1 is back before the claim, its view saying the original alive (every other
    view saying it DEAD): it grants epoch 1, and its answer comes late, after the
    original denied the claim and the new domain withdrew it. Its grant is delivered
    at the end. The new domain's name."""
    new, _, deliver = withdrawn_with_d1s_grants_held(fed)
    # The grant comes now, late.
    fed.deliver = deliver
    fed.deliver()
    assert fed.disks["d1"].epochs[WF] == (1, new)  # it follows the claim
    return new


def run_s1_to_its_end(fed, new: str) -> None:
    for _ in range(3):  # s1 ends wherever and whenever it runs
        fed.run_until(fed.now + 30.0)
        for name in (new, "d1"):
            for run in sorted(fed.running[name]):
                fed.end(name, run[1])


def test_a_members_grant_that_comes_after_the_withdrawal_takes_the_claim_up_again() -> None:
    """As above, but d1 is back before the claim, its view saying the original alive:
    it grants epoch 1, and its answer comes late, after the original (its view still
    saying d1 DEAD) denied the claim and the new domain withdrew it. d1 follows the new
    domain in epoch 1 and refuses the original's epoch-0 word: before, the late grant
    was dropped, nothing moved d1 again, and the workflow never ended there. Now the
    claim is taken up again with that grant, which it shows the original (signed): the
    original grants it, and the workflow ends everywhere under epoch 1."""
    s1 = spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], idempotent=True,
                           retries=1)
    fed = committed([step("s0"), s1], {"s0": "d0", "s1": "d1"})
    new = late_grant_after_the_withdrawal(fed)
    fed.step("d0", MemberState("d1", "ALIVE"))  # d0's view sees d1 alive again
    run_s1_to_its_end(fed, new)
    for name in ("d0", "d1", new):
        assert fed.disks[name].final.get(WF) is WorkflowState.SUCCEEDED, name
    assert fed.disks[new].epochs[WF] == (1, new)  # it won epoch 1 and drove
    assert fed.nodes[new].stats[
        "takeover withdrawn claim taken up again on a member's grant"] == 1


def test_a_member_that_granted_after_the_withdrawal_and_died_for_good_holds_nothing_up(
        ) -> None:
    """As above, but d1, its late grant delivered, dies for good (every view says so).
    The claim taken up again is withdrawn no more, and the original, asked, counted
    only the electors alive in its view: it denied it for want of d1's vote, for ever,
    and the workflow stayed RUNNING (the new domain's results went to its own claim).
    Now the claim shows the original d1's signed grant, which counts as given: the
    original grants it, the new domain wins epoch 1 (d1 and d0 of d0, d1, d2) and
    drives, and the workflow ends."""
    s1 = spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], idempotent=True,
                           retries=1)
    fed = committed([step("s0"), s1], {"s0": "d0", "s1": "d1"})
    new = late_grant_after_the_withdrawal(fed)
    dies(fed, "d1")
    run_s1_to_its_end(fed, new)
    for name in ("d0", new):
        assert fed.disks[name].final.get(WF) is WorkflowState.SUCCEEDED, name
    assert fed.disks[new].epochs[WF] == (1, new)  # it won epoch 1 and drove
    assert fed.disks["d0"].epochs[WF] == (1, new)  # the original granted it
    assert fed.nodes["d0"].stats[
        "takeover claim not denied: the grants it shows make a majority"] >= 1
