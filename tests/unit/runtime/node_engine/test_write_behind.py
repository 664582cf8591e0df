"""Running on while node.db cannot be written (runtime/node_engine/write_behind.py):
every effect that waits on a kept write is held in order until the write commits; a
federation whose agent's disk fills and empties again ends every workflow; an agent
killed while writes are kept restarts as the agent that never saw those turns; a new
PREPARE meanwhile gets a NO naming the reason."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from fedorch.core.node.inputs import Message
from fedorch.core.node.ready import PUT, Op, Write
from fedorch.core.node.records import PrepareMsg, VoteMsg
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.runtime.driver import NodeDriver
from fedorch.runtime.node_engine import write_behind as wb
from fedorch.runtime.node_engine.write_behind import (
    HeldDurable,
    HeldExecutors,
    HeldStatus,
    HeldTransport,
    StorageGate,
    WriteFault,
    retry_until_written,
)

from tests.unit.runtime.test_node_store import (
    Federation,
    _assert_restores_alike,
    _Executors,
    _Port,
    _Status,
)

WORKFLOWS = ("w1", "w2", "w3")


def full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = sqlite3.SQLITE_FULL
    return error


class FlakyDisk:
    """A Durable whose writes fail with SQLITE_FULL while `full` is set."""

    def __init__(self) -> None:
        self.full = False
        self.transactions: list[list[Write]] = []

    def write(self, writes) -> None:
        if self.full:
            raise full()
        self.transactions.append(list(writes))


def group(name: str) -> Write:
    return Write(name, [Op("committed", PUT, name, 1)])


def test_effects_wait_in_order_for_the_kept_writes():
    disk, fault, done = FlakyDisk(), WriteFault(), []
    failed = []
    durable = HeldDurable(disk, fault, on_fault=lambda: failed.append(True))
    transport = HeldTransport(type("T", (), {"send": lambda s, d, m: done.append(("send", d, m))})(),
                              fault)
    status = HeldStatus(type("S", (), {
        "status_changed": lambda s, w, st: done.append(("status", w, st))})(), fault)

    transport.send("d1", "before")  # nothing kept: out at once
    disk.full = True
    durable.write([group("t1")])  # fails: kept, no exception
    assert failed == [True] and fault.active and "full" in fault.reason
    transport.send("d1", "after t1")
    durable.write([group("t2")])  # kept behind t1, not tried alone
    transport.send("d2", "now of t2")
    status.status_changed("w", "RUNNING")
    assert done == [("send", "d1", "before")]
    assert failed == [True]  # told once per fault
    assert not durable.retry() and disk.transactions == []  # still full: all still held
    assert done == [("send", "d1", "before")]

    disk.full = False
    assert durable.retry()
    assert disk.transactions == [[group("t1"), group("t2")]]  # one transaction, in order
    assert done == [("send", "d1", "before"), ("send", "d1", "after t1"),
                    ("send", "d2", "now of t2"), ("status", "w", "RUNNING")]
    assert not fault.active and fault.reason is None
    transport.send("d1", "later")  # nothing kept: out at once again
    assert done[-1] == ("send", "d1", "later")


def test_a_write_that_fails_for_another_reason_still_stops_the_driver():
    class Refusing:
        def write(self, writes) -> None:
            raise ValueError("a value the codec refuses")

    durable = HeldDurable(Refusing(), WriteFault())
    with pytest.raises(ValueError):
        durable.write([group("t1")])
    assert not durable.fault.active


def test_past_its_bound_the_kept_writes_stop_the_agent(monkeypatch):
    monkeypatch.setattr(wb, "MAX_PENDING_OPS", 2)
    disk = FlakyDisk()
    disk.full = True
    durable = HeldDurable(disk, WriteFault())
    durable.write([group("t1")])
    durable.write([group("t2")])
    with pytest.raises(sqlite3.OperationalError, match="full"):
        durable.write([group("t3")])


def test_the_retries_back_off_until_a_write_commits():
    disk = FlakyDisk()
    disk.full = True
    durable = HeldDurable(disk, WriteFault())
    durable.write([group("t1")])
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        if len(slept) == 6:
            disk.full = False

    asyncio.run(retry_until_written(durable, sleep))
    assert slept == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert disk.transactions == [[group("t1")]] and not durable.fault.active
    # one fault; its first write and the five retries that failed (metrics.py reads them)
    assert (durable.fault.faults, durable.fault.failed_writes) == (1, 6)


# ---- a federation over SQLite whose agent d1 finds its disk full ---------------------------


def held_d1(fed: Federation, database_fault=lambda: None
            ) -> tuple[WriteFault, HeldDurable, StorageGate]:
    """d1's driver on the held ports, as the node engine builds it (`database_fault`:
    what d1's agent.db store says, `Store.write_fault`)."""
    old = fed.drivers["d1"]
    fault = WriteFault()
    durable = HeldDurable(fed.kept["d1"], fault)
    port = _Port(fed, "d1")
    gate = StorageGate(old.node, old.node, fault, "d1", port.send,
                       database_fault=database_fault)
    fed.drivers["d1"] = NodeDriver(gate, fed.clock, durable, HeldTransport(port, fault),
                                   HeldExecutors(_Executors(fed, "d1"), fault),
                                   HeldStatus(_Status(fed, "d1"), fault))
    return fault, durable, gate


def fill(fed: Federation) -> None:
    con = fed.kept["d1"].store._con
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.execute(f"PRAGMA max_page_count = {pages}")


def submit_long(fed: Federation, wf: str) -> None:
    """Federation.submit's workflow, with a name that takes pages of its own."""
    fed.submit(wf)
    at, submit = fed.queue.pop()
    submit.spec.name = wf + "-" + "x" * 20_000
    fed.queue.append((at, submit))


def test_a_full_disk_holds_the_agent_back_and_the_federation_ends_when_it_empties(
        tmp_path):
    fed = Federation(tmp_path)
    try:
        fault, durable, _ = held_d1(fed)
        fill(fed)
        for wf in WORKFLOWS:
            submit_long(fed, wf)
        fed.run()  # no exception: d1 keeps its writes, and holds what waits on them
        assert fault.active and fault.pending
        assert fed.drivers["d1"].stopped is None
        # What d1 took before its disk filled waits for it (its YES is held back); what
        # came after got a NO from d1 and went elsewhere or ended.
        waiting = {wf for wf in WORKFLOWS if fed.statuses.get(wf) not in TERMINAL}
        assert waiting, fed.statuses
        committed = fed.kept["d1"].memory  # what is on d1's disk: what it never sent on
        _assert_restores_alike("d1", tmp_path / "d1.db", committed)

        fed.kept["d1"].store._con.execute("PRAGMA max_page_count = 1073741823")
        assert durable.retry()  # what the retry task does: the held effects go out
        fed.settle()
        assert set(fed.statuses) == set(WORKFLOWS)
        assert all(fed.statuses[wf] in TERMINAL for wf in WORKFLOWS), fed.statuses
        assert all(fed.statuses[wf] == WorkflowState.SUCCEEDED for wf in waiting)
        assert not fault.active
        _assert_restores_alike("d1", tmp_path / "d1.db", fed.kept["d1"].memory)
    finally:
        fed.close()


def test_killed_while_writes_are_kept_the_agent_restarts_as_if_it_never_saw_them(tmp_path):
    fed = Federation(tmp_path)
    try:
        fault, _, _ = held_d1(fed)
        fill(fed)
        for wf in WORKFLOWS:
            submit_long(fed, wf)
        fed.run()
        assert fault.pending
        on_disk = fed.kept["d1"].memory
        fed.kept["d1"].store.close()  # killed: the kept writes and held effects are gone
        _assert_restores_alike("d1", tmp_path / "d1.db", on_disk)
        fed.restart("d1")  # room again, a new process
        fed.settle()
        assert set(fed.statuses) == set(WORKFLOWS)
        assert all(fed.statuses[wf] in TERMINAL for wf in WORKFLOWS), fed.statuses
    finally:
        fed.close()


def prepare_to_d1(fed: Federation, wf: str) -> Message | None:
    """Run the federation until `wf`'s PREPARE to d1 has been stepped by d1: it."""
    fed.submit(wf)
    for _ in range(100):  # d0 places it and sends its PREPAREs
        if not fed.queue:
            break
        dst, event = fed.queue.popleft()
        fed.drivers[dst].turn([event])
        if dst == "d1" and type(event) is Message and type(event.msg) is PrepareMsg \
                and event.msg.tx.key[0] == wf:
            return event
    return None


def votes_of_d1(fed: Federation) -> list[VoteMsg]:
    return [e.msg for d, e in fed.queue
            if type(e) is Message and type(e.msg) is VoteMsg and e.src == "d1"]


def test_a_new_prepare_gets_a_no_naming_the_reason_a_known_one_goes_to_the_node(tmp_path):
    fed = Federation(tmp_path)
    try:
        fault, _, gate = held_d1(fed)
        fault.error = full()  # as after a failed write
        prepare = prepare_to_d1(fed, "w1")
        prepares = [prepare] if prepare is not None else []
        assert prepares and gate.refused == 1
        [vote] = votes_of_d1(fed)
        assert not vote.yes and "d1 cannot write its node store (database or disk is full)" \
            in vote.reason
        assert prepares[0].msg.tx.key not in fed.drivers["d1"].node.node.state.info
        fed.run()  # w1 goes on without d1 (placed again elsewhere, or aborted)
        assert fed.statuses["w1"] in TERMINAL
        assert not [k for k in fed.drivers["d1"].node.node.state.info if k[0] == "w1"]
        # A PREPARE of a transaction the Node took part in is the Node's to answer.
        fed.drivers["d1"].node.node.state.info[prepares[0].msg.tx.key] = \
            prepares[0].msg.info
        stepped = []
        gate.inner = type("Inner", (), {"step": lambda s, now, e: stepped.append(e)})()
        gate.step(1.0, prepares[0])
        assert stepped == [prepares[0]] and gate.refused == 1
    finally:
        fed.close()


def test_while_agent_db_cannot_be_written_a_new_prepare_gets_a_no_naming_it(tmp_path):
    """agent.db failed first (a turn's audit records reach it after node.db holds the
    turn) and node.db has nothing pending: the PREPARE is still refused with the
    reason, not stepped into the Node, whose write would fail next and hold its YES
    (the coordinator would hear nothing: "no vote within ...s")."""
    fed = Federation(tmp_path)
    try:
        database = {"fault": "database or disk is full"}
        fault, _, gate = held_d1(fed, database_fault=lambda: database["fault"])
        fill(fed)  # node.db would fail too, at its next write
        prepare = prepare_to_d1(fed, "w1")
        assert prepare is not None and gate.refused == 1
        [vote] = votes_of_d1(fed)
        assert not vote.yes and vote.reason == (
            "d1 cannot write its database (database or disk is full); it takes no new"
            " work until it can")
        assert prepare.msg.tx.key not in fed.drivers["d1"].node.node.state.info
        assert not fault.active and not fault.pending  # the Node wrote nothing
        # Both failing: node.db, the Node's own file, is named.
        fault.error = full()
        prepare = prepare_to_d1(fed, "w2")
        assert prepare is not None and gate.refused == 2
        assert "d1 cannot write its node store (database or disk is full)" in \
            votes_of_d1(fed)[-1].reason
        # agent.db writable again, node.db too: a PREPARE goes to the Node.
        fault.error, database["fault"] = None, None
        fed.kept["d1"].store._con.execute("PRAGMA max_page_count = 1073741823")
        prepare = prepare_to_d1(fed, "w3")
        assert prepare is not None and gate.refused == 2
        assert prepare.msg.tx.key in fed.drivers["d1"].node.node.state.info
    finally:
        fed.close()
