"""The Ready a Node hands out: writes before the messages that need them, a message
that needs a write never in send_now, advance drops exactly what was handed out."""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.core.node import Message, Node, Submit, Tick
from fedorch.core.node.ready import Op, Outbox, apply, recorded_view
from fedorch.core.node.records import Disk, PrepareMsg, Timing, VoteMsg
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2


def _node(name: str = "d0", disk: Disk | None = None) -> Node:
    return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 2},
                timing=Timing(), peers=["d0", "d1"], rng=random.Random(1), disk=disk)


def _spec() -> spec_pb2.WorkflowSpec:
    return spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s0", capability="a")])


def test_a_message_after_a_write_waits_for_it_and_one_before_does_not():
    out = Outbox()
    view = recorded_view(Disk(), out.op)
    out.send("d1", "before")
    out.point("reservation")
    view.holds[("w", 1)] = "hold"
    out.send("d1", "after")
    ready = out.ready()
    assert [o.msg for o in ready.send_now] == ["before"]
    assert [o.msg for o in ready.send_after_write] == ["after"]
    assert [(w.point, w.ops) for w in ready.writes] == [
        ("reservation", [Op("holds", "put", ("w", 1), "hold")])]


def test_after_wait_a_message_waits_for_a_group_of_notes_alone():
    out = Outbox()
    out.send("d1", "before")
    out.wait()  # nothing to wait for yet: changes nothing
    out.send("d1", "still now")
    out.point("end told")
    out.note("end_told", "w")
    out.wait()
    out.send("d1", "after")
    ready = out.ready()
    assert [o.msg for o in ready.send_now] == ["before", "still now"]
    assert [o.msg for o in ready.send_after_write] == ["after"]
    assert [(w.point, w.notes) for w in ready.writes] == [("end told", [("end_told", "w")])]


def test_advance_drops_what_was_handed_out_and_keeps_what_came_later():
    out = Outbox()
    view = recorded_view(Disk(), out.op)
    out.point("one")
    view.final["w"] = "x"
    out.send("d1", "m1")
    ready = out.ready()
    out.advance(ready)
    assert out.ready().empty()
    out.point("two")
    view.final.pop("w")
    assert [w.point for w in out.ready().writes] == ["two"]


def test_an_ahead_message_leaves_now_only_to_a_peer_nothing_else_waits_for():
    out = Outbox()
    view = recorded_view(Disk(), out.op)
    out.send("d3", "before")
    out.point("row")
    view.final["w"] = "x"
    out.send("d1", "vote")
    out.ahead = True
    for to in ("d1", "d2", "d2"):
        out.send(to, f"prepare {to}")
    out.ahead = False
    out.send("d3", "decision")
    ready = out.ready()
    assert [tuple(o) for o in ready.send_now] == [
        ("d3", "before"), ("d2", "prepare d2"), ("d2", "prepare d2")]
    # d1's waits in its place, with the vote to d1 that waits for the write.
    assert [tuple(o) for o in ready.send_after_write] == [
        ("d1", "vote"), ("d1", "prepare d1"), ("d3", "decision")]
    assert out.ready() == ready  # decided once: handed out again the same
    out.advance(ready)
    assert out.ready().empty()
    # The next write's: the peer it goes to has nothing else after it.
    out.point("row 2")
    view.final["w2"] = "y"
    out.ahead = True
    out.send("d1", "prepare 2")
    out.ahead = False
    ready = out.ready()
    assert [tuple(o) for o in ready.send_now] == [("d1", "prepare 2")]
    assert not ready.send_after_write
    out.advance(ready)
    assert out.ready().empty()


def test_the_view_refuses_a_change_it_could_not_say():
    view = recorded_view(Disk(), lambda op: None)
    with pytest.raises(TypeError):
        view.rows.update({"w": 1})
    with pytest.raises(TypeError):
        view.runs.update({("w", "s", 1)})


def test_applying_the_ops_makes_the_disk_what_the_view_is():
    out = Outbox()
    view = recorded_view(Disk(), out.op)
    view.final["a"] = 1
    view.final["b"] = 2
    del view.final["a"]
    view.runs.add(("w", "s", 1))
    view.runs.discard(("w", "s", 2))  # absent: nothing said
    disk = Disk()
    for w in out.ready().writes:
        apply(disk, w.ops)
    assert disk.final == {"b": 2} and disk.runs == {("w", "s", 1)}


def test_a_yes_vote_leaves_only_after_the_reservation_is_written():
    d0, d1 = _node("d0"), _node("d1")
    d0.step(0.0, Submit("d0.w", _spec(), placement={"s0": "d1"}))
    r0 = d0.ready()
    assert [w.point for w in r0.writes][0] == "workflow row"
    # A submission's first PREPARE to a peer leaves with the row's write under Paxos
    # Commit (prepares_ahead.py; test_prepares_ahead.py); the vote still waits.
    prepares = [o for o in r0.send_now + r0.send_after_write if isinstance(o.msg, PrepareMsg)]
    assert prepares and all(o in r0.send_now for o in prepares)
    d0.advance(r0)
    d1.step(0.1, Message("d0", prepares[0].msg))
    r1 = d1.ready()
    votes = [o.msg for o in r1.send_after_write if isinstance(o.msg, VoteMsg)]
    assert votes and votes[0].yes
    assert not any(isinstance(o.msg, VoteMsg) for o in r1.send_now)
    assert any(op.table == "holds" for w in r1.writes for op in w.ops)


def test_no_step_between_ready_and_advance():
    node = _node()
    ready = node.ready()
    with pytest.raises(LocalProtocolError):
        node.step(0.0, Tick())
    node.advance(ready)
    node.step(0.0, Tick())


def test_restore_from_the_applied_writes_rebuilds_the_coordinator():
    node = _node()
    node.step(0.0, Submit("d0.w", _spec(), placement={"s0": "d1"}))
    ready = node.ready()
    disk = Disk()
    for w in ready.writes:
        apply(disk, w.ops)
    node.advance(ready)
    again = _node(disk=disk, name="d0")
    assert set(again.coordinators) == {"d0.w"}
    assert again.state.rows["d0.w"].round == node.state.rows["d0.w"].round


def _ops(out: Outbox) -> list[Op]:
    ready = out.ready()
    out.advance(ready)
    return [op for w in ready.writes for op in w.ops]


def test_a_step_result_is_said_as_its_own_row_and_only_when_it_changes():
    out = Outbox()
    view = recorded_view(Disk(), out.op)
    disk = Disk()
    a1, b1, a2 = (1, "SUCCEEDED", {}, ""), (1, "FAILED", {}, "x"), (2, "SUCCEEDED", {}, "")
    view.results["w"] = {"a": a1}
    view.results["w"] = {**view.results["w"], "b": b1}  # a kept: the same object
    view.results["v"] = {"a": a1}
    ops = _ops(out)
    assert ops == [Op("results", "put", ("w", "a"), a1), Op("results", "put", ("w", "b"), b1),
                   Op("results", "put", ("v", "a"), a1)]
    apply(disk, ops)
    view.results["w"] = dict(view.results["w"])  # a copy of the same results: nothing new
    view.results["w"] = {**view.results["w"], "a": a2}
    ops = _ops(out)
    assert ops == [Op("results", "put", ("w", "a"), a2)]
    apply(disk, ops)
    assert disk.results == view.results and list(disk.results) == ["w", "v"]
    # A step dropped (no Node part does): the workflow's rows written anew, last.
    view.results["w"] = {"b": b1}
    ops = _ops(out)
    assert ops == [Op("results", "delete", ("w", "a")), Op("results", "delete", ("w", "b")),
                   Op("results", "put", ("w", "b"), b1)]
    apply(disk, ops)
    assert disk.results == view.results and list(disk.results) == list(view.results) \
        == ["v", "w"]
    # Forgotten (retention): every row of it goes; an empty map is no map.
    view.results.pop("w")
    view.results["v"] = {}
    ops = _ops(out)
    assert ops == [Op("results", "delete", ("w", "b")), Op("results", "delete", ("v", "a"))]
    apply(disk, ops)
    assert disk.results == view.results == {}


def test_a_plain_value_set_again_equal_is_not_written_again():
    out = Outbox()
    view = recorded_view(Disk(), out.op)
    view.committed["w"] = 1
    view.electorates["w"] = ("d0", "d1")
    assert len(_ops(out)) == 2
    view.committed["w"] = 1
    view.electorates["w"] = ("d0", "d1")
    out.send("d1", "ack")  # what the equal value says is durable: nothing waits
    ready = out.ready()
    assert not ready.writes and [o.msg for o in ready.send_now] == ["ack"]
    out.advance(ready)
    # Equal as Python says, not as the bytes would: written.
    view.committed["w"] = True
    view.electorates["w"] = ("d0", 1)
    view.endings["w"] = 1
    view.endings["w"] = 1.0
    assert [op.value for op in _ops(out)] == [True, ("d0", 1), 1, 1.0]


def test_the_keys_of_a_workflow_are_at_hand_one_held_as_itself():
    out = Outbox()
    view = recorded_view(Disk(), out.op, by_workflow=True)
    view.acceptor[("w", 1)] = "r1"
    view.acceptor[("v", 1)] = "r1"
    assert view.acceptor.of("w") == [("w", 1)]
    # One key of a workflow is held as the key: no set for each of the workflows kept.
    assert not any(isinstance(k, set) for k in view.acceptor._of._of.values())
    view.acceptor[("w", 2)] = "r2"
    view.acceptor[("w", 1)] = "r1 again"
    assert view.acceptor.of("w") == [("w", 1), ("w", 2)]
    del view.acceptor[("w", 1)]
    assert view.acceptor.of("w") == [("w", 2)]
    view.acceptor.pop(("w", 2))
    view.acceptor.pop(("w", 3), None)
    assert view.acceptor.of("w") == [] and view.acceptor.of("v") == [("v", 1)]
    view.runs.add(("w", "a", 1))
    view.runs.add(("w", "b", 1))
    view.runs.add(("v", "a", 1))
    view.runs.discard(("w", "a", 1))
    assert view.runs.of("w") == frozenset({("w", "b", 1)})
    view.runs.discard(("w", "b", 1))
    assert view.runs.of("w") == frozenset() and len(view.runs._of) == 1
    # A view made over tables with rows indexes them as it goes.
    again = recorded_view(Disk(acceptor={("w", 1): "a", ("w", 2): "b", ("v", 1): "c"}),
                          out.op, by_workflow=True)
    assert again.acceptor.of("w") == [("w", 1), ("w", 2)]
