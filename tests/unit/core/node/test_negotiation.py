"""The Node's negotiation part (core/node/negotiation.py): the coordinator's refusals
(each round's NO votes) are written with the round record that redoes the round, or
with the round's end, and a coordinator restored from its disk starts from them; a
participant's hold is written when prepared, not again at its commit."""

from __future__ import annotations

import random

from fedorch.core.negotiation.participant import HoldState
from fedorch.core.node import Node, StepEnded, Submit
from fedorch.core.node.records import PrepareMsg, Timing
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness

NAMES = ["d0", "d1", "d2"]
WF = "d0.w1"
NOW = 100.0
# d2 takes work from no one: its NO names accept_from.
POLICIES = {"d0": ["*"], "d1": ["*"], "d2": ["nobody"]}


class Federation(Harness):
    max_rounds = 2
    decision_ack_s = Timing.decision_ack_s

    def __init__(self) -> None:
        super().__init__(NAMES, start=NOW)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=POLICIES[name]),
                    capacities={"a": 2}, timing=Timing(max_rounds=self.max_rounds,
                                                       decision_ack_s=self.decision_ack_s),
                    peers=NAMES, rng=random.Random(NAMES.index(name)),
                    disk=self.disks[name], now=NOW)


class OneRound(Federation):
    max_rounds = 1


def submit(f: Federation) -> None:
    """d0 coordinates one step, placed on d2 in round 1."""
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[spec_pb2.StepSpec(id="s", capability="a")])
    f.step("d0", Submit(WF, spec, placement={"s": "d2"}))


def test_a_refusal_is_written_with_the_next_rounds_record_before_its_prepare():
    f = Federation()
    submit(f)
    f.deliver(keep=lambda src, dst, msg: type(msg) is PrepareMsg and msg.tx.round == 2)
    [(round_, domain, steps, reason)] = f.disks["d0"].refusals[WF]
    assert (round_, domain, steps) == (1, "d2", ("s",))
    assert "accept_from" in reason, reason
    assert f.disks["d0"].rows[WF].round == 2
    # Round 2's PREPARE waited for the write that holds the refusal with its round.
    [ready] = [r for r in f.readies["d0"]
               if any(type(o.msg) is PrepareMsg and o.msg.tx.round == 2
                      for o in (*r.send_now, *r.send_after_write))]
    assert all(type(o.msg) is not PrepareMsg for o in ready.send_now)
    assert any(op.table == "refusals" for w in ready.writes for op in w.ops)
    f.deliver()
    assert f.disks["d0"].rows[WF].state in (WorkflowState.RUNNING, WorkflowState.SUCCEEDED)


def test_the_refusals_of_an_aborted_workflow_are_written_with_its_end_and_restored():
    f = OneRound()
    submit(f)
    f.deliver()
    row = f.disks["d0"].rows[WF]
    assert row.state is WorkflowState.ABORTED
    assert [r[:3] for r in f.disks["d0"].refusals[WF]] == [(1, "d2", ("s",))]
    assert "d2" in row.reason
    core = f.nodes["d0"].coordinators[WF]
    restored = f.restore("d0").coordinators[WF]
    assert restored.refusals == core.refusals


def test_a_workflow_with_no_refusal_writes_none():
    f = Federation()
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[spec_pb2.StepSpec(id="s", capability="a")])
    f.step("d0", Submit(WF, spec, placement={"s": "d1"}))
    f.deliver()
    assert f.disks["d0"].rows[WF].state in (WorkflowState.RUNNING, WorkflowState.SUCCEEDED)
    assert f.disks["d0"].refusals == {}


def test_a_hold_is_written_prepared_and_not_again_at_its_commit():
    """The COMMIT learned beside a PREPARED hold says it committed: the hold's row is
    not written again at the commit (its acknowledgement, a DecisionAck or the step's
    start standing for it, leaves after the COMMIT's write), and
    a restore from that disk holds the step's slot as committed, runs the step again
    (an idempotent one, retried), and frees the slot at its end."""
    f = Federation()
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[spec_pb2.StepSpec(
        id="s", capability="a", retries=1, idempotent=True)])
    f.step("d0", Submit(WF, spec, placement={"s": "d1"}))
    f.deliver()
    key = (WF, 1)
    assert f.running["d1"] == {(WF, "s", 1)}  # committed and started, not ended
    assert f.nodes["d1"].participant.hold(key).state is HoldState.COMMITTED
    assert f.disks["d1"].holds[key].state is HoldState.PREPARED
    assert f.disks["d1"].learned[key].commit
    [commit] = [r for r in f.readies["d1"] if any(w.point == "hold committed"
                                                  for w in r.writes)]
    assert [op.table for w in commit.writes for op in w.ops
            if w.point == "hold committed"] == ["learned", "committed", "electorates"]
    restored = f.restore("d1")
    assert restored.participant.hold(key).state is HoldState.COMMITTED
    assert restored.participant.hold(key).steps == [("s", "a")]
    [again] = f.readies["d1"][-1:]
    assert not [op for w in again.writes for op in w.ops if op.table == "holds"]
    f.deliver()  # its placement confirmed by d0 (restart_check.py)
    assert f.running["d1"] == {(WF, "s", 2)}  # the first attempt interrupted, retried
    f.step("d1", StepEnded(WF, "s", 2, ok=True))
    f.deliver()
    assert f.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED
    assert key not in f.disks["d1"].holds and restored.participant.holds() == []


def _acks_held_back(batched: bool) -> tuple:
    """The commit_acks chain, its DecisionAcks sent at once, every acknowledgement to
    d0 held back to the end, then taken by d0 one message each or one `Acks` input per
    sender: what d0 then holds (its tables, resends, counters)."""
    from fedorch.core.negotiation.messages import DecisionAck
    from fedorch.core.node import Acks, Message, StepEnded
    from fedorch.core.node.records import AckMsg

    from tests.unit.core.node.test_commit_acks import CHAIN, PLACED, AtOnce
    fed = AtOnce()
    held = lambda src, dst, msg: dst == "d0" and type(msg) in (AckMsg, DecisionAck)  # noqa: E731
    fed.step("d0", Submit(WF, CHAIN, placement=PLACED))
    fed.deliver(keep=held)
    fed.net, kept = [], fed.net
    for name in ("d0", "d1", "d2"):
        (run,) = [r for r in fed.running[name] if r[0] == WF]
        fed.running[name].discard(run)
        fed.step(name, StepEnded(*run, ok=True))
        fed.deliver(keep=held)
        kept, fed.net = kept + fed.net, []
    assert {type(m) for _, _, m in kept} == {AckMsg, DecisionAck}
    for src in ("d1", "d2"):
        acks = tuple(m for s, _, m in kept if s == src)
        if batched:
            fed.step("d0", Acks(src, acks))
        else:
            for ack in acks:
                fed.step("d0", Message(src, ack))
    d = fed.disks["d0"]
    return (dict(d.records), {k: set(v) for k, v in d.final_acked.items()},
            sorted(fed.nodes["d0"].pending), fed.nodes["d0"].stats["decision record collected"],
            fed.nodes["d0"].coordinators[WF].awaiting_acks())


def test_the_acknowledgements_of_one_input_do_what_their_messages_did() -> None:
    one_each = _acks_held_back(batched=False)
    assert one_each[1] == {WF: {"d1", "d2"}} and not one_each[4]  # they did something
    assert _acks_held_back(batched=True) == one_each


def test_a_refused_acknowledgement_leaves_the_others_of_its_input_applied() -> None:
    import pytest
    from fedorch.core.negotiation.errors import RemoteProtocolError
    from fedorch.core.node import Acks
    from fedorch.core.node.records import AckMsg
    f = OneRound()
    node = f.nodes["d0"]
    node.pending[("result", WF, "s", "d1")] = ["d1", None, NOW + 1, 1.0]
    with pytest.raises(RemoteProtocolError, match="1 of 2"):
        node.step(NOW, Acks("d1", ("no acknowledgement", AckMsg(("result", WF, "s", "d1")))))
    assert ("result", WF, "s", "d1") not in node.pending
