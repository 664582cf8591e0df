"""A Ready's `status_now` (runtime/driver.py, step 3 of the header): told with the
turn's first sends, before its write is durable, and not told again after it."""

from __future__ import annotations

from fedorch.core.node.ready import Op, Outgoing, Ready, Write
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.runtime.driver import NodeDriver

RUNNING, SUCCEEDED = WorkflowState.RUNNING, WorkflowState.SUCCEEDED


class OneReadyNode:
    """A Node's interface handing out one Ready: a write, a message after it, and two
    status changes, the first of which may be told now."""

    def __init__(self) -> None:
        self.advanced: list[Ready] = []

    def ready(self) -> Ready:
        return Ready((Write("decision", [Op("rows", "PUT", "d0.w1", 1)]),), (),
                     (Outgoing("d1", "decision"),), (), (),
                     (("d0.w1", RUNNING), ("d0.w2", SUCCEEDED)),
                     status_now=(("d0.w1", RUNNING),))

    def advance(self, ready: Ready) -> None:
        self.advanced.append(ready)

    def get_timer(self) -> float | None:
        return None


class Log:
    """Every port in one log, in the order the driver used them."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def send(self, dst: str, msg: object) -> None:
        self.events.append(("sent", dst, msg))

    def status_changed(self, wf: str, state: object) -> None:
        self.events.append(("told", wf, state))

    def start(self, run) -> None:
        self.events.append(("started", run))

    def stop(self, run) -> None:
        self.events.append(("stopped", run))


class Clock:
    def monotonic(self) -> float:
        return 0.0

    def wall_ms(self) -> int:
        return 0


def test_a_chosen_running_is_told_before_the_write_and_once() -> None:
    log = Log()
    driver = NodeDriver(OneReadyNode(), Clock(), None, log, log, log)  # type: ignore[arg-type]
    ready = driver.begin()
    assert log.events == [("told", "d0.w1", RUNNING)], "told before the write is durable"
    log.events.append(("written",))  # the commit thread's transaction, in between
    driver.finish(ready)
    assert log.events == [("told", "d0.w1", RUNNING), ("written",),
                          ("sent", "d1", "decision"), ("told", "d0.w2", SUCCEEDED)]


def test_a_chained_ready_tells_every_change_after_its_write() -> None:
    """A Ready without `status_now` (a chain's, or classic 2PC's) tells nothing early."""
    log = Log()
    node = OneReadyNode()
    node.ready = lambda: Ready((), (), (), (), (), (("d0.w1", RUNNING),))  # type: ignore
    driver = NodeDriver(node, Clock(), None, log, log, log)  # type: ignore[arg-type]
    ready = driver.begin()
    assert log.events == []
    driver.finish(ready)
    assert log.events == [("told", "d0.w1", RUNNING)]
