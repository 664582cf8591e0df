"""A SUCCEEDED run of an older placement that reaches a saga's driver restarted before
its end was durable is compensated (saga_older.py). The story of
test_saga_runs_placed_again_thrice.py, with d1 (A) cut off both ways while s0 was
placed again three times (so it never learned the new placements: d0 held their
tells in memory only), and d0 crashed as it took s2's FAILED, before the end's write:
restarted, it heard A's resent SUCCEEDED of its older placement before s2's resend.
Before, d0 refused it as an older placement's and acknowledged it; A stopped
resending, and at the end, told by the driver it had reported to and unaware that s0
was placed elsewhere, reported nothing again: its run was never compensated."""

from __future__ import annotations

from fedorch.core.node import Message, StepEnded, Tick
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_compensating import WF
from tests.unit.core.node.test_saga_runs_placed_again_thrice import (
    FourSagas,
    owed,
    s0_placed_again_thrice,
    take,
)

RESULT_KEY = ("result", WF, "s0", "d0")  # A's resend of its s0 result to d0


def without_sagas() -> spec_pb2.WorkflowSpec:
    """The same three steps, none with a `compensate` block."""
    return spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id=s, capability="a") for s in ("s0", "s1", "s2")])


def a_refused_after_the_drivers_restart(s2_ok: bool = False,
                                        spec: spec_pb2.WorkflowSpec | None = None
                                        ) -> FourSagas:
    """A's (d1's) run of s0 SUCCEEDED as it was cut off both ways; d0 placed s0 again
    on d2 (B, whose run SUCCEEDED, cut off too), d3 (C) and itself (D), whose run
    SUCCEEDED, as did s1. s2 ended at d3 (FAILED unless `s2_ok`); d0 took its result
    and crashed before that turn's write. Restarted, d0 hears A's resend of its
    SUCCEEDED first (B's run is reported at the end, as in the thrice story)."""
    f = s0_placed_again_thrice(spec, both_ways=True)
    assert WF not in f.disks["d1"].placements  # A never learned s0 was placed again
    # s2 ends at d3; d0 takes its result and crashes before the turn's write.
    f.step("d3", StepEnded(*take(f, "d3", "s2"), s2_ok, {}, "" if s2_ok else "boom"))
    to_d0 = [m for m in f.net if m[1] == "d0"]
    assert [type(m[2]) for m in to_d0] == [ResultMsg]
    f.net = [m for m in f.net if m[1] != "d0"]
    f.nodes["d0"].step(f.now, Message("d3", to_d0[0][2]))
    assert WF in f.nodes["d0"].state.final  # the end, in memory only
    f.restart("d0")
    f.silent.discard("d1")
    f.deliver()
    assert WF not in f.disks["d0"].final
    # A's resend comes first (d1 alone is ticked), refused as an older placement's.
    f.now += 5.0
    f.step("d1", Tick())
    assert [m[1] for m in f.net] == ["d0"]
    f.deliver()
    assert f.nodes["d0"].stats["result of an older placement refused"] == 1
    assert WF not in f.disks["d0"].final
    return f


def tick_until(f: FourSagas, done, most: int = 120) -> None:
    """Tick every living Node a second at a time until `done(f)`, at most `most`."""
    for _ in range(most):
        if done(f):
            return
        f.tick(f.now + 1.0)
    assert done(f), "never came to pass"


def test_a_run_refused_before_a_restarted_drivers_end_is_compensated_there():
    f = a_refused_after_the_drivers_restart()
    tick_until(f, lambda f: WF in f.disks["d1"].final and not f.nodes["d1"].pending)
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED
    # A's run owes its compensation in A, beside B's and D's (never in C: not run there).
    assert owed(f) == {"d0": "RUNNING", "d1": "RUNNING", "d2": "RUNNING"}
    assert f.nodes["d0"].stats["compensation owed by a run in a second domain"] == 2
    for name in ("d0", "d1", "d2"):
        f.end(name, True)
    f.deliver()
    assert owed(f) == {"d0": "COMPENSATED", "d1": "COMPENSATED", "d2": "COMPENSATED"}
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    for name in ("d0", "d1", "d2"):  # each ran its own, once
        assert f.disks[name].comp_runs[(WF, "s0", 1)] == ("succeeded", "", True)
        assert f.compensations.count((name, (WF, "s0", 1, COMPENSATE))) == 1
    assert all(run[0] != "d3" for run in f.compensations)
    # A's report again (a late duplicate) changes nothing: no entry added, nothing run.
    f.step("d0", Message("d1", ResultMsg(WF, "s0", 1, StepState.SUCCEEDED,
                                         {"of": "s0"}, "", 0)))
    f.deliver()
    assert len(f.compensations) == 3
    assert owed(f)["d1"] == "COMPENSATED"


def test_the_result_is_left_unacknowledged_until_the_end_hands_it_to_the_saga():
    f = a_refused_after_the_drivers_restart()
    assert f.nodes["d0"].stats["result of an older placement left to the saga"] == 1
    assert RESULT_KEY in f.nodes["d1"].pending  # A resends it
    tick_until(f, lambda f: WF in f.disks["d0"].final)
    tick_until(f, lambda f: RESULT_KEY not in f.nodes["d1"].pending)
    assert "d1" in owed(f)  # taken for the saga, then acknowledged


def test_a_workflow_that_succeeds_ends_the_resends_and_owes_nothing():
    f = a_refused_after_the_drivers_restart(s2_ok=True)
    assert RESULT_KEY in f.nodes["d1"].pending
    tick_until(f, lambda f: WF in f.disks["d1"].final)
    assert f.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert f.disks["d1"].final[WF] is WorkflowState.SUCCEEDED
    assert RESULT_KEY not in f.nodes["d1"].pending  # the end dropped it
    assert owed(f) == {} and f.compensations == []


def test_without_a_saga_the_older_result_is_acknowledged_as_before():
    f = a_refused_after_the_drivers_restart(spec=without_sagas())
    assert f.nodes["d0"].stats["result of an older placement left to the saga"] == 0
    assert RESULT_KEY not in f.nodes["d1"].pending  # acknowledged at once
    tick_until(f, lambda f: WF in f.disks["d0"].final)
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED
    assert owed(f) == {} and f.compensations == []
