"""The node engine's read view answers the last durable status, built once per change:
a read while a turn's commit is out shows the state before that turn."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from types import SimpleNamespace

from fedorch.core.node import Node, StepEnded, Submit, Tick
from fedorch.core.node.records import Disk, ResultMsg, Timing, WfInfo
from fedorch.core.node.running_starts import HOLD_S
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2, status_pb2
from fedorch.runtime.driver import DriverLoop, NodeDriver, ThreadedWrite
from fedorch.runtime.node_engine import status as status_module
from fedorch.runtime.node_engine.status import StatusView, WriteNotice, status_of

from tests.unit.core.node.test_negotiation import WF, Federation
from tests.unit.runtime.test_driver import (
    NAMES,
    WAIT_S,
    InstantExecutors,
    MemoryDisk,
    MonotonicClock,
    Network,
    _until,
    spec,
)


class HeldDisk(MemoryDisk):
    """A MemoryDisk whose every write waits, in the commit thread, for the test's `go`
    (while `holding`; `release()` lets this and every later write through)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.go = threading.Event()
        self.holding = True

    def write(self, writes) -> None:
        if self.holding:
            self.entered.set()
            assert self.go.wait(WAIT_S), "the test never let the write go"
            self.go.clear()
        super().write(writes)

    def release(self) -> None:
        self.holding = False
        self.go.set()


class RecordedView(StatusView):
    """The view, with the states the driver reported after each write (the durable ones)."""

    def __init__(self, node) -> None:
        super().__init__(node)
        self.durable_states: dict[str, int] = {}

    def status_changed(self, workflow_id: str, state: object) -> None:
        self.durable_states[workflow_id] = int(state)
        super().status_changed(workflow_id, state)


def viewed_agent(name: str, net: Network, durable):
    node = Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                capacities={"a": 2, "b": 2}, timing=Timing(), peers=NAMES,
                rng=random.Random(NAMES.index(name)), now=time.monotonic())
    view = RecordedView(node)
    executors = InstantExecutors()
    commits = ThreadedWrite(WriteNotice(durable, view))
    driver = NodeDriver(node, MonotonicClock(), commits.durable, net.port(name), executors,
                        view)
    loop = DriverLoop(driver, write=commits)
    executors.loop = loop
    net.loops[name] = loop
    return node, view, loop, commits


async def test_a_read_during_a_held_commit_shows_the_state_before_it():
    net = Network()
    disk = HeldDisk()
    node, view, loop, commits = viewed_agent("d0", net, disk)
    others = [viewed_agent(n, net, MemoryDisk()) for n in NAMES[1:]]
    wf = "d0.w1"
    seen_ahead = 0  # held commits in which the live Node was ahead of the durable state
    async with asyncio.TaskGroup() as group:
        tasks = [loop.start(group)] + [o[2].start(group) for o in others]
        submitted = view.submitted(wf)  # as the client service registers a submitter
        loop.post(Submit(wf, spec("a", "b"), placement={"s0": "d1", "s1": "d2"}))
        while view.durable_states.get(wf) not in TERMINAL:
            await _until(lambda: disk.entered.is_set()
                         or view.durable_states.get(wf) in TERMINAL)
            if not disk.entered.is_set():
                break
            disk.entered.clear()
            # The commit is out: the live Node may be ahead of node.db, the view is not.
            assert loop.committing
            live = status_of(node, wf)
            shown = view.status(wf)
            durable = view.durable_states.get(wf)
            # Kept and shown, or (no one read it since it changed: none kept) read once
            # the commit returned, below; never the live state ahead of node.db.
            assert shown is None or shown.state == durable
            if live is not None and live.state != durable:
                seen_ahead += 1
            pending = asyncio.ensure_future(view.read(wf)) if shown is None else None
            if pending is not None:
                await _until(lambda: view._wanted)  # the reader waits for this commit
            disk.go.set()
            if pending is not None:  # answered once the commit returned, from it
                read = await asyncio.wait_for(pending, WAIT_S)
                assert read is not None and read.state == view.durable_states[wf]
        disk.release()  # the writes after its end (acknowledgements) go through
        await asyncio.wait_for(submitted, WAIT_S)
        for task in tasks:
            task.cancel()
    for c in [commits] + [o[3] for o in others]:
        c.close()
    assert view.durable_states[wf] == WorkflowState.SUCCEEDED
    assert view.status(wf).state == WorkflowState.SUCCEEDED
    # The gap this closes was there to see: some held commit changed the state.
    assert seen_ahead >= 1


async def test_a_status_is_built_once_per_change_not_once_per_reader():
    net = Network()
    parts = [viewed_agent(n, net, MemoryDisk()) for n in NAMES]
    node, view, loop, _ = parts[0]
    wf = "d0.w1"
    extra_builds = []  # builds made by the second and third reader of each change
    async with asyncio.TaskGroup() as group:
        tasks = [p[2].start(group) for p in parts]
        submitted = view.submitted(wf)
        loop.post(Submit(wf, spec("a", "b"), placement={"s0": "d1", "s1": "d2"}))
        await asyncio.wait_for(submitted, WAIT_S)
        # Read, not `status`: the next turn's commit may be out already (the PREPAREs
        # left with the row's write, core/node/prepares_ahead.py, the votes are back).
        states = [(await view.read(wf)).state]
        while states[-1] not in TERMINAL:
            await view.wait(wf, steps=False, timeout=WAIT_S)
            status = await view.read(wf)
            built = view.built
            for _ in range(2):  # two more readers of the same change
                again = await view.read(wf)
                assert again.state == status.state
            extra_builds.append(view.built - built)
            states.append(status.state)
        for task in tasks:
            task.cancel()
    for p in parts:
        p[3].close()
    assert states[-1] == WorkflowState.SUCCEEDED
    assert len(extra_builds) >= 2  # RUNNING, then SUCCEEDED at least
    assert extra_builds == [0] * len(extra_builds)


def _lone_node() -> Node:
    return Node("d0", policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 2},
                timing=Timing(), peers=NAMES, rng=random.Random(0), now=time.monotonic())


async def test_a_workflow_first_read_during_a_commit_is_answered_once_it_returned():
    node = _lone_node()
    view = StatusView(node)
    wf = "d0.w1"
    node.step(time.monotonic(), Submit(wf, spec("a"), placement={"s0": "d1"}))
    ready = node.ready()  # the commit of w1's row is out
    reader = asyncio.ensure_future(view.read(wf))
    await _until(lambda: view._wanted)
    assert view.status(wf) is None  # nothing durable of w1 yet
    assert not reader.done()
    view.written()  # the write returned (the driver then tells and advances)
    status = await asyncio.wait_for(reader, WAIT_S)
    node.advance(ready)
    assert status is not None and status.id == wf
    assert status.state == WorkflowState.NEGOTIATING


async def test_a_reader_is_answered_after_a_commit_kept_for_a_storage_fault(monkeypatch):
    monkeypatch.setattr(status_module, "COMMIT_WAIT_S", 0.01)
    node = _lone_node()
    view = StatusView(node)
    wf = "d0.w1"
    node.step(time.monotonic(), Submit(wf, spec("a"), placement={"s0": "d1"}))
    ready = node.ready()
    reader = asyncio.ensure_future(view.read(wf))
    await _until(lambda: view._wanted)
    # The write failed for the storage and was kept (write_behind.py): no write notice
    # comes until a retry succeeds, and the driver goes on.
    node.advance(ready)
    status = await asyncio.wait_for(reader, WAIT_S)
    assert status is not None and status.id == wf


class _Told:
    """A listener (status.py `Listener`) that wants the statuses of `wanted` states."""

    def __init__(self, wanted: set) -> None:
        self.wanted = wanted
        self.heard_of: list[tuple[int, int | None]] = []  # (state, status's state or None)

    def wants(self, state) -> bool:
        return state in self.wanted

    def heard(self, workflow_id, state, status) -> bool:
        self.heard_of.append((int(state), status.state if status is not None else None))
        return state in TERMINAL


async def test_statuses_are_built_for_the_states_a_listener_reads_only():
    net = Network()
    parts = [viewed_agent(n, net, MemoryDisk()) for n in NAMES]
    node, view, loop, _ = parts[0]
    wf = "d0.w1"
    told = _Told({WorkflowState.SUCCEEDED, WorkflowState.FAILED, WorkflowState.ABORTED})
    async with asyncio.TaskGroup() as group:
        tasks = [p[2].start(group) for p in parts]
        submitted = view.submitted(wf)  # a submitter waiting for the row: no status read
        view.listen(wf, told)
        loop.post(Submit(wf, spec("a", "b"), placement={"s0": "d1", "s1": "d2"}))
        await asyncio.wait_for(submitted, WAIT_S)
        await _until(lambda: wf not in view._listeners)  # it heard the end
        for task in tasks:
            task.cancel()
    for p in parts:
        p[3].close()
    states = [state for state, _ in told.heard_of]
    assert states[0] == WorkflowState.NEGOTIATING and WorkflowState.RUNNING in states
    assert states[-1] == WorkflowState.SUCCEEDED
    # Every change told; a status built for the end alone, which it reads.
    assert [shown for _, shown in told.heard_of] == [None] * (len(states) - 1) + \
        [WorkflowState.SUCCEEDED]
    assert view.built == 1


def test_a_kept_status_no_one_waits_for_is_dropped_at_a_change_not_built():
    node = _lone_node()
    view = StatusView(node)
    wf = "d0.w1"
    node.step(time.monotonic(), Submit(wf, spec("a"), placement={"s0": "d0"}))
    ready = node.ready()
    view.written()
    for changed, state in ready.status_changes:
        view.status_changed(changed, state)
    node.advance(ready)
    assert view.built == 0  # no one read it
    first = view.status(wf)
    assert first is not None and view.built == 1 and wf in view._kept
    view.status_changed(wf, WorkflowState.RUNNING)  # a change no one waits for
    assert wf not in view._kept and view.built == 1


def test_the_coordinators_status_lists_its_refusals_and_skipped_steps():
    # Three Nodes by hand (core/node's harness): d2 takes work from no one, so round 1
    # is refused; the step placed on d1 in round 2 fails, and the one after it is skipped.
    fed = Federation()
    spec_ = spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="s", capability="a"),
        spec_pb2.StepSpec(id="t", capability="a", needs=["s"])])
    fed.step("d0", Submit(WF, spec_, placement={"s": "d2", "t": "d0"}))
    fed.deliver()
    for name, runs in fed.running.items():
        for run in sorted(runs):
            fed.step(name, StepEnded(*run, ok=False, outputs={}, error="broken"))
    fed.deliver()
    status = status_of(fed.nodes["d0"], WF)
    assert [(r.round, r.domain, list(r.steps)) for r in status.refusals] == \
        [(1, "d2", ["s"])]
    assert "accept_from" in status.refusals[0].reason
    assert status.state == status_pb2.WORKFLOW_STATE_FAILED
    assert status.reason == "step s failed: broken"
    steps = {s.id: status_pb2.StepState.Name(s.state) for s in status.steps}
    assert steps == {"s": "STEP_STATE_FAILED", "t": "STEP_STATE_SKIPPED"}


def test_a_step_placed_again_names_the_domain_it_was_lost_with():
    """A participant's status of a workflow whose step `s1` was lost with d1 and placed
    again on d2 (the Node's `placements`): s1 shows d2, and d1 in `replaced_from`; a step
    never placed again names none."""
    wf = "d0.w1"
    disk = Disk(committed={wf: 1},
                info={(wf, 1): WfInfo(spec("a", "b"), {"s0": "d0", "s1": "d1"}, "d0")},
                placements={wf: {"s1": (1, "d2", "d1")}})
    node = SimpleNamespace(state=disk, progress={}, name="d2")
    out = status_of(node, wf)
    steps = {s.id: (s.domain, list(s.replaced_from)) for s in out.steps}
    assert steps == {"s0": ("d0", []), "s1": ("d2", ["d1"])}, steps


def test_a_successors_failed_end_shows_its_reason_and_a_followers_none():
    """A participant that acted in epoch 1 and ended the workflow FAILED shows the
    reason its end was made with (the Node's `end_reasons`); one that followed it, told
    the end, shows none (a participant's status carries the coordinator's reason only
    as the coordinator's own status does)."""
    wf = "d0.w1"
    acting = Disk(committed={wf: 1}, final={wf: WorkflowState.FAILED},
                  info={(wf, 1): WfInfo(spec("a", "b"), {"s0": "d1", "s1": "d2"}, "d0")},
                  epochs={wf: (1, "d1")}, end_reasons={wf: "step s0 failed: broken"})
    no_saga = SimpleNamespace(of=lambda wf: ({}, SimpleNamespace(value="NONE")),
                              runs=SimpleNamespace(rows=lambda wf: []))
    out = status_of(SimpleNamespace(state=acting, progress={}, name="d1",
                                    compensating=no_saga), wf)
    assert (out.state, out.reason, out.epoch, out.coordinator) == (
        status_pb2.WORKFLOW_STATE_FAILED, "step s0 failed: broken", 1, "d1")
    following = Disk(committed={wf: 1}, final={wf: WorkflowState.FAILED},
                     info=dict(acting.info), epochs={wf: (1, "d1")})
    assert status_of(SimpleNamespace(state=following, progress={}, name="d2"), wf).reason == ""


class AcksAtOnce(Federation):
    """d1 acknowledges the COMMIT at once (core/node/commit_acks.py: else its start
    told stands for its acknowledgement, and d0 collects its record on it)."""

    decision_ack_s = 0.0


def test_a_start_told_without_a_write_is_shown_at_once_not_at_the_next_write():
    """A step's start told its coordinator is taken into the progress there and written
    nowhere: the status kept from the last write (the step WAITING) is behind it, and a
    read shows the step RUNNING at once, not once some later turn writes."""
    fed = AcksAtOnce()  # else the start collects the COMMIT record: a write
    spec_ = spec_pb2.WorkflowSpec(name="w1", steps=[spec_pb2.StepSpec(id="s", capability="a")])
    fed.step("d0", Submit(WF, spec_, placement={"s": "d1"}))

    def start_told(src, dst, msg) -> bool:
        return type(msg) is ResultMsg and msg.state is StepState.RUNNING

    fed.deliver(keep=start_told)  # committed, s started at d1, its start not yet told
    fed.now += HOLD_S  # s still running when its start's hold is over (running_starts.py)
    fed.step("d1", Tick())
    coordinator = fed.nodes["d0"]
    view = StatusView(coordinator)
    waiting = view.status(WF)
    assert {s.id: s.state for s in waiting.steps} == {"s": status_pb2.STEP_STATE_WAITING}
    assert len(fed.net) == 1  # the start told, held back
    fed.deliver()  # a turn of d0 that writes nothing: no write notice reaches the view
    assert not any(w for r in fed.readies["d0"][-1:] for w in r.writes)
    shown = view.status(WF)
    assert {s.id: s.state for s in shown.steps} == {"s": status_pb2.STEP_STATE_RUNNING}
    assert coordinator.running.starts_shown == 1
    assert view.status(WF) is shown  # kept again: built once for its readers


def _participant_with_result(wf: str, outputs: dict) -> SimpleNamespace:
    """A participant (d1) of `wf` whose step s0 ended SUCCEEDED with `outputs`."""
    disk = Disk(committed={wf: 1}, final={wf: WorkflowState.SUCCEEDED},
                info={(wf, 1): WfInfo(spec("a"), {"s0": "d1"}, "d0")},
                results={wf: {"s0": (1, StepState.SUCCEEDED, outputs, "")}})
    return SimpleNamespace(state=disk, progress={}, name="d1")


def _outputs_of(status: status_pb2.WorkflowStatus) -> str:
    return next(s.outputs_json for s in status.steps if s.id == "s0")


def test_a_steps_outputs_are_written_as_text_once_per_outputs_object():
    wf = "d0.w1"
    node = _participant_with_result(wf, {"out": [1, 2], "é": "x"})
    texts = status_module.OutputTexts()
    first = status_of(node, wf, texts)
    assert status_of(node, wf, texts) == first == status_of(node, wf)  # the same text
    assert texts.written == 1
    # A new result (its outputs a new dict, as the cores make it) is written anew.
    node.state.results[wf] = {"s0": (2, StepState.SUCCEEDED, {"out": 3}, "")}
    assert _outputs_of(status_of(node, wf, texts)) == '{"out":3}'
    assert texts.written == 2


def test_an_outputs_text_is_never_shown_for_another_object_with_its_id():
    """The text is kept with the object it was written of: an outputs dict freed after
    its build cannot hand its id, and so its text, to the next one (CPython reuses the
    address of a freed dict at once)."""
    wf = "d0.w1"
    texts = status_module.OutputTexts()
    for n in range(50):
        node = _participant_with_result(wf, {"n": n})
        assert _outputs_of(status_of(node, wf, texts)) == f'{{"n":{n}}}'
        del node
    assert texts.written == 50


def test_the_kept_texts_are_bounded_and_a_long_one_is_not_kept():
    texts = status_module.OutputTexts(kept=2)
    outputs = [{"n": n} for n in range(3)]
    for o in outputs:
        texts.write(status_pb2.StepStatus(), o)
    assert len(texts._texts) == 2 and id(outputs[0]) not in texts._texts
    long = {"x": "y" * status_module.KEPT_OUTPUT_CHARS}
    step = status_pb2.StepStatus()
    texts.write(step, long)
    assert id(long) not in texts._texts and len(step.outputs_json) > len(long["x"])


def test_a_step_compensated_in_two_domains_shows_each_compensation():
    """s0 SUCCEEDED in its lost domain d1 and its new one d2 (core/node/saga_runs.py):
    its state is that of both compensations, and `compensations` lists each."""
    from tests.unit.core.node.test_saga_runs import WF as SAGA_WF
    from tests.unit.core.node.test_saga_runs import s0_placed_again_on_d2

    f = s0_placed_again_on_d2()
    f.end("d2", True)
    status = status_of(f.nodes["d0"], SAGA_WF)
    s0 = next(s for s in status.steps if s.id == "s0")
    assert s0.state != status_pb2.STEP_STATE_COMPENSATED  # d1's has not ended
    assert status.compensation == status_pb2.COMPENSATION_SUMMARY_RUNNING
    assert [(c.step, c.domain, c.state) for c in status.compensations] == [
        ("s0", "d2", "COMPENSATED"), ("s0", "d1", "RUNNING")]
    f.end("d1", False, "cannot undo")
    status = status_of(f.nodes["d0"], SAGA_WF)
    s0 = next(s for s in status.steps if s.id == "s0")
    assert s0.state == status_pb2.STEP_STATE_COMPENSATION_FAILED and s0.error == "cannot undo"
    assert status.compensation == status_pb2.COMPENSATION_SUMMARY_FAILED
    assert [(c.domain, c.state, c.error) for c in status.compensations] == [
        ("d2", "COMPENSATED", ""), ("d1", "COMPENSATION_FAILED", "cannot undo")]
