"""apply_replacement: how a domain merges a committed re-placement of a step
(agent/runtime/replacement.py), as the new domain and as another domain of the workflow."""

from __future__ import annotations

from fedorch.core.workflow import values
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.context import Active
from fedorch.runtime.replacement_merge import apply_replacement
from fedorch.runtime.store.store import WorkflowRow

SPEC = spec_pb2.WorkflowSpec(name="wf", steps=[
    spec_pb2.StepSpec(id="a", capability="x"),
    spec_pb2.StepSpec(id="b", capability="x", needs=["a"]),
    spec_pb2.StepSpec(id="c", capability="x", needs=["b"]),
])
FULL = {"a": "lost", "b": "new", "c": "down"}


def replacement(**inputs: dict) -> peer_pb2.Replacement:
    return peer_pb2.Replacement(step_id="b", lost_domain="lost", placement=FULL,
                                inputs_json={k: values.dumps(v) for k, v in inputs.items()})


def active(me: str, placement: dict[str, str]) -> Active:
    row = WorkflowRow(id="co.1", name="wf", coordinator="co", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement=dict(placement))
    return Active(row, Progress(SPEC, placement, me))


def test_the_new_domain_learns_its_step_its_neighbours_and_its_inputs() -> None:
    # As the new domain sets the workflow up from the round's placement (its step only).
    here = active("new", {"b": "new"})
    assert apply_replacement(here, replacement(a={"rows": 3}), 5, {"down": "127.0.0.1:1"})
    b = here.progress.steps["b"]
    assert (b.domain, b.epoch, b.replaced_from, b.state) == ("new", 5, ["lost"],
                                                             StepState.WAITING)
    assert here.row.placement == FULL
    assert here.row.endpoints == {"down": "127.0.0.1:1"}
    assert here.progress.steps["a"].state is StepState.SUCCEEDED
    # b's result goes to the downstream owner it did not know before, and b may start.
    assert here.progress.result_recipients("b", "co") == ["co", "down"]
    assert [(s.step_id, s.inputs) for s in here.progress.start_ready()] == [
        ("b", {"a": {"rows": 3}})]


def test_another_domain_redirects_its_results_and_accepts_the_new_ones() -> None:
    there = active("down", {"a": "lost", "b": "lost", "c": "down"})
    there.progress.steps["b"].epoch = 1  # (what a loss seen here would have done)
    assert apply_replacement(there, replacement(), 5, {})
    assert there.row.placement["b"] == "new"
    assert there.progress.refuse_result("b", "lost", 0) is not None
    assert there.progress.refuse_result("b", "new", 5) is None
    assert there.progress.steps["a"].state is StepState.WAITING  # no input was sent


def test_a_repeat_or_an_unknown_step_changes_nothing() -> None:
    here = active("new", {"b": "new"})
    assert apply_replacement(here, replacement(), 5, {})
    assert not apply_replacement(here, replacement(), 5, {})
    assert not apply_replacement(here, peer_pb2.Replacement(step_id="zz", placement=FULL),
                                 6, {})
    assert not apply_replacement(here, peer_pb2.Replacement(step_id="b"), 7, {})
    assert here.progress.steps["b"].epoch == 5


def test_the_new_domain_that_started_its_step_already_keeps_that_attempt() -> None:
    # Set up here from a later round's COMMIT, whose whole placement named this domain for
    # "b" (epoch 0 then): "b" started. Its own round's COMMIT moves the epoch on only.
    here = active("new", FULL)
    here.progress.steps["a"].state = StepState.SUCCEEDED
    assert [s.step_id for s in here.progress.start_ready()] == ["b"]
    assert apply_replacement(here, replacement(), 5, {})
    b = here.progress.steps["b"]
    assert (b.state, b.attempts, b.epoch) == (StepState.RUNNING, 1, 5)
    assert here.progress.start_ready() == []


def test_bad_input_json_is_left_out() -> None:
    here = active("new", {"b": "new"})
    rep = replacement()
    rep.inputs_json["a"] = "[1, 2]"  # not an object
    assert apply_replacement(here, rep, 5, {})
    assert here.progress.steps["a"].state is StepState.WAITING


# ---- status: the step's new domain and the ones it was lost on -----------------------------


def test_status_shows_the_new_domain_and_replaced_from() -> None:
    from fedorch.cli import render
    from fedorch.client.models import WorkflowStatus
    from fedorch.gen.fedorch.v1 import status_pb2
    from fedorch.runtime.convert import status_message
    from fedorch.runtime.store.store import StepRow
    from rich.console import Console

    row = WorkflowRow(id="co.1", name="wf", coordinator="co", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement=dict(FULL))
    steps = {"b": StepRow("co.1", "b", "new", "RUNNING", 1, {}, "", ["lost"])}
    status = status_message(row, steps)
    assert [(s.id, s.domain, list(s.replaced_from)) for s in status.steps] == [
        ("a", "lost", []), ("b", "new", ["lost"]), ("c", "down", [])]
    as_json = [render.step_to_dict(s) for s in status.steps]
    assert as_json[1]["replaced_from"] == ["lost"] and "replaced_from" not in as_json[0]
    client = WorkflowStatus.from_proto(status_pb2.WorkflowStatus.FromString(
        status.SerializeToString()))
    assert client.to_dict()["steps"][1]["replaced_from"] == ["lost"]
    console = Console(width=200, record=True)
    console.print(render.steps_table(status))
    assert "new (was lost)" in console.export_text()


async def test_replaced_from_is_kept_in_the_steps_table(tmp_path) -> None:
    from fedorch.runtime.store.store import StepRow, Store

    store = await Store.open(tmp_path / "data")
    try:
        row = WorkflowRow(id="co.1", name="wf", coordinator="co", state="RUNNING",
                          spec=SPEC.SerializeToString(), placement=dict(FULL))
        await store.save_workflow(row, [StepRow("co.1", "b", "new", "WAITING", 0, {}, "",
                                                ["lost", "other"]),
                                        StepRow("co.1", "a", "lost", "SUCCEEDED", 1, {}, "")])
        _, steps = await store.get_workflow_with_steps("co.1")
        assert steps["b"].replaced_from == ["lost", "other"]
        assert steps["a"].replaced_from == []
    finally:
        await store.close()


async def test_a_step_that_ended_here_before_its_own_commit_is_reported_again(
        worker, monkeypatch) -> None:
    # alpha ran "b", set up from a later round's COMMIT (epoch 0), before b's own round 5
    # COMMIT came: its report went under epoch 0, refused at the coordinator (at epoch 5).
    spec = spec_pb2.WorkflowSpec(name="wf", steps=[spec_pb2.StepSpec(id="b", capability="x")])
    row = WorkflowRow(id="co.1", name="wf", coordinator="co", state="RUNNING",
                      spec=spec.SerializeToString(), placement={"b": "alpha"})
    here = Active(row, Progress(spec, {"b": "alpha"}, "alpha"), fresh=True)
    assert [s.step_id for s in here.progress.start_ready()] == ["b"]
    assert here.progress.attempt_ended("b", 1, True, {}, "") is StepState.SUCCEEDED
    worker.active["co.1"] = here
    reported = []
    monkeypatch.setattr(worker.participation.runs, "report",
                        lambda active, step_id: reported.append((step_id, active.progress
                                                                 .steps[step_id].epoch)))
    rep = peer_pb2.Replacement(step_id="b", lost_domain="lost", placement={"b": "alpha"})
    await worker.participation._set_up("co.1", 5, "co", spec, {"b": "alpha"}, {}, None,
                                       replaced=rep)
    assert reported == [("b", 5)]
    assert here.progress.steps["b"].state is StepState.SUCCEEDED
    await worker.participation._set_up("co.1", 5, "co", spec, {"b": "alpha"}, {}, None,
                                       replaced=rep)
    assert reported == [("b", 5)]  # a repeated COMMIT: nothing new to report
