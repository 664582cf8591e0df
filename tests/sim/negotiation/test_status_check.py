"""The simulation's check of what watchers are told (agent/sim/negotiation/status_check.py):
a RUNNING told before its coordinator's decision write only once its COMMIT is chosen,
and statuses that never go back, across a crash between the two."""

from __future__ import annotations

from fedorch.core.node import ready as ready_module
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.sim.negotiation.status_check import StatusCheck

from tests.sim.negotiation.test_run_scenarios import KEY, WF, assert_clean, learned, scenario


def crash_d0_once_at(what: str):
    seen = []

    def hook(agent, now, label):
        if agent.name == "d0" and label == what and not seen:
            seen.append(now)
            return "crash"
        return None
    return hook


def test_running_told_then_the_coordinator_crashes_before_its_decision_record() -> None:
    sim = scenario({"s1": "d1", "s2": "d2"})
    sim.crash_hook = crash_d0_once_at("PersistDecision")
    assert_clean(sim)
    status = sim.checker.status
    # Told before the write that the crash cut off, then again when the restored
    # coordinator's ballot learned the COMMIT from its acceptors.
    assert status.told_before_write == 2
    assert sim.agents["d0"].disk.rows[WF].committed
    assert learned(sim, "d1") is True and learned(sim, "d2") is True
    assert status.last[("d0", WF)] in (WorkflowState.RUNNING, WorkflowState.SUCCEEDED,
                                       WorkflowState.FAILED)


def test_a_status_told_before_its_write_without_a_chosen_commit_is_a_violation(
        monkeypatch) -> None:
    made = ready_module.Outbox.ready

    def everything_now(self):  # a broken core: every status change told at once
        ready = made(self)
        return ready._replace(status_now=ready.status_changes)

    monkeypatch.setattr(ready_module.Outbox, "ready", everything_now)
    report = scenario({"s1": "d1", "s2": "d2"}).run()
    assert any("NEGOTIATING before its write" in v for v in report.violations), \
        report.violations


class FakeChecker:
    def __init__(self) -> None:
        self._chosen: dict = {}
        self.violations: list[str] = []

    def fail(self, what: str) -> None:
        self.violations.append(what)


class Commit:
    commit = True


def test_the_check_holds_a_told_running_to_a_chosen_commit_and_never_back() -> None:
    checker = FakeChecker()
    check = StatusCheck(checker)
    check.told("d0", WF, WorkflowState.NEGOTIATING)
    check.told("d0", WF, WorkflowState.RUNNING, KEY)  # nothing chosen yet
    assert checker.violations and "not chosen" in checker.violations[-1]
    checker.violations.clear()
    checker._chosen[KEY] = {Commit()}
    check.told("d0", WF, WorkflowState.RUNNING, KEY)
    check.told("d0", WF, WorkflowState.RUNNING)  # again after the write
    assert checker.violations == []
    check.told("d0", WF, WorkflowState.NEGOTIATING)  # went back
    assert checker.violations and "NEGOTIATING after RUNNING" in checker.violations[-1]
