"""The stat `compensation planned in a step's new domain` (Compensating.count_moved)
counts a step placed again whose compensation is planned in its new domain, not one
planned where its lost domain's run made it (saga_results.py, `domain_of`).

test_saga_results_domain.py's federation: d1, s0's lost domain, holds its own run's
SUCCEEDED result of s0 (placed again on d3), wins epoch 1 and adopts d0's plan."""

from __future__ import annotations

from tests.unit.core.node.test_compensating_takeover import WF
from tests.unit.core.node.test_saga_results_domain import lost_domain_holding_its_own_result
from tests.unit.core.node.test_saga_runs_successor import PLACED_AGAIN

NEW_DOMAIN = "compensation planned in a step's new domain"


def test_a_moved_step_planned_in_its_lost_domain_is_not_counted_as_in_its_new_one():
    f = lost_domain_holding_its_own_result()
    f.run_until(f.now + 30.0)
    assert f.nodes["d1"].stats["saga plan adopted by a successor"] == 1
    assert f.disks["d1"].compensations[(WF, "s0")].domain == "d1"
    assert PLACED_AGAIN["s0"][1] == "d3" and f.disks["d1"].placements[WF]["s0"][1] == "d3"
    assert not f.nodes["d1"].stats[NEW_DOMAIN]


def test_a_moved_step_planned_in_its_new_domain_is_counted():
    # No domain on record for its result (an older build's node.db): planned in its
    # placement now, d3, and counted so.
    f = lost_domain_holding_its_own_result()
    f.nodes["d1"].state.result_domains.pop(WF)
    f.run_until(f.now + 30.0)
    assert f.disks["d1"].compensations[(WF, "s0")].domain == "d3"
    assert f.nodes["d1"].stats[NEW_DOMAIN] == 1
