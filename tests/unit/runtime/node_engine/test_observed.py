"""What the node engine shows of its Nodes' acts (runtime/node_engine/observed.py): the
agent's counters, a log line per NO vote naming its workflow, and trace spans whose
ids are derived from what they are, so every domain names its parent's id itself."""

from __future__ import annotations

import logging
import random
from collections import deque

import pytest
from fedorch.core.node import Message, Node, StepEnded, Submit
from fedorch.core.node.records import Timing
from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime import telemetry
from fedorch.runtime.driver import NodeDriver
from fedorch.runtime.metrics import AgentMetrics
from fedorch.runtime.node_engine.observed import Observed, ObservedNode, ObservedWrites
from fedorch.runtime.telemetry import Tracing, trace_id_of
from fedorch.runtime.telemetry_sdk import span_id_of
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.unit.runtime.node_engine.test_audit import EVERYWHERE, StepClock, chain, settle
from tests.unit.runtime.test_driver import NAMES, MemoryDisk

WF = "d0.w1"


class Agent:
    """One Node behind its driver, observed as the engine observes it; step attempts end
    at once (succeeding) in the next turn."""

    def __init__(self, name: str, fed: Federation, capacities: dict[str, int]) -> None:
        self.name, self.fed = name, fed
        self.node = Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                         capacities=capacities, timing=Timing(max_rounds=1), peers=NAMES,
                         rng=random.Random(NAMES.index(name)), now=fed.clock.now)
        self.metrics = AgentMetrics()
        self.observed = Observed(name, self.node, self.metrics)
        self.inbox: deque = deque()
        self.driver = NodeDriver(ObservedNode(self.node, name, self.observed), fed.clock,
                                 ObservedWrites(MemoryDisk(), self.observed), self, self,
                                 loopback=name)

    def send(self, dst: str, msg: object) -> None:
        self.fed.agents[dst].inbox.append(Message(self.name, msg))

    def start(self, run: tuple[str, str, int]) -> None:
        self.inbox.append(StepEnded(*run, ok=True, outputs={"ran": run[1]}))

    def stop(self, run: tuple[str, str, int]) -> None:
        return None

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


class Federation:
    def __init__(self, capacities: dict[str, dict[str, int]]) -> None:
        self.clock = StepClock()
        self.agents = {n: Agent(n, self, capacities[n]) for n in NAMES}

    def settle(self) -> None:
        settle(self.agents.values(), self.clock)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing = Tracing("d0", [exporter], export_delay_ms=1)
    telemetry.install(tracing)

    def finished() -> list:
        tracing.provider.force_flush()
        return list(exporter.get_finished_spans())

    yield finished
    telemetry.install(None)
    tracing.shutdown()


def _named(spans: list, name: str) -> list:
    return [s for s in spans if s.name == name]


def test_a_workflow_is_one_trace_each_span_once_under_the_parent_its_id_names(spans):
    fed = Federation({"d0": {"a": 2}, "d1": {"a": 2}, "d2": {"a": 2}})
    fed.agents["d0"].inbox.append(Submit(WF, chain(), None, dict(EVERYWHERE)))
    fed.settle()
    made = spans()
    assert {s.context.trace_id for s in made} == {trace_id_of(WF)}
    assert len({s.context.span_id for s in made}) == len(made)  # none made twice
    (submit,) = _named(made, "fedorch.submit")
    assert submit.parent is None
    # One round span (the row written again after the commit opens no second one).
    (round_,) = _named(made, "fedorch.negotiation.round")
    assert round_.attributes["fedorch.outcome"] == "committed"
    assert round_.parent.span_id == submit.context.span_id
    votes = _named(made, "fedorch.negotiation.vote")
    assert len(votes) == 3 and {v.attributes["fedorch.verdict"] for v in votes} == {"yes"}
    assert all(v.parent.span_id == round_.context.span_id for v in votes)
    # A result taken from another domain: under the attempt that made it, there.
    handoffs = {(s.attributes["fedorch.step"], s.attributes["fedorch.from"]): s
                for s in _named(made, "fedorch.step.result")}
    assert {("s0", "d0"), ("s1", "d1"), ("s2", "d2")} <= set(handoffs)
    s1 = handoffs[("s1", "d1")]
    assert s1.parent.span_id == span_id_of(WF, ("attempt", "d1", "s1", 1))
    assert fed.agents["d0"].metric("fedorch_decisions_total", outcome="commit") == 1
    assert fed.agents["d0"].metric("fedorch_workflows_finished_total",
                                   state="SUCCEEDED") == 1
    assert fed.agents["d1"].metric("fedorch_votes_total", vote="yes") == 1


def test_a_no_vote_is_logged_naming_its_workflow_counted_and_traced_once(spans, caplog):
    fed = Federation({"d0": {"a": 2}, "d1": {"b": 2}, "d2": {"a": 2}})
    with caplog.at_level(logging.INFO, logger="fedorch.node_engine"):
        fed.agents["d0"].inbox.append(Submit(WF, chain(), None, dict(EVERYWHERE)))
        fed.settle()
    refused = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("refused")]
    assert refused == [f"refused {WF} round 1 from d0: capability: this domain does not"
                       " offer 'a'"]
    d1 = fed.agents["d1"]
    assert d1.metric("fedorch_votes_total", vote="no") == 1
    # The same NO sent again (a PREPARE repeated) is neither logged nor counted again.
    vote = next(iter(d1.observed._noes))
    d1.observed.no_vote("d0", type("Vote", (), {"key": vote, "reason": "again"})())
    assert d1.metric("fedorch_votes_total", vote="no") == 1
    made = spans()
    noes = [v for v in _named(made, "fedorch.negotiation.vote")
            if v.attributes["fedorch.verdict"] == "no"]
    assert [v.attributes["fedorch.round"] for v in noes] == [1]
    # The round's ABORT is held until the workflow's next move: here its end.
    (round_,) = _named(made, "fedorch.negotiation.round")
    assert round_.attributes["fedorch.outcome"] == "aborted"
    assert "does not offer" in round_.attributes["fedorch.reason"]
    assert fed.agents["d0"].metric("fedorch_decisions_total", outcome="abort") == 1
    assert fed.agents["d0"].metric("fedorch_workflows_finished_total",
                                   state="ABORTED") == 1
