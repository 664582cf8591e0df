"""The sagas core (agent/core/workflow/compensation.py): order, attempts, summary."""

from __future__ import annotations

from fedorch.core.workflow.compensation import (
    Compensation,
    CompState,
    CompStep,
    Summary,
    plan,
    summary,
)
from fedorch.gen.fedorch.v1 import spec_pb2
from hypothesis import given, settings
from hypothesis import strategies as st


def _spec(needs: dict[str, list[str]], compensated: set[str], retries: int = 0
          ) -> spec_pb2.WorkflowSpec:
    spec = spec_pb2.WorkflowSpec(name="w")
    for sid, ns in needs.items():
        step = spec.steps.add(id=sid, capability="c", needs=ns)
        if sid in compensated:
            step.compensate.retries = retries
    return spec


def _chain() -> spec_pb2.WorkflowSpec:
    # a -> b -> c, all compensated
    return _spec({"a": [], "b": ["a"], "c": ["b"]}, {"a", "b", "c"})


def test_only_succeeded_steps_with_compensate_are_planned():
    spec = _spec({"a": [], "b": ["a"], "c": ["b"], "d": []}, {"a", "c", "d"})
    steps = plan(spec, {"a": "SUCCEEDED", "b": "SUCCEEDED", "c": "FAILED", "d": "CANCELLED"},
                 {"a": "x", "b": "y", "c": "z", "d": "x"})
    assert [(s.step_id, s.domain) for s in steps] == [("a", "x")]


def test_a_chain_compensates_in_reverse():
    spec = _chain()
    core = Compensation(spec, plan(spec, dict.fromkeys("abc", "SUCCEEDED"),
                                   dict.fromkeys("abc", "d1")))
    order = []
    while not core.done():
        started = core.start_ready()
        assert len(started) == 1
        order.append(started[0].step_id)
        assert core.summary() is Summary.RUNNING
        core.attempt_ended(started[0].step_id, started[0].attempt, True, "")
    assert order == ["c", "b", "a"]
    assert core.summary() is Summary.DONE
    assert all(s.state is CompState.COMPENSATED for s in core.steps.values())


def test_a_failed_compensation_is_retried_then_fails_and_upstream_still_runs():
    spec = _spec({"a": [], "b": ["a"]}, {"a", "b"}, retries=1)
    core = Compensation(spec, plan(spec, {"a": "SUCCEEDED", "b": "SUCCEEDED"},
                                   {"a": "d1", "b": "d2"}))
    (first,) = core.start_ready()
    assert (first.step_id, first.attempt, first.domain) == ("b", 1, "d2")
    assert core.attempt_ended("b", 1, False, "boom") is CompState.PENDING
    assert core.attempt_ended("b", 1, False, "boom") is CompState.PENDING  # duplicate
    (second,) = core.start_ready()
    assert (second.step_id, second.attempt) == ("b", 2)
    assert core.attempt_ended("b", 2, False, "boom again") is CompState.COMPENSATION_FAILED
    assert core.steps["b"].error == "boom again"
    (up,) = core.start_ready()  # an ended compensation, even failed, lets upstream go
    assert up.step_id == "a"
    core.attempt_ended("a", 1, True, "")
    assert core.summary() is Summary.FAILED


def test_a_late_answer_of_an_older_attempt_changes_nothing():
    spec = _spec({"a": []}, {"a"}, retries=2)
    core = Compensation(spec, plan(spec, {"a": "SUCCEEDED"}, {"a": "d"}))
    core.start_ready()
    core.attempt_ended("a", 1, False, "x")
    core.start_ready()
    assert core.attempt_ended("a", 1, True, "") is CompState.RUNNING
    assert core.attempt_ended("a", 2, True, "") is CompState.COMPENSATED


def test_a_restored_running_attempt_is_sent_again_with_its_number():
    spec = _chain()
    steps = plan(spec, dict.fromkeys("abc", "SUCCEEDED"), dict.fromkeys("abc", "d"))
    steps[2].state, steps[2].attempts = CompState.RUNNING, 1  # c was out at the crash
    core = Compensation(spec, steps)
    started = core.start_ready()
    assert [(x.step_id, x.attempt) for x in started] == [("c", 1)]
    assert core.start_ready() == []  # b still waits for c
    core.attempt_ended("c", 1, True, "")
    assert [x.step_id for x in core.start_ready()] == ["b"]


def test_a_lost_compensation_ends_failed_is_not_sent_again_and_an_answer_changes_nothing():
    spec = _chain()
    restored = [CompStep("c", "z", 2, CompState.RUNNING, 1),
                CompStep("b", "y", 1), CompStep("a", "x", 1)]
    core = Compensation(spec, restored)  # c's attempt 1 was out at a restart
    assert core.lost("c", "domain z was lost (DEAD)")
    assert not core.lost("c", "again")  # ended already
    # Not sent again under its number; b, upstream of it, may start now.
    assert [(a.step_id, a.attempt) for a in core.start_ready()] == [("b", 1)]
    assert core.attempt_ended("c", 1, True, "") is CompState.COMPENSATION_FAILED
    assert core.steps["c"].error == "domain z was lost (DEAD)"
    core.attempt_ended("b", 1, True, "")
    core.start_ready()
    core.attempt_ended("a", 1, True, "")
    assert core.done() and core.summary() is Summary.FAILED


def test_summary():
    assert summary([]) is Summary.NONE
    assert summary([CompState.COMPENSATED, CompState.RUNNING]) is Summary.RUNNING
    assert summary([CompState.COMPENSATED, CompState.PENDING]) is Summary.RUNNING
    assert summary([CompState.COMPENSATED, CompState.COMPENSATION_FAILED]) is Summary.FAILED
    assert summary([CompState.COMPENSATED]) is Summary.DONE


@st.composite
def _runs(draw):
    """A random DAG (edges only to earlier steps), which steps SUCCEEDED and which have a
    compensate block, retries, and a schedule of answers."""
    n = draw(st.integers(1, 12))
    ids = [f"s{i}" for i in range(n)]
    needs = {ids[i]: sorted(set(draw(st.lists(st.sampled_from(ids[:i]), max_size=3))))
             if i else [] for i in range(n)}
    states = {sid: draw(st.sampled_from(["SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"]))
              for sid in ids}
    compensated = set(draw(st.lists(st.sampled_from(ids), max_size=n)))
    retries = draw(st.integers(0, 2))
    seed = draw(st.randoms(use_true_random=False))
    return needs, states, compensated, retries, seed


def _downstream(needs: dict[str, list[str]], sid: str) -> set[str]:
    out, todo = set(), [d for d, ns in needs.items() if sid in ns]
    while todo:
        d = todo.pop()
        if d not in out:
            out.add(d)
            todo.extend(x for x, ns in needs.items() if d in ns)
    return out


@settings(max_examples=300, deadline=None)
@given(_runs())
def test_no_compensation_starts_before_every_dependant_has_ended(run):
    needs, states, compensated, retries, rnd = run
    spec = _spec(needs, compensated, retries)
    core = Compensation(spec, plan(spec, states, dict.fromkeys(needs, "d")))
    owed = {sid for sid in needs if sid in compensated and states[sid] == "SUCCEEDED"}
    assert set(core.steps) == owed  # only SUCCEEDED steps with compensate
    out: list = []
    ended: set[str] = set()
    started: set[str] = set()
    for _ in range(1000):
        for x in core.start_ready():
            # Every compensated step downstream of it has ended.
            assert (_downstream(needs, x.step_id) & owed) <= ended, x
            started.add(x.step_id)
            out.append(x)
        if not out:
            break
        x = out.pop(rnd.randrange(len(out)))  # answers come back in any order
        state = core.attempt_ended(x.step_id, x.attempt, rnd.random() < 0.6, "no")
        if state in (CompState.COMPENSATED, CompState.COMPENSATION_FAILED):
            ended.add(x.step_id)
    assert core.done()
    assert ended == started == owed
    for s in core.steps.values():
        assert s.attempts <= 1 + retries
        assert s.state is CompState.COMPENSATED or s.attempts == 1 + retries
    assert core.summary() is summary(s.state for s in core.steps.values())


def test_a_steps_runs_in_two_domains_are_compensated_each_in_its_domain():
    # b ran in y (its first row) and again in z (a step placed again): each run has its
    # own compensation; both wait for c's, run at the same time, and a's waits for both.
    spec = _chain()
    core = Compensation(spec, [CompStep("a", "x", 1), CompStep("b", "y", 1),
                               CompStep("c", "z", 1)], [CompStep("b", "z", 1)])
    assert [(a.step_id, a.domain) for a in core.start_ready()] == [("c", "z")]
    core.attempt_ended("c", 1, True, "", "z")
    assert sorted((a.step_id, a.domain) for a in core.start_ready()) == [("b", "y"),
                                                                          ("b", "z")]
    # z's answer ends z's entry only, not y's
    assert core.attempt_ended("b", 1, True, "", "z") is CompState.COMPENSATED
    assert core.entry("b", "y").state is CompState.RUNNING
    assert core.start_ready() == [] and core.summary() is Summary.RUNNING
    assert core.attempt_ended("b", 1, False, "no", "y") is CompState.COMPENSATION_FAILED
    assert [(a.step_id, a.domain) for a in core.start_ready()] == [("a", "x")]
    core.attempt_ended("a", 1, True, "", "x")
    assert core.done() and core.summary() is Summary.FAILED


def test_a_further_run_is_added_once_and_a_lost_domain_fails_its_entry_only():
    spec = _spec({"a": []}, {"a"})
    core = Compensation(spec, [CompStep("a", "x", 1)])
    assert core.add(CompStep("a", "y", 1))
    assert not core.add(CompStep("a", "y", 1)) and not core.add(CompStep("a", "x", 1))
    assert not core.add(CompStep("b", "y", 1))  # a step not planned has no first entry
    assert len(core.start_ready()) == 2
    assert core.lost("a", "y is gone", "y") and core.entry("a", "y").error == "y is gone"
    assert core.entry("a", "x").state is CompState.RUNNING
    assert core.entry("a", "w") is core.steps["a"]  # an unknown domain: the first entry
    core.attempt_ended("a", 1, True, "", "x")
    assert core.summary() is Summary.FAILED


def test_a_restored_running_entry_of_a_further_run_is_sent_again_to_its_domain():
    spec = _spec({"a": []}, {"a"})
    core = Compensation(spec, [CompStep("a", "x", 1, CompState.COMPENSATED, 1)],
                        [CompStep("a", "y", 2, CompState.RUNNING, 2)])
    assert [(a.step_id, a.domain, a.attempt) for a in core.start_ready()] == [("a", "y", 2)]
