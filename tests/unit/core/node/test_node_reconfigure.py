"""`Node.reconfigure`: a new policy and new capacities (a config reload) rule the next
PREPARE; what is already reserved stays reserved, and a capacity shrunk below it
refuses new work until enough of it ends."""

from __future__ import annotations

import random
from collections import deque

import pytest
from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.core.node import Message, Node, StepEnded, Submit
from fedorch.core.node.ready import apply
from fedorch.core.node.records import Disk, Timing, VoteMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

NAMES = ("d0", "d1", "d2")
OPEN = config_pb2.Policy(accept_from=["*"])


class Federation:
    """Three Nodes whose messages are delivered in order until none is left."""

    def __init__(self) -> None:
        self.now = 1.0
        self.disks = {n: Disk() for n in NAMES}
        self.nodes = {n: Node(n, policy=OPEN, capacities={"a": 2}, timing=Timing(),
                              peers=list(NAMES), rng=random.Random(i))
                      for i, n in enumerate(NAMES)}
        self.queue: deque[tuple[str, object]] = deque()
        self.started: list[tuple[str, str, int]] = []
        self.votes: list[VoteMsg] = []  # d1's votes, in order

    def turn(self, name: str, event: object | None = None) -> None:
        node = self.nodes[name]
        if event is not None:
            node.step(self.now, event)
        ready = node.ready()
        for w in ready.writes:
            apply(self.disks[name], w.ops)
        for out in (*ready.send_now, *ready.send_after_write):
            if name == "d1" and isinstance(out.msg, VoteMsg):
                self.votes.append(out.msg)
            self.queue.append((out.to, Message(name, out.msg)))
        if name == "d1":
            self.started += ready.start_steps
        node.advance(ready)

    def settle(self) -> None:
        while self.queue:
            dst, event = self.queue.popleft()
            self.turn(dst, event)

    def submit(self, wf: str) -> VoteMsg:
        """d0 coordinates `wf`, one step of capability `a` placed in d1: d1's vote."""
        spec = spec_pb2.WorkflowSpec(name=wf, steps=[
            spec_pb2.StepSpec(id="s", capability="a")])
        self.turn("d0", Submit(wf, spec, placement={"s": "d1"}))
        self.settle()
        return [v for v in self.votes if v.key[0] == wf][0]

    def end_step(self, wf: str) -> None:
        [run] = [r for r in self.started if r[0] == wf]
        self.turn("d1", StepEnded(*run, True, {"done": True}))
        self.settle()


def test_a_capacity_shrunk_below_what_is_held_keeps_it_and_refuses_until_under():
    fed = Federation()
    assert fed.submit("w1").yes and fed.submit("w2").yes
    d1 = fed.nodes["d1"]
    assert d1.participant.in_use() == {"a": 2}

    d1.reconfigure(policy=OPEN, capacities={"a": 1})
    assert d1.participant.in_use() == {"a": 2}  # both reservations kept
    assert len(d1.participant.holds()) == 2 and d1.participant.available() == {"a": 0}
    refused = fed.submit("w3")
    assert not refused.yes and "capacity: a has 0 of 1 slots free" in refused.reason

    fed.end_step("w1")  # 1 of 1 still held: still no room
    assert d1.participant.in_use() == {"a": 1}
    assert not fed.submit("w4").yes
    fed.end_step("w2")  # under the new capacity: taken again
    assert fed.submit("w5").yes
    assert fed.nodes["d0"].state.final["w1"] is WorkflowState.SUCCEEDED


def test_a_new_policy_rules_the_next_prepare_and_survives_a_restore():
    fed = Federation()
    assert fed.submit("w1").yes
    d1 = fed.nodes["d1"]
    closed = config_pb2.Policy(accept_from=["*"], rules=[config_pb2.PolicyRule(
        name="no-a", expression='capability != "a"', message="a is closed here")])
    d1.reconfigure(policy=closed, capacities={"a": 2})
    refused = fed.submit("w2")
    assert not refused.yes and "a is closed here" in refused.reason
    assert d1.participant.in_use() == {"a": 1}  # w1's reservation untouched

    d1.restore(fed.disks["d1"], fed.now)  # a restore rebuilds from the new config
    d1.advance(d1.ready())
    assert d1.policy is closed and d1.capacities == {"a": 2}
    refused = fed.submit("w3")
    assert not refused.yes and "a is closed here" in refused.reason

    d1.reconfigure(policy=OPEN, capacities={"a": 2, "b": 1})
    assert fed.submit("w4").yes
    # w1's attempt was running at the restore: it failed then (not idempotent), and its
    # slot went; w4's is held.
    assert d1.participant.in_use() == {"a": 1}
    assert d1.participant.available() == {"a": 1, "b": 1}


def test_reconfigure_between_ready_and_advance_is_refused():
    fed = Federation()
    d1 = fed.nodes["d1"]
    ready = d1.ready()
    with pytest.raises(LocalProtocolError):
        d1.reconfigure(policy=OPEN, capacities={"a": 3})
    d1.advance(ready)
    d1.reconfigure(policy=OPEN, capacities={"a": 3})
    assert d1.participant.available() == {"a": 3}
