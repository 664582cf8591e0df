"""The checker's retention check (check.py, `compacted`): the original coordinator
forgets a committed workflow only once every participant ended it, unless a later
coordinator epoch told its end (core/node/retention.py, `_ended_by_a_later_epoch`: the
end is that epoch's holder's to tell, and the holder keeps it until every domain
acknowledged it)."""

from __future__ import annotations

from types import SimpleNamespace

from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.sim.negotiation.check import Checker

WF = "d1.w1"
# d1 coordinates; its steps are on d2, d3 and d6.
ROW = SimpleNamespace(committed=True,
                      info=SimpleNamespace(placement={"s0": "d2", "s1": "d6", "s3": "d3"}))


def _ended_at_d3_and_d6() -> Checker:
    checker = Checker()
    checker.ended_here("d3", WF, 4.8)
    checker.ended_here("d6", WF, 4.8)
    return checker


def test_a_participant_that_never_ended_it_is_named() -> None:
    checker = _ended_at_d3_and_d6()
    checker.compacted("d1", WF, ROW, WorkflowState.SUCCEEDED, {})
    assert checker.violations == [f"retention: d1 forgot {WF} before d2 ended it"]


def test_an_end_told_in_a_later_epoch_and_never_made_lets_the_original_forget() -> None:
    """Takeover soak seed 30000591: d2 won epoch 1, told SUCCEEDED (d3 and d6 took it)
    and died for good before making it, so it never ended its own part; d1, back, took
    that end with d2's certificate and followed epoch 1. The told end is d2's to tell,
    held on its disk (domain_loss.py, `resumed`): none of it is asked of d1."""
    checker = _ended_at_d3_and_d6()
    checker.end_told("d2", WF, 1, WorkflowState.SUCCEEDED)
    checker.compacted("d1", WF, ROW, WorkflowState.SUCCEEDED, {})
    assert checker.violations == []


def test_an_end_told_in_the_original_epoch_lets_nothing_go() -> None:
    checker = _ended_at_d3_and_d6()
    checker.end_told("d1", WF, 0, WorkflowState.FAILED)
    checker.compacted("d1", WF, ROW, WorkflowState.FAILED, {})
    assert checker.violations == [f"retention: d1 forgot {WF} before d2 ended it"]
