"""The reliable sends' table (core/node/pending.py): its index by workflow follows
every change, and a cut by workflow leaves the others in the order they were kept."""

import copy

import pytest
from fedorch.core.node.pending import Pending


def _table() -> Pending:
    t = Pending()
    t[("result", "a.1", "s", "d2")] = ["d2", "r1", 1.0, 1.0]
    t[("final", "a.2", "d2")] = ["d2", "f2", 2.0, 1.0]
    t[("final", "a.1", "d2")] = ["d2", "f1", 3.0, 1.0]
    t[("final", "a.1", "d3")] = ["d3", "f1", 4.0, 1.0]
    t[("placed", "a.2", "s", 7, "d3")] = ["d3", "p2", 5.0, 1.0]
    return t


def test_drop_cuts_one_workflow_and_keeps_the_order_of_the_rest():
    t = _table()
    t.drop("a.1", lambda k, v: k[0] == "final" and k[2] != "d3")
    assert list(t) == [("result", "a.1", "s", "d2"), ("final", "a.2", "d2"),
                       ("final", "a.1", "d3"), ("placed", "a.2", "s", 7, "d3")]
    assert t.of("a.1") == [("result", "a.1", "s", "d2"), ("final", "a.1", "d3")]
    t.drop("a.1")
    assert list(t) == [("final", "a.2", "d2"), ("placed", "a.2", "s", 7, "d3")]
    assert t.of("a.1") == []
    t.drop("a.9")  # none kept: nothing to cut


def test_the_index_follows_pop_del_and_a_second_set():
    t = _table()
    assert t.pop(("final", "a.2", "d2"))[1] == "f2"
    assert t.pop(("final", "a.2", "d2"), None) is None
    with pytest.raises(KeyError):
        t.pop(("final", "a.2", "d2"))
    del t[("placed", "a.2", "s", 7, "d3")]
    assert t.of("a.2") == [] and "a.2" not in t._of
    t[("final", "a.1", "d2")] = ["d2", "f1 again", 9.0, 2.0]  # kept again: same place
    assert t.of("a.1") == [("result", "a.1", "s", "d2"), ("final", "a.1", "d2"),
                           ("final", "a.1", "d3")]
    assert list(t)[1] == ("final", "a.1", "d2")


def test_a_deep_copy_keeps_its_index():
    t = copy.deepcopy(_table())
    t.drop("a.2")
    assert list(t) == [("result", "a.1", "s", "d2"), ("final", "a.1", "d2"),
                       ("final", "a.1", "d3")]


def test_changes_that_would_bypass_the_index_are_refused():
    t = _table()
    for change in (lambda: t.update({}), lambda: t.setdefault(("final", "a.3", "d"), []),
                   t.clear, t.popitem):
        with pytest.raises(TypeError):
            change()
    assert len(t) == 5
