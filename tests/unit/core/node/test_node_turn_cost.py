"""A Node's turn costs what its inputs touch, not every workflow it ever coordinated:
coordinator deadlines in a heap refreshed from the cores looked up, and the step runs
of one workflow at hand (agent/core/node/coordinator_timers.py, ready.RecordedRuns)."""

from __future__ import annotations

import random

from fedorch.core.negotiation.coordinator import Coordinator, Phase
from fedorch.core.node import Node, Submit, Tick
from fedorch.core.node.coordinator_timers import Coordinators
from fedorch.core.node.ready import Op, RecordedRuns
from fedorch.core.node.records import Disk, Timing
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core.node.two_nodes import run_workflows


class FakeCore:
    """A coordinator stand-in: a deadline that changes only when told to."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.asked = 0

    def get_timer(self) -> float | None:
        self.asked += 1
        return self.deadline


# ---- the heap against asking every core --------------------------------------------

_ops = st.lists(st.tuples(
    st.sampled_from(["put", "change", "delete", "due", "peek"]),
    st.integers(0, 5),  # which workflow
    st.one_of(st.none(), st.floats(0, 100, allow_nan=False)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_the_earliest_deadline_is_always_the_least_of_every_core(ops) -> None:
    cores = Coordinators()
    model: dict[str, FakeCore] = {}
    for op, i, value in ops:
        wf = f"w{i}"
        if op == "put":
            cores[wf] = model[wf] = FakeCore(value)
        elif op == "change" and wf in model:
            cores[wf].deadline = value  # every change goes through a lookup
        elif op == "delete" and wf in model:
            del cores[wf]
            del model[wf]
        elif op == "due" and value is not None:
            handed = [w for w, core in cores.due(value)]
            expected = [w for w, c in model.items()
                        if c.deadline is not None and c.deadline <= value]
            assert sorted(handed) == sorted(expected)
            for w in handed:  # a handled core moves its deadline on (here: past `value`)
                cores[w].deadline = value + 1.0
        elif op == "peek":
            cores.get(wf)
        live = [c.deadline for c in model.values() if c.deadline is not None]
        assert cores.earliest() == (min(live) if live else None)


def test_only_the_cores_looked_up_are_asked_again() -> None:
    cores = Coordinators()
    fakes = {f"w{i}": FakeCore(100.0 + i) for i in range(200)}
    for wf, core in fakes.items():
        cores[wf] = core
    assert cores.earliest() == 100.0
    for core in fakes.values():
        core.asked = 0
    cores["w7"].deadline = 5.0
    assert cores.earliest() == 5.0
    assert sum(core.asked for core in fakes.values()) == 1


def test_a_due_core_is_handed_out_once_per_tick_until_it_moves_on() -> None:
    cores = Coordinators()
    cores["a"] = FakeCore(1.0)
    cores["b"] = FakeCore(2.0)
    assert [wf for wf, _ in cores.due(1.5)] == ["a"]
    # Not handled (its deadline still 1.0): due again at the next tick, as a core that
    # asks for a past deadline always was; once it moves on, it is not.
    assert [wf for wf, _ in cores.due(1.5)] == ["a"]
    cores["a"].deadline = 3.0
    assert [wf for wf, _ in cores.due(1.5)] == []
    assert [wf for wf, _ in cores.due(2.5)] == ["b"]
    assert cores.earliest() == 2.0  # b untouched by its handler: still asking for 2.0


def test_only_a_core_whose_round_is_done_is_offered_to_settle() -> None:
    # A busy coordinator looks up some ten live cores per workflow in its turns: none
    # of them can settle (ended_cores.settle's first rule), so none is offered; a done
    # one still is, and one settled becomes its record, its deadline gone.
    cores = Coordinators()
    offered: list[str] = []

    def settle(wf: str, core: object) -> object | None:
        offered.append(wf)
        return "record" if wf == "settles" else None

    cores.settle = settle  # type: ignore[assignment]
    phases = {"preparing": Phase.PREPARING, "committed": Phase.COMMITTED,
              "aborted": Phase.ABORTED, "settles": Phase.COMMITTED}
    for wf, phase in phases.items():
        core = FakeCore(1.0 if phase is Phase.PREPARING else 9.0)
        core.phase = phase  # type: ignore[attr-defined]
        cores[wf] = core
    assert cores.earliest() == 1.0
    assert sorted(offered) == ["aborted", "committed", "settles"]
    assert "settles" in cores.ended and "settles" in cores
    offered.clear()
    cores.get("preparing")
    cores.get("committed")
    cores.refresh()
    assert offered == ["committed"]


def test_iterating_every_core_is_refused() -> None:
    cores = Coordinators()
    try:
        cores.values()
    except TypeError:
        return
    raise AssertionError("values() must be refused")


# ---- a Node with many ended workflows --------------------------------------------------

def _run_workflows(count: int) -> tuple[Node, float]:
    """`count` one-step workflows coordinated by d0 and run on d1, all ended."""
    nodes, now, _ = run_workflows(count)
    return nodes["d0"], now


def test_a_tick_asks_no_coordinator_its_inputs_did_not_touch(monkeypatch) -> None:
    node, now = _run_workflows(60)
    assert len(node.coordinators) == 60
    node.get_timer()  # brings every deadline up to date once
    asked = []
    original = Coordinator.get_timer
    monkeypatch.setattr(Coordinator, "get_timer",
                        lambda self: asked.append(self.workflow_id) or original(self))
    # A new workflow's message and a tick: only what they touch is asked.
    node.step(now, Submit("d0.new", spec_pb2.WorkflowSpec(
        name="w", steps=[spec_pb2.StepSpec(id="s0", capability="a")])))
    node.advance(node.ready())
    node.get_timer()
    node.step(now + 0.001, Tick())
    node.advance(node.ready())
    node.get_timer()
    assert len(asked) <= 2, asked  # was one call per coordinator, every turn


# ---- the runs of one workflow ------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 2),
                          st.integers(1, 3)), max_size=40))
def test_the_runs_of_a_workflow_are_those_a_scan_finds(changes) -> None:
    log: list[Op] = []
    runs = RecordedRuns("runs", log.append, [("w0", "s0", 1)])
    for add, w, s, attempt in changes:
        item = (f"w{w}", f"s{s}", attempt)
        runs.add(item) if add else runs.discard(item)
    for w in range(4):
        wf = f"w{w}"
        assert runs.of(wf) == {r for r in runs if r[0] == wf}


# ---- the resends and the fence deadlines: a heap, not a walk per turn ------------------

class Deadline(float):
    """A deadline that counts how often it is compared: a walk compares every one."""
    compared = 0

    def __lt__(self, other):
        Deadline.compared += 1
        return float.__lt__(self, other)


def far_off_node() -> Node:
    return Node("d0", policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 1},
                timing=Timing(step_lease_s=30.0), peers=["d0", "d1"], rng=random.Random(1),
                disk=Disk())


def test_a_turn_reads_no_resend_and_no_fence_deadline_but_the_earliest() -> None:
    class Entry(list):
        reads = 0

        def __getitem__(self, i):
            Entry.reads += 1
            return list.__getitem__(self, i)

    node = far_off_node()
    for i in range(300):  # far off: nothing is due in the turns below
        node.pending[("final", f"d0.w{i}", "d1")] = Entry(["d1", None, 1e6 + i, 1.0])
        node.fencing.due[f"d0.w{i}"] = Deadline(2e6 + i)
    Entry.reads = Deadline.compared = 0
    assert node.get_timer() == 1e6
    node.step(1.0, Tick())
    node.advance(node.ready())
    assert node.get_timer() == 1e6
    assert Entry.reads <= 4 and Deadline.compared <= 4  # the walks read all 300, twice


# ---- the restart asks and the re-placement cores: tables, not a walk per turn ---------

def test_a_turn_reads_no_held_workflow_and_asks_no_core_but_the_earliest() -> None:
    node = far_off_node()
    cores = [FakeCore(Deadline(3e6 + i)) for i in range(300)]
    for i, core in enumerate(cores):  # far off: nothing is due in the turns below
        node.restart_check.held[f"d0.w{i}"] = Deadline(1e6 + i)
        node.restart_check.wait[f"d0.w{i}"] = 1.0
        node.replacement.cores[f"d0.w{i}"] = (core, "s", "d1")
        node.replacement.due[f"d0.w{i}"] = core.get_timer()
    Deadline.compared = 0
    for core in cores:
        core.asked = 0
    assert node.get_timer() == 1e6
    node.step(1.0, Tick())
    node.advance(node.ready())
    assert node.get_timer() == 1e6
    # The walks compared all 300 held and asked all 300 cores, at each turn and tick.
    assert Deadline.compared <= 8 and sum(core.asked for core in cores) == 0
