"""A claimant that yielded its epoch to a better-ranked rival, then forgot the workflow
by retention, answers a late granter from the end's record (core/node/
ended_records.py, "A placement question"; takeover_late_grants.py, "A claim yielded
to a rival").

The set-up of test_takeover_late_grants_yielded.py, with a step s3 on d3 after the
failing s2: d3 holds its reservation (s3 never runs) until it takes the end. d2, a
claimant of epoch 1, yields it to d1 and follows it; d3's grant of d2's claim comes
after the yield, and d3 follows d2 in epoch 1, refusing d1's end (no certificate).
Here d2 has retention, and d3 is cut off from d2 until d2 has forgotten the
workflow."""

from __future__ import annotations

import dataclasses
from collections import Counter
from types import SimpleNamespace

from fedorch.core.node import Message, StepEnded, Submit
from fedorch.core.node.ended_records import NOTHING, EndedRecords
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg, FinalMsg
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.takeover import Role
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_compensating_takeover import WF, Held, spec
from tests.unit.core.node.test_takeover_late_grants import holds
from tests.unit.core.node.test_takeover_late_grants_yielded import hand

LATE = 10.0


def d2_with_retention(monkeypatch) -> None:
    """Held's federation with d2 made with retention (restarts included), so that it
    forgets an ended workflow once it is settled and LATE old."""
    made = Held.make_node

    def make_node(self: Held, name: str):
        if name != "d2":
            return made(self, name)
        self.timing = dataclasses.replace(Held.timing, retention=Retention(
            keep_ended_s=5.0, max_ended_workflows=1000, late_message_s=LATE))
        try:
            return made(self, name)
        finally:
            del self.timing

    monkeypatch.setattr(Held, "make_node", make_node)


def with_s3() -> spec_pb2.WorkflowSpec:
    """spec(), and s3 after s2, with no compensate block: never ready once s2 fails."""
    s = spec()
    s.steps.append(spec_pb2.StepSpec(id="s3", capability="a", needs=["s2"]))
    return s


def cut(src: str, dst: str, msg: object) -> bool:
    """d2 and d3 cut off from each other."""
    return {src, dst} == {"d2", "d3"}


def yielded_and_forgotten() -> Held:
    f = Held()
    f.step("d0", Submit(WF, with_s3(),
                        placement={"s0": "d1", "s1": "d2", "s2": "d3", "s3": "d3"}))
    f.deliver()
    assert f.end("d1", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"
    run = f.queue["d3"].pop(0)  # s2 fails; its result reaches d0, which tells FAILED
    f.step("d3", StepEnded(*run, ok=False, error="boom"))
    f.deliver(keep=lambda src, dst, msg: src == "d0")
    ends = {dst: msg for src, dst, msg in f.net
            if src == "d0" and isinstance(msg, FinalMsg) and not msg.owed}
    f.net = []
    f.kill("d0")
    f.disks["d2"].granted[WF] = (1, "d2")  # its own claim of epoch 1, on record
    f.restart("d2")
    assert f.nodes["d2"].retain is not None
    f.hold = lambda src, dst, msg: isinstance(msg, (ClaimMsg, ClaimAnswerMsg))
    f.run_until(f.now + 0.5)
    hand(f, "d2", "d3", ClaimMsg)  # d3 grants d2's claim: its answer held
    hand(f, "d2", "d1", ClaimMsg)
    hand(f, "d1", "d2", ClaimAnswerMsg)  # d1 denies as itself: d2 yields to it
    assert f.disks["d2"].granted[WF] == f.disks["d2"].epochs[WF] == (1, "d1")
    f.step("d1", Message("d0", ClaimAnswerMsg(WF, 1, False, 0, "d0", ends["d1"].state)))
    hand(f, "d3", "d2", ClaimAnswerMsg)  # d3's grant, after the yield: dropped
    assert f.disks["d3"].epochs[WF] == (1, "d2")
    core = f.nodes["d2"].takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.FOLLOWING, 1, "d1")
    # d2 and d3 cut off from here on, the rest as it comes.
    f.net = [m for m in f.net if not cut(*m)]
    f.hold = cut
    f.run_until(f.now + 1.0)
    assert f.disks["d2"].final[WF] is WorkflowState.FAILED  # from d1, which it follows
    while any(f.queue.values()):  # the saga's compensations, each once
        for name in sorted(f.queue):
            if f.queue[name]:
                f.end(name, True)
    f.run_until(f.now + 2 * LATE + 10.0)
    assert WF not in f.disks["d2"].final and WF not in f.disks["d2"].granted  # forgotten
    assert f.nodes["d2"].stats["retention: end kept as a record"] == 1
    assert WF not in f.disks["d3"].final and holds(f, "d3")  # held, RUNNING
    return f


def test_a_yielded_claimant_tells_a_late_granter_the_end_from_its_record(monkeypatch):
    """d2 forgot the workflow (its saga over) while d3, its late granter, was cut off:
    its record keeps the end to tell in epoch 1, the epoch d3 follows it in, as `asked`
    told it while kept. Restarted (the record read back with the tables) and asked by
    d3, it answers with the end in epoch 1; d3 takes it from the holder it follows,
    ends its part and lets its reservation go, and asks no more. Before, the record
    told nothing (d2's grant of epoch 1 names d1), and d3 stayed held, asking for
    ever."""
    d2_with_retention(monkeypatch)
    f = yielded_and_forgotten()
    assert f.disks["d2"].ended_records[WF][:4] == (WorkflowState.FAILED, 1, "d1", 1)
    d2 = f.restart("d2")
    assert d2.state.ended_records[WF][3] == 1
    f.net = [m for m in f.net if not cut(*m)]
    f.hold = None
    f.run_until(f.now + 60.0)
    assert ("d3", FinalMsg(WF, WorkflowState.FAILED, 1)) in f.sent_by("d2", FinalMsg)
    assert d2.stats["placement asked of a forgotten workflow: the end told"] >= 1
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    asked = f.nodes["d3"].stats["takeover granter asked a holder that never acted"]
    f.run_until(f.now + 60.0)
    assert f.nodes["d3"].stats["takeover granter asked a holder that never acted"] == asked
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, "compensate")),
                                       ("d2", (WF, "s1", 1, "compensate"))]



def test_only_the_yielded_claimants_record_tells_its_epoch():
    """`keep` records epoch e to tell where this Node's grant of e names a rival it
    follows in e and it is not the original (as `asked` answers while kept); the
    original that yielded e tells in epoch 0 as before, and a Node following a later
    epoch than it granted tells nothing, as before."""
    state = SimpleNamespace(ended_records={}, final={}, epochs={}, granted={},
                            ended_proofs={}, plans={})
    node = SimpleNamespace(state=state, name="d2", stats=Counter(),
                           end_notices=SimpleNamespace(end_proof=lambda wf: None),
                           running=SimpleNamespace(info=lambda wf: None))
    ends = EndedRecords(SimpleNamespace(n=node, policy=Retention()))
    cases = {"d0.yielded": ((1, "d1"), (1, "d1")),   # yielded to d1, followed in 1
             "d2.original": ((1, "d1"), (1, "d1")),  # the same, at the original
             "d0.later": ((1, "d1"), (2, "d3"))}     # granted 1, follows 2's holder
    for wf, (granted, followed) in cases.items():
        state.final[wf] = WorkflowState.FAILED
        state.granted[wf], state.epochs[wf], state.plans[wf] = granted, followed, ()
        ends.keep(wf, 1000)
    told = {wf: rec[3] for wf, rec in state.ended_records.items()}
    assert told == {"d0.yielded": 1, "d2.original": 0, "d0.later": NOTHING}
