"""A step result that reaches a participant before it learned its workflow's COMMIT
(core/node/early_results.py): held, and stepped again in the COMMIT's turn, not
refused and left to its sender's resend. Nodes driven by hand with coordinator
takeover on, through the authority table (test_domain_loss.py's federation): d0
coordinates and runs s1; s2, on d1, needs s1's result."""

from __future__ import annotations

from fedorch.core.negotiation.messages import ABORT, Accepted, Decision
from fedorch.core.node import Message, Submit
from fedorch.core.node import early_results as early
from fedorch.core.node.records import AckMsg, FinalMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, Federation, step
from tests.unit.core.node.test_replacement_handover import ended_by_the_original_that_then_dies


def d1_voted_yes_not_committed() -> tuple[Federation, list]:
    """d0's workflow committed at d0 (s1 runs there); d1 voted YES and its COMMIT,
    which it learns from its own acceptor's Accepted, is still on its way."""
    fed = Federation()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1"), step("s2", needs=("s1",))]), placement={"s1": "d0", "s2": "d1"}))
    fed.deliver(keep=lambda src, dst, msg: dst == "d1" and isinstance(msg, Accepted))
    late = fed.net
    fed.net = []
    assert late and WF not in fed.disks["d1"].committed
    assert any(r[1] == "s1" for r in fed.running["d0"])
    return fed, late


def _acks_of_s1(fed: Federation) -> list:
    return [m for _, m in fed.sent_by("d1", AckMsg) if m.msg_id[:3] == ("result", WF, "s1")]


def test_a_result_before_the_commit_is_taken_in_the_commits_turn_without_a_resend():
    fed, late = d1_voted_yes_not_committed()
    fed.end("d0", "s1")  # its result goes to d1 (s2 needs it) before d1 knows the COMMIT
    assert not any(r[1] == "s2" for r in fed.running["d1"])
    assert not _acks_of_s1(fed)  # not taken yet: nothing acknowledged
    assert ("d1", "not_known") not in fed.refused
    assert ("result", WF, "s1", "d1") in fed.nodes["d0"].pending  # resent until acknowledged
    fed.net = late  # d1 learns the COMMIT: the held result is stepped again in that turn
    fed.deliver()
    assert fed.disks["d1"].results[WF]["s1"][1] is StepState.SUCCEEDED
    assert any(r[1] == "s2" for r in fed.running["d1"])  # s2 started, s1's result its input
    assert _acks_of_s1(fed)
    assert fed.nodes["d1"].stats["held result stepped at its COMMIT"] == 1
    # Sent once, acknowledged at once: d0 resends nothing (no time passed).
    assert [to for to, m in fed.sent_by("d0", ResultMsg) if m.step_id == "s1"] == ["d1"]
    assert ("result", WF, "s1", "d1") not in fed.nodes["d0"].pending


def test_a_held_result_of_an_aborted_round_is_dropped_and_never_acknowledged():
    fed, _ = d1_voted_yes_not_committed()
    fed.end("d0", "s1")
    assert len(fed.nodes["d1"].early_results) == 1
    (key,) = fed.disks["d1"].holds  # d1's prepared hold of the round
    fed.step("d1", Message("d0", Decision(key, ABORT, "d0")))
    assert len(fed.nodes["d1"].early_results) == 0
    assert fed.nodes["d1"].stats["held result dropped: ABORT"] == 1
    fed.deliver()
    assert not _acks_of_s1(fed)
    assert not any(r[1] == "s2" for r in fed.running["d1"])


def test_the_held_results_are_bounded_the_oldest_dropped_first(monkeypatch):
    monkeypatch.setattr(early, "CAP", 3)
    monkeypatch.setattr(early, "PER_WORKFLOW", 2)
    fed, _ = d1_voted_yes_not_committed()
    node = fed.nodes["d1"]
    for attempt in range(1, 5):  # four attempts' results of s1, one workflow
        fed.step("d1", Message("d0", ResultMsg(WF, "s1", attempt, StepState.FAILED, {}, "x")))
    assert len(node.early_results) == 2
    assert node.stats["held result dropped: too many"] == 2
    assert node.stats["result held until its COMMIT"] == 4


def test_a_held_result_is_judged_again_at_the_commit_never_trusted_for_being_held():
    """d0, a party of the round, reports s2, which the COMMIT places on d1: held before
    the COMMIT (no placement to judge it by yet), refused once the COMMIT tells whose
    step it is, as it would be on its resend; never taken, never acknowledged."""
    fed, late = d1_voted_yes_not_committed()
    fed.step("d1", Message("d0", ResultMsg(WF, "s2", 1, StepState.SUCCEEDED, {}, "")))
    assert len(fed.nodes["d1"].early_results) == 1
    fed.net = late
    fed.deliver()
    assert WF in fed.disks["d1"].committed
    assert "s2" not in fed.disks["d1"].results.get(WF, {})
    assert fed.nodes["d1"].stats["held result refused at its COMMIT"] == 1
    assert not [m for _, m in fed.sent_by("d1", AckMsg) if m.msg_id[:3] == ("result", WF, "s2")]
    assert len(fed.nodes["d1"].early_results) == 0


def test_held_results_of_a_workflow_ended_here_otherwise_are_dropped_at_its_end():
    """d3, new domain of a re-placement round in doubt (its coordinator d0 gone for
    good), holds a result d0 sent before it died; the workflow then ends at d3 on a
    member's word (d2's end, replacement_handover.py), not by the round's decision:
    what it held goes in that turn, counted, never acknowledged, where it stayed until
    the bounds dropped it."""
    fed, key = ended_by_the_original_that_then_dies()
    d3 = fed.nodes["d3"]
    fed.step("d3", Message("d0", ResultMsg(WF, "s2", 1, StepState.FAILED, {}, "x")))
    assert len(d3.early_results) == 1
    fed.step("d3", Message("d2", FinalMsg(WF, WorkflowState.FAILED, 0)))
    assert fed.disks["d3"].final[WF] is WorkflowState.FAILED
    assert not d3.participant.holds()  # its YES released at the end
    assert len(d3.early_results) == 0
    assert d3.stats[early.DROPPED["ended"]] == 1
    assert d3.stats[early.TAKEN] == d3.stats[early.REFUSED] == 0
    assert not [m for _, m in fed.sent_by("d3", AckMsg) if m.msg_id[:3] == ("result", WF, "s2")]
