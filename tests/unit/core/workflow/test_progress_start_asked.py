"""A domain that asked its coordinator before starting a step, and was told the step
is still placed there, may have started it (Progress.start_asked, read by the loss
table's `may_have_started`; agent/core/node/start_asks.py asks)."""

from __future__ import annotations

from fedorch.core.workflow.domain_loss import LossAction
from fedorch.core.workflow.progress import Progress

from tests.unit.core.workflow.test_domain_loss import LOST, ME, OTHER, spec, step


def b_after_a_elsewhere(*, idempotent: bool = False) -> Progress:
    """b on LOST needs a on a third domain, still running as far as this coordinator
    knows: by its needs alone, b cannot have started."""
    return Progress(spec(step("a"), step("b", "a", idempotent=idempotent)),
                    {"a": OTHER, "b": LOST}, ME)


def test_a_step_whose_domain_asked_to_start_it_fails_when_that_domain_is_lost() -> None:
    p = b_after_a_elsewhere()
    assert not p.may_have_started("b")
    p.start_asked("b", LOST)
    assert p.may_have_started("b")
    assert p.domain_lost(LOST, can_replace=True) == [("b", LossAction.FAIL_STARTED)]


def test_without_the_ask_it_is_placed_again() -> None:
    p = b_after_a_elsewhere()
    assert p.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]


def test_an_ask_of_another_domain_says_nothing_of_this_placement() -> None:
    """Asked by a domain the step is not on (an earlier placement of it, say): the
    step's own domain is judged by its needs alone."""
    p = b_after_a_elsewhere()
    p.start_asked("b", OTHER)
    assert not p.may_have_started("b")
    assert p.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]


def test_an_idempotent_step_asked_about_is_placed_again() -> None:
    p = b_after_a_elsewhere(idempotent=True)
    p.start_asked("b", LOST)
    assert p.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]
