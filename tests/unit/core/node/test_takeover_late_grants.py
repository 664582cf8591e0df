"""Grants a claimant holds after its claim is over (core/node/takeover_late_grants.py):
d1, which ended the workflow, claimed epoch 1 for its saga's open plan; a domain of the
workflow that granted it without knowing the end follows d1 in epoch 1, refuses the
driver's notices of epoch 0, and keeps its hold, until d1 tells it the end in epoch 1:
when its grant comes after the claim is over, or when the plan closed before any
member denied the claim with the end. The tell survives d1's restart (`late_grants`).
The federation and its story: test_takeover_claims.py."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_takeover_claims import (
    WF,
    granted_by_a_member_that_never_heard_the_end,
    views,
)


def holds(f, name: str) -> list:
    return [h for h in f.disks[name].holds if h[0] == WF]


def test_a_grant_that_comes_after_the_claim_is_over_gets_the_end_in_its_epoch():
    """Nobody granted d1's claim while its plan was open; d0 drove the saga to its end,
    which closed the plan and ended the claim. Then d3's grant of epoch 1 comes, late:
    d3 follows d1 in epoch 1 and refuses the notices of epoch 0 for ever, its hold
    kept. d1 tells it the end in epoch 1 (takeover soak seed 10001968); an answer that
    grants nothing, or an epoch d1 never claimed, gets nothing."""
    f = granted_by_a_member_that_never_heard_the_end(d3_back=False)
    f.end("d1", True)
    f.run_until(f.now + 10.0)
    d1 = f.nodes["d1"]
    assert WF not in d1.takeover.cores and f.disks["d1"].granted[WF] == (1, "d1")
    told = len(f.sent_by("d1", FinalMsg))
    for answer in (ClaimAnswerMsg(WF, 1, False, 0, "d0"), ClaimAnswerMsg(WF, 2, True, 2, "d1")):
        f.step("d1", Message("d3", answer))
    assert len(f.sent_by("d1", FinalMsg)) == told
    f.step("d1", Message("d3", ClaimAnswerMsg(WF, 1, True, 1, "d1")))
    assert f.sent_by("d1", FinalMsg)[told:] == [("d3", FinalMsg(WF, WorkflowState.FAILED, 1))]
    assert d1.stats["takeover grant after the claim: end told to the granter"] == 1


def test_a_late_grant_of_an_elector_holding_no_step_gets_no_end():
    """As above, but the late grant comes from an elector holding no step of the
    workflow (an extra acceptor, "d9"): it holds nothing to release, and it refuses a
    claimant's end of epoch 1 (no certificate: authority_ends.py), so a tell would be
    resent to it for ever (takeover soak seed 10000294): nothing is told, or written."""
    f = granted_by_a_member_that_never_heard_the_end(d3_back=False)
    f.end("d1", True)
    f.run_until(f.now + 10.0)
    told = len(f.sent_by("d1", FinalMsg))
    f.nodes["d1"].step(f.now, Message("d9", ClaimAnswerMsg(WF, 1, True, 1, "d1")))
    f.flush("d1")
    assert len(f.sent_by("d1", FinalMsg)) == told
    assert WF not in f.disks["d1"].late_grants
    assert f.nodes["d1"].stats["takeover grant after the claim by an elector holding no step"] == 1


def test_a_late_grants_end_is_told_again_after_the_claimants_restart():
    """As above, but d3 is back and grants d1's claim of epoch 1 itself (that claim
    late on the network, d0's notices to d3 later still): d3 follows d1 in epoch 1 and
    holds its reservation. d1 tells it the end in epoch 1 and crashes before d3
    acknowledges it (the tell lost with it). Restored, d1 tells it again, from the
    row written with the first tell (`late_grants`): d3 takes the end and releases
    its hold, and its acknowledgement drops the row. Before, the tell was resent from
    memory only, and d3 kept its hold for ever."""
    f = granted_by_a_member_that_never_heard_the_end(d3_back=False)
    f.end("d1", True)
    f.run_until(f.now + 10.0)
    assert WF not in f.nodes["d1"].takeover.cores
    claim = [m for to, m in f.sent_by("d1", ClaimMsg) if to == "d3" and m.epoch == 1][-1]

    def originals_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d3")

    def tell_lost(src: str, dst: str, msg: object) -> bool:
        return originals_late(src, dst, msg) \
            or (src, dst) == ("d1", "d3") and isinstance(msg, FinalMsg)

    f.hold = tell_lost
    f.restart("d3")
    views(f, "d3", d0="ALIVE", d1="ALIVE", d2="DEAD")
    f.step("d3", Message("d1", claim))
    f.deliver()
    assert f.disks["d3"].epochs[WF] == (1, "d1") and WF not in f.disks["d3"].final
    assert holds(f, "d3")
    assert f.nodes["d1"].stats["takeover grant after the claim: end told to the granter"] == 1
    assert f.disks["d1"].late_grants == {WF: {"d3": 1}}  # written with the tell
    f.net = [m for m in f.net if not tell_lost(*m)]  # lost with d1's crash
    d1 = f.restart("d1")
    f.hold = originals_late
    f.run_until(f.now + 30.0)
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    assert d1.stats["takeover late grant: end told again after a restart"] == 1
    assert WF not in f.disks["d1"].late_grants  # acknowledged: told no more
    f.restart("d1")
    f.run_until(f.now + 10.0)
    assert f.nodes["d1"].stats["takeover late grant: end told again after a restart"] == 0


def test_a_grant_made_while_the_claim_ran_gets_the_end_when_the_plan_closes():
    """d3 (back, the end unknown there) grants d1's claim of epoch 1 while it runs; d0's
    denials of the claim, which carry the end, are late, and the saga's end reaches d1
    first: its plan closes and its claim is over, before any denial told it on. d3
    follows d1 in epoch 1, refusing d0's notices of epoch 0: d1 tells it the end in
    epoch 1 as the plan closes, and d3 releases its hold. Before, it kept it for ever."""
    f = granted_by_a_member_that_never_heard_the_end()

    def denials_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d1") and isinstance(msg, ClaimAnswerMsg)

    f.hold = denials_late
    f.end("d1", True)  # the compensation ends: d0's saga is over, d1's plan closes
    f.run_until(f.now + 10.0)
    assert f.disks["d1"].plans[WF] == () and not f.nodes["d1"].takeover.live(WF)
    f.hold = None
    f.net = [m for m in f.net if not denials_late(*m)]
    f.run_until(f.now + 30.0)
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    assert ("d3", FinalMsg(WF, WorkflowState.FAILED, 1)) in f.sent_by("d1", FinalMsg)
    assert WF not in f.disks["d1"].late_grants  # acknowledged
