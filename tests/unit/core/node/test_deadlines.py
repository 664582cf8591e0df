"""Deadlines from a lazy heap (core/node/deadlines.py) against the plain walk of the
table they replace: the same earliest, the same due keys in the same order, after any
sequence of puts, changes, deletions and ticks."""

from __future__ import annotations

import copy
import pickle

import pytest
from fedorch.core.node.deadlines import DeadlineTable, LazyHeap
from hypothesis import given, settings
from hypothesis import strategies as st

_times = st.integers(0, 40).map(float)
_ops = st.lists(st.tuples(st.sampled_from(["put", "put", "delete", "pop", "tick", "copy"]),
                          st.integers(0, 7), _times), max_size=80)


def _walk_due(model: dict, now: float) -> list:
    """What self-fencing's tick handed out before the heap: the table walked."""
    return [k for k, t in model.items() if t <= now]


@settings(max_examples=400, deadline=None)
@given(_ops)
def test_a_deadline_table_is_the_plain_walk(ops) -> None:
    table = DeadlineTable()
    model: dict[str, float] = {}
    for op, i, t in ops:
        key = f"w{i}"
        if op == "put":
            table[key] = model[key] = t
        elif op == "delete" and key in model:
            del table[key]
            del model[key]
        elif op == "pop":
            assert table.pop(key, None) == model.pop(key, None)
        elif op == "tick":
            due = table.due(t)
            assert due == _walk_due(model, t)
            for k in due[::2]:  # handled: moved on; the others left as they were
                table[k] = model[k] = t + 1.0
        elif op == "copy":
            table = copy.deepcopy(table)
        assert dict(table) == model and list(table) == list(model)
        assert table.earliest() == min(model.values(), default=None)


def test_a_key_left_due_is_due_again_at_the_next_tick() -> None:
    table = DeadlineTable()
    table["a"], table["b"] = 1.0, 2.0
    assert table.due(5.0) == ["a", "b"]
    assert table.due(5.0) == ["a", "b"]  # nobody moved them: a walk finds them again
    table["b"] = 9.0
    assert table.due(5.0) == ["a"] and table.earliest() == 1.0


def test_due_keys_come_in_the_order_first_put_not_by_deadline() -> None:
    table = DeadlineTable()
    table["late"], table["early"] = 3.0, 1.0
    table["late"] = 2.0  # set again: keeps its place
    assert table.due(5.0) == ["late", "early"]
    del table["late"]
    table["late"] = 2.0  # deleted and put again: last
    assert table.due(5.0) == ["early", "late"]


def test_stale_items_stay_within_a_bound_of_the_table() -> None:
    table = DeadlineTable()
    for i in range(10_000):
        table[f"w{i % 10}"] = float(i)  # each put leaves the key's last item stale
    assert len(table._heap) <= 2 * len(table) + 65
    assert table.earliest() == 9_990.0


def test_a_copy_and_a_pickle_keep_deadlines_and_order() -> None:
    table = DeadlineTable()
    table["b"], table["a"] = 2.0, 1.0
    for other in (copy.deepcopy(table), pickle.loads(pickle.dumps(table))):
        assert list(other) == ["b", "a"] and other.earliest() == 1.0
        assert other.due(3.0) == ["b", "a"]


def test_bulk_changes_are_refused() -> None:
    table = DeadlineTable()
    table["a"] = 1.0
    for change in (lambda: table.update({}), lambda: table.setdefault("b", 2.0),
                   table.clear, table.popitem):
        with pytest.raises(TypeError):
            change()
    assert table.earliest() == 1.0


def test_the_heap_asks_the_table_for_the_top_only() -> None:
    heap = LazyHeap()
    for i in range(500):
        heap.push(float(i), i)
    asked = []
    assert heap.earliest(lambda k: asked.append(k) or float(k)) == 0.0
    assert asked == [0]
