"""The driver around a Node (runtime/driver.py), with real Nodes and in-memory ports."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from fedorch.core.node import Message, Node, StepEnded, Submit
from fedorch.core.node.ready import apply
from fedorch.core.node.records import Disk, Timing
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.runtime.driver import DriverLoop, DriverStopped, NodeDriver

NAMES = ["d0", "d1", "d2"]
WAIT_S = 20.0  # a deadline for conditions, not a timing: the machine may be loaded


class MonotonicClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


class MemoryDisk:
    """Durable: applies each write call's groups to a Disk, and keeps the calls."""

    def __init__(self) -> None:
        self.disk = Disk()
        self.calls: list[tuple] = []

    def write(self, writes) -> None:
        self.calls.append(tuple(writes))
        for w in writes:
            apply(self.disk, w.ops)


class Network:
    """Transport: a message posted into its destination's loop; `up` says who is reachable."""

    def __init__(self) -> None:
        self.loops: dict[str, DriverLoop] = {}
        self.sent: list[tuple[str, str, object]] = []

    def port(self, src: str) -> Port:
        return Port(self, src)


class Port:
    def __init__(self, net: Network, src: str) -> None:
        self.net, self.src = net, src

    def send(self, dst: str, msg: object) -> None:
        self.net.sent.append((self.src, dst, msg))
        loop = self.net.loops.get(dst)
        if loop is not None:
            loop.post(Message(self.src, msg))


class InstantExecutors:
    """Every attempt succeeds at once: its end is posted back to the agent's loop."""

    def __init__(self) -> None:
        self.loop: DriverLoop | None = None
        self.started: list[tuple[str, str, int]] = []
        self.stopped: list[tuple[str, str, int]] = []

    def start(self, run) -> None:
        self.started.append(run)
        wf, step, attempt = run
        assert self.loop is not None
        self.loop.post(StepEnded(wf, step, attempt, True, {}, ""))

    def stop(self, run) -> None:
        self.stopped.append(run)


class Statuses:
    """StatusSink: the changes seen, and an event set at each."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []
        self.changed = asyncio.Event()

    def status_changed(self, workflow_id: str, state: object) -> None:
        self.seen.append((workflow_id, state))
        self.changed.set()

    def last(self, wf: str) -> object:
        return next((s for w, s in reversed(self.seen) if w == wf), None)

    async def until_state(self, wf: str, states) -> object:
        async def wait() -> object:
            while self.last(wf) not in states:
                self.changed.clear()
                await self.changed.wait()
            return self.last(wf)
        return await asyncio.wait_for(wait(), WAIT_S)


def agent(name: str, net: Network, timing: Timing | None = None,
          peers: list[str] | None = None):
    node = Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                capacities={"a": 2, "b": 2}, timing=timing or Timing(),
                peers=peers or NAMES, rng=random.Random(NAMES.index(name)),
                now=time.monotonic())
    durable, executors, statuses = MemoryDisk(), InstantExecutors(), Statuses()
    driver = NodeDriver(node, MonotonicClock(), durable, net.port(name), executors, statuses)
    loop = DriverLoop(driver)
    executors.loop = loop
    net.loops[name] = loop
    return loop, durable, executors, statuses


def spec(*caps: str) -> spec_pb2.WorkflowSpec:
    return spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id=f"s{i}", capability=c) for i, c in enumerate(caps)])


async def test_three_agents_take_a_workflow_to_its_end():
    net = Network()
    parts = {n: agent(n, net) for n in NAMES}
    statuses = parts["d0"][3]
    async with asyncio.TaskGroup() as group:
        tasks = [loop.start(group) for loop, *_ in parts.values()]
        parts["d0"][0].post(Submit("d0.w1", spec("a", "b", "a"),
                                   placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
        end = await statuses.until_state("d0.w1", TERMINAL)
        for task in tasks:
            task.cancel()
    assert end == WorkflowState.SUCCEEDED
    assert [s for w, s in statuses.seen if w == "d0.w1"][0] == WorkflowState.NEGOTIATING
    # Each domain ran its step, once, and wrote what it decided.
    for n, (_, durable, executors, _) in parts.items():
        assert [r[:2] for r in executors.started] == [("d0.w1", f"s{NAMES.index(n)}")]
        assert durable.calls
    assert parts["d0"][1].disk.final.get("d0.w1") == WorkflowState.SUCCEEDED


async def test_one_turn_drains_every_queued_input_into_one_transaction():
    net = Network()  # d0 alone: its PREPAREs to others go nowhere
    loop, durable, _, _ = agent("d0", net)
    for i in range(3):
        loop.post(Submit(f"d0.w{i}", spec("a"), placement={"s0": "d1"}))
    async with asyncio.TaskGroup() as group:
        task = loop.start(group)
        await _until(lambda: durable.calls)
        task.cancel()
    first = durable.calls[0]
    written = {op.key for w in first for op in w.ops if op.table == "rows"}
    assert written == {"d0.w0", "d0.w1", "d0.w2"}
    assert loop.driver.turns == 1  # the three Submits were one turn


async def test_a_deadline_fires_through_call_at_with_no_other_input():
    net = Network()
    timing = Timing(prepare_timeout_s=0.05, max_rounds=1)
    loop, durable, _, statuses = agent("d0", net, timing)
    loop.post(Submit("d0.w1", spec("a"), placement={"s0": "d1"}))  # d1 never answers
    async with asyncio.TaskGroup() as group:
        task = loop.start(group)
        end = await statuses.until_state("d0.w1", TERMINAL)
        task.cancel()
    # Only the Submit was posted: the abort came from the prepare timeout, a Tick.
    assert end == WorkflowState.ABORTED
    assert loop.driver.turns >= 2


async def test_a_refused_input_is_counted_and_the_rest_of_its_turn_goes_through():
    net = Network()
    loop, durable, _, _ = agent("d0", net)
    loop.post(Message("d1", "not a protocol message"))
    loop.post(Submit("d0.w1", spec("a"), placement={"s0": "d1"}))
    async with asyncio.TaskGroup() as group:
        task = loop.start(group)
        await _until(lambda: durable.calls)
        task.cancel()
    assert loop.driver.refused == {"Message": 1}
    assert "d0.w1" in durable.disk.rows
    assert loop.driver.turns == 1


class NotAnInput:
    pass


async def test_a_broken_invariant_stops_the_loop_naming_the_input():
    net = Network()
    loop, durable, _, _ = agent("d0", net)
    loop.post(NotAnInput())
    with pytest.raises(DriverStopped, match="NotAnInput") as stopped:
        await asyncio.wait_for(loop.run(), WAIT_S)
    assert isinstance(stopped.value.input, NotAnInput)
    assert loop._timer is None
    with pytest.raises(DriverStopped):  # and it stays stopped
        loop.driver.turn([])


async def test_the_task_ends_cleanly_when_cancelled():
    net = Network()
    loop, durable, _, statuses = agent("d0", net)
    loop.post(Submit("d0.w1", spec("a"), placement={"s0": "d1"}))
    task = asyncio.create_task(loop.run())
    await _until(lambda: loop._timer is not None)  # waiting on its prepare timeout
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert loop._timer is None


async def _until(condition) -> None:
    """Wait for a condition that the loop's own turns make true (with a deadline)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0)
