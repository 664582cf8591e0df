"""The Node's tables in SQLite (runtime/node_store.py): what is written is what is read
back, a crash before any write group leaves the file a restarted Node can be rebuilt
from exactly as from the same writes kept in memory, and a failing write stops the
driver with the file as it was before the turn."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fedorch.core.node import Node, StepEnded, Submit
from fedorch.core.node.inputs import Message, Tick
from fedorch.core.node.ready import (
    ADD,
    DELETE,
    DISCARD,
    PUT,
    Op,
    Outbox,
    Write,
    apply,
    recorded_view,
)
from fedorch.core.node.records import TABLES, Disk, Timing
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.runtime.driver import DriverStopped, NodeDriver
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_store import SET_TABLES, NodeStoreError, SqliteDurable
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.runtime.node_values import TABLE_ROWS, same

NAMES = ("d0", "d1", "d2")


# ---- what is written is what is read back ------------------------------------------


@st.composite
def transactions(draw) -> list[list[Write]]:
    """Transactions of write groups over every table: puts and adds of drawn rows,
    deletes and discards of keys put before (and of keys never put)."""
    written: dict[str, list] = {t: [] for t in TABLES}
    out = []
    for _ in range(draw(st.integers(1, 4))):
        groups = []
        for g in range(draw(st.integers(1, 3))):
            ops = []
            for _ in range(draw(st.integers(0, 6))):
                table = draw(st.sampled_from(TABLES))
                key, value = draw(TABLE_ROWS[table])
                if written[table] and draw(st.booleans()):
                    key = draw(st.sampled_from(written[table]))
                    if table not in SET_TABLES and draw(st.booleans()):
                        ops.append(Op(table, PUT, key, value))  # a new value, same key
                        continue
                    ops.append(Op(table, DISCARD if table in SET_TABLES else DELETE, key))
                    continue
                written[table].append(key)
                ops.append(Op(table, ADD, key) if table in SET_TABLES
                           else Op(table, PUT, key, value))
            groups.append(Write(f"point {g}", ops))
        out.append(groups)
    return out


def _results_sorted(disk: Disk) -> Disk:
    """`disk` with its results' workflows in one order (each one's steps as they are):
    drawn ops may delete one step of a workflow whose first row it was, and the file
    then has the workflow where its next row is; no Node deletes one step alone
    (RecordedResults), and `test_results_come_back_in_the_order_a_node_writes_them`
    holds the store to the Node's order."""
    disk.results = dict(sorted(disk.results.items(), key=lambda item: repr(item[0])))
    return disk


@settings(max_examples=60, deadline=None)
@given(transactions())
def test_every_table_reads_back_as_written(txs):
    memory = Disk()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node.db"
        with SqliteDurable(path) as store:
            for groups in txs:
                store.write(groups)
                for g in groups:
                    apply(memory, g.ops)
            same(_results_sorted(store.load()), _results_sorted(memory), "after writing")
            assert store.stats.transactions == len(txs)
        with SqliteDurable(path) as reopened:  # what a restarted process reads
            same(_results_sorted(reopened.load()), memory, "after reopening")


def test_results_come_back_in_the_order_a_node_writes_them(tmp_path):
    """Through the Node's view (RecordedResults): a step's result is its own row, written
    once, and the table reads back as the view has it, workflows and steps in order,
    also across a workflow forgotten and written again."""
    out = Outbox()
    view = recorded_view(Disk(), out.op)
    memory = Disk()

    def turn(*changes: Callable[[], None]) -> list[Op]:
        for change in changes:
            change()
        ready = out.ready()
        store.write(ready.writes)
        for w in ready.writes:
            apply(memory, w.ops)
        out.advance(ready)
        return [op for w in ready.writes for op in w.ops]

    def result(wf: str, step: str, attempt: int = 1) -> Callable[[], None]:
        def put() -> None:
            view.results[wf] = {**view.results.get(wf, {}),
                                step: (attempt, StepState.SUCCEEDED, {"n": attempt}, "")}
        return put

    with SqliteDurable(tmp_path / "node.db") as store:
        assert turn(result("w1", "a")) == [
            Op("results", PUT, ("w1", "a"), (1, StepState.SUCCEEDED, {"n": 1}, ""))]
        assert [op.key for op in turn(result("w2", "a"), result("w1", "b"))] == [
            ("w2", "a"), ("w1", "b")]  # each result alone, not w1's map again
        assert [op.key for op in turn(result("w1", "a", 2))] == [("w1", "a")]
        turn(lambda: view.results.pop("w1"), result("w3", "a"), result("w1", "c"))
        turn(result("w2", "b"))
        for disk in (store.load(), memory):
            same(disk.results, dict(view.results), "results")
        assert list(view.results) == ["w2", "w3", "w1"]
        assert list(view.results["w2"]) == ["a", "b"]
        assert store.stats.rows == 1 + 2 + 1 + (2 + 2) + 1


def test_a_version_2_files_results_are_rewritten_one_row_per_step(tmp_path):
    """A file written before results had a row per step: each workflow's map is read
    back as it was, in order, and the file is version 3 from then on."""
    codec = node_codec()
    path = tmp_path / "node.db"
    maps = {"w2": {"b": (1, StepState.SUCCEEDED, {}, ""), "a": (2, StepState.FAILED, {},
                                                                 "boom")},
            "w1": {"a": (1, StepState.SUCCEEDED, {"x": [1]}, "")}}
    with SqliteDurable(path) as store:  # a version 3 file, made version 2 by hand
        store.write([Write("a", [Op("final", PUT, "w1", WorkflowState.SUCCEEDED)])])
        store._con.execute("DELETE FROM node_results")
        store._con.executemany("INSERT INTO node_results(k, v) VALUES (?, ?)", [
            (codec.encode(wf), codec.encode(m)) for wf, m in maps.items()])
        store._con.execute("PRAGMA user_version = 2")
    with SqliteDurable(path) as store:
        assert store._con.execute("PRAGMA user_version").fetchone()[0] == 3
        loaded = store.load()
        same(loaded.results, maps, "results")
        assert loaded.final == {"w1": WorkflowState.SUCCEEDED}
        store.write([Write("b", [Op("results", PUT, ("w1", "b"),
                                    (1, StepState.SUCCEEDED, {}, ""))])])
        assert list(store.load().results["w1"]) == ["a", "b"]


def _written(store: SqliteDurable, groups: list[Write]) -> Disk:
    before = store.stats.statements
    store.write(groups)
    return store.load(), store.stats.statements - before


def test_a_turns_ops_on_one_row_are_combined_into_its_outcome(tmp_path):
    """Each row is written once per turn, with its last value, in the place the dict
    would keep it: a key written again keeps its place, one deleted and written again
    in the same turn moves to the end, one put and deleted is gone."""
    memory = Disk()
    first = [Write("a", [Op("rows", PUT, "w1", 1), Op("rows", PUT, "w2", 2),
                         Op("rows", PUT, "w3", 3), Op("runs", ADD, ("w1", "d1"))])]
    second = [Write("b", [Op("rows", PUT, "w1", 10), Op("rows", DELETE, "w2"),
                          Op("rows", PUT, "w4", 4)]),
              Write("c", [Op("rows", PUT, "w2", 20), Op("rows", PUT, "w1", 11),
                          Op("rows", PUT, "w5", 5), Op("rows", DELETE, "w5"),
                          Op("runs", DISCARD, ("w1", "d1")),
                          Op("runs", ADD, ("w1", "d1")),
                          Op("runs", ADD, ("w2", "d1")),
                          Op("runs", ADD, ("w2", "d1"))])]
    with SqliteDurable(tmp_path / "node.db") as store:
        for groups in (first, second):
            loaded, statements = _written(store, groups)
            for g in groups:
                apply(memory, g.ops)
            same(loaded, memory, "after a turn")
            # at most one DELETE and one INSERT statement per table touched
            assert statements <= 2 * len({op.table for g in groups for op in g.ops})
        assert list(loaded.rows.items()) == [("w1", 11), ("w3", 3), ("w4", 4), ("w2", 20)]
        assert store.stats.ops == 4 + 11
        # w1 and w2 once each, w4 and w5 once, w2's delete; the set's two rows, w1's delete
        assert store.stats.rows == 4 + (2 + 1 + 1 + 1) + (2 + 1)


def test_keys_equal_as_dict_keys_but_not_as_bytes_stay_two_rows(tmp_path):
    """The store remembers keys' encodings, but never lets 1 stand for True or 1.0: the
    file keeps what the codec makes of each."""
    codec = node_codec()
    with SqliteDurable(tmp_path / "node.db") as store:
        store.write([Write("a", [Op("rows", PUT, ("w", 1), "int")])])
        store.write([Write("b", [Op("rows", PUT, ("w", True), "bool"),
                                 Op("rows", PUT, ("w", 1.0), "float")])])
        rows = store._con.execute("SELECT k, v FROM node_rows ORDER BY rowid").fetchall()
    assert [(codec.decode(k), codec.decode(v)) for k, v in rows] == [
        (("w", 1), "int"), (("w", True), "bool"), (("w", 1.0), "float")]
    assert [type(codec.decode(k)[1]) for k, _ in rows] == [int, bool, float]


def test_a_file_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "node.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(NodeStoreError, match="version 99"):
        SqliteDurable(path)


def test_the_file_is_in_wal_mode_with_full_sync(tmp_path):
    with SqliteDurable(tmp_path / "node.db") as store:
        con = store._con
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# ---- a federation of three Nodes, stepped by hand ------------------------------------


class Clock:
    """Monotonic time that moves only when the federation says so (runs replay)."""

    def __init__(self) -> None:
        self.t = 100.0

    def monotonic(self) -> float:
        return self.t

    def wall_ms(self) -> int:
        return 1_800_000_000_000 + int(self.t * 1000)


class Crash(Exception):
    """The process stops here: only what was committed survives."""


class Kept:
    """Durable: the SQLite store, and a Disk that gets each turn's groups once the
    store has committed them (the same writes, kept in memory)."""

    def __init__(self, store: SqliteDurable) -> None:
        self.store = store
        self.memory = Disk()

    def write(self, writes) -> None:
        self.store.write(writes)
        for w in writes:
            apply(self.memory, w.ops)


def node(name: str, disk: Disk | None = None, now: float = 100.0) -> Node:
    return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                capacities={"a": 4}, timing=Timing(), peers=list(NAMES),
                rng=random.Random(f"{name} seed"), disk=disk, now=now)


class Federation:
    """Three NodeDrivers over SQLite stores in `directory`, one input per turn from a
    FIFO (a message posted at its destination, a step's end at its agent), the clock
    1 ms further at each turn. Deterministic: the same calls give the same run."""

    def __init__(self, directory: Path, crash_at: tuple[str, int] | None = None,
                 crash: Callable[[str], None] | None = None) -> None:
        """`crash_at` (agent, its k-th write group): there `crash(agent)` (default: the
        agent's connection dropped without its commit, and Crash raised)."""
        self.directory = directory
        self.clock = Clock()
        self.crash = crash if crash is not None else self._drop
        self.queue: deque[tuple[str, object]] = deque()
        self.states: dict[str, dict[str, object]] = {n: {} for n in NAMES}
        self.statuses = self.states["d0"]  # the coordinator's view
        self.groups = {n: 0 for n in NAMES}
        self.crash_at = crash_at
        self.kept: dict[str, Kept] = {}
        self.drivers: dict[str, NodeDriver] = {}
        for n in NAMES:
            store = SqliteDurable(directory / f"{n}.db",
                                  before_group=lambda point, n=n: self._point(n))
            self.kept[n] = Kept(store)
            self.drivers[n] = NodeDriver(node(n), self.clock, self.kept[n],
                                         _Port(self, n), _Executors(self, n), _Status(self, n))

    def _point(self, name: str) -> None:
        self.groups[name] += 1
        if self.crash_at == (name, self.groups[name]):
            self.crash(name)

    def _drop(self, name: str) -> None:
        self.kept[name].store.close()  # dropped without its COMMIT, as a killed process
        raise Crash(f"{name} at its write group {self.groups[name]}")

    def submit(self, wf: str, at: str = "d0") -> None:
        spec = spec_pb2.WorkflowSpec(name=wf, steps=[
            spec_pb2.StepSpec(id=f"s{i}", capability="a", needs=[f"s{i - 1}"] if i else [])
            for i in range(3)])
        self.queue.append((at, Submit(wf, spec, placement={f"s{i}": n
                                                           for i, n in enumerate(NAMES)})))

    def run(self, turns: int = 10_000) -> None:
        """Turn until nothing is queued (Crash propagates: the run stops there)."""
        for _ in range(turns):
            if not self.queue:
                return
            dst, event = self.queue.popleft()
            self.clock.t += 0.001
            self.drivers[dst].turn([event])
        raise AssertionError("the federation did not settle")

    def restart(self, name: str) -> None:
        """A new process for `name`: its Node restored from its file alone. Messages on
        their way to it still arrive; its executors' ends died with it."""
        self.crash_at = None
        store = SqliteDurable(self.directory / f"{name}.db",
                              before_group=lambda point: self._point(name))
        kept = self.kept[name] = Kept(store)
        kept.memory = store.load()
        self.queue = deque(e for e in self.queue
                           if not (e[0] == name and isinstance(e[1], StepEnded)))
        driver = NodeDriver(node(name, store.load(), self.clock.t), self.clock, kept,
                            _Port(self, name), _Executors(self, name), _Status(self, name))
        self.drivers[name] = driver
        driver.flush()  # what the restored Node has to say (resends, releases)

    def settle(self, turns: int = 20_000) -> None:
        """Turn until nothing is queued and no agent has a deadline; with nothing
        queued, the clock jumps to the earliest deadline and that agent steps a Tick."""
        for _ in range(turns):
            if self.queue:
                dst, event = self.queue.popleft()
                self.clock.t += 0.001
                self.drivers[dst].turn([event])
                continue
            due = [(d.next_deadline(), n) for n, d in self.drivers.items()
                   if d.next_deadline() is not None]
            if not due:
                return
            at, name = min(due)
            self.clock.t = max(self.clock.t, at)
            self.drivers[name].turn([Tick()])
        raise AssertionError("the federation did not settle")

    def close(self) -> None:
        for k in self.kept.values():
            k.store.close()


class _Port:
    def __init__(self, fed: Federation, src: str) -> None:
        self.fed, self.src = fed, src

    def send(self, dst: str, msg: object) -> None:
        self.fed.queue.append((dst, Message(self.src, msg)))


class _Executors:
    def __init__(self, fed: Federation, name: str) -> None:
        self.fed, self.name = fed, name

    def start(self, run) -> None:
        self.fed.queue.append((self.name, StepEnded(*run, True, {"by": self.name}, "")))

    def stop(self, run) -> None:
        return None


class _Status:
    def __init__(self, fed: Federation, name: str) -> None:
        self.fed, self.name = fed, name

    def status_changed(self, wf: str, state: object) -> None:
        self.fed.states[self.name][wf] = state


WORKFLOWS = ("w1", "w2", "w3")


@pytest.fixture
def quick_dir(tmp_path):
    """A directory on tmpfs when the machine has one: the crash tests below commit a few
    thousand transactions, and what they check does not depend on the fsync."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="fedorch-node-store-", dir=shm))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_federation_over_sqlite_takes_workflows_to_their_end(tmp_path):
    fed = Federation(tmp_path)
    try:
        for wf in WORKFLOWS:
            fed.submit(wf)
        fed.run()
        assert fed.statuses == {wf: WorkflowState.SUCCEEDED for wf in WORKFLOWS}
        for n in NAMES:
            same(fed.kept[n].store.load(), fed.kept[n].memory, n)
        assert fed.kept["d0"].memory.final  # the coordinator wrote the ends
    finally:
        fed.close()


def _groups_in_a_whole_run(directory: Path) -> dict[str, int]:
    fed = Federation(directory)
    try:
        for wf in WORKFLOWS:
            fed.submit(wf)
        fed.run()
        return dict(fed.groups)
    finally:
        fed.close()


def _assert_restores_alike(name: str, path: Path, memory: Disk) -> None:
    """A Node restored from the file is the Node restored from the memory copy: the
    same tables (every field, in order), the same Ready, the same next deadline."""
    with SqliteDurable(path) as store:
        loaded = store.load()
    same(loaded, memory, f"{name}'s tables")
    now = 200.0
    from_file, from_memory = node(name, loaded, now), node(name, memory, now)
    same(from_file.state, from_memory.state, f"{name} restored")
    same(from_file.ready(), from_memory.ready(), f"{name}'s first Ready")
    assert from_file.get_timer() == from_memory.get_timer()


@contextmanager
def _crashed(directory: Path, victim: str, k: int) -> Iterator[Federation]:
    """A federation in a new `directory` that took every workflow and ran until `victim`
    crashed before its `k`-th write group; closed after."""
    directory.mkdir()
    fed = Federation(directory, crash_at=(victim, k))
    try:
        for wf in WORKFLOWS:
            fed.submit(wf)
        with pytest.raises(Crash):
            fed.run()
        yield fed
    finally:
        fed.close()


@pytest.mark.parametrize("victim", ["d0", "d1"])
def test_a_crash_before_any_write_group_restores_as_the_writes_in_memory(quick_dir, victim):
    """Crash `victim` at each of its write groups in turn (the coordinator, then a
    participant): the file holds exactly the turns committed before, and a Node
    restored from it equals one restored from those turns applied in memory."""
    (quick_dir / "whole").mkdir()
    total = _groups_in_a_whole_run(quick_dir / "whole")[victim]
    assert total >= 6, total  # a run crosses a few turns' groups at each agent
    non_empty = 0
    for k in range(1, total + 1):
        directory = quick_dir / f"crash-{k}"
        with _crashed(directory, victim, k) as fed:
            memory = fed.kept[victim].memory
            _assert_restores_alike(victim, directory / f"{victim}.db", memory)
            non_empty += any(getattr(memory, t) for t in TABLES)
    assert non_empty >= total // 2  # most crashes come after something was written


@pytest.mark.parametrize("victim", ["d0", "d1"])
def test_restarted_from_its_file_at_any_write_group_the_federation_ends_every_workflow(
        quick_dir, victim):
    """Crash `victim` before each of its write groups in turn, restart it at once from
    its SQLite file alone, and go on: every workflow the coordinator took ends, a
    committed one with the same end on every agent's disk, and no reservation is left."""
    (quick_dir / "whole").mkdir()
    total = _groups_in_a_whole_run(quick_dir / "whole")[victim]
    ends: set[object] = set()
    for k in range(1, total + 1):
        with _crashed(quick_dir / f"restart-{k}", victim, k) as fed:
            fed.restart(victim)
            fed.settle()
            rows = fed.kept["d0"].memory.rows
            # A submission lost with the coordinator's crash left nothing anywhere.
            assert victim == "d0" or set(rows) == set(WORKFLOWS)
            for wf, row in rows.items():
                assert row.finished and row.state in TERMINAL, (k, wf, row.state)
                ends.add(row.state)
                if row.committed:  # every participant wrote the same end
                    assert {fed.kept[n].memory.final.get(wf) for n in NAMES} == {row.state}
            for n in NAMES:
                assert not fed.kept[n].memory.holds, (k, n)  # no reservation outlives it
                same(fed.kept[n].store.load(), fed.kept[n].memory, f"{n} after k={k}")
    assert WorkflowState.SUCCEEDED in ends


KILLED = 77  # the exit status of a child killed at its crash point


def kill_at(directory: str, victim: str, k: int) -> None:
    """In a child process: run the federation; after each turn `victim` commits, write
    what it committed (the same writes applied in memory, encoded) beside its file;
    at its k-th write group, end the process on the spot (no rollback, no close)."""
    fed = Federation(Path(directory), crash_at=(victim, k),
                     crash=lambda name: os._exit(KILLED))
    kept = fed.kept[victim]
    reference = Path(directory) / f"{victim}.committed"
    commit = kept.write

    def write_and_record(writes) -> None:
        commit(writes)
        tmp = reference.with_suffix(".tmp")
        tmp.write_bytes(node_codec().encode(kept.memory))
        os.replace(tmp, reference)

    kept.write = write_and_record  # type: ignore[method-assign]
    for wf in WORKFLOWS:
        fed.submit(wf)
    fed.run()
    os._exit(0)  # not killed: the test fails on this status


@pytest.mark.parametrize("k", [2, 5, 9])
def test_a_process_killed_before_a_write_group_restores_as_its_committed_writes(tmp_path, k):
    """The same as above with a real process ended by os._exit inside the transaction:
    SQLite's recovery of the WAL leaves exactly the committed turns."""
    root = Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tests.unit.runtime.test_node_store import"
         " kill_at; kill_at(*sys.argv[1:3], int(sys.argv[3]))", str(tmp_path), "d1", str(k)],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert child.wait(timeout=120) == KILLED
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    reference = tmp_path / "d1.committed"
    committed = node_codec().decode(reference.read_bytes()) if reference.exists() else Disk()
    assert k < 5 or any(getattr(committed, t) for t in TABLES)
    _assert_restores_alike("d1", tmp_path / "d1.db", committed)


def test_a_failing_write_stops_the_driver_and_leaves_the_file_as_before(tmp_path):
    """A write whose last op fails (SQLite refuses it: a trigger stands for a full or
    failing disk) after others of the same turn succeeded: the turn's ops are all
    rolled back, and the driver stops."""
    fed = Federation(tmp_path)
    seen: list[tuple[Disk, Exception]] = []

    class Failing(Kept):
        def write(self, writes) -> None:
            ops = [op for w in writes for op in w.ops]
            if seen or not ops or ops[0].table == ops[-1].table:
                return super().write(writes)
            before = self.store.load()
            last = ops[-1].table  # fails after at least the first op went in
            self.store._con.execute(
                f"CREATE TEMP TRIGGER fail_i BEFORE INSERT ON main.node_{last}"
                " BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
            self.store._con.execute(
                f"CREATE TEMP TRIGGER fail_d BEFORE DELETE ON main.node_{last}"
                " BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
            try:
                super().write(writes)
            except sqlite3.DatabaseError as e:
                seen.append((before, e))
                raise

    try:
        failing = Failing(fed.kept["d0"].store)
        fed.kept["d0"] = failing
        fed.drivers["d0"].durable = failing
        for wf in WORKFLOWS:
            fed.submit(wf)
        with pytest.raises(sqlite3.DatabaseError, match="disk I/O error"):
            fed.run()
        assert len(seen) == 1
        before, _ = seen[0]
        same(failing.store.load(), before, "after the failed turn")
        with SqliteDurable(tmp_path / "d0.db") as reopened:
            same(reopened.load(), before, "reopened after the failed turn")
        with pytest.raises(DriverStopped):
            fed.drivers["d0"].turn([])
    finally:
        fed.close()


def test_a_read_only_database_stops_the_driver_at_its_first_write(tmp_path):
    fed = Federation(tmp_path)
    try:
        fed.kept["d0"].store._con.execute("PRAGMA query_only = ON")
        fed.submit("w1")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            fed.run()
        assert fed.drivers["d0"].stopped is not None
        with pytest.raises(DriverStopped):
            fed.drivers["d0"].turn([])
        with SqliteDurable(tmp_path / "d0.db") as reopened:
            same(reopened.load(), Disk(), "d0's tables")
    finally:
        fed.close()
