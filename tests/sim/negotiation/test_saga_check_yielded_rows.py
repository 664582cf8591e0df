"""The saga check of each SUCCEEDED run (agent/sim/negotiation/saga_check.py,
`_check_runs`) counts a compensation ended at any coordinator holding the workflow:
the rows a claimant kept when it yielded its saga to a better claimant of its epoch
(core/node/saga_plans.py, `yield_to`: no longer driven) do not hide the driver's
ended ones. Takeover soak seed 109463: d2 yielded to d1 with s1's row RUNNING, d1
compensated s1 in d2, and the check, reading d2's row last, named s1 uncompensated."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
from fedorch.core.node.records import CompRow
from fedorch.sim.negotiation.saga_check import _check_runs

WF = "d1.w0"


def agent(rows: dict, succeeded: dict) -> SimpleNamespace:
    disk = SimpleNamespace(compensations={(WF, s): r for s, r in rows.items()},
                           extra_compensations={}, succeeded_here={WF: succeeded})
    return SimpleNamespace(disk=disk)


@pytest.mark.parametrize("order", [("d1", "d2"), ("d2", "d1")])
def test_a_yielded_claimants_rows_do_not_hide_the_drivers_ended_ones(order) -> None:
    agents = {
        "d1": agent({"s1": CompRow("d2", 2, "COMPENSATED", 1)}, {}),  # the driver
        "d2": agent({"s1": CompRow("d2", 2, "RUNNING", 1)}, {"s1": (1, 0)}),  # yielded
    }
    holders = [(name, agents[name]) for name in order]
    failures: list[str] = []
    checker = SimpleNamespace(fail=failures.append)
    sim = SimpleNamespace(stats=Counter())
    _check_runs(checker, sim, WF, "FAILED", holders, agents)
    assert failures == []
    assert sim.stats["saga run judged"] == 1


def test_a_run_compensated_nowhere_is_still_named() -> None:
    agents = {
        "d1": agent({"s1": CompRow("d2", 2, "RUNNING", 1)}, {}),
        "d2": agent({"s1": CompRow("d2", 2, "PENDING", 0)}, {"s1": (1, 0)}),
    }
    failures: list[str] = []
    _check_runs(SimpleNamespace(fail=failures.append), SimpleNamespace(stats=Counter()),
                WF, "FAILED", list(agents.items()), agents)
    assert len(failures) == 1 and "s1 SUCCEEDED at d2 and not compensated" in failures[0]
