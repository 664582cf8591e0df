"""The node engine's audit log (runtime/node_engine/audit.py): the records of its acts,
made from what node.db committed; none for a write that failed, none again for
what a restored Node re-decides; NO votes as they leave; one transaction per batch, one
ACTS record per workflow in it."""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque

import pytest
from fedorch.core.node import Message, Node, StepEnded, Submit, Tick
from fedorch.core.node.records import Timing
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.runtime.driver import NodeDriver
from fedorch.runtime.node_engine import audit as audit_module
from fedorch.runtime.node_engine.attestations import Attestations
from fedorch.runtime.node_engine.audit import (
    AuditedNode,
    AuditedWrites,
    NodeAuditLog,
    Records,
    acts_texts,
    outputs_sha256,
    spec_sha256,
)
from fedorch.runtime.node_engine.reload import Reconfigure
from fedorch.runtime.store.audit_table import ACTS

from tests.unit.runtime.test_driver import NAMES, WAIT_S, MemoryDisk


class StepClock:
    """The Node's monotonic time and the records' wall time, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return int(self.now * 1000)


class FakeAudit:
    """runtime/audit.Audit's `record` and `record_acts`: the records it was asked to
    make, and the acts they hold (an ACTS record read as audit_table.acts reads it:
    each act's canonical JSON decoded), in order."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict]] = []
        self.entries: list[tuple[str, str, dict]] = []

    def record(self, kind: str, workflow_id: str, **data: object) -> tuple:
        self.records.append((kind, workflow_id, data))
        if kind == ACTS:
            self.entries.extend((a["kind"], workflow_id, a["data"]) for a in data["acts"])
        else:
            self.entries.append((kind, workflow_id, data))
        return (kind, workflow_id, data)

    def record_acts(self, workflow_id: str, acts: list[str]) -> tuple:
        return self.record(ACTS, workflow_id, acts=[json.loads(a) for a in acts])

    def kinds(self, wf: str) -> list[str]:
        return [k for k, w, _ in self.entries if w == wf]

    def of(self, kind: str) -> list[dict]:
        return [d for k, _, d in self.entries if k == kind]


class Store:
    """Store.apply: each batch is one transaction."""

    def __init__(self) -> None:
        self.transactions: list[list] = []

    async def apply(self, statements: list) -> list[int]:
        self.transactions.append(list(statements))
        return [1] * len(statements)


class Agent:
    """One Node behind its driver, its Durable and stepped node audited as the engine
    does; step attempts end at once (succeeding) in the next turn."""

    def __init__(self, name: str, fed: Federation, capacities: dict[str, int],
                 disk: MemoryDisk | None = None) -> None:
        self.name, self.fed = name, fed
        self.disk = disk or MemoryDisk()
        keys = fed.keys  # (sign, verify) of each domain: evidence for proofs, or None
        self.node = Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                         capacities=capacities, timing=Timing(max_rounds=1), peers=NAMES,
                         rng=random.Random(NAMES.index(name)), now=fed.clock.now,
                         disk=self.disk.disk if disk is not None else None,
                         sign_vote=keys[name][0] if keys else None,
                         verify_vote=keys[name][1] if keys else None)
        self.audit = FakeAudit()
        self.evidence = Attestations(name, self.node, *keys[name], outputs_sha256) \
            if keys else None
        self.log = NodeAuditLog(
            Records(name, self.node, self.node.state.results, policy_sha256="p" * 64,
                    evidence=self.evidence),
            self.audit, Store(), now_ms=fed.clock.wall_ms)
        self.inbox: deque = deque()
        self.driver = NodeDriver(AuditedNode(self.node, name, self.log), fed.clock,
                                 AuditedWrites(self.disk, self.log), self, self,
                                 loopback=name)

    # Transport and Executors ports
    def send(self, dst: str, msg: object) -> None:
        self.fed.agents[dst].inbox.append(Message(self.name, msg))

    def start(self, run: tuple[str, str, int]) -> None:
        self.inbox.append(StepEnded(*run, ok=True, outputs={"ran": run[1]}))

    def stop(self, run: tuple[str, str, int]) -> None:
        return None


def settle(agents, clock: StepClock, at_rest=lambda: None) -> None:
    """Turn each driver of `agents` with its inbox until none has input, moving `clock`
    to the next deadline while any is within a minute; then `at_rest()`."""
    agents = list(agents)
    for _ in range(10_000):
        busy = False
        for a in agents:
            if a.inbox or a.driver.looped:
                inputs = list(a.inbox)
                a.inbox.clear()
                a.driver.turn(inputs)
                busy = True
        if not busy:
            deadlines = [d for a in agents if (d := a.driver.next_deadline()) is not None]
            if not deadlines or min(deadlines) > clock.now + 60:
                at_rest()
                return
            clock.now = max(clock.now, min(deadlines))
            for a in agents:
                if (d := a.driver.next_deadline()) is not None and d <= clock.now:
                    a.inbox.append(Tick())
    raise AssertionError("the federation never settled")


class Federation:
    """`keys`: each domain's (sign, verify) for its evidence (attestations.py); None:
    the Nodes' stand-in vote signers and no evidence recorded."""

    def __init__(self, capacities: dict[str, dict[str, int]],
                 keys: dict[str, tuple] | None = None) -> None:
        self.keys = keys
        self.clock = StepClock()
        self.agents = {n: Agent(n, self, capacities[n]) for n in NAMES}

    def settle(self) -> None:
        """Turn every agent with input until none has any (timers included)."""
        settle(self.agents.values(), self.clock,
               at_rest=lambda: [a.log.take() for a in self.agents.values()])


def chain() -> spec_pb2.WorkflowSpec:
    return spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s0", capability="a"),
        spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"]),
        spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])


def signed(spec: spec_pb2.WorkflowSpec) -> spec_pb2.SignedSpec:
    return spec_pb2.SignedSpec(spec=spec.SerializeToString(), principal="alice",
                               public_key=b"k" * 32, signature=b"c" * 64,
                               request_id="r1", issued_at_ms=1, coordinator="d0")


EVERYWHERE = {"s0": "d0", "s1": "d1", "s2": "d2"}


def test_each_node_records_its_part_of_a_workflow_that_succeeds():
    fed = Federation({n: {"a": 2} for n in NAMES})
    spec = chain()
    fed.agents["d0"].inbox.append(Submit("d0.w1", spec, signed(spec), dict(EVERYWHERE)))
    fed.settle()
    d0 = fed.agents["d0"].audit
    assert fed.agents["d0"].disk.disk.rows["d0.w1"].state is WorkflowState.SUCCEEDED
    kinds = d0.kinds("d0.w1")
    assert kinds[0] == "submitted" and kinds.count("submitted") == 1, kinds
    assert kinds.count("decision") == 1 and kinds.count("workflow_ended") == 1, kinds
    assert kinds.count("vote") == 1 and kinds.count("step_started") == 1, kinds
    assert kinds.count("step_ended") == 1 and kinds.count("result_received") == 2, kinds
    assert kinds.index("decision") < kinds.index("step_started") \
        < kinds.index("workflow_ended")
    submitted = d0.of("submitted")[0]
    assert submitted["principal"] == "alice" and submitted["request_id"] == "r1"
    assert submitted["client_signature"] and submitted["attestation"] is None
    assert d0.of("decision")[0] == {"round": 1, "outcome": "COMMIT", "reason": "",
                                    "certificate": None}
    ended = d0.of("workflow_ended")[0]
    assert ended["state"] == "SUCCEEDED" and ended["reason"] == ""
    assert {r["step"]: (r["domain"], r["state"]) for r in d0.of("result_received")} == {
        "s1": ("d1", "SUCCEEDED"), "s2": ("d2", "SUCCEEDED")}
    for name, step in (("d1", "s1"), ("d2", "s2")):
        audit = fed.agents[name].audit
        kinds = audit.kinds("d0.w1")
        assert "submitted" not in kinds and "workflow_ended" not in kinds, (name, kinds)
        vote = audit.of("vote")[0]
        assert (vote["yes"], vote["steps"], vote["coordinator"], vote["round"]) == (
            True, [step], "d0", 1)
        assert vote["policy_sha256"] == "p" * 64 and len(vote["spec_sha256"]) == 64
        assert [(d["step"], d["attempt"]) for d in audit.of("step_started")] == [(step, 1)]
        assert [(d["step"], d["state"]) for d in audit.of("step_ended")] == [
            (step, "SUCCEEDED")]
        assert [d["outcome"] for d in audit.of("learned")] == ["COMMIT"]


def test_a_no_vote_is_recorded_with_its_prepare_and_the_abort_with_its_reason():
    fed = Federation({"d0": {"a": 2}, "d1": {"b": 2}, "d2": {"a": 2}})
    spec = chain()
    fed.agents["d0"].inbox.append(Submit("d0.w1", spec, signed(spec), dict(EVERYWHERE)))
    fed.settle()
    no = fed.agents["d1"].audit.of("vote")
    assert len(no) == 1 and no[0]["yes"] is False and no[0]["reason"], no
    assert no[0]["steps"] == ["s1"] and no[0]["coordinator"] == "d0"
    assert len(no[0]["spec_sha256"]) == 64
    d0 = fed.agents["d0"].audit
    decision = d0.of("decision")[0]
    assert decision["outcome"] == "ABORT" and "d1" in decision["reason"], decision
    ended = d0.of("workflow_ended")[0]
    assert ended["state"] == "ABORTED" and "d1" in ended["reason"], ended
    assert "step_started" not in d0.kinds("d0.w1")


def test_a_restored_node_records_nothing_it_had_recorded():
    fed = Federation({n: {"a": 2} for n in NAMES})
    spec = chain()
    fed.agents["d0"].inbox.append(Submit("d0.w1", spec, signed(spec), dict(EVERYWHERE)))
    fed.settle()
    for name in NAMES:  # each restarts from what its disk holds
        old = fed.agents[name]
        fed.agents[name] = Agent(name, fed, {"a": 2}, disk=old.disk)
    for a in fed.agents.values():
        a.driver.flush()  # what a restored Node has to say
    fed.settle()
    for a in fed.agents.values():
        assert a.audit.entries == [], (a.name, a.audit.entries)


class FailingDisk:
    def write(self, writes) -> None:
        raise OSError("disk on fire")


def test_a_write_that_fails_makes_no_record():
    fed = Federation({n: {"a": 2} for n in NAMES})
    d0 = fed.agents["d0"]
    d0.driver.durable = AuditedWrites(FailingDisk(), d0.log)
    spec = chain()
    d0.inbox.append(Submit("d0.w1", spec, signed(spec), dict(EVERYWHERE)))
    with pytest.raises(OSError):
        d0.driver.turn(list(d0.inbox))
    assert d0.log.queued == 0
    d0.log.take()
    assert d0.audit.entries == []


class HeldStore(Store):
    """A store whose transactions wait for the test's `go`; the first may fail."""

    def __init__(self, fail_first: bool = False) -> None:
        super().__init__()
        self.go = asyncio.Event()
        self.entered = asyncio.Event()
        self.committed = asyncio.Event()
        self.fail_first = fail_first

    async def apply(self, statements: list) -> list[int]:
        self.entered.set()
        await self.go.wait()
        if self.fail_first:
            self.fail_first = False
            raise OSError("agent.db refused")
        counts = await super().apply(statements)
        self.committed.set()
        return counts

    async def until_transactions(self, n: int) -> None:
        while len(self.transactions) < n:
            self.committed.clear()
            await self.committed.wait()


async def test_what_queues_while_a_transaction_is_out_is_the_next_one():
    store = HeldStore()
    audit = FakeAudit()
    log = NodeAuditLog(None, audit, store, batch_s=0)  # type: ignore[arg-type]
    async with asyncio.TaskGroup() as tg:
        writer = tg.create_task(log.run())
        log.no_votes([("vote", "d0.w1", {"yes": False})])
        await asyncio.wait_for(store.entered.wait(), WAIT_S)
        for i in range(3):  # three turns' records while the first transaction is out
            log.no_votes([("vote", f"d0.w{i + 2}", {"yes": False})])
        store.go.set()
        await asyncio.wait_for(store.until_transactions(2), WAIT_S)
        writer.cancel()
    assert [len(t) for t in store.transactions] == [1, 3]
    assert log.transactions == 2 and log.queued == 0


async def test_a_failed_transaction_is_counted_lost_and_the_next_written():
    store = HeldStore(fail_first=True)
    log = NodeAuditLog(None, FakeAudit(), store)  # type: ignore[arg-type]
    store.go.set()
    log.no_votes([("vote", "d0.w1", {"yes": False})])
    await log.close()
    assert (log.lost, log.appended) == (1, 0)
    log.no_votes([("vote", "d0.w2", {"yes": False})])
    await log.close()
    assert (log.lost, log.appended, log.transactions) == (1, 1, 1)


async def test_records_queued_within_the_batch_window_are_one_transaction():
    store = HeldStore()
    store.go.set()
    log = NodeAuditLog(None, FakeAudit(), store, batch_s=0.05)  # type: ignore[arg-type]
    async with asyncio.TaskGroup() as tg:
        writer = tg.create_task(log.run())
        log.no_votes([("vote", "d0.w1", {"yes": False})])
        for _ in range(3):  # the writer runs (into its window) between these turns
            await asyncio.sleep(0)
            log.no_votes([("vote", "d0.w2", {"yes": False})])
        await asyncio.wait_for(store.until_transactions(1), WAIT_S)
        writer.cancel()
    # Four acts of two workflows: one transaction, one record per workflow.
    assert [len(t) for t in store.transactions] == [2]
    assert (log.appended, log.written_records, log.transactions) == (4, 2, 1)


class Inner:
    """What AuditedNode wraps: takes every input, hands out an empty Ready."""

    def __init__(self) -> None:
        self.stepped: list[object] = []

    def step(self, now: float, event: object) -> None:
        self.stepped.append(event)


def test_a_reload_changes_the_policy_hash_votes_are_recorded_with():
    fed = Federation({n: {"a": 2} for n in NAMES})
    log = fed.agents["d1"].log
    inner = Inner()
    node = AuditedNode(inner, "d1", log)
    policy = config_pb2.Policy(accept_from=["d0"])
    reload = Reconfigure(policy, {"a": 1}, {})
    node.step(0.0, reload)
    assert inner.stepped == [reload]  # passed on: the node under it applies it
    assert log.records.policy_sha256 == spec_sha256(policy) != "p" * 64


async def test_records_beyond_the_bound_are_counted_lost_and_a_stuck_stop_gives_up(
        monkeypatch):
    """agent.db takes nothing (its store retries a full disk forever): records wait up
    to MAX_QUEUED, the rest are counted lost, and a stop does not wait for ever."""
    monkeypatch.setattr(audit_module, "MAX_QUEUED", 2)
    monkeypatch.setattr(audit_module, "CLOSE_S", 0.05)
    store = HeldStore()  # never let go
    log = NodeAuditLog(None, FakeAudit(), store, batch_s=0)  # type: ignore[arg-type]
    for i in range(5):
        log.no_votes([("vote", f"d0.w{i}", {"yes": False})])
    assert (log.queued, log.lost) == (2, 3)
    await log.close()  # the two taken, stuck in the store, then given up
    assert store.entered.is_set()
    assert (log.queued, log.appended, log.lost) == (0, 0, 5)


def test_a_batch_is_one_record_per_workflow_its_acts_in_order_each_with_its_time():
    queued = [("vote", "d0.w1", {"yes": True}, 1), ("vote", "d0.w2", {"yes": False}, 1),
              ("learned", "d0.w1", {"round": 1}, 2), ("step_started", "d0.w1", {"step": "a"}, 3)]
    assert [(wf, [json.loads(t) for t in texts]) for wf, texts in acts_texts(queued)] == [
        ("d0.w1", [{"kind": "vote", "time_ms": 1, "data": {"yes": True}},
                   {"kind": "learned", "time_ms": 2, "data": {"round": 1}},
                   {"kind": "step_started", "time_ms": 3, "data": {"step": "a"}}]),
        ("d0.w2", [{"kind": "vote", "time_ms": 1, "data": {"yes": False}}])]


def test_a_workflow_settled_within_one_batch_is_one_record_per_agent():
    fed = Federation({n: {"a": 2} for n in NAMES})
    spec = chain()
    fed.agents["d0"].inbox.append(Submit("d0.w1", spec, signed(spec), dict(EVERYWHERE)))
    fed.settle()
    for name, acts in (("d0", 9), ("d1", 4), ("d2", 4)):
        records = fed.agents[name].audit.records
        assert [(kind, wf) for kind, wf, _ in records] == [(ACTS, "d0.w1")], (name, records)
        times = [a["time_ms"] for a in records[0][2]["acts"]]
        assert len(times) == acts and times == sorted(times), (name, times)
