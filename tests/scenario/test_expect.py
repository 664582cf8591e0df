"""Expectations checked against what a run saw, without agents: takeover fields,
compensation, the order of side-effect records, free slots in member views."""

from __future__ import annotations

from pathlib import Path

from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2, scenario_pb2
from fedorch.scenario.expect import _members_problem, check_run_order, check_workflow
from fedorch.scenario.loader import parse_scenario_text
from fedorch.scenario.run import Copy, RunState

SCENARIO = """
name: t
domains:
  - name: a
    capabilities: [{name: work, capacity: 2, executor: {type: builtin, name: echo}}]
workflows:
  - id: w
    to: a
    count: 2
    spec: {name: w, steps: [{id: s1, capability: work}, {id: s2, capability: work, needs: [s1]}]}
expect:
  - workflow: {id: w, state: SUCCEEDED}
"""


def state_with(statuses: list[dict]) -> RunState:
    loaded = parse_scenario_text(SCENARIO, "t.yaml", Path("."))
    state = RunState(loaded, fed=None, rpc_timeout=1.0, emit=lambda e: None)  # type: ignore[arg-type]
    workflow = loaded.workflows["w"]
    state.copies["w"] = [Copy(workflow, i + 1, id=f"wf{i + 1}", submitted_at=0.0,
                              ended_at=1.0, last=status) for i, status in enumerate(statuses)]
    return state


def status(coordinator: str = "a", epoch: int = 0, compensation: str = "NONE") -> dict:
    return {"state": "SUCCEEDED", "reason": "", "coordinator": coordinator, "epoch": epoch,
            "compensation": compensation, "steps": []}


def test_coordinator_and_epoch_must_match_every_copy() -> None:
    e = scenario_pb2.WorkflowExpectation(id="w", state="SUCCEEDED", coordinator="p1", epoch=1)
    assert check_workflow(state_with([status("p1", 1), status("p1", 1)]), e).ok
    outcome = check_workflow(state_with([status("p1", 1), status("a", 0)]), e)
    assert not outcome.ok and "coordinator a" in outcome.seen
    outcome = check_workflow(state_with([status("p1", 1), status("p1", 2)]), e)
    assert not outcome.ok and "epoch 2" in outcome.seen


def test_compensation_summary_must_match() -> None:
    e = scenario_pb2.WorkflowExpectation(id="w", compensation="DONE")
    assert check_workflow(state_with([status(compensation="DONE")] * 2), e).ok
    outcome = check_workflow(state_with([status(compensation="DONE"),
                                         status(compensation="FAILED")]), e)
    assert not outcome.ok and "compensation FAILED" in outcome.seen


def test_a_refused_submission_matches_only_its_refusal() -> None:
    e = scenario_pb2.WorkflowExpectation(id="w", refused_contains="has no valid key")
    state = state_with([status(), status()])
    for copy in state.copies["w"]:
        copy.id, copy.last = "", None
        copy.error = "submit to a failed: FAILED_PRECONDITION: domain a has no valid key"
    assert check_workflow(state, e).ok
    state.copies["w"][1].error = "submit to a failed: UNAVAILABLE: not rejoined"
    outcome = check_workflow(state, e)
    assert not outcome.ok and "1 of 2 matched" in outcome.seen
    # A copy that was taken (it has an id and a status) is no refusal, whatever its end.
    outcome = check_workflow(state_with([status(), status()]), e)
    assert not outcome.ok and "0 of 2 matched" in outcome.seen


def test_run_order_merges_records_by_time_per_copy() -> None:
    state = state_with([status(), status()])
    e = scenario_pb2.RunOrderExpectation(workflow="w", steps=["s2", "s1"], compensation=True)

    def run(wf: str, step: str, at: float, compensation: bool = True) -> dict:
        return {"workflow": wf, "step": step, "at": at, "compensation": compensation}

    runs = [run("wf1", "s1", 5.0), run("wf1", "s2", 4.0), run("wf1", "s1", 1.0, False),
            run("wf2", "s2", 2.0), run("wf2", "s1", 3.0)]
    assert check_run_order(state, e, runs).ok
    swapped = [*runs[:3], run("wf2", "s2", 3.5), run("wf2", "s1", 3.0)]
    outcome = check_run_order(state, e, swapped)
    assert not outcome.ok and "s1 → s2" in outcome.seen
    missing = runs[:3]  # the second copy compensated nothing
    assert not check_run_order(state, e, missing).ok


def member(domain: str, available: int, capacity: int = 2) -> client_pb2.MemberInfo:
    return client_pb2.MemberInfo(
        domain=domain, state=client_pb2.MEMBER_STATE_ALIVE,
        capabilities=[peer_pb2.CapabilityInfo(name="work", capacity=capacity,
                                              available=available)])


def test_all_free_names_a_held_slot() -> None:
    seen = {"a": [member("a", 2), member("b", 2)]}
    assert _members_problem(seen, ["a", "b"], [], False, all_free=True) == ""
    seen = {"a": [member("a", 2), member("b", 1)]}
    problem = _members_problem(seen, ["a", "b"], [], False, all_free=True)
    assert problem == "a sees b holding slots: work 1/2 free"
    assert _members_problem(seen, ["a", "b"], [], False) == ""  # not asked for


async def test_a_member_check_that_held_late_says_what_it_saw_at_first(monkeypatch) -> None:
    from fedorch.scenario import expect

    answers = [{"a": [member("a", 2), member("b", 1)]}, {"a": [member("a", 2), member("b", 2)]}]

    async def views(state, names):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    monkeypatch.setattr(expect, "views", views)
    e = scenario_pb2.MembersExpectation(seen_by=["a"], alive=["a", "b"], all_free=True,
                                        within_s=30)
    outcome = await expect.check_members(state_with([]), e)
    assert outcome.ok
    assert outcome.seen.endswith("(at first: a sees b holding slots: work 1/2 free)")
    answers[:] = [{"a": [member("a", 2), member("b", 2)]}]
    assert "at first" not in (await expect.check_members(state_with([]), e)).seen
