"""The reliable sends' table (core/node/pending.py): its index by workflow follows
every change, and a cut by workflow leaves the others in the order they were kept."""

import copy

import pytest
from fedorch.core.node.pending import Pending
from hypothesis import given, settings
from hypothesis import strategies as st


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


def test_a_workflows_end_cuts_its_own_resends_in_place_and_no_other_workflows():
    # The Node keeps its table (the index goes with it) and another workflow's resends
    # keep their entries and their order: the end walks its own workflow's ids only.
    from fedorch.core.node import StepEnded

    from tests.unit.core.node.test_takeover import WF, committed

    fed = committed()  # no attempt ended yet
    d1 = fed.nodes["d1"]
    other = [("result", "d0.other", "s", "d9"), ("final", "d0.other", "d9")]
    for key in other:
        d1.pending[key] = ["d9", None, 1e18, 1.0]
    table = d1.pending
    fed.net = [(n, n, StepEnded(*run, ok=True)) for n in fed.names for run in fed.running[n]]
    fed.deliver()
    assert WF in d1.state.final  # ended at d1
    assert d1.pending is table and type(table) is Pending
    assert not [k for k in table if k[1] == WF]
    assert [k for k in table if k[1] == "d0.other"] == other == table.of("d0.other")


# ---- the next resends from a heap, against the walk they replace ----------------------

class _Walked(dict):
    """The table as it was: walked for the earliest resend and at every tick."""

    def earliest(self):
        return min((e[2] for e in self.values()), default=None)

    def resend_due(self, now, most_s):
        out = []
        for entry in list(self.values()):
            if entry[2] <= now:
                entry[3] = min(entry[3] * 2, most_s)
                entry[2] = now + entry[3]
                out.append(entry)
        return out


_keys = st.tuples(st.sampled_from(["final", "result", "placed"]),
                  st.sampled_from(["a.1", "a.2", "a.3"]), st.sampled_from(["d1", "d2"]))
_steps = st.lists(st.one_of(
    st.tuples(st.just("keep"), _keys, st.integers(0, 30).map(float),
              st.sampled_from([0.5, 1.0, 2.0])),
    st.tuples(st.just("ack"), _keys),
    st.tuples(st.just("cut"), st.sampled_from(["a.1", "a.2", "a.3"]),
              st.sampled_from([None, "final", "result"])),
    st.tuples(st.just("tick"), st.integers(0, 60).map(float)),
    st.tuples(st.just("copy"),),
), max_size=80)


@settings(max_examples=400, deadline=None)
@given(_steps)
def test_resends_from_the_heap_are_the_walks_in_order_and_time(steps) -> None:
    # A resend missed, sent twice, early or out of the table's order fails here: each
    # tick's resends (what and in which order) and every earliest deadline are compared
    # with the plain walk's over any sequence of keeps, acknowledgements and cuts.
    table, walked = Pending(), _Walked()
    for step in steps:
        if step[0] == "keep":
            _, key, at, backoff = step
            table[key] = [key[2], key, at, backoff]
            walked[key] = [key[2], key, at, backoff]
        elif step[0] == "ack":
            assert (table.pop(step[1], None) is None) == (walked.pop(step[1], None) is None)
        elif step[0] == "cut":
            _, wf, kind = step
            which = None if kind is None else (lambda k, v, kind=kind: k[0] == kind)
            table.drop(wf, which)
            for k in [k for k in walked if k[1] == wf and (which is None or which(k, None))]:
                del walked[k]
        elif step[0] == "tick":
            assert table.resend_due(step[1], 8.0) == walked.resend_due(step[1], 8.0)
        else:
            table = copy.deepcopy(table)
        assert list(table.items()) == list(walked.items())
        assert table.earliest() == walked.earliest()


def test_the_earliest_resend_reads_the_top_entry_not_every_one() -> None:
    class Counted(list):
        reads = 0

        def __getitem__(self, i):
            Counted.reads += 1
            return list.__getitem__(self, i)

    t = Pending()
    for i in range(300):
        t[("final", f"w{i}", "d1")] = Counted(["d1", None, 100.0 + i, 1.0])
    Counted.reads = 0
    assert t.earliest() == 100.0
    assert t.resend_due(50.0, 8.0) == []  # a tick with nothing due
    assert Counted.reads <= 3  # the walk read all 300
