"""The Node's running part with fan-out steps (core/node/running.py, the group rules of
core/workflow/progress.py): an expanded spec's instances run each in its domain, a wave
barrier holds the next wave, a dependent sees every instance's outputs by domain,
`on_failure: continue` with `min_success`, and `pause_s` as a deadline in `get_timer()`
that a restore counts again from the restore."""

from __future__ import annotations

import random

from fedorch.core.node import Node, StepEnded, Submit, Tick
from fedorch.core.node.records import Timing
from fedorch.core.workflow.fanout import expand_into
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness

NAMES = ["d0", "d1", "d2"]
WF = "d0.w1"
START = 100.0


class Federation(Harness):
    """Three Nodes, an in-order network and a clock; each Ready done as a driver does."""

    def __init__(self) -> None:
        super().__init__(NAMES, start=START)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 4, "join": 1}, timing=Timing(max_rounds=1),
                    peers=NAMES, rng=random.Random(NAMES.index(name)),
                    disk=self.disks[name], now=self.now)

    def started_steps(self) -> list[tuple[str, str]]:
        """(domain, step) of every attempt started, in start order."""
        return [(name, run[1]) for name, run in self.started]

    def end(self, step_id: str, ok: bool = True, outputs: dict | None = None) -> None:
        """The running attempt of `step_id` ends; what it causes is delivered."""
        for name, runs in self.running.items():
            for run in sorted(runs):
                if run[1] == step_id:
                    runs.discard(run)
                    self.step(name, StepEnded(run[0], step_id, run[2], ok,
                                              outputs or {}, "" if ok else "broke"))
                    self.deliver()
                    return
        raise AssertionError(f"{step_id} is not running anywhere")

    def running_steps(self) -> set[str]:
        return {run[1] for runs in self.running.values() for run in runs}

    def advance_to(self, when: float) -> None:
        """The clock moves to `when`; every Node whose timer has come is ticked."""
        self.now = when
        for name in NAMES:
            t = self.nodes[name].get_timer()
            if t is not None and t <= when:
                self.step(name, Tick())
        self.deliver()


def fanned(waves: spec_pb2.Waves | None = None) -> spec_pb2.WorkflowSpec:
    """`probe` in every domain (wave rules `waves`), and `join` on d0 that needs it."""
    probe = spec_pb2.StepSpec(id="probe", capability="a", each=spec_pb2.Each())
    if waves is not None:
        probe.waves.CopyFrom(waves)
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[
        probe, spec_pb2.StepSpec(id="join", capability="join", needs=["probe"])])
    return expand_into(spec, {"probe": NAMES})


def submit(f: Federation, spec: spec_pb2.WorkflowSpec) -> None:
    placement = {s.id: (s.constraints.domains[0] if s.instance_of else "d0")
                 for s in spec.steps}
    f.step("d0", Submit(WF, spec, placement=placement))
    f.deliver()


def state(f: Federation) -> WorkflowState:
    return f.disks["d0"].rows[WF].state


def test_each_instance_runs_in_its_domain_and_the_dependent_sees_all_outputs():
    f = Federation()
    submit(f, fanned())
    assert state(f) is WorkflowState.RUNNING
    assert sorted(f.started_steps()) == [("d0", "probe@d0"), ("d1", "probe@d1"),
                                         ("d2", "probe@d2")]
    for name in NAMES:
        f.end(f"probe@{name}", outputs={"seen": name})
        if name != NAMES[-1]:
            assert "join" not in f.running_steps()  # it needs every instance
    assert f.started_steps()[-1] == ("d0", "join")
    inputs = f.nodes["d0"].progress[WF].inputs("join")
    assert inputs == {"probe": {n: {"seen": n} for n in NAMES}}
    f.end("join")
    assert state(f) is WorkflowState.SUCCEEDED


def test_a_wave_barrier_holds_the_next_wave_until_the_earlier_one_succeeded():
    f = Federation()
    submit(f, fanned(spec_pb2.Waves(max_parallel=1)))
    assert f.running_steps() == {"probe@d0"}
    f.end("probe@d0")
    assert f.running_steps() == {"probe@d1"}
    f.end("probe@d1")
    assert f.running_steps() == {"probe@d2"}
    f.end("probe@d2")
    assert f.running_steps() == {"join"}
    assert [s for _, s in f.started_steps()] == ["probe@d0", "probe@d1", "probe@d2", "join"]


def test_a_failed_instance_stops_the_rollout_by_default():
    f = Federation()
    submit(f, fanned(spec_pb2.Waves(max_parallel=1)))
    f.end("probe@d0", ok=False)
    assert state(f) is WorkflowState.FAILED
    assert [s for _, s in f.started_steps()] == ["probe@d0"]


def test_on_failure_continue_goes_on_and_min_success_decides():
    f = Federation()
    submit(f, fanned(spec_pb2.Waves(max_parallel=1, on_failure="continue",
                                    min_success=2)))
    f.end("probe@d0", ok=False)
    assert f.running_steps() == {"probe@d1"}  # the next wave starts all the same
    f.end("probe@d1")
    f.end("probe@d2")
    assert f.running_steps() == {"join"}  # 2 of 3 succeeded: enough
    assert f.nodes["d0"].progress[WF].inputs("join") == {"probe": {"d1": {}, "d2": {}}}
    f.end("join")
    assert state(f) is WorkflowState.SUCCEEDED


def test_pause_s_is_a_deadline_in_get_timer_and_the_tick_starts_the_wave():
    f = Federation()
    submit(f, fanned(spec_pb2.Waves(max_parallel=1, pause_s=30)))
    f.end("probe@d0")
    assert f.running_steps() == set()  # probe@d1 waits out the pause
    met = f.now
    f.advance_to(met + 1)  # d1's DecisionAck, which waited for a report (commit_acks.py)
    assert f.nodes["d1"].get_timer() == met + 30
    f.advance_to(met + 29)
    assert f.running_steps() == set()
    f.advance_to(met + 30)
    assert f.running_steps() == {"probe@d1"}
    assert f.nodes["d1"].running.pause_due == {}  # nothing left to wait for here


def test_a_restore_counts_the_pause_again_from_the_restore():
    f = Federation()
    submit(f, fanned(spec_pb2.Waves(max_parallel=1, pause_s=30)))
    f.end("probe@d0")
    f.now = START + 20
    f.restore("d1")
    f.deliver()  # its coordinator confirms where its steps are (restart_check.py)
    assert f.running_steps() == set()
    # The COMMIT is applied again at the restore (its hold is on disk as PREPARED beside
    # the COMMIT learned): its DecisionAck waits for a report first (commit_acks.py).
    f.advance_to(START + 21)
    assert f.nodes["d1"].get_timer() == START + 50  # never less than pause_s waited
    f.advance_to(START + 49)
    assert f.running_steps() == set()
    f.advance_to(START + 50)
    assert f.running_steps() == {"probe@d1"}
