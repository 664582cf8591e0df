"""The takeover deadline's allowance for the network's hits on a workflow's end notices
and their acknowledgements, and on the takeover's exchange before the end
(takeover_check.py, `end_hit_cost`), on hand-made records."""

from __future__ import annotations

from types import SimpleNamespace

from fedorch.core.node.records import (
    AckMsg,
    ClaimMsg,
    FinalMsg,
    PlacementAnswer,
    PlacementQuery,
    ResultMsg,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.sim.negotiation.takeover_check import END_RESEND_MOST_S, end_hit_cost, network_hit

WF = "d3.w3"


def hit(ends: dict, src: str, dst: str, msg: object, now: float,
        delay: float | None = None) -> None:
    network_hit({}, src, dst, msg, now, delay, ends)


def test_lost_and_held_end_notices_and_acks_each_cost_one_resend_at_most() -> None:
    """Takeover soak seed 102933: the participant's three acknowledgements of the
    successor's end held 11.36, 8.62 and 5.88 s, a notice 4.41 s."""
    ends: dict = {}
    ack = AckMsg(("final", WF, "d1"))
    hit(ends, "d1", "d0", ack, 18.99, 11.36)
    hit(ends, "d1", "d0", ack, 19.95, 8.62)
    hit(ends, "d1", "d0", ack, 22.01, 5.88)
    hit(ends, "d0", "d1", FinalMsg(WF, WorkflowState.SUCCEEDED, 2), 25.95, 4.41)
    hit(ends, "d0", "d1", FinalMsg(WF, WorkflowState.SUCCEEDED, 2), 26.0)  # lost
    hit(ends, "d0", "d3", FinalMsg(WF, WorkflowState.SUCCEEDED, 2), 26.0)  # to the dead
    hit(ends, "d0", "d1", FinalMsg(WF, WorkflowState.SUCCEEDED, 2), 29.0)  # after the end
    hit(ends, "d0", "d1", FinalMsg("d3.w4", WorkflowState.SUCCEEDED, 2), 20.0)  # another
    hit(ends, "d1", "d0", AckMsg(("result", WF, "s1", "d1")), 20.0)  # not an end's
    hit(ends, "d1", "d0", ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {}, ""), 20.0)
    checker = SimpleNamespace(end_hits=ends)
    sim = SimpleNamespace(dead_forever={"d3"})
    cost = end_hit_cost(checker, sim, WF, 6.9, 27.95)
    assert cost == END_RESEND_MOST_S + 8.0 + 5.88 + 4.41 + END_RESEND_MOST_S
    assert end_hit_cost(checker, sim, WF, 19.0, 27.95) == 8.0 + 5.88 + 4.41 + 8.0
    assert end_hit_cost(checker, sim, "d3.w9", 0.0, 100.0) == 0.0


def test_lost_claims_and_asks_before_the_end_each_cost_one_resend_at_most() -> None:
    """Takeover soak seed 212400209 (`--one-way`): the successor's claim and its two
    asks of its electorate (original_asks.py) lost on the way to the only other live
    elector, the end made after them."""
    ends: dict = {}
    hit(ends, "d0", "d1", ClaimMsg(WF, 1, None), 27.80)
    hit(ends, "d0", "d2", ClaimMsg(WF, 1, None), 29.80)  # to the dead
    hit(ends, "d0", "d1", PlacementQuery(WF, drives_in=1), 34.80)
    hit(ends, "d1", "d0", PlacementAnswer(WF, 1, ()), 38.80, 0.5)
    hit(ends, "d1", "d0", PlacementQuery("d3.w4", drives_in=1), 38.80)  # another
    checker = SimpleNamespace(end_hits=ends)
    sim = SimpleNamespace(dead_forever={"d2"})
    assert end_hit_cost(checker, sim, WF, 22.27, 43.44) == 2 * END_RESEND_MOST_S + 0.5
