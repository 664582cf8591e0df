"""A federation of pure `Node`s driven by hand, for the Node engine's unit tests.

Each Node has its own `Disk`; `flush` does a Node's Ready as a driver does (every write
group applied to the disk, its notes handed to `note`, its messages queued on `net`,
the attempts it starts and stops kept in `running`, then `advance`), and `deliver`
hands the queued messages on in order, except to or from the `silent` (crashed) Nodes
and what a test holds back. Time moves only when a test says so: `now` by hand, `tick`
(every living Node at one instant) or `run_until` (every deadline in order).

A test file subclasses `Federation` with what is its own: `make_node` (how its Nodes
are built), and where it needs them `first_inputs` (what a Node is told when the
federation starts), `note` (a write group's notes) and `steps_end_at_once` (every
attempt a Node starts ends at once, successfully, as a `StepEnded` on the network).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fedorch.core.node import MemberState, Message, Node, StepEnded, Tick
from fedorch.core.node.ready import Ready, apply
from fedorch.core.node.records import Disk

Run = tuple[str, str, int]  # a step attempt: (workflow, step, attempt)
Held = Callable[[str, str, object], bool]  # (source, destination, message): held back?


class Federation:
    """Nodes named `names`, each with its disk, an in-order network and a hand clock."""

    steps_end_at_once = False

    def __init__(self, names: Sequence[str], *, start: float = 0.0) -> None:
        self.now = start
        self.names = list(names)
        self.disks = {n: Disk() for n in self.names}
        self.nodes = {n: self.make_node(n) for n in self.names}
        self.net: list[tuple[str, str, object]] = []
        self.silent: set[str] = set()
        self.readies: dict[str, list[Ready]] = {n: [] for n in self.names}
        self.points: dict[str, list[str]] = {n: [] for n in self.names}  # write groups
        self.running: dict[str, set[Run]] = {n: set() for n in self.names}
        self.started: list[tuple[str, Run]] = []  # (node, attempt) in start order
        self.stopped: list[tuple[str, Run]] = []
        for n in self.names:
            self.step(n, *self.first_inputs(n))

    # ---- what a test file gives ---------------------------------------------------

    def make_node(self, name: str) -> Node:
        """`name`'s Node on `self.disks[name]`, at `self.now`."""
        raise NotImplementedError

    def first_inputs(self, name: str) -> Iterable[object]:
        """What `name` is told when the federation starts (nothing: its Ready is done)."""
        return ()

    def note(self, name: str, what: str, facts: list) -> None:
        """One note of a write group `name` applied."""

    # ---- driving ------------------------------------------------------------------

    def step(self, name: str, *inputs: object) -> Ready:
        """`inputs` to `name` at `now`, then its Ready done (done even when an input is
        refused and raises, as a driver goes on after a peer's bad message)."""
        node = self.nodes[name]
        try:
            for event in inputs:
                node.step(self.now, event)
        finally:
            ready = self.flush(name)
        return ready

    def flush(self, name: str) -> Ready:
        node = self.nodes[name]
        ready = node.ready()
        for w in ready.writes:
            apply(self.disks[name], w.ops)
            self.points[name].append(w.point)
            for what, *facts in w.notes:
                self.note(name, what, facts)
        for out in ready.send_now + ready.send_after_write:
            self.net.append((name, out.to, out.msg))
        for run in ready.start_steps:
            self.started.append((name, run))
            self.running[name].add(run)
        for run in ready.stop_steps:
            self.stopped.append((name, run))
            self.running[name].discard(run)
        node.advance(ready)
        self.readies[name].append(ready)
        if self.steps_end_at_once:
            for run in ready.start_steps:
                self.net.append((name, name, StepEnded(*run, ok=True)))
        return ready

    def deliver(self, rounds: int = 200, *, keep: Held | None = None) -> None:
        """Hand on what is queued, and what that sends, in order, until the network is
        empty; what `keep` says is held back (left on the network, in order)."""
        kept: list[tuple[str, str, object]] = []
        for _ in range(rounds):
            if not self.net:
                self.net = kept
                return
            batch, self.net = self.net, []
            for src, dst, msg in batch:
                if dst in self.silent or src in self.silent:
                    continue
                if keep is not None and keep(src, dst, msg):
                    kept.append((src, dst, msg))
                    continue
                event = msg if isinstance(msg, StepEnded) else Message(src, msg)
                self.step(dst, event)
        raise AssertionError("the federation did not settle")

    def tick(self, at: float) -> None:
        """The clock moves to `at`; every living Node is ticked, then all delivered."""
        self.now = at
        for n in self.names:
            if n not in self.silent:
                self.step(n, Tick())
        self.deliver()

    def run_until(self, end: float) -> None:
        """Every deadline up to `end`, in order, each followed by what it sent."""
        while True:
            due = [(t, n) for n in self.names if n not in self.silent
                   and (t := self.nodes[n].get_timer()) is not None and t <= end]
            if not due:
                self.now = max(self.now, end)
                return
            at, name = min(due)
            self.now = max(self.now, at)
            self.step(name, Tick())
            self.deliver()

    def restore(self, name: str) -> Node:
        """`name` restarts from what its disk holds, at `now`; its attempts are gone."""
        self.nodes[name] = self.make_node(name)
        self.running[name] = set()
        self.flush(name)
        return self.nodes[name]

    def goes_silent_and_dead(self, name: str, *, seen_by: Iterable[str] | None = None,
                             keep: Held | None = None) -> None:
        """`name` crashes for good (silent, its attempts gone with it); each of `seen_by`
        (every other Node unless named), in order, is told its view says `name` is DEAD;
        then what that sends is delivered (`keep`: what is held back)."""
        self.silent.add(name)
        self.running[name] = set()
        for n in [n for n in self.names if n != name] if seen_by is None else seen_by:
            self.step(n, MemberState(name, "DEAD"))
        self.deliver(keep=keep)

    # ---- reading ------------------------------------------------------------------

    def sent_by(self, name: str, kind: type) -> list[tuple[str, object]]:
        """Every message of `kind` `name` sent, as (to, message), in order."""
        return [(to, msg) for r in self.readies[name] for to, msg in sent(r)
                if isinstance(msg, kind)]


def sent(ready: Ready) -> list[tuple[str, object]]:
    """The messages of one Ready, as (to, message), in the order they leave."""
    return [(o.to, o.msg) for o in ready.send_now + ready.send_after_write]


def tell_starts(fed: Any) -> None:
    """The start tells `fed`'s Nodes hold for their steps' results (running_starts.py)
    go, as if the steps ran past the hold: the clock moves to the last one's deadline,
    the Nodes holding one are ticked, and all is delivered."""
    due = sorted((t, n) for n in fed.names if n not in fed.silent
                 and (t := fed.nodes[n].running.starts.timer()) is not None)
    if not due:
        return
    fed.now = max(fed.now, due[-1][0])
    for _, n in due:
        fed.step(n, Tick())
    fed.deliver()
