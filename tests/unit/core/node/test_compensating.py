"""The Node's sagas (core/node/compensating.py): a FAILED workflow's SUCCEEDED steps
with a `compensate` block are compensated in reverse dependency order, each in its
own domain; retries; COMPENSATION_FAILED; an attempt's start is durable before it
is started; a restart resumes (an interrupted attempt counts as failed)."""

from __future__ import annotations

import random

import pytest
from fedorch.core.node import Cancel, Message, Node, StepEnded, Submit
from fedorch.core.node.authority import Refused, check
from fedorch.core.node.compensating import COMPENSATE, INTERRUPTED
from fedorch.core.node.inputs import CompensationEnded
from fedorch.core.node.ready import Ready
from fedorch.core.node.records import CompensatedMsg, CompensateMsg, Timing
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation

NAMES = ["d0", "d1", "d2"]
WF = "d0.w1"
NOW = 100.0
TIMING = Timing(max_rounds=1)


def hold_attempts(f, name: str, ready: Ready) -> Ready:
    """Keep the attempts `ready` starts at `name` running, in start order (`f.queue`),
    the compensations apart too (`f.compensations`), each checked durable first."""
    for run in ready.start_steps:
        if len(run) == 4:
            assert run[3] == COMPENSATE
            assert f.disks[name].comp_runs[run[:3]][0] == "running"  # durable first
            f.compensations.append((name, run))
        f.queue[name].append(run)
    return ready


def end_oldest(f, name: str, ok: bool, error: str = "") -> tuple:
    """End the oldest attempt running in `name` (a step's or a compensation's), then
    deliver."""
    run = f.queue[name].pop(0)
    if len(run) == 4:
        f.step(name, CompensationEnded(run[0], run[1], run[2], ok, error))
    else:
        f.step(name, StepEnded(run[0], run[1], run[2], ok, {"of": run[1]}, error))
    f.deliver()
    return run


class Sagas(Federation):
    """Three Nodes on the shared harness; compensation attempts kept in start order."""

    def __init__(self, timing: Timing = TIMING) -> None:
        self.timing = timing
        self.queue: dict[str, list[tuple]] = {n: [] for n in NAMES}  # running, in order
        self.compensations: list[tuple[str, tuple]] = []  # (domain, start entry), in order
        super().__init__(NAMES, start=NOW)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 4}, timing=self.timing, peers=NAMES,
                    rng=random.Random(NAMES.index(name)), disk=self.disks[name],
                    now=self.now)

    def flush(self, name: str) -> Ready:
        return hold_attempts(self, name, super().flush(name))

    def restart(self, name: str) -> None:
        """`name` crashes (what it sent or was sent is lost) and restarts from its disk."""
        self.queue[name] = []
        self.net = [m for m in self.net if name not in (m[0], m[1])]
        self.restore(name)

    def deliver_until(self, last) -> None:
        """Deliver in order, up to and including the first message `last` names."""
        while self.net:
            src, dst, msg = self.net.pop(0)
            self.step(dst, Message(src, msg))
            if last(src, dst, msg):
                return

    def end(self, name: str, ok: bool, error: str = "") -> tuple:
        return end_oldest(self, name, ok, error)


def chain(retries: int = 0) -> spec_pb2.WorkflowSpec:
    """s0 (d0) -> s1 (d1) -> s2 (d2): s0 and s1 have a compensate block."""
    comp = spec_pb2.Compensation(retries=retries, params_json='{"undo": true}')
    return spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="s0", capability="a", compensate=comp),
        spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], compensate=comp),
        spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])


def failed_chain(retries: int = 0, timing: Timing = TIMING) -> Sagas:
    """The chain submitted at d0, s0 and s1 SUCCEEDED, s2 FAILED: the workflow FAILED."""
    f = Sagas(timing)
    f.step("d0", Submit(WF, chain(retries), placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    f.deliver()
    assert f.end("d0", True)[1] == "s0"
    assert f.end("d1", True)[1] == "s1"
    assert f.end("d2", False, "boom")[1] == "s2"
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED
    return f


def comp_states(f: Sagas) -> dict[str, tuple[str, int]]:
    return {k[1]: (r.state, r.attempts) for k, r in f.disks["d0"].compensations.items()
            if k[0] == WF}


def test_compensations_run_in_reverse_dependency_order_each_in_its_domain():
    f = failed_chain()
    # s1's compensation first, on d1; s0's not before s1's ended.
    assert f.compensations == [("d1", (WF, "s1", 1, COMPENSATE))]
    assert comp_states(f) == {"s0": ("PENDING", 0), "s1": ("RUNNING", 1)}
    f.end("d1", True)
    assert f.compensations[1] == ("d0", (WF, "s0", 1, COMPENSATE))
    f.end("d0", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    rows, summary = f.nodes["d0"].compensating.of(WF)
    assert summary.value == "DONE" and set(rows) == {"s0", "s1"}
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED  # keeps its end
    assert not f.nodes["d0"].pending and not f.nodes["d1"].pending  # all acknowledged
    assert f.disks["d1"].comp_runs[(WF, "s1", 1)] == ("succeeded", "", True)


def test_a_failed_attempt_is_retried_under_the_next_number():
    f = failed_chain(retries=1)
    f.end("d1", False, "busy")
    assert f.compensations[-1] == ("d1", (WF, "s1", 2, COMPENSATE))
    assert comp_states(f)["s1"] == ("RUNNING", 2)
    f.end("d1", True)
    assert comp_states(f)["s1"] == ("COMPENSATED", 2)


def test_attempts_used_up_end_compensation_failed_and_the_summary_failed():
    f = failed_chain(retries=1)
    f.end("d1", False, "busy")
    f.end("d1", False, "still busy")
    row = f.disks["d0"].compensations[(WF, "s1")]
    assert (row.state, row.attempts, row.error) == ("COMPENSATION_FAILED", 2, "still busy")
    f.end("d0", True)  # s0's compensation runs once s1's ended, failed or not
    assert f.nodes["d0"].compensating.of(WF)[1].value == "FAILED"


def test_a_succeeded_workflow_owes_nothing():
    f = Sagas()
    f.step("d0", Submit(WF, chain(), placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    f.deliver()
    f.end("d0", True)
    f.end("d1", True)
    f.end("d2", True)
    assert f.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED
    assert comp_states(f) == {} and f.compensations == []
    assert f.nodes["d0"].compensating.of(WF)[1].value == "NONE"


def test_a_restart_of_the_domain_fails_the_interrupted_attempt_and_it_is_retried():
    f = failed_chain(retries=1)
    f.restart("d1")  # s1's compensation attempt 1 was running: never started again
    assert f.disks["d1"].comp_runs[(WF, "s1", 1)][:2] == ("failed", INTERRUPTED)
    f.deliver()
    assert f.compensations[-1] == ("d1", (WF, "s1", 2, COMPENSATE))
    f.end("d1", True)
    f.end("d0", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 2)}


def test_a_restart_of_the_coordinator_tells_the_running_attempt_again():
    f = failed_chain()
    f.restart("d0")  # its CompensateMsg to d1 was acknowledged: told again on restore
    f.deliver()
    assert f.compensations == [("d1", (WF, "s1", 1, COMPENSATE))]  # not started twice
    f.end("d1", True)
    f.end("d0", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}


def test_a_domain_that_ended_before_the_coordinator_heard_reports_again_after_a_restart():
    f = failed_chain()
    run = f.queue["d1"].pop(0)
    f.step("d1", CompensationEnded(*run[:3], True))
    f.net = [m for m in f.net if m[0] != "d1"]  # its report lost with the restart
    f.restart("d1")
    f.deliver()
    assert comp_states(f)["s1"] == ("COMPENSATED", 1)


def test_a_cancelled_workflow_compensates_what_succeeded():
    f = Sagas()
    f.step("d0", Submit(WF, chain(), placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    f.deliver()
    f.end("d0", True)  # s0 SUCCEEDED; s1 runs in d1
    f.step("d0", Cancel(WF, "enough"))
    f.deliver()
    assert f.disks["d0"].rows[WF].state is WorkflowState.CANCELLED
    assert f.compensations == [("d0", (WF, "s0", 1, COMPENSATE))]  # s1 never succeeded
    f.end("d0", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}


def test_only_the_coordinator_tells_and_only_the_steps_domain_reports():
    f = failed_chain()
    d1, d0 = f.nodes["d1"], f.nodes["d0"]
    check(d1, "d0", CompensateMsg(WF, "s1", 2))  # the coordinator: taken
    with pytest.raises(Refused):
        check(d1, "d2", CompensateMsg(WF, "s1", 2))
    check(d0, "d1", CompensatedMsg(WF, "s1", 1, True))  # s1's domain: taken
    with pytest.raises(Refused):
        check(d0, "d2", CompensatedMsg(WF, "s1", 1, True))
    # A workflow not committed here (forgotten, or never known) is let through: the
    # Node answers it failed at once and writes nothing.
    check(d1, "d0", CompensateMsg("d0.unknown", "s1", 1))
    before = dict(f.disks["d1"].comp_runs)
    ready = f.step("d1", Message("d0", CompensateMsg("d0.unknown", "s1", 1)))
    assert not ready.writes and f.disks["d1"].comp_runs == before
    answers = [m for _, dst, m in f.net if dst == "d0" and isinstance(m, CompensatedMsg)]
    assert answers == [CompensatedMsg("d0.unknown", "s1", 1, False,
                                      "workflow d0.unknown is not known in d1")]


def test_a_compensation_of_a_step_that_did_not_run_here_fails_without_running():
    f = failed_chain()
    f.step("d2", Message("d0", CompensateMsg(WF, "s2", 1)))  # s2 FAILED there
    assert f.disks["d2"].comp_runs[(WF, "s2", 1)][:2] == (
        "failed", "step s2 is FAILED in d2, not SUCCEEDED")
    f.step("d1", Message("d0", CompensateMsg(WF, "s0", 1)))  # s0 ran in d0
    assert "did not run in d1" in f.disks["d1"].comp_runs[(WF, "s0", 1)][1]
    assert [r for _, r in f.compensations] == [(WF, "s1", 1, COMPENSATE)]  # none started


def test_a_coordinator_that_crashed_before_planning_plans_on_restore():
    f = Sagas()
    f.step("d0", Submit(WF, chain(), placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    f.deliver()
    f.end("d0", True)
    f.end("d1", True)
    f.queue["d2"].pop(0)
    f.step("d2", StepEnded(WF, "s2", 1, False, {}, "boom"))
    f.deliver_until(lambda src, dst, msg: dst == "d0")  # d0 ends it: its writes lost
    f.disks["d0"].compensations.clear()  # the crash came after the end's write group
    f.restart("d0")
    f.deliver()
    assert f.compensations == [("d1", (WF, "s1", 1, COMPENSATE))]
    f.end("d1", True)
    f.end("d0", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}


def test_retention_forgets_the_saga_tables_with_the_workflow_once_its_saga_is_over():
    keep = Retention(keep_ended_s=60.0, late_message_s=10.0)
    f = failed_chain(timing=Timing(max_rounds=1, retention=keep))
    f.tick(NOW + 1000)  # long past keep_ended_s: the saga is not over
    assert WF in f.disks["d0"].rows and set(comp_states(f)) == {"s0", "s1"}
    assert f.disks["d1"].comp_runs[(WF, "s1", 1)][0] == "running"  # kept where it runs
    assert f.nodes["d0"].stats["retention kept: its compensations have not ended"]
    f.end("d1", True)
    f.tick(NOW + 1100)
    # d1 ran its part, but the saga's plan its driver told it is open: kept (a
    # successor would need it, were d0 to die now)
    assert f.disks["d1"].plans[WF] == (("s0", "d0", 1), ("s1", "d1", 1))
    assert WF in f.disks["d1"].final
    assert f.nodes["d1"].stats["retention kept: its saga's plan is open (its driver has"
                               " not told the saga over)"]
    assert WF in f.disks["d0"].rows  # d0's own compensation of s0 runs still
    f.end("d0", True)
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    f.deliver()  # the saga's end told: every plan closed
    assert all(f.disks[name].plans.get(WF) == () for name in ("d1", "d2"))
    f.tick(NOW + 1150)
    assert WF not in f.disks["d1"].final and not f.disks["d1"].comp_runs  # d1: done
    f.tick(NOW + 1200)
    for name in NAMES:
        d = f.disks[name]
        assert WF not in d.rows and WF not in d.final, name
        assert not d.compensations and not d.comp_runs and not d.plans, name
    assert [w.point for r in f.readies["d0"] for w in r.writes][-1] == "retention"


def test_a_tell_is_acknowledged_only_after_the_attempts_start_is_written():
    # Acknowledged before, a crash in between would lose the tell: its driver no longer
    # resends it, and the domain has no record of it.
    f = failed_chain()
    f.end("d1", True)  # s1 compensated; s0's tell goes to d0 itself, so tell d1 by hand
    ready = f.step("d1", Message("d0", CompensateMsg(WF, "s1", 9)))
    acks = [o for o in ready.send_after_write if o.msg.msg_id[:4] == (COMPENSATE, WF,
                                                                       "s1", 9)]
    assert acks and not [o for o in ready.send_now if hasattr(o.msg, "msg_id")]
    assert ready.writes and (WF, "s1", 9) in f.disks["d1"].comp_runs


def test_an_attempt_here_already_ended_ends_the_saga_inside_its_own_drive():
    # d0 compensates s0 itself: on a restore that plans again, the attempt it recorded
    # answers at once, and the saga ends inside the drive that told it.
    f = failed_chain()
    f.end("d1", True)
    f.end("d0", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    f.disks["d0"].compensations.clear()  # as if the plan had not been written
    f.restart("d0")
    f.deliver()
    assert comp_states(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert not f.nodes["d0"].compensating.cores
    assert len(f.compensations) == 2  # nothing ran again


def s0_succeeded_at_d1_unheard() -> tuple[Sagas, list]:
    """s0 (with a compensate block, at d1) and s1 (at d2) in parallel; s0 SUCCEEDED at
    d1, its result taken off the network: (the federation, that result)."""
    comp = spec_pb2.Compensation(params_json='{"undo": true}')
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="s0", capability="a", compensate=comp),
        spec_pb2.StepSpec(id="s1", capability="a")])  # in parallel
    f = Sagas()
    f.step("d0", Submit(WF, spec, placement={"s0": "d1", "s1": "d2"}))
    f.deliver()
    run = f.queue["d1"].pop(0)
    f.step("d1", StepEnded(*run, ok=True, outputs={"of": "s0"}))
    late = [m for m in f.net if m[0] == "d1"]
    f.net = [m for m in f.net if m[0] != "d1"]
    return f, late


def test_a_succeeded_result_that_arrives_after_the_end_is_compensated_all_the_same():
    f, late = s0_succeeded_at_d1_unheard()  # s0's SUCCEEDED, still on its way
    f.end("d2", False, "boom")
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED
    assert comp_states(f) == {} and f.compensations == []  # s0 was not known SUCCEEDED
    f.net.extend(late)
    f.deliver()
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    assert f.disks["d0"].results[WF]["s0"][1].value == "SUCCEEDED"
    assert f.nodes["d0"].stats["compensation owed by a late result"] == 1


def test_a_succeeded_result_lost_on_its_way_is_resent_after_the_end():
    f, _ = s0_succeeded_at_d1_unheard()  # s0's SUCCEEDED lost on its way
    f.end("d2", False, "boom")
    assert f.disks["d1"].final[WF] is WorkflowState.FAILED and comp_states(f) == {}
    f.tick(NOW + 30)  # d1 resends it, though the workflow ended there
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1)}
    assert not f.nodes["d1"].pending  # acknowledged: no more resends

