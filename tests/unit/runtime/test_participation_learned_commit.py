"""A participant applies a learned COMMIT with the PREPARE it voted YES on from memory,
not read back from its store, and reads nothing else of the workflow either (a PREPARE no
longer in memory still comes from disk, and the workflow with it), and
writes the COMMIT it learned in the same write as the set-up of its steps (an in-process
agent; its vote and the decision are driven by hand)."""

from __future__ import annotations

import asyncio
import contextlib

from fedorch.core.negotiation.messages import Accept, Accepted, Ballot, TxInfo, Value, VoteIn
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2, status_pb2
from fedorch.runtime import votes as votes_module
from fedorch.runtime.agent import Agent
from fedorch.runtime.executors.base import StepInvocation, StepOutcome
from google.protobuf import json_format

from tests.submissions import signed
from tests.unit.runtime import test_coordination_decision_write as commit_write

SPEC = json_format.ParseDict({"name": "one", "steps": [{"id": "s1", "capability": "x"}]},
                             spec_pb2.WorkflowSpec())


async def _vote_yes(agent: Agent, workflow_id: str) -> TxInfo:
    request = peer_pb2.PrepareRequest(
        workflow_id=workflow_id, round=1, spec=SPEC, steps=["s1"], placement={"s1": "alpha"},
        coordinator_endpoint="127.0.0.1:2", lease_ms=30_000, acceptors=["alpha", "beta", "gamma"],
        submission=signed(SPEC))
    envelope = await agent.participation.prepare("beta", request)
    assert peer_pb2.Body.FromString(envelope.body).vote.yes
    return TxInfo(workflow_id, 1, "beta", ("alpha",), ("alpha", "beta", "gamma"))


def _no_delivery(agent: Agent) -> None:
    def deliver(domain, method, **payload):  # the step's result is not sent anywhere
        async def nothing():
            return None
        return nothing()

    agent.deliver = deliver  # type: ignore[method-assign]


async def _apply_commit(agent: Agent, tx: TxInfo, no_reads=None) -> None:
    """Apply a learned COMMIT of `tx`; with `no_reads` (pytest's monkeypatch), any read
    of the store meanwhile fails the test."""
    _no_delivery(agent)
    with no_reads.context() if no_reads else contextlib.nullcontext() as patch:
        if patch is not None:
            _forbid_reads(agent, patch)
        async with asyncio.TaskGroup() as tg:
            agent._tg = tg  # the step run the set-up starts is this test's
            await agent.participation.apply_decision(tx.key, Value(True, ()), tx)
    assert (await agent.store.get_workflow(tx.workflow_id)).state == "RUNNING"
    assert await agent.store.runs_of(tx.workflow_id) != []  # its step here was started


def _forbid_reads(agent: Agent, monkeypatch) -> None:
    """The set-up of a COMMIT whose PREPARE came in this incarnation reads nothing."""
    for name in ("get_hold_tx", "get_workflow_with_steps", "get_workflow", "get_steps"):
        async def no_read(*args, name=name):
            raise AssertionError(f"{name} read the store")
        monkeypatch.setattr(agent.store, name, no_read)


async def test_the_commit_is_set_up_from_the_prepare_in_memory(worker: Agent,
                                                               monkeypatch) -> None:
    tx = await _vote_yes(worker, "beta.1")
    await _apply_commit(worker, tx, no_reads=monkeypatch)
    assert worker.participation._hold_txs == {}  # used once, then let go


async def test_a_result_that_came_before_the_commit_is_taken_from_memory(
        worker: Agent, monkeypatch) -> None:
    """s1 runs at beta, s2 here after it: s1's result comes before our COMMIT. The
    set-up reads nothing and still finds it, so s2 starts."""
    spec = json_format.ParseDict({"name": "two", "steps": [
        {"id": "s1", "capability": "x"},
        {"id": "s2", "capability": "x", "needs": ["s1"]}]}, spec_pb2.WorkflowSpec())
    placement = {"s1": "beta", "s2": "alpha"}
    request = peer_pb2.PrepareRequest(
        workflow_id="beta.7", round=1, spec=spec, steps=["s2"], placement=placement,
        coordinator_endpoint="127.0.0.1:2", lease_ms=30_000,
        acceptors=["alpha", "beta", "gamma"], submission=signed(spec))
    assert peer_pb2.Body.FromString(
        (await worker.participation.prepare("beta", request)).body).vote.yes
    tx = TxInfo("beta.7", 1, "beta", ("alpha", "beta"), ("alpha", "beta", "gamma"))
    result = peer_pb2.StepResult(workflow_id="beta.7", step_id="s1", attempt=1, domain="beta",
                                 state=status_pb2.STEP_STATE_SUCCEEDED)
    assert (await worker.participation.on_result("beta", result)).ok
    await _apply_commit(worker, tx, no_reads=monkeypatch)  # s2 was started


async def test_a_prepare_no_longer_in_memory_is_read_from_disk(worker: Agent,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(votes_module, "HOLD_TX_MEMORY", 1)
    first = await _vote_yes(worker, "beta.1")
    await _vote_yes(worker, "beta.2")  # pushes beta.1 out of memory
    assert list(worker.participation._hold_txs) == [("beta.2", 1)]
    await _apply_commit(worker, first)


class _Parked:
    """An executor whose step runs until the test lets it go."""

    def __init__(self) -> None:
        self.begun = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, inv: StepInvocation) -> StepOutcome:
        self.begun.set()
        await self.release.wait()
        return StepOutcome.success({})


@contextlib.asynccontextmanager
async def _parked_steps(agent: Agent):
    """The agent's step runs belong to this block; the one step that starts in it is
    parked until the block's body is done (so it writes nothing meanwhile)."""
    _no_delivery(agent)
    executor = _Parked()
    agent.executors["x"] = executor  # type: ignore[assignment]
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        yield
        await asyncio.wait_for(executor.begun.wait(), 10)
        executor.release.set()


async def test_a_learned_commit_is_written_with_the_set_up_of_our_steps(worker: Agent) -> None:
    """One write makes the COMMIT durable here and sets our step up (its start record
    with it): the learned log and the committed reservation land together or not at all."""
    tx = await _vote_yes(worker, "beta.1")
    before = worker.store.writes
    async with _parked_steps(worker):
        await worker.consensus.learn(tx.key, Value(True, ()), tx, heard=True)
        assert worker.store.writes == before + 1
        assert await worker.store.get_learned(*tx.key) is not None
        assert await worker.store.runs_of("beta.1") == [("s1", 1, "running")]


async def test_the_coordinators_own_steps_start_in_the_write_of_its_decision(
        worker: Agent) -> None:
    """alpha coordinates alpha.wf and runs s1 of it: its COMMIT decision's one write also
    commits its own reservation and starts s1 (no set-up write of its own after it)."""
    placement = {"s1": "alpha", "s2": "p2"}
    request = peer_pb2.PrepareRequest(
        workflow_id="alpha.wf", round=1, spec=commit_write.SPEC, steps=["s1"],
        placement=placement, coordinator_endpoint="127.0.0.1:1", lease_ms=30_000,
        acceptors=["alpha", "p2"], submission=signed(commit_write.SPEC))
    envelope = await worker.participation.prepare("alpha", request)
    assert peer_pb2.Body.FromString(envelope.body).vote.yes
    core, action = commit_write.committed_core(placement)
    active = commit_write.negotiating(worker, placement)
    before = worker.store.writes
    async with _parked_steps(worker):
        await worker.coordination.decisions.persist(active, commit_write.SPEC, core, action,
                                                    paxos=True)
        assert worker.store.writes == before + 1
        assert [r.state for r in await worker.store.list_reservations()] == ["committed"]
        assert await worker.store.runs_of("alpha.wf") == [("s1", 1, "running")]
        assert (await worker.store.get_workflow("alpha.wf")).state == "RUNNING"
    assert worker.participation._hold_txs == {}


async def test_a_commit_learned_from_its_accept_is_one_write_with_the_acceptor_record(
        worker: Agent) -> None:
    """With three acceptors, the coordinator's word and our own acceptance are a
    majority: the acceptor record, the learned COMMIT and the set-up of our step are one
    write, and the answer to the coordinator leaves after it."""
    tx = await _vote_yes(worker, "beta.1")
    value = Value(True, (VoteIn(1, "alpha", True, "", commit_write._envelope("alpha")),))
    accept = Accept(tx, Ballot(0, "beta"), value, proposer_accepted=True)
    before = worker.store.writes
    async with _parked_steps(worker):
        reply = await worker.consensus.receive("beta", accept, rpc=True)
        assert reply == Accepted(tx.key, Ballot(0, "beta"), "alpha", value)
        # Learned and on disk before the answer leaves, in the record's own write.
        assert worker.consensus._learned.get(tx.key) == "COMMIT"
        assert worker.store.writes == before + 1
        record = await worker.store.get_acceptor_record(*tx.key)
        assert record is not None and record.accepted == (0, "beta")
        assert (await worker.store.get_learned(*tx.key))[0] == "COMMIT"
        assert await worker.store.runs_of("beta.1") == [("s1", 1, "running")]
    assert worker.consensus.termination.in_doubt() == []


async def test_an_accept_that_teaches_nothing_yet_writes_the_record_alone(
        worker: Agent) -> None:
    tx = await _vote_yes(worker, "beta.1")
    value = Value(True, (VoteIn(1, "alpha", True, "", commit_write._envelope("alpha")),))
    before = worker.store.writes
    reply = await worker.consensus.receive("beta", Accept(tx, Ballot(0, "beta"), value),
                                           rpc=True)
    assert reply == Accepted(tx.key, Ballot(0, "beta"), "alpha", value)
    assert worker.store.writes == before + 1
    assert await worker.store.get_acceptor_record(*tx.key) is not None
    assert await worker.store.get_learned(*tx.key) is None  # one acceptance of three
    assert worker.consensus.termination.in_doubt() == [tx.key]
