"""A config reload reaching the node engine: a `Reconfigure` input applied in the
driver's turn, in order with the inputs around it (reload.py)."""

from __future__ import annotations

import random

from fedorch.core.node import Message, Node, Submit
from fedorch.core.node.ready import apply
from fedorch.core.node.records import Disk, PrepareMsg, Timing, VoteMsg
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.runtime.driver import NodeDriver
from fedorch.runtime.node_engine.reload import (
    Reconfigure,
    ReconfiguringNode,
    copied_policy,
    reconfigure_of,
)

PEERS = ["d0", "d1", "d2"]
OPEN = config_pb2.Policy(accept_from=["*"])
CLOSED = config_pb2.Policy(accept_from=["*"], rules=[config_pb2.PolicyRule(
    name="no-a", expression='capability != "a"', message="a is closed here")])


def _node(name: str) -> Node:
    return Node(name, policy=copied_policy(OPEN), capacities={"a": 4}, timing=Timing(),
                peers=PEERS, rng=random.Random(3))


def _prepares(*workflows: str) -> list[Message]:
    """d0's PREPAREs to d1, one step of capability `a` in each workflow."""
    d0 = _node("d0")
    for wf in workflows:
        spec = spec_pb2.WorkflowSpec(name=wf, steps=[spec_pb2.StepSpec(id="s",
                                                                       capability="a")])
        d0.step(1.0, Submit(wf, spec, placement={"s": "d1"}))
    ready = d0.ready()
    return [Message("d0", o.msg) for o in (*ready.send_now, *ready.send_after_write)
            if o.to == "d1" and isinstance(o.msg, PrepareMsg)]


class _Ports:
    """A clock, a disk, a network and executors for one driver, all in memory."""

    def __init__(self) -> None:
        self.disk = Disk()
        self.sent: list[tuple[str, object]] = []
        self.executors: dict[str, object] = {}
        self.reconfigured: list[dict] = []

    def monotonic(self) -> float:
        return 2.0

    def wall_ms(self) -> int:
        return 2_000

    def write(self, writes) -> None:
        for w in writes:
            apply(self.disk, w.ops)

    def send(self, dst: str, msg: object) -> None:
        self.sent.append((dst, msg))

    def start(self, run) -> None:
        return None

    def stop(self, run) -> None:
        return None

    def reconfigure(self, executors) -> None:
        self.reconfigured.append(dict(executors))


def _driver(node: Node, ports: _Ports, applied: list[int]) -> tuple[NodeDriver,
                                                                    ReconfiguringNode]:
    wrapper = ReconfiguringNode(node, node, ports,
                                on_applied=lambda: applied.append(len(ports.sent)))
    return NodeDriver(wrapper, ports, ports, ports, ports), wrapper


def test_a_reload_rules_the_prepares_stepped_after_it_in_the_same_turn():
    d1, ports, applied = _node("d1"), _Ports(), []
    driver, wrapper = _driver(d1, ports, applied)
    before, after = _prepares("w1", "w2")
    executors = {"a": object()}
    driver.turn([before, Reconfigure(CLOSED, {"a": 4}, executors), after])
    votes = {m.key[0]: m for _, m in ports.sent if isinstance(m, VoteMsg)}
    assert votes["w1"].yes  # stepped before the reload: the old policy
    assert not votes["w2"].yes and "a is closed here" in votes["w2"].reason
    assert wrapper.applied == 1 and applied == [0]  # told in the turn, before any send
    assert ports.reconfigured == [executors]
    assert d1.policy == CLOSED and d1.participant.in_use() == {"a": 1}


def test_a_shrunk_capacity_keeps_what_is_held_and_refuses_the_rest():
    d1, ports, applied = _node("d1"), _Ports(), []
    driver, _ = _driver(d1, ports, applied)
    first, second, third = _prepares("w1", "w2", "w3")
    driver.turn([first, second])
    driver.turn([Reconfigure(OPEN, {"a": 1}, {}), third])
    votes = {m.key[0]: m for _, m in ports.sent if isinstance(m, VoteMsg)}
    assert votes["w1"].yes and votes["w2"].yes
    assert not votes["w3"].yes and "capacity: a has 0 of 1 slots free" in votes["w3"].reason
    assert len(d1.participant.holds()) == 2 and d1.participant.in_use() == {"a": 2}


def test_a_reload_gives_the_node_the_labels_a_steps_constraints_are_checked_against():
    """d1 has no label zone: a step wanting zone=vault gets a NO naming it; a reload
    giving it zone=vault rules the PREPARE stepped after it in the same turn (a YES)."""
    d1, ports, applied = _node("d1"), _Ports(), []
    driver, _ = _driver(d1, ports, applied)
    d0 = _node("d0")
    step = spec_pb2.StepSpec(id="s", capability="a")
    step.constraints.labels["zone"] = "vault"
    for wf in ("w1", "w2"):
        d0.step(1.0, Submit(wf, spec_pb2.WorkflowSpec(name=wf, steps=[step]),
                            placement={"s": "d1"}))
    ready = d0.ready()
    before, after = [Message("d0", o.msg) for o in (*ready.send_now, *ready.send_after_write)
                     if o.to == "d1" and isinstance(o.msg, PrepareMsg)]
    driver.turn([before, Reconfigure(OPEN, {"a": 4}, {}, {"zone": "vault"}), after])
    votes = {m.key[0]: m for _, m in ports.sent if isinstance(m, VoteMsg)}
    assert not votes["w1"].yes and "d1 has no label zone" in votes["w1"].reason
    assert votes["w2"].yes and d1.labels == {"zone": "vault"}
    driver.turn([Reconfigure(OPEN, {"a": 4}, {})])  # no labels told: they stay
    assert d1.labels == {"zone": "vault"}


def test_other_inputs_go_on_to_the_node_it_wraps():
    stepped = []

    class Inner:
        def step(self, now, event):
            stepped.append(event)

        def get_timer(self):
            return 7.0

    wrapper = ReconfiguringNode(Inner(), node=None, executors=None)
    wrapper.step(1.0, "an input")
    assert stepped == ["an input"] and wrapper.get_timer() == 7.0 and wrapper.applied == 0


def test_the_reconfigure_of_a_reload_is_a_copy_of_the_agents_config():
    config = config_pb2.AgentConfig()
    config.policy.CopyFrom(OPEN)
    config.labels["zone"] = "open"
    agent = type("Agent", (), {"config": config, "capacities": {"a": 2},
                               "executors": {"a": "exec"}})()
    made = reconfigure_of(agent)
    config.policy.CopyFrom(CLOSED)  # the next reload changes the Agent's objects in place
    agent.capacities["a"] = 9
    config.labels["zone"] = "vault"
    assert made.policy == OPEN and dict(made.capacities) == {"a": 2}
    assert dict(made.labels) == {"zone": "open"}
    assert dict(made.executors) == {"a": "exec"}
