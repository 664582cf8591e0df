"""Two pure `Node`s, d0 and d1, pumped by hand until quiet: one-step workflows
coordinated by d0 and run on d1, for the tests that count what a run of workflows
builds or walks (test_ready_builds.py, test_node_turn_cost.py)."""

from __future__ import annotations

import random

from fedorch.core.node import Message, Node, StepEnded, Submit
from fedorch.core.node.records import Disk, Timing
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

ONE_STEP = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s0", capability="a")])


def node(name: str, peers: list[str]) -> Node:
    return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 10_000},
                timing=Timing(), peers=peers, rng=random.Random(1), disk=Disk())


def exchange(nodes: dict[str, Node], now: float) -> int:
    """Deliver every message until all is quiet; step attempts end at once, SUCCEEDED.
    Returns the messages stepped."""
    stepped = 0
    for _ in range(200):
        moved = False
        for each in nodes.values():
            ready = each.ready()
            each.advance(ready)
            for out in (*ready.send_now, *ready.send_after_write):
                nodes[out.to].step(now, Message(each.name, out.msg))
                stepped += 1
                moved = True
            for run in ready.start_steps:
                each.step(now, StepEnded(run[0], run[1], run[2], True))
                moved = True
        if not moved:
            return stepped
    raise AssertionError("the two Nodes never went quiet")


def run_workflows(count: int) -> tuple[dict[str, Node], float, int]:
    """`count` one-step workflows d0.w0... coordinated by d0 and run on d1, each to its
    end before the next is submitted: the Nodes, the clock after, the messages stepped."""
    nodes = {n: node(n, ["d0", "d1"]) for n in ("d0", "d1")}
    now, stepped = 1.0, 0
    for i in range(count):
        nodes["d0"].step(now, Submit(f"d0.w{i}", ONE_STEP, placement={"s0": "d1"}))
        stepped += exchange(nodes, now)
        now += 0.01
    return nodes, now, stepped
