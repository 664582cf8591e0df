"""A turn as one pass through the node engine's layers (runtime/node_engine/layer.py):
the driver hands the layers a turn's inputs in one `step_batch`, and what comes out
(messages, writes, audit records, counters, refusals) is what stepping the same inputs
one at a time through the same layers gives; a refusal in the middle of a turn refuses
that input alone."""

from __future__ import annotations

import random
from collections import deque

import pytest
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.node import Message, Node, StepEnded, Submit, Tick
from fedorch.core.node.records import Timing
from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.driver import DriverStopped, NodeDriver
from fedorch.runtime.metrics import AgentMetrics
from fedorch.runtime.node_engine.audit import (
    AuditedNode,
    AuditedWrites,
    NodeAuditLog,
    Records,
)
from fedorch.runtime.node_engine.boundary import AuthorizedNode
from fedorch.runtime.node_engine.egress import EgressNode
from fedorch.runtime.node_engine.layer import NodeLayer, StepBroken
from fedorch.runtime.node_engine.observed import Observed, ObservedNode, ObservedWrites
from fedorch.runtime.node_engine.reload import Reconfigure, ReconfiguringNode
from fedorch.runtime.node_engine.write_behind import StorageGate, WriteFault
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.runtime.node_engine.test_audit import (
    EVERYWHERE,
    FakeAudit,
    StepClock,
    Store,
    chain,
    signed,
)
from tests.unit.runtime.node_values import same
from tests.unit.runtime.test_driver import NAMES, MemoryDisk

WORKFLOWS = ("d0.w1", "d0.w2", "d1.w3")


class OneByOne:
    """The layers as a driver saw them before: `step` only, so the driver steps the
    turn one input at a time down the same layers."""

    def __init__(self, stack: object) -> None:
        self.step = stack.step
        self.ready = stack.ready
        self.advance = stack.advance
        self.get_timer = stack.get_timer


class Agent:
    """One Node inside the layers the engine builds (engine.py `_build`), in its order;
    `batch`: stepped a turn at a time (step_batch), else one input at a time."""

    def __init__(self, name: str, fed: Federation, batch: bool) -> None:
        self.name, self.fed = name, fed
        self.node = node = Node(
            name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 2},
            timing=Timing(max_rounds=2), peers=NAMES, rng=random.Random(NAMES.index(name)),
            now=fed.clock.now)
        self.disk = MemoryDisk()
        self.audit = FakeAudit()
        self.log = NodeAuditLog(
            Records(name, node, node.state.results, policy_sha256="p" * 64),
            self.audit, Store(), now_ms=fed.clock.wall_ms)
        self.metrics = AgentMetrics()
        self.observed = Observed(name, node, self.metrics)
        self.reasons: list[str] = []  # the authority table's refusals, told
        self.refusals: list[tuple[object, str]] = []  # the driver's, with the input
        self.store_fault: str | None = None  # agent.db cannot be written (the gate's NO)
        self.applied = 0
        self.gate = AuthorizedNode(node, on_refused=self.reasons.append)
        self.storage = StorageGate(self.gate, node, WriteFault(), name, self.send,
                                   database_fault=lambda: self.store_fault)
        self.reload = ReconfiguringNode(self.storage, node, self, on_applied=self._applied)
        stack = ObservedNode(AuditedNode(EgressNode(self.reload, node, name, lambda ds: {}),
                                         name, self.log), name, self.observed)
        self.driver = NodeDriver(
            stack if batch else OneByOne(stack), fed.clock,
            ObservedWrites(AuditedWrites(self.disk, self.log), self.observed), self, self,
            on_refused=lambda event, e: self.refusals.append((event, str(e))),
            loopback=name)
        self.inbox: deque = deque()

    def _applied(self) -> None:
        self.applied += 1

    # Transport, Executors (and the NodeExecutors' `reconfigure`)
    def send(self, dst: str, msg: object) -> None:
        self.fed.sent.append((self.name, dst, msg))
        self.fed.agents[dst].inbox.append(Message(self.name, msg))
        if len(self.fed.sent) in self.fed.forged_at:
            # The third domain sends the same message: as a rule, without authority.
            third = next(n for n in NAMES if n not in (self.name, dst))
            self.fed.agents[dst].inbox.append(Message(third, msg))

    def start(self, run: tuple[str, str, int]) -> None:
        self.inbox.append(StepEnded(*run, ok=True, outputs={"ran": run[1]}))

    def stop(self, run: tuple[str, str, int]) -> None:
        return None

    def reconfigure(self, executors: object) -> None:
        return None

    def outcome(self) -> tuple:
        """Everything the layers and the Node did that anyone could see."""
        votes = [self.metrics.registry.get_sample_value("fedorch_votes_total", {"vote": v})
                 for v in ("yes", "no")]
        return (self.disk.calls, self.audit.records, self.log.take()[1],
                dict(self.driver.refused), self.refusals, self.reasons,
                dict(self.gate.refused), self.storage.refused, self.applied,
                self.driver.inputs, self.driver.turns, votes)


class Federation:
    """Three agents turned in lockstep by a plan: how many inputs each turn takes
    (`cuts`, in turn), which sends a third domain forges (`forged_at`: the n-th send
    overall), the turns with a Reconfigure in their middle, the turns during which
    agent.db cannot be written."""

    def __init__(self, batch: bool, cuts: list[int], forged_at: set[int],
                 reloads: set[int], faults: set[int]) -> None:
        self.clock = StepClock()
        self.sent: list[tuple[str, str, object]] = []
        self.forged_at = forged_at
        self.cuts, self.reloads, self.faults = cuts, reloads, faults
        self.agents = {n: Agent(n, self, batch) for n in NAMES}

    def run(self) -> None:
        spec = chain()
        for i, wf in enumerate(WORKFLOWS):
            self.agents[wf[:2]].inbox.append(
                Submit(wf, spec, signed(spec), dict(EVERYWHERE) if i % 2 == 0 else
                       {"s0": "d2", "s1": "d0", "s2": "d1"}))
        turn = 0
        for _ in range(5_000):
            busy = False
            for a in self.agents.values():
                if not (a.inbox or a.driver.looped):
                    continue
                take = min(len(a.inbox), self.cuts[turn % len(self.cuts)])
                inputs = [a.inbox.popleft() for _ in range(take)]
                if turn in self.reloads:
                    inputs.insert(len(inputs) // 2, Reconfigure(
                        config_pb2.Policy(accept_from=["*"]), {"a": 1 + turn % 2}, {}))
                a.store_fault = "disk I/O error" if turn in self.faults else None
                a.driver.turn(inputs)
                turn += 1
                busy = True
            if busy:
                continue
            deadlines = [d for a in self.agents.values()
                         if (d := a.driver.next_deadline()) is not None]
            if not deadlines or min(deadlines) > self.clock.now + 120:
                return
            self.clock.now = max(self.clock.now, min(deadlines))
            for a in self.agents.values():
                if (d := a.driver.next_deadline()) is not None and d <= self.clock.now:
                    a.inbox.append(Tick())
        raise AssertionError("the federation never settled")

    def outcome(self) -> tuple:
        return self.sent, {n: a.outcome() for n, a in self.agents.items()}


def both(cuts: list[int], forged_at: set[int], reloads: set[int] = frozenset(),
         faults: set[int] = frozenset()) -> tuple[Federation, Federation]:
    feds = []
    for batch in (True, False):
        fed = Federation(batch, cuts, set(forged_at), set(reloads), set(faults))
        fed.run()
        feds.append(fed)
    return feds[0], feds[1]


def test_a_turn_with_refusals_in_its_middle_does_what_one_input_at_a_time_does():
    batch, one = both([6, 3, 8], forged_at={1, 2, 4, 7, 9, 12, 15})
    same(batch.outcome(), one.outcome(), "outcome")
    refused = [a.refusals for a in batch.agents.values()]
    assert any(refused), "the forged messages were refused"
    # Refusals came in the middle of turns of several inputs, and the turns went on:
    # every workflow ended at its coordinator.
    for wf in WORKFLOWS:
        row = batch.agents[wf[:2]].disk.disk.rows[wf]
        assert row.state.name in ("SUCCEEDED", "ABORTED"), (wf, row.state)
    assert sum(a.driver.inputs for a in batch.agents.values()) > \
        sum(a.driver.turns for a in batch.agents.values())


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cuts=st.lists(st.integers(1, 9), min_size=1, max_size=6),
       forged_at=st.sets(st.integers(1, 60), max_size=8),
       reloads=st.sets(st.integers(0, 40), max_size=3),
       faults=st.sets(st.integers(0, 40), max_size=4))
def test_a_turn_in_one_pass_gives_what_its_inputs_one_at_a_time_give(cuts, forged_at,
                                                                     reloads, faults):
    batch, one = both(cuts, forged_at, reloads, faults)
    same(batch.outcome(), one.outcome(), "outcome")


# ---- the innermost loop, alone -----------------------------------------------------


class Recording:
    """A Node stand-in: the inputs it stepped; one of them breaks it or is refused."""

    def __init__(self, refused: object = None, broken: object = None) -> None:
        self.stepped: list[object] = []
        self.refused, self.broken = refused, broken

    def step(self, now: float, event: object) -> None:
        if event == self.refused:
            raise RemoteProtocolError(f"no: {event}")
        if event == self.broken:
            raise KeyError(event)
        self.stepped.append(event)


class Kept(NodeLayer):
    """A layer with a `step` rule and no batch rule of its own: it keeps each input."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)
        self.kept: list[object] = []

    def step(self, now: float, event: object) -> None:
        self.kept.append(event)
        self.inner.step(now, event)


def test_a_refused_input_in_the_middle_of_a_batch_refuses_it_alone():
    node = Recording(refused="b")
    refused: list[tuple[object, str]] = []
    layer = Kept(node)
    layer.step_batch(0.0, ["a", "b", "c"], lambda e, err: refused.append((e, str(err))))
    assert node.stepped == ["a", "c"] and layer.kept == ["a", "b", "c"]
    assert refused == [("b", "no: b")]


def test_a_broken_input_stops_the_batch_naming_it():
    node = Recording(broken="b")
    with pytest.raises(StepBroken) as broken:
        Kept(node).step_batch(0.0, ["a", "b", "c"], lambda e, err: None)
    assert broken.value.input == "b" and type(broken.value.__cause__) is KeyError
    assert node.stepped == ["a"]


def test_a_layer_without_a_step_rule_hands_the_batch_on_in_one_call():
    inner = Kept(Recording())
    outer = NodeLayer(inner)
    assert outer.step_batch == inner.step_batch  # inner's own, not a loop of outer's
    outer.step_batch(0.0, ["a", "b"], lambda e, err: None)
    assert inner.kept == ["a", "b"]


def test_the_driver_names_the_input_that_broke_a_turn():
    class Clock:
        def monotonic(self) -> float:
            return 0.0

    node = Recording(broken="b")
    node.ready = node.advance = node.get_timer = None
    driver = NodeDriver(Kept(node), Clock(), None, None, None)
    with pytest.raises(DriverStopped) as stopped:
        driver.step_all(["a", "b", "c"])
    assert stopped.value.input == "b" and "KeyError" in str(stopped.value)
    assert node.stepped == ["a"]


def test_the_authority_table_reads_the_node_as_the_inputs_before_it_left_it(monkeypatch):
    """A message the table allows only once an earlier input of the same turn is
    stepped (a step's result after the decision that commits it): allowed in one turn
    after that input, refused before it."""
    from fedorch.core.identity.authority import Refused
    from fedorch.core.node import authority

    def check(node, src, msg):
        if msg == "result" and Message("d0", "decision") not in node.stepped:
            raise Refused("not_committed", "no decision stepped yet")

    monkeypatch.setattr(authority, "check", check)
    refused: list[object] = []
    node = Recording()
    gate = AuthorizedNode(node)
    gate.step_batch(0.0, [Message("d0", "decision"), Message("d1", "result")],
                    lambda e, err: refused.append(e))
    assert node.stepped == [Message("d0", "decision"), Message("d1", "result")]
    assert refused == []
    node = Recording()
    gate = AuthorizedNode(node)
    gate.step_batch(0.0, [Message("d1", "result"), Message("d0", "decision"), Tick()],
                    lambda e, err: refused.append(e))
    assert node.stepped == [Message("d0", "decision"), Tick()]
    assert refused == [Message("d1", "result")] and gate.refused == {"not_committed": 1}
