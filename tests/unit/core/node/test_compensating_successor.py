"""A saga outlives its driver (core/node/compensating.py): the coordinator ends a
workflow FAILED, tells every participant the saga's plan, and dies for good after one
compensation ran; the holder of a later epoch drives the plan from attempt 1 and
finishes the rest, each attempt run once; the old coordinator, back, follows.

The later epoch is given to the successor by hand here (its tables written, then a
restart), takeover off: what adopting a plan does, apart from the election (which
test_compensating_takeover.py runs).
"""

from __future__ import annotations

import pytest
from fedorch.core.node import Message, Submit
from fedorch.core.node.authority import Refused, check
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import CompensateMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_compensating import NOW, WF, Sagas

# s0 (d1) -> s1 (d2) -> s2 (d1, fails); the coordinator d0 runs no step, so its death
# leaves every compensation runnable.
PLACEMENT = {"s0": "d1", "s1": "d2", "s2": "d1"}


def spec() -> spec_pb2.WorkflowSpec:
    comp = spec_pb2.Compensation(params_json='{"undo": true}')
    return spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="s0", capability="a", compensate=comp),
        spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], compensate=comp),
        spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])


def saga_with_its_driver_dead() -> Sagas:
    """d0 ended the workflow FAILED; s1's compensation ran (d2), s0's was told to d1 and
    runs there; then d0 died for good."""
    f = Sagas()
    f.step("d0", Submit(WF, spec(), placement=PLACEMENT))
    f.deliver()
    assert f.end("d1", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"
    assert f.end("d1", False, "boom")[1] == "s2"
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED
    # Every participant wrote the plan its end notice's driver told it.
    for name in ("d1", "d2"):
        assert f.disks[name].plans[WF] == (("s0", "d1", 1), ("s1", "d2", 1)), name
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE))]
    f.end("d2", True)  # s1 compensated; d0 tells d1 s0's attempt 1
    assert f.compensations[-1] == ("d1", (WF, "s0", 1, COMPENSATE))
    f.silent.add("d0")  # dead for good
    f.net = [m for m in f.net if "d0" not in m[:2]]
    return f


def make_successor(f: Sagas, name: str, epoch: int = 1) -> None:
    """`name` holds `epoch` of the workflow (as a won claim would leave it), restarted."""
    f.disks[name].epochs[WF] = (epoch, name)
    f.disks[name].granted[WF] = (epoch, name)
    f.restart(name)


def test_a_successor_finishes_the_saga_of_a_dead_coordinator_each_attempt_once():
    f = saga_with_its_driver_dead()
    make_successor(f, "d2")
    f.deliver()
    # d2 drives from attempt 1: its own s1 attempt 1 is answered from its record (not
    # run again); d1 follows d2 and takes its tell of s0's attempt 1, which runs still.
    assert f.nodes["d2"].stats["saga plan adopted by a successor"] == 1
    assert f.disks["d1"].epochs[WF] == (1, "d2")
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE)),
                               ("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)  # s0's compensation ends: reported to d2, the driver now
    rows, summary = f.nodes["d2"].compensating.of(WF)
    assert {s: (r.state, r.attempts) for s, r in rows.items()} == {
        "s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert summary.value == "DONE"
    # Each attempt ran once, in its own domain.
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s1", 1, COMPENSATE))]
    assert f.disks["d1"].plans[WF] == ()  # the successor told the saga over
    assert WF not in f.disks["d2"].plans  # its own rows are the plan
    assert not [k for k in f.nodes["d1"].pending if k[1] == WF]


def test_the_old_coordinator_back_follows_the_successor_and_runs_nothing():
    f = saga_with_its_driver_dead()
    make_successor(f, "d2")
    f.deliver()
    f.end("d1", True)
    # d0 comes back: it finds s0's attempt RUNNING in its rows and tells it again; d1
    # follows epoch 1 but recorded that attempt's end: it answers d0 with the record
    # (never running it again), and d2's notices, resent to d0, make it follow.
    f.silent.discard("d0")
    f.restart("d0")
    f.deliver()
    for t in range(1, 6):
        f.tick(NOW + 10 * t)
    assert f.disks["d0"].epochs[WF] == (1, "d2")
    assert WF not in f.nodes["d0"].compensating.cores
    assert f.nodes["d1"].stats["compensation record told to an earlier coordinator"] == 1
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s1", 1, COMPENSATE))]
    assert f.nodes["d2"].compensating.of(WF)[1].value == "DONE"


def test_a_plan_told_late_after_the_saga_ended_opens_nothing():
    f = saga_with_its_driver_dead()
    f.silent.discard("d0")
    f.end("d1", True)  # d0 alive after all: the saga ends, its end told
    assert f.disks["d1"].plans[WF] == ()
    # The plan, resent before and late on the way, comes after the end: kept closed.
    f.step("d1", Message("d0", FinalMsg(WF, WorkflowState.FAILED,
                                        owed=(("s0", "d1", 1),))))
    assert f.disks["d1"].plans[WF] == ()


def test_a_tell_of_the_old_epoch_is_refused_once_the_successor_is_followed():
    f = saga_with_its_driver_dead()
    make_successor(f, "d2")
    f.deliver()
    d1 = f.nodes["d1"]
    with pytest.raises(Refused):  # the boundary's check of a tell (authority.py)
        check(d1, "d0", CompensateMsg(WF, "s0", 2))
    check(d1, "d2", CompensateMsg(WF, "s0", 2))  # the epoch's holder: taken
