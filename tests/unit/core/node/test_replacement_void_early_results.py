"""A re-placement round's new domain that releases its YES on a later holder's void
(replacement_new_domain.py, `voided_here`) settles the results it held until that
round's COMMIT (early_results.py) in the same step, as every other release and end
does through `Node.mark`: its stake in the workflow is over, so they are dropped,
counted, never acknowledged, where they stayed until the bounds needed room."""

from __future__ import annotations

from fedorch.core.negotiation.messages import DecisionQuery
from fedorch.core.node import MemberState, Message
from fedorch.core.node import early_results as early
from fedorch.core.node.records import AckMsg, ResultMsg, VoteMsg
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import NAMES, WF, committed, step


def test_results_held_for_a_round_released_void_are_dropped_in_that_step() -> None:
    """d3, new domain of s1's re-placement round, in doubt (its coordinator d0 gone for
    good undecided), holds a result d0 sent before it died; d1 wins epoch 1, knows no
    placement of that round and answers it void: d3 releases its YES and, its stake
    gone, drops what it held in that step."""
    fed = committed([step("s1", needs=("s2",)), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead(
        "d1", keep=lambda src, dst, msg: isinstance(msg, VoteMsg) and src == "d3")
    fed.net = []
    key = next(h.key for h in fed.nodes["d3"].participant.holds() if h.workflow_id == WF)
    d3 = fed.nodes["d3"]
    fed.step("d3", Message("d0", ResultMsg(WF, "s2", 1, StepState.FAILED, {}, "x")))
    assert len(d3.early_results) == 1  # held: d3's YES of d0's round is in doubt
    fed.silent.add("d0")  # gone for good, undecided
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", Message("d3", DecisionQuery(key, "d3")))  # asked before it claims
    fed.step("d1", *[MemberState(m, "DEAD" if m == "d0" else "ALIVE")
                     for m in NAMES if m != "d1"])
    for n in ("d2", "d3"):
        fed.step(n, MemberState("d1", "ALIVE"), MemberState("d0", "DEAD"))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, DecisionQuery))
    assert d3.stats["re-placement YES released: void in a later epoch"] == 1
    assert key not in fed.disks["d3"].holds
    assert len(d3.early_results) == 0
    assert d3.stats[early.DROPPED["forgotten"]] == 1
    assert d3.stats[early.TAKEN] == d3.stats[early.REFUSED] == 0
    assert not [m for _, m in fed.sent_by("d3", AckMsg) if m.msg_id[:3] == ("result", WF, "s2")]
