"""A step's start told its coordinator only when its result does not follow at once
(agent/core/node/running_starts.py): a step that ends within the hold sends its result
alone; a long one's start is told when the hold is over, and shown RUNNING there; a
FAILED takes the held start out just before it; a later attempt's start replaces a
held one and keeps its deadline; a start in its COMMIT's own turn, which acknowledges
that COMMIT, is told at once."""

from __future__ import annotations

from fedorch.core.node import StepEnded, Submit, Tick
from fedorch.core.node.records import ResultMsg
from fedorch.core.node.running_starts import HOLD_S
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_cancel import WF
from tests.unit.core.node.test_cancel import Federation as Three


def one_step_on_d1(retries: int = 0) -> Three:
    """d0 coordinates a workflow of s0, on d0 itself, then s, after s0, on d1:
    committed, s0 ended a moment later, s started at d1 then (after its COMMIT's
    instant), nothing of s told d0 yet."""
    fed = Three()
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="s0", capability="b"),
        spec_pb2.StepSpec(id="s", capability="a", needs=["s0"], retries=retries)])
    fed.step("d0", Submit(WF, spec, placement={"s0": "d0", "s": "d1"}))
    fed.deliver()
    fed.now += HOLD_S / 10  # s0 ends a moment after the COMMIT
    fed.running["d0"].discard((WF, "s0", 1))
    fed.step("d0", StepEnded(WF, "s0", 1, ok=True))
    fed.deliver()
    assert [run for run in fed.running["d1"] if run[0] == WF] == [(WF, "s", 1)]
    return fed


def told_d0(fed: Three) -> list[tuple[StepState, int]]:
    """What d1 sent d0 of s, in order: (state, attempt)."""
    return [(m.state, m.attempt) for to, m in fed.sent_by("d1", ResultMsg)
            if to == "d0" and m.step_id == "s"]


def test_a_start_followed_by_its_result_in_time_sends_only_the_result() -> None:
    fed = one_step_on_d1()
    started_at = fed.now
    assert told_d0(fed) == []  # held
    fed.now = started_at + HOLD_S / 2
    fed.running["d1"].discard((WF, "s", 1))
    fed.step("d1", StepEnded(WF, "s", 1, ok=True))
    assert told_d0(fed) == [(StepState.SUCCEEDED, 1)]
    assert fed.nodes["d1"].running.starts.timer() is None  # nothing left to tell
    assert fed.nodes["d1"].stats["start tell left to the result"] == 1
    fed.deliver()
    fed.run_until(started_at + 10 * HOLD_S)
    assert told_d0(fed) == [(StepState.SUCCEEDED, 1)]  # the start never told
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    # Its result stood for d1's DecisionAck, as the start tell did (commit_acks.py).
    assert not [k for k in fed.disks["d0"].records if k[0] == WF]


def test_a_long_steps_start_is_told_when_the_hold_is_over_and_shown_running() -> None:
    fed = one_step_on_d1()
    started_at = fed.now
    assert told_d0(fed) == []
    assert fed.nodes["d1"].get_timer() <= started_at + HOLD_S
    fed.now = started_at + HOLD_S
    ready = fed.step("d1", Tick())
    assert [(to, m.state, m.attempt) for to, m in sent(ready) if type(m) is ResultMsg] \
        == [("d0", StepState.RUNNING, 1)]
    fed.deliver()
    assert fed.nodes["d0"].progress[WF].steps["s"].state is StepState.RUNNING
    fed.running["d1"].discard((WF, "s", 1))
    fed.step("d1", StepEnded(WF, "s", 1, ok=True))
    fed.deliver()
    assert told_d0(fed) == [(StepState.RUNNING, 1), (StepState.SUCCEEDED, 1)]


def test_a_failed_result_takes_the_held_start_out_just_before_it() -> None:
    # A FAILED is no word that an attempt ran (a self-fenced one ends FAILED too:
    # replacement_heard.py), so the start goes first, in the same Ready.
    fed = one_step_on_d1()
    fed.running["d1"].discard((WF, "s", 1))
    ready = fed.step("d1", StepEnded(WF, "s", 1, ok=False, error="boom"))
    assert [(to, m.state) for to, m in sent(ready) if type(m) is ResultMsg] == [
        ("d0", StepState.RUNNING), ("d0", StepState.FAILED)]
    assert fed.nodes["d1"].running.starts.timer() is None


def test_a_retry_replaces_the_held_start_and_keeps_its_deadline() -> None:
    fed = one_step_on_d1(retries=1)
    started_at = fed.now
    fed.now = started_at + HOLD_S / 2
    fed.running["d1"].discard((WF, "s", 1))
    ready = fed.step("d1", StepEnded(WF, "s", 1, ok=False, error="boom"))  # retried
    assert (WF, "s", 2) in ready.start_steps and not sent(ready)
    assert fed.nodes["d1"].get_timer() == started_at + HOLD_S
    fed.now = started_at + HOLD_S
    fed.step("d1", Tick())
    assert told_d0(fed) == [(StepState.RUNNING, 2)]


def test_a_start_in_its_commits_turn_is_told_at_once_as_the_commits_acknowledgement() -> None:
    # Held, a sibling failing at once would end the workflow before d1 acknowledged
    # its COMMIT: an end told unsettled (running_starts.py, "Started with its COMMIT").
    fed = Three()
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[spec_pb2.StepSpec(id="s", capability="a")])
    fed.step("d0", Submit(WF, spec, placement={"s": "d1"}))
    fed.deliver()
    assert told_d0(fed) == [(StepState.RUNNING, 1)]
    assert fed.nodes["d1"].running.starts.timer() is None
    assert fed.nodes["d1"].commit_acks.owed == {}

