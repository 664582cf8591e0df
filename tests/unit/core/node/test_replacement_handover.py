"""A new domain in doubt on a re-placement round, asking the workflow's members
(agent/core/node/replacement_handover.py, `asked` and `answered`)."""

from __future__ import annotations

from fedorch.core.negotiation.messages import DecisionQuery
from fedorch.core.node import MemberState, Message, StepEnded
from fedorch.core.node.records import FinalMsg, VoteMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import NAMES, WF, committed, dies, step


def ended_by_the_original_that_then_dies() -> tuple:
    """d0's workflow: s1 (idempotent, on d1), s2 (on d2). d1 dies; d0 places s1 again
    on d3, whose YES never reaches d0. s2 FAILS at d2: d0 ends the workflow FAILED,
    tells d2, and dies for good before its ABORT of d3's round leaves. Returns the
    federation and d3's round."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1", keep=lambda src, dst, msg: isinstance(msg, VoteMsg) and src == "d3")
    fed.net = []  # d3's YES lost
    key = next(h.key for h in fed.nodes["d3"].participant.holds() if h.workflow_id == WF)
    assert fed.nodes["d3"].participant.status(key) == "prepared"
    run = next(r for r in fed.running["d2"] if r[1] == "s2")
    fed.step("d2", StepEnded(*run, ok=False))
    fed.deliver(keep=lambda src, dst, msg: dst == "d3")
    fed.net = []  # nothing of d0's reaches d3
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    fed.silent.add("d0")  # gone for good
    fed.running["d0"] = set()
    return fed, key


def test_a_member_that_ended_the_workflow_tells_a_new_domain_in_doubt_its_end() -> None:
    """The original ended the workflow and died for good before its ABORT reached the
    new domain, and no successor is ever elected (the workflow ended): the new domain,
    asking the workflow's members, is told the end by one that holds it without a
    certificate (the original's end, epoch 0) on its word, and releases its YES, where
    it held it for ever (takeover soak seed 101675)."""
    fed, key = ended_by_the_original_that_then_dies()
    fed.run_until(fed.now + 60.0)
    assert fed.nodes["d2"].stats["re-placement asked: the end told on a member's word"] >= 1
    d3 = fed.nodes["d3"]
    assert not d3.participant.holds()
    assert d3.stats["re-placement YES released at the end"] == 1
    assert key not in fed.disks["d3"].learned  # released, no decision made up
    assert fed.disks["d3"].final[WF] is WorkflowState.FAILED


def test_an_unproven_end_from_a_domain_the_round_does_not_name_is_refused() -> None:
    """Only a domain the round's PREPARE names (its placement, the lost domain) is taken
    on its word: another's unproven end changes nothing."""
    fed, key = ended_by_the_original_that_then_dies()
    fed.step("d3", Message("d9", FinalMsg(WF, WorkflowState.FAILED, 0)))
    assert fed.nodes["d3"].participant.status(key) == "prepared"
    assert WF not in fed.disks["d3"].final


def test_an_unproven_end_is_not_taken_past_an_epoch_granted_here() -> None:
    """A new domain that granted a later epoch takes no older end on a member's word
    (told_ends.py: it would answer claims with an end that epoch's holder may not make)."""
    fed, key = ended_by_the_original_that_then_dies()
    d3 = fed.nodes["d3"]
    fed.disks["d3"].granted[WF] = (1, "d1")  # as if it had granted epoch 1 since
    d3.state.granted[WF] = (1, "d1")
    fed.step("d3", Message("d2", FinalMsg(WF, WorkflowState.FAILED, 0)))
    assert d3.participant.status(key) == "prepared"
    assert WF not in fed.disks["d3"].final


def test_a_new_domain_takes_the_end_of_the_claimant_it_granted_its_epoch() -> None:
    """The new domain (an elector too) granted epoch 1 to the original, which then ended
    the workflow on an end it learned and, asked about its round, answers with that end
    (epoch 0, no certificate: it never won epoch 1): its holder tells the one end of its
    epoch, so the YES is released, where the end, below the epoch granted here, was
    refused for ever (takeover soak seed 115435)."""
    fed, key = ended_by_the_original_that_then_dies()
    d3 = fed.nodes["d3"]
    fed.disks["d3"].granted[WF] = (1, "d0")  # as if it had granted d0's claim of epoch 1
    d3.state.granted[WF] = (1, "d0")
    fed.step("d3", Message("d0", FinalMsg(WF, WorkflowState.FAILED, 0)))
    assert not d3.participant.holds()
    assert d3.stats["re-placement YES released at the end"] == 1
    assert fed.disks["d3"].final[WF] is WorkflowState.FAILED


def test_a_round_asked_of_a_claimant_before_it_acts_is_answered_void_once_it_acts(
) -> None:
    """d3, in doubt on its round (its coordinator d0 gone for good undecided), asks d1
    while d1 only comes back and has not won epoch 1 yet: nothing can be answered then.
    Once d1 acts it answers that ask at once, void, and d3 releases its YES, where it
    waited for its next ask, which may come only after d1 is gone again (takeover soak
    seed 26000884: d3's YES held past twice the lease, until a later holder ended the
    workflow)."""
    fed = committed([step("s1", needs=("s2",)), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead(
        "d1", keep=lambda src, dst, msg: isinstance(msg, VoteMsg) and src == "d3")
    fed.net = []
    key = next(h.key for h in fed.nodes["d3"].participant.holds() if h.workflow_id == WF)
    fed.silent.add("d0")  # gone for good, undecided
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", Message("d3", DecisionQuery(key, "d3")))  # asked before it claims
    assert not fed.nodes["d1"].stats["re-placement asked: answered void"]
    fed.step("d1", *[MemberState(m, "DEAD" if m == "d0" else "ALIVE")
                     for m in NAMES if m != "d1"])
    for n in ("d2", "d3"):
        fed.step(n, MemberState("d1", "ALIVE"), MemberState("d0", "DEAD"))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, DecisionQuery))  # no new ask
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.nodes["d1"].stats["re-placement asked: answered void"] == 1
    d3 = fed.nodes["d3"]
    assert d3.stats["re-placement YES released: void in a later epoch"] == 1
    assert key not in fed.disks["d3"].holds and key not in fed.disks["d3"].learned
