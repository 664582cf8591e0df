"""A Node restored on another monotonic clock (its host rebooted): the lease instants in
its tables were written on the old clock, far above or far below the new one. The
restored Node asks about its YES holds within one lease of the restore, never sooner,
and releases an unvoted reservation no sooner than one lease either."""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.messages import DecisionQuery
from fedorch.core.node import Message, Node, Submit, Tick
from fedorch.core.node.ready import apply
from fedorch.core.node.records import Disk, PrepareMsg, Timing
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

TIMING = Timing()
LEASE = TIMING.lease_s
# (the clock the tables were written on, the clock of the restore): a host whose clock
# had run long restarts near zero, and one written early restores on a clock run long.
CLOCKS = [(1_000_000.0, 5.0), (5.0, 1_000_000.0), (40.0, 40.5)]


def _node(name: str, now: float, disk: Disk | None = None) -> Node:
    return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 2},
                timing=TIMING, peers=["d0", "d1", "d2"], rng=random.Random(7),
                disk=disk, now=now)


def _prepare(written_at: float) -> PrepareMsg:
    """d0's PREPARE of one step for d1 (d0 coordinates, d0 and d2 are the others)."""
    d0 = _node("d0", written_at)
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s0", capability="a")])
    d0.step(written_at, Submit("d0.w", spec, placement={"s0": "d1"}))
    ready = d0.ready()
    return next(o.msg for o in ready.send_now + ready.send_after_write
                if isinstance(o.msg, PrepareMsg) and o.to == "d1")


def _voted_yes(written_at: float, *, writes: int | None = None) -> Disk:
    """d1's disk after it took the PREPARE at `written_at` (its first `writes` groups
    only: a crash after them)."""
    d1 = _node("d1", written_at)
    d1.step(written_at, Message("d0", _prepare(written_at)))
    ready = d1.ready()
    disk = Disk()
    for w in ready.writes[:writes]:
        apply(disk, w.ops)
    return disk


def _queries(node: Node, now: float) -> list[DecisionQuery]:
    node.step(now, Tick())
    ready = node.ready()
    node.advance(ready)
    return [o.msg for o in ready.send_now + ready.send_after_write
            if isinstance(o.msg, DecisionQuery)]


@pytest.mark.parametrize(("written_at", "restored_at"), CLOCKS)
def test_a_yes_voter_restored_on_another_clock_asks_within_one_lease_not_sooner(
        written_at, restored_at):
    disk = _voted_yes(written_at)
    assert [h.state.value for h in disk.holds.values()] == ["prepared"]
    node = _node("d1", restored_at, disk)
    node.advance(node.ready())
    timer = node.get_timer()
    assert timer is not None and restored_at < timer <= restored_at + LEASE
    assert _queries(node, restored_at + LEASE - 0.001) == []  # not before its lease
    asked = _queries(node, restored_at + LEASE)
    assert [q.key for q in asked] == [("d0.w", 1)]


@pytest.mark.parametrize(("written_at", "restored_at"), CLOCKS)
def test_an_unvoted_reservation_restored_on_another_clock_ends_after_one_lease(
        written_at, restored_at):
    disk = _voted_yes(written_at, writes=1)  # a crash between reservation and YES record
    assert [h.state.value for h in disk.holds.values()] == ["reserved"]
    node = _node("d1", restored_at, disk)
    node.advance(node.ready())
    assert node.participant.hold(("d0.w", 1)) is not None
    node.step(restored_at + LEASE - 0.001, Tick())
    node.advance(node.ready())
    assert node.participant.hold(("d0.w", 1)) is not None, "released before its lease"
    node.step(restored_at + LEASE, Tick())
    ready = node.ready()
    node.advance(ready)
    assert node.participant.hold(("d0.w", 1)) is None
    assert any(op.table == "holds" and op.kind == "delete" for w in ready.writes
               for op in w.ops)
