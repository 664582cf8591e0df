"""The driver around a Node (runtime/driver.py), with real Nodes and in-memory ports."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time

import pytest
from fedorch.core.node import Message, Node, StepEnded, Submit
from fedorch.core.node.ready import apply
from fedorch.core.node.records import Disk, Timing
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.runtime.driver import DriverLoop, DriverStopped, NodeDriver, ThreadedWrite
from fedorch.runtime.node_store import SqliteDurable

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
          peers: list[str] | None = None, loopback: bool = False):
    node = Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                capacities={"a": 2, "b": 2}, timing=timing or Timing(),
                peers=peers or NAMES, rng=random.Random(NAMES.index(name)),
                now=time.monotonic())
    durable, executors, statuses = MemoryDisk(), InstantExecutors(), Statuses()
    driver = NodeDriver(node, MonotonicClock(), durable, net.port(name), executors, statuses,
                        loopback=name if loopback else None)
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
    assert loop.driver.inputs == 3  # and three steps of the Node


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
    assert loop.driver.turns == 1 and loop.driver.inputs == 2  # a refused one counts


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


# ---- the split turn: the commit in a worker thread, the event loop running --------------


class GatedDisk(MemoryDisk):
    """A MemoryDisk whose write waits, in the commit thread, until the test opens its
    gate; it keeps what the network had sent when each write began."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        self.net = net
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.sent_at_entry: list[int] = []

    def write(self, writes) -> None:
        self.sent_at_entry.append(len(self.net.sent))
        self.entered.set()
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        self.gate.clear()
        super().write(writes)


def split_agent(name: str, net: Network, durable):
    # Classic 2PC: its PREPAREs wait for the workflow's row, the message these tests
    # watch for; under Paxos Commit a submission's first ones leave with that write
    # (core/node/prepares_ahead.py).
    node = Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                capacities={"a": 2, "b": 2}, timing=Timing(classic=True), peers=NAMES,
                rng=random.Random(NAMES.index(name)), now=time.monotonic())
    executors, statuses = InstantExecutors(), Statuses()
    driver = NodeDriver(node, MonotonicClock(), durable, net.port(name), executors, statuses)
    commits = ThreadedWrite(durable)
    loop = DriverLoop(driver, write=commits)
    executors.loop = loop
    net.loops[name] = loop
    return loop, commits


def sent_by(net: Network, src: str, dst: str) -> list[object]:
    return [msg for s, d, msg in net.sent if s == src and d == dst]


async def test_split_turn_sends_after_write_only_once_the_commit_returned():
    net = Network()  # d0 alone: what it sends to d1 is only recorded
    disk = GatedDisk(net)
    loop, commits = split_agent("d0", net, disk)
    loop.post(Submit("d0.w1", spec("a"), placement={"s0": "d1"}))
    async with asyncio.TaskGroup() as group:
        task = loop.start(group)
        await _until(disk.entered.is_set)
        # The transaction is out and the event loop runs (this test does): the PREPARE,
        # which waits for the workflow's row, has not left.
        assert loop.committing
        assert sent_by(net, "d0", "d1") == []
        disk.gate.set()
        await _until(lambda: sent_by(net, "d0", "d1"))
        task.cancel()
    commits.close()
    assert "d0.w1" in disk.disk.rows
    assert loop.driver.turns == 1


async def test_split_turn_inputs_arriving_during_a_commit_form_the_next_turn():
    net = Network()
    disk = GatedDisk(net)
    loop, commits = split_agent("d0", net, disk)
    loop.post(Submit("d0.w1", spec("a"), placement={"s0": "d1"}))
    async with asyncio.TaskGroup() as group:
        task = loop.start(group)
        await _until(disk.entered.is_set)
        disk.entered.clear()
        for i in (2, 3):  # posted while w1's commit waits: not stepped yet
            loop.post(Submit(f"d0.w{i}", spec("a"), placement={"s0": "d1"}))
        assert "d0.w2" not in loop.driver.node.state.rows
        disk.gate.set()
        await _until(disk.entered.is_set)  # the second transaction
        disk.gate.set()
        await _until(lambda: len(disk.calls) == 2 and not loop.committing)
        task.cancel()
    commits.close()
    first, second = ({op.key for w in call for op in w.ops if op.table == "rows"}
                     for call in disk.calls)
    assert first == {"d0.w1"}
    assert second == {"d0.w2", "d0.w3"}  # both in one transaction
    assert loop.driver.turns == 2
    # w1's PREPARE left before the second turn's write began, after its own write.
    assert disk.sent_at_entry[0] == 0 and disk.sent_at_entry[1] > 0


async def test_split_turn_a_failed_commit_stops_the_driver_and_leaves_the_file(tmp_path):
    net = Network()
    failing = threading.Event()

    def before_group(point: str) -> None:
        if failing.is_set():
            raise sqlite3.OperationalError("disk I/O error")

    store = SqliteDurable(tmp_path / "node.db", before_group=before_group)
    loop, commits = split_agent("d0", net, store)
    loop.post(Submit("d0.w1", spec("a"), placement={"s0": "d1"}))
    task = asyncio.create_task(loop.run())
    try:
        await _until(lambda: sent_by(net, "d0", "d1"))  # w1 durable, its PREPARE sent
        sent_before = len(net.sent)
        failing.set()
        loop.post(Submit("d0.w2", spec("a"), placement={"s0": "d1"}))
        with pytest.raises(DriverStopped, match="commit failed") as stopped:
            await asyncio.wait_for(task, WAIT_S)
    finally:
        task.cancel()
        commits.close()
    assert isinstance(stopped.value.__cause__, sqlite3.OperationalError)
    assert len(net.sent) == sent_before  # nothing of the failed turn's after-write left
    assert loop._timer is None
    with pytest.raises(DriverStopped):
        loop.driver.turn([])
    rows = store.load().rows
    store.close()
    assert "d0.w1" in rows and "d0.w2" not in rows  # the file as before the failed turn


async def test_loopback_steps_own_messages_next_turn_without_the_transport():
    net = Network()
    parts = {n: agent(n, net, loopback=True) for n in NAMES}
    statuses = parts["d0"][3]
    async with asyncio.TaskGroup() as group:
        tasks = [loop.start(group) for loop, *_ in parts.values()]
        parts["d0"][0].post(Submit("d0.w1", spec("a", "b", "a"),
                                   placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
        end = await statuses.until_state("d0.w1", TERMINAL)
        for task in tasks:
            task.cancel()
    assert end == WorkflowState.SUCCEEDED
    assert [s for s, d, _ in net.sent if s == d] == []  # none crossed the transport
    for n, (_, _, executors, _) in parts.items():
        assert [r[:2] for r in executors.started] == [("d0.w1", f"s{NAMES.index(n)}")]


def test_loopback_message_after_write_is_kept_until_the_write_is_done():
    """The synchronous turn: an own message that waited for a write is stepped in the
    next turn, and only after that write reached the Durable."""
    net = Network()
    loop, durable, _, _ = agent("d0", net, loopback=True)
    driver = loop.driver
    driver.turn([Submit("d0.w1", spec("a"), placement={"s0": "d0"})])
    assert durable.calls and "d0.w1" in durable.disk.rows
    # Its PREPARE to its own participant waited for the workflow's row: held, not sent.
    assert [type(m.msg).__name__ for m in driver.looped] == ["PrepareMsg"]
    assert net.sent == []
    writes_before = len(durable.calls)
    driver.turn([])  # stepped first in the next turn: the participant reserves
    assert driver.looped == [] or all(m.src == "d0" for m in driver.looped)
    assert len(durable.calls) == writes_before + 1
    assert any(op.table == "holds" for w in durable.calls[-1] for op in w.ops)


async def test_split_turn_cancelled_during_a_commit_stops_the_driver_and_close_waits():
    net = Network()
    disk = GatedDisk(net)
    loop, commits = split_agent("d0", net, disk)
    loop.post(Submit("d0.w1", spec("a"), placement={"s0": "d1"}))
    task = asyncio.create_task(loop.run())
    await _until(disk.entered.is_set)
    task.cancel()  # the daemon stopping while a transaction is out
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sent_by(net, "d0", "d1") == []  # what waited for the write never left
    disk.gate.set()
    commits.close()  # returns once the thread's write is over: the file may close now
    assert "d0.w1" in disk.disk.rows
    with pytest.raises(DriverStopped):  # the Node was not advanced: only a restart goes on
        loop.driver.turn([])
