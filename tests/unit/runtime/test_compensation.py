"""The sagas shells' pure parts: what a participant refuses to compensate, what the
coordinator owes, and what a compensation's program reads on stdin."""

from __future__ import annotations

import json

import pytest
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.runtime.compensation import Compensations, _refusal
from fedorch.runtime.executors.base import StepInvocation
from fedorch.runtime.executors.command import _stdin_document
from fedorch.runtime.store.store import StepRow, WorkflowRow

WF = "alpha.0abc"
SPEC = parse_spec_text("""
name: s
steps:
  - {id: a, capability: c, compensate: {params: {undo: 1}}}
  - {id: b, capability: c, needs: [a]}
  - {id: f, capability: c, needs: [b]}
""", "test")


def _row(state: str = "FAILED") -> WorkflowRow:
    return WorkflowRow(WF, "s", "alpha", state, SPEC.SerializeToString(),
                       placement={"a": "beta", "b": "beta", "f": "gamma"})


def _step(step_id: str, state: str = "SUCCEEDED", domain: str = "beta") -> StepRow:
    return StepRow(WF, step_id, domain, state, 1, {"n": 1})


def test_a_compensation_the_coordinator_asks_for_a_succeeded_step_run_here_may_run():
    assert _refusal("beta", "alpha", WF, "a", 1, _row(), _step("a"), SPEC) == ""


@pytest.mark.parametrize(("sender", "step", "state", "attempt", "why"), [
    ("gamma", "a", "SUCCEEDED", 1, "not its workflow"),     # not the coordinator
    ("alpha", "f", "SUCCEEDED", 1, "did not run here"),     # placed elsewhere
    ("alpha", "a", "FAILED", 1, "not SUCCEEDED"),
    ("alpha", "b", "SUCCEEDED", 1, "no compensate block"),
    ("alpha", "a", "SUCCEEDED", 0, "start at 1"),
])
def test_refusals(sender, step, state, attempt, why):
    assert why in _refusal("beta", sender, WF, step, attempt, _row(), _step(step, state), SPEC)


def test_an_unknown_workflow_is_refused():
    assert "not known here" in _refusal("beta", "alpha", WF, "a", 1, None, None, None)


def test_owed_only_for_failed_or_cancelled_ends_and_succeeded_compensated_steps():
    progress = Progress(SPEC, {"a": "beta", "b": "beta", "f": "gamma"}, "alpha")
    for sid, state in (("a", StepState.SUCCEEDED), ("b", StepState.SUCCEEDED),
                       ("f", StepState.FAILED)):
        progress.steps[sid].state = state
    owed = Compensations(agent=None).owed(_row("FAILED"), progress)  # type: ignore[arg-type]
    assert [args[:4] for _, args in owed] == [(WF, "a", "beta", "PENDING")]
    assert Compensations(agent=None).owed(_row("SUCCEEDED"), progress) == []  # type: ignore[arg-type]
    assert Compensations(agent=None).owed(_row("CANCELLED"), None) == []  # type: ignore[arg-type]


def test_a_compensation_reads_its_params_and_the_step_outputs():
    inv = StepInvocation(WF, "a", 2, {"undo": 1}, {}, None, compensating={"n": 10**20})
    document = json.loads(_stdin_document(inv))
    assert document == {"params": {"undo": 1}, "outputs": {"n": 10**20}, "workflow": WF,
                        "step": "a", "compensation": True, "attempt": 2}
    step = json.loads(_stdin_document(StepInvocation(WF, "a", 1, {}, {"x": {}}, None)))
    assert "compensation" not in step and step["inputs"] == {"x": {}}
