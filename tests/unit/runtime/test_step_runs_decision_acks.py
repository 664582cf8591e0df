"""A step result is a participant's acknowledgement of the COMMIT: the coordinator
counts it, and a participant sends a DecisionAck only when none of its results reached
the coordinator in time (an in-process agent; messages are recorded, not sent)."""

from __future__ import annotations

import asyncio
import random

from fedorch.core.negotiation.coordinator import ConsensusOptions, Coordinator, Phase
from fedorch.core.negotiation.messages import Accepted, Ballot, DecisionAck, Value, VoteIn
from fedorch.core.workflow.placement import Placement
from fedorch.core.workflow.progress import Progress
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2, status_pb2
from fedorch.runtime import step_runs
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.store.store import WorkflowRow
from google.protobuf import json_format

SPEC = json_format.ParseDict({"name": "one", "steps": [{"id": "s", "capability": "x"}]},
                             spec_pb2.WorkflowSpec())
KEY = ("beta.1", 1)


def _recording(agent: Agent) -> tuple[list, list]:
    """Record what the agent would send: (consensus messages, peer deliveries)."""
    consensus: list = []
    delivered: list = []
    agent.consensus.send = lambda to, msg: consensus.append((to, msg))  # type: ignore

    async def deliver(domain, method, **payload):
        delivered.append((domain, method))
        return peer_pb2.Ack(ok=True)

    agent.deliver = deliver  # type: ignore[method-assign]
    return consensus, delivered


def _running_here(agent: Agent) -> Active:
    row = WorkflowRow(id=KEY[0], name="one", coordinator="beta", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"s": "alpha"}, round=1,
                      created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, row.placement, "alpha"), fresh=True)
    agent.active[row.id] = active
    return active


def _timer_watched(agent: Agent) -> asyncio.Event:
    """An event set once the participant's DecisionAck timer has run (whatever it
    decided)."""
    fired = asyncio.Event()
    original = agent.participation.runs._acknowledge

    def acknowledge(coordinator, key):
        original(coordinator, key)
        fired.set()

    agent.participation.runs._acknowledge = acknowledge  # type: ignore[method-assign]
    return fired


async def test_no_decision_ack_when_a_result_reached_the_coordinator(
        agent: Agent, monkeypatch) -> None:
    monkeypatch.setattr(step_runs, "ACK_AFTER_S", 60.0)
    consensus, delivered = _recording(agent)
    active = _running_here(agent)
    participation = agent.participation
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        participation.acknowledge_later("beta", KEY)
        assert consensus == []  # not at once
        result = peer_pb2.StepResult(workflow_id=KEY[0], step_id="s", attempt=1,
                                     domain="alpha", state=status_pb2.STEP_STATE_SUCCEEDED)
        await participation.runs._send_result(active, "beta", result, True)
    assert delivered == [("beta", "ReportStep")]
    assert KEY[0] not in participation.runs._acks_due  # the DecisionAck is no longer due
    assert consensus == []


async def test_a_decision_ack_when_no_result_came_in_time(agent: Agent, monkeypatch) -> None:
    monkeypatch.setattr(step_runs, "ACK_AFTER_S", 0.0)
    consensus, _ = _recording(agent)
    _running_here(agent)
    fired = _timer_watched(agent)
    agent.participation.acknowledge_later("beta", KEY)
    await asyncio.wait_for(fired.wait(), 5)
    assert consensus == [("beta", DecisionAck(KEY, "alpha"))]


async def test_a_decision_ack_also_when_the_workflow_ended_here_first(
        agent: Agent, monkeypatch) -> None:
    """Its steps never ran (skipped after an upstream failure, say): only the
    DecisionAck tells the coordinator that this participant holds the COMMIT."""
    monkeypatch.setattr(step_runs, "ACK_AFTER_S", 0.0)
    consensus, _ = _recording(agent)
    fired = _timer_watched(agent)
    agent.participation.acknowledge_later("beta", KEY)  # not active here (ended)
    await asyncio.wait_for(fired.wait(), 5)
    assert consensus == [("beta", DecisionAck(KEY, "alpha"))]


async def test_the_coordinator_counts_a_result_as_an_acknowledgement(agent: Agent) -> None:
    placement = {"s": "p1"}
    core = Coordinator("alpha.wf", placer=lambda excluded: Placement(dict(placement), {}),
                       max_rounds=1, prepare_timeout_s=5.0,
                       consensus=ConsensusOptions("alpha", random.Random(1)))
    core.start(0.0)
    votes = (VoteIn(1, "p1", True, "", b"vote"),)
    core.receive_vote(1.0, votes[0])
    for acceptor in core.tx().acceptors:
        core.receive_paxos(2.0, Accepted(("alpha.wf", 1), Ballot(0, "alpha"), acceptor,
                                         Value(True, votes)))
    core.next_actions()
    assert core.phase is Phase.COMMITTED and core.awaiting_acks()
    row = WorkflowRow(id="alpha.wf", name="w", coordinator="alpha", state="RUNNING",
                      spec=b"", placement=dict(placement), round=1)
    driver = agent.coordination._driver(Active(row), spec_pb2.WorkflowSpec(), core,
                                        paxos=True)

    await agent.participation.on_result("p1", peer_pb2.StepResult(
        workflow_id="alpha.wf", step_id="s", attempt=1, domain="p1",
        state=status_pb2.STEP_STATE_RUNNING))

    event = driver.events.get_nowait()
    driver._apply(event)
    assert not core.awaiting_acks()
