"""A coordinator's patience for a round's votes: the configured prepare timeout up to
PREPARE_SHARE participants, in proportion beyond, times Lifeguard's local health + 1,
never more than PREPARE_PATIENCE_CAP times the configured value."""

from __future__ import annotations

import pytest
from fedorch.runtime.membership import PREPARE_PATIENCE_CAP, PREPARE_SHARE, prepare_patience


def test_a_small_fan_out_on_a_healthy_agent_waits_the_configured_timeout() -> None:
    assert prepare_patience(3.0, 1, 0) == 3.0
    assert prepare_patience(3.0, PREPARE_SHARE, 0) == 3.0


def test_patience_grows_with_the_participants_and_the_local_health() -> None:
    assert prepare_patience(3.0, 5 * PREPARE_SHARE, 0) == pytest.approx(15.0)
    assert prepare_patience(3.0, PREPARE_SHARE, 1) == pytest.approx(6.0)
    assert prepare_patience(3.0, 2 * PREPARE_SHARE, 2) == pytest.approx(18.0)


def test_patience_is_capped() -> None:
    assert prepare_patience(3.0, 50, 8) == pytest.approx(3.0 * PREPARE_PATIENCE_CAP)
    assert prepare_patience(3.0, 10_000, 0) == pytest.approx(3.0 * PREPARE_PATIENCE_CAP)
