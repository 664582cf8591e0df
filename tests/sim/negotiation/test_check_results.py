"""The checker's results check (check.py, `_check_results_and_ends`): every step result
an agent holds is of an attempt that was started, or, FAILED, of one its domain refused
to start, cut off past its step lease (core/node/self_fencing.py, the `step_fenced`
note); nobody's word makes up another attempt."""

from __future__ import annotations

from types import SimpleNamespace

from fedorch.core.workflow.progress import StepState
from fedorch.sim.negotiation.check import Checker

WF = "d3.w2"
RETRY = (WF, "s2", 2)  # s2 on d1: attempt 1 ran and failed, its retry came due cut off


def holding(state: StepState) -> SimpleNamespace:
    """d2 holds s2's attempt 2 in `state`, as told by d1; no end anywhere."""
    disk = SimpleNamespace(final={}, results={WF: {"s2": (2, state, {}, "fenced: ...")}})
    return SimpleNamespace(agents={"d2": SimpleNamespace(disk=disk)}, workflows={})


def checked(checker: Checker, state: StepState) -> list[str]:
    checker.step_started("d1", (WF, "s2", 1), 2.0)
    checker._check_results_and_ends(holding(state))
    return checker.violations


def _committed_at_d1() -> Checker:
    checker = Checker()
    checker._commit_known.add(("d1", WF))
    return checker


def test_a_fenced_retry_that_never_started_is_its_domains_true_word() -> None:
    """Takeover soak seed 88000784: d1, cut off from d2 and d3 past its step lease when
    s2's retry came due, never started it and ended it FAILED; d2 held that FAILED of
    attempt 2, which the checker named as of an attempt that never ran."""
    checker = _committed_at_d1()
    checker.step_fenced("d1", RETRY)
    assert checked(checker, StepState.FAILED) == []


def test_an_attempt_nobody_started_nor_fenced_is_named() -> None:
    checker = _committed_at_d1()
    assert checked(checker, StepState.FAILED) == [
        f"result: d2 holds {WF} s2 attempt 2 FAILED, an attempt that never ran"]


def test_a_success_of_a_fenced_attempt_is_named() -> None:
    checker = _committed_at_d1()
    checker.step_fenced("d1", RETRY)
    assert checked(checker, StepState.SUCCEEDED) == [
        f"result: d2 holds {WF} s2 attempt 2 SUCCEEDED, an attempt that never ran"]
