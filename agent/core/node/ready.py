"""The Node's output: a `Ready`, and the `Outbox` that collects it.

Theory of operation
-------------------
Everything a Node wants done outside itself goes through one `Outbox`:

- a durable change is an `Op` (table, put/delete/add, key, value) on the Node's view of
  its `Disk` (records.py). The view's tables are `Recorded` dicts and sets: changing one
  logs the op, so the code that decides reads and writes its tables as plain dicts and
  can never change state without saying so. A table's op says what changed, no more:
  the results table, a dict of maps, says each step's result as its own row
  (`RecordedResults`), and an int, str, bytes or bool (or a tuple of those) set again
  equal to the one there says nothing (`unchanged`: it is on disk, or in a write not
  handed out yet, which anything sent after it waits for). Ops are grouped in `Write`s, one per
  *point* (a name such as "reservation" or "PersistDecision"): a point is where a
  driver may crash (the simulator does), so a group is what is applied between two.
- a message is sent *now* when no write is waiting to be handed out, and *after the
  write* otherwise: a message that follows a write in the Node's reasoning (a vote after
  its reservation, a decision after its record) never leaves before that write is
  durable. A message that needs nothing is not held back behind unrelated writes of
  the same turn only when it came first. After `wait`, what is sent waits for a
  group of notes alone too (a told end's notices for the note that it was told).
  One exception, `ahead` (may be sent now whatever write is waiting): the first
  round's PREPAREs of a submission under Paxos Commit may leave with the write of its
  row and round instead of after it (prepares_ahead.py says why a crash before that
  write is safe); the client hears of the workflow only after it, as before. Such a
  message waits in the after lane, in its place, and `ready()` moves it to the front
  lane only when nothing else of the turn waits there for the same peer: a busy turn
  (votes, decisions, results to that peer after its write) keeps one envelope per
  peer, as it had before `ahead`, instead of a second one for the PREPAREs alone,
  which the peer would take in a turn and a transaction of their own; an idle
  coordinator's PREPAREs leave a forced write sooner. Either order is safe; the move
  is decided once, when the Ready is handed out (the Node is not stepped again before
  `advance`).
- a step attempt to start (after its start record is durable: the idempotency key
  (workflow, step, attempt)), attempts to stop (their workflow ended), and the status
  changes of workflows (for watchers), told after the write: a watcher sees what this
  Node holds on disk. One exception, `status_now` (a subset of `status_changes`): a
  coordinator's RUNNING once Paxos Commit's acceptors chose its COMMIT (`chosen`).
  The COMMIT is then durable at a majority of the round's acceptors, whatever this
  Node's own decision record does: a crash before that record is durable is settled
  by the restored coordinator's ballot (or the participants' recovery), which finds
  the COMMIT at that majority and can choose nothing else. So the RUNNING may be told
  with the turn's first sends, before its write, and the client hears of its commit
  one forced write sooner. The Node's state behind it is not durable yet: a
  coordinator restarted before its decision record shows NEGOTIATING until its ballot
  has learned the COMMIT again (then RUNNING again); never ABORTED. Classic 2PC's
  COMMIT is the coordinator's record itself: its RUNNING stays after the write.
- `notes`: observations tied to a write (a YES vote, a decision, a step start), which a
  driver may report once the write is durable; the simulator's invariant checker takes
  them; a daemon's audit log or metrics would.

`ready()` hands out everything pending without forgetting it; `advance(ready)` says the
driver has done it all (written, then sent, started) and drops exactly that much, so
what the Node produced meanwhile waits for the next `ready()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fedorch.core.node.records import TABLES, Disk

PUT, DELETE, ADD, DISCARD = "put", "delete", "add", "discard"


# Op, Outgoing and Ready are named tuples, not frozen dataclasses: as immutable, and
# built for every change and message (some 80 Ops and 30 Outgoings per workflow over
# three Nodes; a Ready per turn, per input in the simulator), where a frozen
# dataclass's __init__ stores each field through object.__setattr__ (two to three
# times a tuple's cost to build). A Ready changed is `ready._replace(...)`.
class Op(NamedTuple):
    table: str
    kind: str   # PUT / DELETE on a dict table, ADD / DISCARD on a set table
    key: Any
    value: Any = None


@dataclass
class Write:
    """The ops made after one point, applied together after the driver passes it."""

    point: str
    ops: list[Op] = field(default_factory=list)
    notes: list[tuple] = field(default_factory=list)  # (what, *facts) for observers


class Outgoing(NamedTuple):
    to: str
    msg: object


class Ready(NamedTuple):
    writes: tuple[Write, ...]          # one transaction, in order
    send_now: tuple[Outgoing, ...]      # may leave before the writes
    send_after_write: tuple[Outgoing, ...]  # only once every write is durable
    start_steps: tuple[tuple[str, str, int], ...]  # (workflow, step, attempt), after writes
    stop_steps: tuple[tuple[str, str, int], ...]
    status_changes: tuple[tuple[str, object], ...]  # (workflow, WorkflowState)
    # Of status_changes, those a driver may tell before the writes are durable (a
    # COMMIT chosen by Paxos Commit's acceptors: see the header), told once.
    status_now: tuple[tuple[str, object], ...] = ()

    def empty(self) -> bool:
        return not (self.writes or self.send_now or self.send_after_write
                    or self.start_steps or self.stop_steps or self.status_changes)


# Values that cannot change in place, and whose equality is their encoding's (not so
# with floats: 0.0 == -0.0), tuples of them too: one set again equal to the one in the
# table is not written again (a workflow's committed round at its coordinator, told
# once by its own decision and once by its hold's commit).
_PLAIN = frozenset({int, str, bytes, bool, tuple})
_SCALARS = frozenset({int, str, bytes, bool})
_ABSENT = object()


def unchanged(old: object, new: object) -> bool:
    """`new` is `old` again, as bytes would say (see _PLAIN)."""
    cls = new.__class__
    if old.__class__ is not cls:
        return False
    if cls is tuple:
        return len(old) == len(new) and all(  # type: ignore[arg-type]
            a.__class__ is b.__class__ and a.__class__ in _SCALARS and a == b
            for a, b in zip(old, new, strict=True))  # type: ignore[call-overload]
    return old == new


class Recorded(dict):
    """A table of the Node's durable view: every change is logged as an `Op`."""

    def __init__(self, table: str, log: Callable[[Op], None], items: Iterable = ()) -> None:
        super().__init__(items)
        self._table, self._log = table, log

    def __setitem__(self, key, value) -> None:
        if value.__class__ in _PLAIN and unchanged(dict.get(self, key, _ABSENT), value):
            return  # already said: the row holds it, or a write not yet handed out does
        super().__setitem__(key, value)
        self._log(Op(self._table, PUT, key, value))

    def __delitem__(self, key) -> None:
        super().__delitem__(key)
        self._log(Op(self._table, DELETE, key))

    _missing = object()

    def pop(self, key, default=_missing):
        if key in self:
            value = super().pop(key)
            self._log(Op(self._table, DELETE, key))
            return value
        if default is Recorded._missing:
            raise KeyError(key)
        return default

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"table {self._table}: change it key by key, so each change is said")

    update = clear = popitem = __ior__ = _refuse  # type: ignore[assignment]


class RecordedResults(Recorded):
    """The results table, read as workflow -> {step: (attempt, state, outputs, error)}
    and written as one row per (workflow, step): a map set for a workflow says only the
    steps whose result it changes (a PUT keyed (workflow, step), the result as value),
    so a result is written once, not again with every later result of its workflow. A
    step's result is the same when it is the same object (the Node replaces a result,
    never changes one in place, and keeps the others of a map it copies). A map that
    drops a step is said as every row of the workflow deleted and the rest written
    anew (the view moves the workflow last, as the rows do; only a result of a
    placement that is over is dropped so: placed_here.py, replacement.py). An empty map is no map:
    the workflow has no rows."""

    def __setitem__(self, wf, results) -> None:
        old = dict.get(self, wf)
        if not results:
            if old is not None:
                del self[wf]
            return
        log = self._log
        if old is not None and not old.keys() <= results.keys():
            del self[wf]  # a step dropped: the workflow's rows written anew, last
            old = None
        dict.__setitem__(self, wf, results)
        for step, result in results.items():
            if old is None or old.get(step, _ABSENT) is not result:
                log(Op(self._table, PUT, (wf, step), result))

    def __delitem__(self, wf) -> None:
        old = dict.pop(self, wf)
        for step in old:
            self._log(Op(self._table, DELETE, (wf, step)))

    def pop(self, wf, default=Recorded._missing):
        if wf in self:
            results = dict.get(self, wf)
            del self[wf]
            return results
        if default is Recorded._missing:
            raise KeyError(wf)
        return default


class RecordedSet(set):
    def __init__(self, table: str, log: Callable[[Op], None], items: Iterable = ()) -> None:
        super().__init__(items)
        self._table, self._log = table, log

    def add(self, item) -> None:
        if item not in self:
            super().add(item)
            self._log(Op(self._table, ADD, item))

    def discard(self, item) -> None:
        if item in self:
            super().discard(item)
            self._log(Op(self._table, DISCARD, item))

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"table {self._table}: change it item by item, so each change is said")

    remove = update = clear = pop = __ior__ = __isub__ = _refuse  # type: ignore[assignment]


class KeysOf:
    """The keys of each workflow in a table keyed by (workflow, ...). Most workflows
    have one (one round, one run here), kept as the key itself, and a second makes
    them a set: a set of one costs some 200 bytes, for every workflow the Node holds
    until retention forgets it."""

    __slots__ = ("_of",)

    def __init__(self, keys: Iterable[tuple] = ()) -> None:
        self._of: dict[str, tuple | set[tuple]] = {}
        for key in keys:
            self.add(key)

    def add(self, key: tuple) -> None:
        held = self._of.get(key[0])
        if held is None:
            self._of[key[0]] = key
        elif held.__class__ is set:
            held.add(key)  # type: ignore[union-attr]
        elif held != key:
            self._of[key[0]] = {held, key}  # type: ignore[arg-type]

    def discard(self, key: tuple) -> None:
        held = self._of.get(key[0])
        if held.__class__ is set:
            held.discard(key)  # type: ignore[union-attr]
            if not held:
                del self._of[key[0]]
        elif held == key:
            del self._of[key[0]]

    def of(self, workflow_id: str) -> tuple[tuple, ...]:
        held = self._of.get(workflow_id)
        if held is None:
            return ()
        return tuple(held) if held.__class__ is set else (held,)  # type: ignore[arg-type]

    def __len__(self) -> int:  # the workflows with a key
        return len(self._of)


class RecordedRuns(RecordedSet):
    """The step runs table, (workflow, step, attempt) items, with the runs of each
    workflow at hand: resuming a committed workflow must not scan every run the
    agent ever started."""

    def __init__(self, table: str, log: Callable[[Op], None], items: Iterable = ()) -> None:
        super().__init__(table, log, items)
        self._of = KeysOf(self)

    def add(self, item) -> None:
        super().add(item)
        self._of.add(item)

    def discard(self, item) -> None:
        super().discard(item)
        self._of.discard(item)

    def of(self, workflow_id: str) -> frozenset[tuple[str, str, int]]:
        return frozenset(self._of.of(workflow_id))


class RecordedRounds(Recorded):
    """A table keyed by (workflow, round), with the keys of each workflow at hand:
    retention forgets a workflow's rounds without scanning every round here."""

    def __init__(self, table: str, log: Callable[[Op], None], items: Iterable = ()) -> None:
        super().__init__(table, log, items)
        self._of = KeysOf(self)

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self._of.add(key)

    def __delitem__(self, key) -> None:
        super().__delitem__(key)
        self._of.discard(key)

    def pop(self, key, default=Recorded._missing):
        if key in self:
            self._of.discard(key)
        return super().pop(key, default)

    def of(self, workflow_id: str) -> list:
        return sorted(self._of.of(workflow_id))


# The tables keyed by (workflow, round).
ROUND_TABLES = ("cells", "records", "learned", "acceptor", "holds", "info", "ballots")
# The sagas' tables, keyed by (workflow, step[, attempt]): indexed by workflow the same
# way, so retention forgets a workflow's compensations without a scan.
SAGA_TABLES = ("compensations", "comp_runs", "extra_compensations")


def recorded_view(disk: Disk, log: Callable[[Op], None], *, by_workflow: bool = False) -> Disk:
    """A copy of `disk` whose tables log every change (values are shared: the Node
    replaces a value, never changes one in place). `by_workflow`: the tables keyed by
    (workflow, round), and the sagas' tables, also answer the keys of one workflow
    (`RecordedRounds.of`)."""
    tables = {}
    for name in TABLES:
        current = getattr(disk, name)
        if name == "runs":
            tables[name] = RecordedRuns(name, log, current)
        elif name == "results":
            tables[name] = RecordedResults(name, log, current.items())
        elif by_workflow and (name in ROUND_TABLES or name in SAGA_TABLES):
            tables[name] = RecordedRounds(name, log, current.items())
        elif isinstance(current, set):
            tables[name] = RecordedSet(name, log, current)
        else:
            tables[name] = Recorded(name, log, current.items())
    return Disk(**tables)


def apply(disk: Disk, ops: Iterable[Op]) -> None:
    """What a driver does with a Write's ops on its own copy of the tables."""
    for op in ops:
        if op.table == "results":
            _apply_result(disk.results, op)
            continue
        table = getattr(disk, op.table)
        if op.kind == PUT:
            table[op.key] = op.value
        elif op.kind == DELETE:
            table.pop(op.key, None)
        elif op.kind == ADD:
            table.add(op.key)
        elif op.kind == DISCARD:
            table.discard(op.key)
        else:  # pragma: no cover - the four kinds above are all there are
            raise ValueError(f"unknown op {op.kind!r}")


def _apply_result(results: dict[str, dict[str, tuple]], op: Op) -> None:
    """A results row, (workflow, step), on a copy of the table: the workflow's map is
    replaced, never changed in place (its old map may be the view's too)."""
    wf, step = op.key
    old = results.get(wf, {})
    if op.kind == PUT:
        results[wf] = {**old, step: op.value}
    elif step in old:
        left = {s: r for s, r in old.items() if s != step}
        if left:
            results[wf] = left
        else:
            del results[wf]


class Outbox:
    """What the Node has produced and not yet seen advanced past (see the header)."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.send_now: list[Outgoing] = []
        self.send_after: list[Outgoing] = []
        self.start: list[tuple[str, str, int]] = []
        self.stop: list[tuple[str, str, int]] = []
        self.status: list[tuple[str, object]] = []
        self._now_at: list[int] = []  # where in `status` the ones told now are (`chosen`)
        self._point = "write"
        # Some write group not handed out yet has an op: a message now waits for it.
        # Kept, not recomputed per message (a busy turn sends hundreds).
        self._waiting = False
        # While set, what `send` sends may leave now whatever write is waiting, if
        # nothing else waits for it for the same peer (see the header).
        self.ahead = False
        self._ahead_at: list[int] = []  # where in `send_after` those wait
        self.moved_ahead = 0  # of those, moved to the front lane (the Node counts them)

    def point(self, what: str) -> None:
        """The next op opens a new group under this name."""
        self._point = what
        if self.writes and not self.writes[-1].ops:
            self.writes[-1].point = what  # nothing written since the last point
        else:
            self.writes.append(Write(what))

    def op(self, op: Op) -> None:
        if not self.writes:
            self.writes.append(Write(self._point))
        self.writes[-1].ops.append(op)
        self._waiting = True

    def note(self, *fact: object) -> None:
        if not self.writes:
            self.writes.append(Write(self._point))
        self.writes[-1].notes.append(fact)

    def wait(self) -> None:
        """What is sent from here on waits for the write groups not handed out yet, one
        of notes alone too: an observation (a told end's, domain_loss.py) is reported
        before what it observes leaves, so no crash between the two hides it."""
        if self.writes:
            self._waiting = True

    def send(self, to: str, msg: object) -> None:
        if not self._waiting:
            self.send_now.append(Outgoing(to, msg))
            return
        if self.ahead:
            self._ahead_at.append(len(self.send_after))
        self.send_after.append(Outgoing(to, msg))

    def chosen(self, workflow_id: str, state: object) -> None:
        """A status change that may be told before this turn's write: a coordinator's
        RUNNING once its COMMIT is chosen by a majority of Paxos Commit's acceptors
        (see the header); it is in `status_changes` too, for a driver that tells every
        change after the write."""
        self._now_at.append(len(self.status))
        self.status.append((workflow_id, state))

    def ready(self) -> Ready:
        if self._ahead_at:
            self._send_ahead()
        return Ready(tuple(w for w in self.writes if w.ops or w.notes), tuple(self.send_now),
                     tuple(self.send_after), tuple(self.start), tuple(self.stop),
                     tuple(self.status),
                     tuple([self.status[i] for i in self._now_at]) if self._now_at else ())

    def _send_ahead(self) -> None:
        """The `ahead` messages to peers that nothing else in the after lane waits
        for move to the front lane, in their order; the others stay in their place,
        with their peer's after-write messages (see the header)."""
        after, at = self.send_after, set(self._ahead_at)
        busy = {o.to for i, o in enumerate(after) if i not in at}
        if all(after[i].to in busy for i in self._ahead_at):
            return
        kept: list[Outgoing] = []
        self._ahead_at = []
        for i, o in enumerate(after):
            if i not in at:
                kept.append(o)
            elif o.to in busy:
                self._ahead_at.append(len(kept))
                kept.append(o)
            else:
                self.send_now.append(o)
                self.moved_ahead += 1
        self.send_after = kept

    def advance(self, ready: Ready) -> None:
        """Drop what `ready` handed out (it was taken from the front of each list)."""
        handed = set(map(id, ready.writes))
        last = max((i for i, w in enumerate(self.writes) if id(w) in handed), default=-1)
        self.writes = self.writes[last + 1:]
        self._waiting = any(w.ops for w in self.writes)
        del self.send_now[:len(ready.send_now)]
        sent = len(ready.send_after_write)
        del self.send_after[:sent]
        if self._ahead_at:
            self._ahead_at = [i - sent for i in self._ahead_at if i >= sent]
        del self.start[:len(ready.start_steps)]
        del self.stop[:len(ready.stop_steps)]
        told = len(ready.status_changes)
        del self.status[:told]
        if self._now_at:
            self._now_at = [i - told for i in self._now_at if i >= told]

    def clear(self) -> None:
        self.__init__()
