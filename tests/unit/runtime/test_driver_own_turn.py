"""The driver loop's turn of a Node's own messages (runtime/driver.py, "Own messages"):
taken only once what the turn before it handed out has gone."""

from __future__ import annotations

import asyncio
import threading

from fedorch.core.node.inputs import Message
from fedorch.core.node.ready import Op, Outgoing, Ready, Write
from fedorch.runtime.driver import DriverLoop, NodeDriver, ThreadedWrite

WAIT_S = 20.0  # a deadline for conditions, not a timing: the machine may be loaded
ME, PEER = "d0", "d1"


class Clock:
    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def wall_ms(self) -> int:
        return 0


class OwnAndPeerNode:
    """A Node's interface: the input "go" makes a write, then a message to the peer and
    one to itself, both after the write (as a participant's Accepted to its coordinator
    and to its own learner); each step is logged in `log`, which the ports share."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self._pending: list[Outgoing] = []
        self._writes: list[Write] = []

    def step(self, now: float, event: object) -> None:
        if type(event) is Message:
            self.log.append(f"stepped own {event.msg}")
            return
        self.log.append(f"stepped {event}")
        self._writes.append(Write("go", [Op("rows", "PUT", event, 1)]))
        self._pending += [Outgoing(PEER, "to peer"), Outgoing(ME, "to me")]

    def ready(self) -> Ready:
        return Ready(tuple(self._writes), (), tuple(self._pending), (), (), ())

    def advance(self, ready: Ready) -> None:
        self._writes, self._pending = [], []

    def get_timer(self) -> float | None:
        return None


class Disk:
    def write(self, writes) -> None:
        return None


class Sender:
    """A transport as the node engine's: `send` schedules a flush (call_soon), which
    wakes a sender task, which takes the message (sealing and writing its envelope)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.queued: list[object] = []
        self.wake = asyncio.Event()

    def send(self, dst: str, msg: object) -> None:
        asyncio.get_running_loop().call_soon(self._flush, msg)

    def _flush(self, msg: object) -> None:
        self.queued.append(msg)
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            for msg in self.queued:
                self.log.append(f"sealed {msg}")
            self.queued.clear()


class NoExecutors:
    def start(self, run) -> None:
        raise AssertionError("no step here")

    def stop(self, run) -> None:
        raise AssertionError("no step here")


class Log(list):
    """What happened, in order; `changed` set at each entry."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def append(self, entry: str) -> None:
        super().append(entry)
        self.changed.set()

    async def until(self, condition) -> None:
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), WAIT_S)


async def test_own_messages_are_stepped_after_the_turns_envelopes_went():
    log = Log()
    sender = Sender(log)
    driver = NodeDriver(OwnAndPeerNode(log), Clock(), Disk(), sender, NoExecutors(),
                        loopback=ME)
    commits = ThreadedWrite(driver.durable)
    loop = DriverLoop(driver, write=commits)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(sender.run()), loop.start(group)]
            loop.post("go")
            await log.until(lambda: "stepped own to me" in log and "sealed to peer" in log)
            for task in tasks:
                task.cancel()
    finally:
        commits.close()
    # The peer's message was taken by its sender before the own one was stepped (taken
    # at once, the own turn ran first and the envelope waited for it).
    assert log == ["stepped go", "sealed to peer", "stepped own to me"]


async def test_own_messages_still_come_first_in_the_next_turn():
    """What was posted while the own turn waited is stepped in it, after the own
    messages (they are still the next turn's first inputs)."""
    log = Log()
    sender = Sender(log)
    driver = NodeDriver(OwnAndPeerNode(log), Clock(), Disk(), sender, NoExecutors(),
                        loopback=ME)
    loop = DriverLoop(driver)  # the synchronous turn: the same order

    def post_while_waiting() -> None:
        if "sealed to peer" in log and "late" not in loop._inbox:
            loop.post("late")

    async with asyncio.TaskGroup() as group:
        original = sender._flush

        def flush(msg: object) -> None:
            original(msg)
            if msg == "to peer":
                asyncio.get_running_loop().call_soon(post_while_waiting)

        sender._flush = flush  # type: ignore[method-assign]
        tasks = [group.create_task(sender.run()), loop.start(group)]
        loop.post("go")
        await log.until(lambda: "stepped late" in log)
        for task in tasks:
            task.cancel()
    assert log.index("stepped own to me") < log.index("stepped late")
    assert log[:3] == ["stepped go", "sealed to peer", "stepped own to me"]


class ProposerNode:
    """A Node's interface as a coordinator's on a round's last vote: "vote" writes the
    proposal cell and sends an Accept to itself after it; its own acceptor writes its
    record and answers itself after that; the answer sends the Accepts to the peers at
    once (they depend on both writes). `to_peer_too`: the cell's Ready also sends a
    peer something after its write."""

    def __init__(self, log: Log, to_peer_too: bool = False) -> None:
        self.log = log
        self.to_peer_too = to_peer_too
        self._writes: list[Write] = []
        self._now: list[Outgoing] = []
        self._after: list[Outgoing] = []

    def step(self, now: float, event: object) -> None:
        name = event.msg if type(event) is Message else event
        self.log.append(f"stepped {name}")
        if name == "vote":
            self._writes.append(Write("cell", [Op("cells", "PUT", "tx", "COMMIT")]))
            self._after.append(Outgoing(ME, "accept"))
            if self.to_peer_too:
                self._after.append(Outgoing(PEER, "note"))
        elif name == "accept":
            self._writes.append(Write("acceptor", [Op("accepted", "PUT", "tx", "COMMIT")]))
            self._after.append(Outgoing(ME, "accepted"))
        elif name == "accepted":
            self._now.append(Outgoing(PEER, "accept to peer"))

    def ready(self) -> Ready:
        return Ready(tuple(self._writes), tuple(self._now), tuple(self._after), (), (), ())

    def advance(self, ready: Ready) -> None:
        self._writes, self._now, self._after = [], [], []

    def get_timer(self) -> float | None:
        return None


class GatedDisk:
    """Durable: each write's groups kept; a write waits for `gate` (in the commit
    thread) and logs when it returns."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.calls: list[list[str]] = []
        self.gate = threading.Event()

    def write(self, writes) -> None:
        self.calls.append([w.point for w in writes])
        if not self.gate.wait(WAIT_S):
            raise TimeoutError("the test never opened the gate")


class Sent:
    """Transport: what was sent, in the log."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def send(self, dst: str, msg: object) -> None:
        self.log.append(f"sent {msg}")


async def proposer_run(node: ProposerNode, log: Log, until) -> GatedDisk:
    disk = GatedDisk(log)
    driver = NodeDriver(node, Clock(), disk, Sent(log), NoExecutors(), loopback=ME)
    commits = ThreadedWrite(disk)
    loop = DriverLoop(driver, write=commits)
    try:
        async with asyncio.TaskGroup() as group:
            task = loop.start(group)
            loop.post("vote")
            await log.until(lambda: bool(disk.calls))
            log.append(f"write out: {disk.calls[0]}")
            disk.gate.set()
            await log.until(until)
            task.cancel()
    finally:
        disk.gate.set()
        commits.close()
    return disk


async def test_own_turns_waiting_on_a_write_are_chained_to_its_transaction():
    log = Log()
    disk = await proposer_run(ProposerNode(log), log, lambda: "sent accept to peer" in log)
    # The cell and the own acceptor's record in one transaction; the Accepts to the
    # peers, decided once the own acceptor answered, left only after it returned.
    assert disk.calls == [["cell", "acceptor"]]
    assert log == ["stepped vote", "stepped accept", "stepped accepted",
                   "write out: ['cell', 'acceptor']", "sent accept to peer"]


async def test_a_turn_that_sends_a_peer_after_its_write_is_not_chained():
    log = Log()
    disk = await proposer_run(ProposerNode(log, to_peer_too=True), log,
                              lambda: "sent accept to peer" in log)
    # The peer's message waits for the cell alone; the own acceptor's turn follows.
    assert disk.calls == [["cell"], ["acceptor"]]
    assert log.index("sent note") < log.index("stepped accept")
