"""Progress core: readiness, attempts and retries, results from elsewhere, skip, cancel."""

from __future__ import annotations

import pytest
from fedorch.core.workflow.progress import Outcome, Progress, StartAttempt, StepState
from fedorch.gen.fedorch.v1 import spec_pb2
from google.protobuf import struct_pb2

ME = "eu-west"


def step(step_id: str, *needs: str, retries: int = 0, timeout_s: float = 0.0,
         params: dict | None = None, capability: str = "cap",
         idempotent: bool = False) -> spec_pb2.StepSpec:
    s = spec_pb2.StepSpec(id=step_id, capability=capability, needs=list(needs),
                          retries=retries, timeout_s=timeout_s, idempotent=idempotent)
    if params is not None:
        struct = struct_pb2.Struct()
        struct.update(params)
        s.params.CopyFrom(struct)
    return s


def progress(steps: list[spec_pb2.StepSpec], placement: dict[str, str] | None = None,
             me: str = ME) -> Progress:
    spec = spec_pb2.WorkflowSpec(name="wf", steps=steps)
    return Progress(spec, placement or {s.id: me for s in steps}, me)


def states(p: Progress) -> dict[str, StepState]:
    return {sid: s.state for sid, s in p.steps.items()}


def ids(started: list[StartAttempt]) -> list[str]:
    return [a.step_id for a in started]


# ---- running in order -------------------------------------------------------------------


def test_chain_runs_in_order_and_inputs_carry_upstream_outputs() -> None:
    p = progress([step("a", params={"table": "sales"}, timeout_s=30.0), step("b", "a"),
                  step("c", "b")])
    first = p.start_ready()
    assert first == [StartAttempt("a", 1, {"table": "sales"}, {}, 30.0)]
    assert states(p) == {"a": StepState.RUNNING, "b": StepState.WAITING, "c": StepState.WAITING}
    assert p.start_ready() == []  # a is running; nothing else is ready
    assert p.outcome() is None

    assert p.attempt_ended("a", 1, True, {"rows": 3}, "") is StepState.SUCCEEDED
    assert p.start_ready() == [StartAttempt("b", 1, {}, {"a": {"rows": 3}}, None)]
    assert p.attempt_ended("b", 1, True, {"model": "m1"}, "") is StepState.SUCCEEDED
    assert p.outcome() is None
    assert p.start_ready() == [StartAttempt("c", 1, {}, {"b": {"model": "m1"}}, None)]
    assert p.attempt_ended("c", 1, True, {}, "") is StepState.SUCCEEDED
    assert p.start_ready() == []
    assert p.outcome() is Outcome.SUCCEEDED


def test_start_attempt_inputs_are_copies() -> None:
    p = progress([step("a"), step("b", "a")])
    p.start_ready()
    p.attempt_ended("a", 1, True, {"k": "v"}, "")
    (attempt,) = p.start_ready()
    attempt.inputs["a"]["k"] = "changed"
    assert p.steps["a"].outputs == {"k": "v"}


def test_steps_placed_elsewhere_are_never_started_here() -> None:
    p = progress([step("a"), step("b", "a"), step("c")],
                 {"a": "us-east", "b": ME, "c": "partner"})
    assert p.start_ready() == []
    assert [s.id for s in p.local_steps()] == ["b"]
    # The remote upstream result arrives: now the local step runs with its outputs.
    assert p.apply_result("a", 1, StepState.SUCCEEDED, {"x": 1}, "")
    assert p.start_ready() == [StartAttempt("b", 1, {}, {"a": {"x": 1}}, None)]
    assert p.start_ready() == []
    assert p.steps["c"].state is StepState.WAITING


# ---- retries and failure ----------------------------------------------------------------


def test_a_failed_attempt_with_retries_left_goes_back_to_waiting() -> None:
    p = progress([step("a", retries=1), step("b", "a")])
    assert ids(p.start_ready()) == ["a"]
    assert p.attempt_ended("a", 1, False, {}, "exit 1") is StepState.WAITING
    assert p.steps["a"].error == "exit 1"
    assert p.outcome() is None
    retry = p.start_ready()
    assert [(a.step_id, a.attempt) for a in retry] == [("a", 2)]
    assert p.steps["a"].error == ""
    assert p.attempt_ended("a", 2, True, {"ok": True}, "") is StepState.SUCCEEDED
    assert p.steps["a"].attempts == 2
    assert ids(p.start_ready()) == ["b"]


def test_final_failure_skips_everything_downstream() -> None:
    p = progress([step("a", retries=1), step("b", "a"), step("c", "b"), step("other")])
    p.start_ready()
    p.attempt_ended("a", 1, False, {}, "first")
    p.start_ready()
    assert p.attempt_ended("a", 2, False, {}, "second") is StepState.FAILED
    assert p.steps["a"].error == "second"
    assert p.steps["b"].state is StepState.SKIPPED
    assert p.steps["c"].state is StepState.SKIPPED  # transitively
    assert p.steps["b"].error == "upstream step a failed"
    assert p.steps["other"].state is StepState.RUNNING  # independent: unaffected
    assert p.outcome() is Outcome.FAILED
    assert p.start_ready() == []


def test_stale_attempt_end_changes_nothing() -> None:
    p = progress([step("a", retries=2)])
    p.start_ready()
    p.attempt_ended("a", 1, False, {}, "x")
    p.start_ready()  # attempt 2 running
    assert p.attempt_ended("a", 1, True, {"old": 1}, "") is StepState.RUNNING
    assert p.steps["a"].outputs == {}
    assert p.steps["a"].attempts == 2


def test_interrupted_idempotent_step_counts_as_a_failed_attempt() -> None:
    p = progress([step("a", retries=1, idempotent=True), step("b", idempotent=True),
                  step("c", "b")])
    p.start_ready()
    assert p.interrupted("a", "agent restart") is StepState.WAITING
    assert p.steps["a"].error == "agent restart"
    assert p.interrupted("b", "agent restart") is StepState.FAILED
    assert p.steps["c"].state is StepState.SKIPPED
    assert p.interrupted("a", "again") is StepState.WAITING  # not running: unchanged
    assert p.steps["a"].attempts == 1


def test_interrupted_step_that_is_not_idempotent_fails_with_retries_left() -> None:
    p = progress([step("a", retries=3), step("b", "a")])
    p.start_ready()
    assert p.interrupted("a", "interrupted by an agent restart") is StepState.FAILED
    assert p.steps["a"].error == ("interrupted by an agent restart; not run again: the step"
                                  " is not idempotent (idempotent: false)")
    assert p.steps["b"].state is StepState.SKIPPED
    assert p.outcome() is Outcome.FAILED
    assert p.start_ready() == []


def test_interrupted_names_a_stale_attempt_changes_nothing() -> None:
    p = progress([step("a", retries=1)])
    p.start_ready()
    p.attempt_ended("a", 1, False, {}, "x")
    p.start_ready()  # attempt 2 running
    assert p.interrupted("a", "restart", attempt=1) is StepState.RUNNING
    assert p.steps["a"].attempts == 2


# ---- results from elsewhere ------------------------------------------------------------


def test_apply_result_is_idempotent_and_monotone() -> None:
    p = progress([step("a", retries=2), step("b", "a")], {"a": "us-east", "b": ME})
    assert not p.apply_result("nope", 1, StepState.SUCCEEDED, {}, "")
    assert p.apply_result("a", 1, StepState.RUNNING, {}, "")
    assert not p.apply_result("a", 1, StepState.RUNNING, {}, "")  # duplicate note
    assert p.apply_result("a", 2, StepState.RUNNING, {}, "")      # a retry started there
    assert p.steps["a"].attempts == 2
    assert not p.apply_result("a", 1, StepState.SUCCEEDED, {"old": 1}, "")  # older attempt
    assert p.steps["a"].state is StepState.RUNNING
    assert p.apply_result("a", 2, StepState.SUCCEEDED, {"v": 2}, "")
    assert not p.apply_result("a", 2, StepState.SUCCEEDED, {"v": 2}, "")   # duplicate
    assert not p.apply_result("a", 3, StepState.FAILED, {}, "after the end")  # terminal
    assert p.steps["a"].state is StepState.SUCCEEDED
    assert p.steps["a"].outputs == {"v": 2}
    assert p.steps["a"].attempts == 2


def test_running_note_then_result_and_reordered_note_is_ignored() -> None:
    p = progress([step("a")], {"a": "us-east"})
    assert p.apply_result("a", 1, StepState.SUCCEEDED, {"v": 1}, "")
    assert not p.apply_result("a", 1, StepState.RUNNING, {}, "")  # the note came late
    assert p.steps["a"].state is StepState.SUCCEEDED
    assert p.outcome() is Outcome.SUCCEEDED


def test_remote_failure_skips_local_downstream() -> None:
    p = progress([step("a"), step("b", "a"), step("c", "b")],
                 {"a": "us-east", "b": ME, "c": "partner"})
    assert p.apply_result("a", 1, StepState.FAILED, {"ignored": 1}, "boom")
    assert p.steps["a"].outputs == {}  # only a success carries outputs
    assert p.steps["a"].error == "boom"
    assert states(p) == {"a": StepState.FAILED, "b": StepState.SKIPPED, "c": StepState.SKIPPED}
    assert p.start_ready() == []
    assert p.outcome() is Outcome.FAILED


def test_result_recipients_are_the_coordinator_and_downstream_owners() -> None:
    p = progress([step("a"), step("b", "a"), step("c", "a"), step("d", "a"), step("e", "b")],
                 {"a": ME, "b": "us-east", "c": "partner", "d": ME})  # e not placed
    assert p.result_recipients("a", "coord") == ["coord", "partner", "us-east"]
    assert p.result_recipients("a", ME) == ["partner", "us-east"]  # never self
    assert p.result_recipients("b", "coord") == ["coord"]  # e's domain is unknown ("")
    assert p.result_recipients("c", "partner") == ["partner"]  # no downstream
    assert p.result_recipients("d", ME) == []  # coordinated here, nothing downstream


# ---- cancel and outcome ----------------------------------------------------------------


def test_cancel_returns_only_the_steps_running_here() -> None:
    p = progress([step("a"), step("b"), step("r"), step("w", "a"), step("done")],
                 {"a": ME, "b": ME, "r": "us-east", "w": ME, "done": ME})
    p.start_ready()  # a, b, done run here
    p.attempt_ended("done", 1, True, {}, "")
    p.apply_result("r", 1, StepState.RUNNING, {}, "")
    assert sorted(p.cancel("by request")) == ["a", "b"]
    assert states(p) == {
        "a": StepState.CANCELLED, "b": StepState.CANCELLED, "r": StepState.CANCELLED,
        "w": StepState.CANCELLED, "done": StepState.SUCCEEDED,
    }
    assert p.steps["w"].error == "by request"
    assert p.start_ready() == []
    assert p.outcome() is None
    assert p.cancel("again") == []
    # Results arriving after the cancel change nothing.
    assert not p.apply_result("r", 1, StepState.SUCCEEDED, {}, "")
    assert p.attempt_ended("a", 1, True, {}, "") is StepState.CANCELLED


def test_outcome_succeeds_only_when_every_step_succeeded() -> None:
    p = progress([step("a"), step("b")], {"a": ME, "b": "us-east"})
    p.start_ready()
    p.attempt_ended("a", 1, True, {}, "")
    assert p.outcome() is None
    p.apply_result("b", 1, StepState.RUNNING, {}, "")
    assert p.outcome() is None
    p.apply_result("b", 1, StepState.SUCCEEDED, {}, "")
    assert p.outcome() is Outcome.SUCCEEDED


# ---- a diamond --------------------------------------------------------------------------


def diamond(placement: dict[str, str] | None = None) -> Progress:
    return progress([step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")], placement)


def test_diamond_joins_both_branches() -> None:
    p = diamond()
    assert ids(p.start_ready()) == ["a"]
    p.attempt_ended("a", 1, True, {"n": 1}, "")
    both = p.start_ready()
    assert [(s.step_id, s.inputs) for s in both] == [("b", {"a": {"n": 1}}), ("c", {"a": {"n": 1}})]
    p.attempt_ended("b", 1, True, {"from": "b"}, "")
    assert p.start_ready() == []  # d still waits for c
    p.attempt_ended("c", 1, True, {"from": "c"}, "")
    assert p.start_ready() == [
        StartAttempt("d", 1, {}, {"b": {"from": "b"}, "c": {"from": "c"}}, None)
    ]
    p.attempt_ended("d", 1, True, {}, "")
    assert p.outcome() is Outcome.SUCCEEDED


def test_diamond_root_failure_skips_all_three() -> None:
    p = diamond()
    p.start_ready()
    p.attempt_ended("a", 1, False, {}, "x")
    assert states(p) == {"a": StepState.FAILED, "b": StepState.SKIPPED,
                         "c": StepState.SKIPPED, "d": StepState.SKIPPED}
    assert p.outcome() is Outcome.FAILED


def test_diamond_one_branch_fails_while_the_other_runs() -> None:
    p = diamond({"a": ME, "b": ME, "c": "us-east", "d": ME})
    p.start_ready()
    p.attempt_ended("a", 1, True, {}, "")
    assert ids(p.start_ready()) == ["b"]
    p.apply_result("c", 1, StepState.RUNNING, {}, "")
    assert p.attempt_ended("b", 1, False, {}, "b broke") is StepState.FAILED
    assert p.steps["d"].state is StepState.SKIPPED
    assert p.steps["c"].state is StepState.RUNNING
    assert p.outcome() is Outcome.FAILED
    assert p.apply_result("c", 1, StepState.SUCCEEDED, {}, "")
    assert p.steps["d"].state is StepState.SKIPPED
    assert p.start_ready() == []
    assert p.outcome() is Outcome.FAILED


# ---- cost ----------------------------------------------------------------------------


def test_next_start_at_with_no_wave_waiting_reads_no_step(monkeypatch) -> None:
    # Asked at every start of every workflow: without a wave seen ready (no fan-out, or
    # none pausing yet) there is nothing to wait for, and no step list is built.
    p = progress([step("a"), step("b", "a"), step("c", "b")])
    p.start_ready(1.0)
    monkeypatch.setattr(Progress, "local_steps", lambda self: pytest.fail("walked"))
    assert p.next_start_at() is None


def test_the_steps_downstream_and_groups_are_those_of_the_spec() -> None:
    p = progress([step("c", "b"), step("a"), step("b", "a"), step("d", "a", "b")])
    assert p._downstream == {"c": [], "a": ["b", "d"], "b": ["c", "d"], "d": []}
    assert p.groups == {} and p._group_of == {}
    assert [(s.id, s.needs, s.max_attempts) for s in p.steps.values()] == [
        ("c", ("b",), 1), ("a", (), 1), ("b", ("a",), 1), ("d", ("a", "b"), 1)]
