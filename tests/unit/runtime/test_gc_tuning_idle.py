"""Young garbage collection when the driver loop is idle (runtime/gc_tuning.py
IdleCollector, runtime/driver.py DriverLoop's idle port; test_gc_tuning.py checks that
the daemon passes it): a pass only past a fraction of the threshold, only when the loop
has nothing queued, no commit out and no Tick due soon, and counted in the metrics."""

from __future__ import annotations

import asyncio

import pytest
from fedorch.core.node import Submit
from fedorch.runtime.driver import IDLE_MARGIN_S, DriverLoop
from fedorch.runtime.gc_tuning import GcClock, GcClockCollector, IdleCollector
from fedorch.runtime.metrics import AgentMetrics

from tests.unit.runtime.test_driver import WAIT_S, Network, agent, spec


class FakeGc:
    """The gc module's part IdleCollector uses: a young count set by the test."""

    def __init__(self, young: int, threshold: int = 1000, enabled: bool = True) -> None:
        self.young, self.threshold, self.enabled = young, threshold, enabled
        self.collected: list[int] = []

    def get_count(self) -> tuple[int, int, int]:
        return (self.young, 0, 0)

    def get_threshold(self) -> tuple[int, int, int]:
        return (self.threshold, 20, 100)

    def isenabled(self) -> bool:
        return self.enabled

    def collect(self, generation: int) -> int:
        self.collected.append(generation)
        self.young = 0
        return 0


@pytest.mark.parametrize(("young", "collects"), [(0, False), (249, False), (250, True),
                                                 (999, True), (5000, True)])
def test_an_idle_pass_runs_only_past_the_fraction_of_the_threshold(young, collects):
    fake = FakeGc(young)
    idle = IdleCollector(0.25, fake)
    assert idle() is collects
    assert fake.collected == ([0] if collects else [])
    assert idle.passes == (1 if collects else 0)
    assert idle() is False  # the pass spent the count: nothing until it grows again


def test_no_idle_pass_with_the_collector_off():
    assert IdleCollector(0.25, FakeGc(5000, enabled=False))() is False
    assert IdleCollector(0.25, FakeGc(5000, threshold=0))() is False


class Hook:
    """An on_idle port that records the loop's state at each call."""

    def __init__(self) -> None:
        self.loop: DriverLoop | None = None
        self.calls: list[tuple[int, bool, bool]] = []
        self.called = asyncio.Event()

    def __call__(self) -> None:
        assert self.loop is not None
        self.calls.append((len(self.loop._inbox), self.loop.committing, self.loop.idle()))
        self.called.set()


def hooked_agent(hook: Hook):
    loop, durable, executors, statuses = agent("d0", Network())
    loop = DriverLoop(loop.driver, on_idle=hook)
    executors.loop = loop
    hook.loop = loop
    return loop, durable


def test_the_loop_is_not_idle_with_an_input_queued_or_a_commit_out():
    loop, _ = hooked_agent(Hook())
    assert loop.idle()
    loop._inbox.append(object())
    assert not loop.idle()
    loop._inbox.clear()
    loop._wake.clear()
    loop.committing = True
    assert not loop.idle()
    loop.committing = False
    loop._tick_due = True
    assert not loop.idle()


def test_the_loop_is_not_idle_with_a_tick_due_within_the_margin():
    loop, _ = hooked_agent(Hook())
    now = loop.driver.clock.monotonic()
    loop._armed_at = now + IDLE_MARGIN_S / 2
    assert not loop.idle()
    loop._armed_at = now + IDLE_MARGIN_S * 4
    assert loop.idle()


def test_a_busy_check_does_not_call_the_hook():
    hook = Hook()
    loop, _ = hooked_agent(hook)
    loop.post(Submit("d0.w0", spec("a"), placement={"s0": "d1"}))  # a turn is owed
    loop._on_idle()
    assert hook.calls == []
    loop._inbox.clear()
    loop._wake.clear()
    loop._on_idle()
    assert len(hook.calls) == 1


async def test_a_turn_that_leaves_the_loop_idle_calls_the_hook_and_only_then():
    hook = Hook()
    loop, durable = hooked_agent(hook)
    for i in range(3):
        loop.post(Submit(f"d0.w{i}", spec("a"), placement={"s0": "d1"}))
    async with asyncio.TaskGroup() as group:
        task = loop.start(group)
        await asyncio.wait_for(hook.called.wait(), WAIT_S)
        task.cancel()
    assert durable.calls  # the Submits' turn ran first
    # Each call found the loop idle: nothing queued, no commit out.
    assert hook.calls and all(c == (0, False, True) for c in hook.calls)


def test_the_idle_port_belongs_to_the_loop_given_it():
    # Two agents' loops in one process (as the simulator's or a bench's): only the
    # one given a hook calls it; the other, idle as well, calls nothing.
    hook = Hook()
    with_hook, _, _, _ = agent("d0", Network())
    with_hook = hook.loop = DriverLoop(with_hook.driver, on_idle=hook)
    without, _, _, _ = agent("d1", Network())
    assert without.on_idle is None
    for loop in (with_hook, without):
        loop._on_idle()
    assert len(hook.calls) == 1


def test_the_metrics_serve_the_idle_passes():
    idle = IdleCollector(0.25, FakeGc(900))
    idle()
    metrics = AgentMetrics()
    metrics.registry.register(GcClockCollector(GcClock(), idle))
    assert metrics.registry.get_sample_value("fedorch_gc_idle_collections_total") == 1
