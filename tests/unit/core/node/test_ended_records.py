"""The end of a workflow retention forgot, kept as a compact record (core/node/
ended_records.py), answered to a peer cut off longer than the workflow was kept; and
the end told to a domain holding a step of a workflow that can owe no saga
(restart_check.py, `_tell_end`)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from types import SimpleNamespace

from fedorch.core.node import MemberState, Message, StepEnded, Submit
from fedorch.core.node.ended_records import EndedRecords
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg, FinalMsg, PlacementQuery
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node import test_retention_takeover as rt
from tests.unit.core.node.test_compensating_takeover import Held
from tests.unit.core.node.test_domain_loss import committed, step
from tests.unit.core.node.test_restart_check import certificate
from tests.unit.core.node.test_takeover_claims import (
    WF,
    granted_by_a_member_that_never_heard_the_end,
)
from tests.unit.core.node.test_takeover_late_grants import holds

LATE = 10.0


def with_retention(monkeypatch, node: str = "d1") -> None:
    """Held's federation with `node` made with retention (restarts included; the others
    as Held makes them), so that it forgets an ended workflow past two windows of LATE."""
    made = Held.make_node

    def make_node(self: Held, name: str):
        if name != node:
            return made(self, name)
        self.timing = dataclasses.replace(Held.timing, retention=Retention(
            keep_ended_s=5.0, max_ended_workflows=1000, late_message_s=LATE))
        try:
            return made(self, name)
        finally:
            del self.timing

    monkeypatch.setattr(Held, "make_node", make_node)


def grant_lost(src: str, dst: str, msg: object) -> bool:
    """d3's grant of d1's claim, lost on its way."""
    return (src, dst) == ("d3", "d1") and isinstance(msg, ClaimAnswerMsg) and msg.granted


def cut(src: str, dst: str, msg: object) -> bool:
    """d1 and d3 cut off from each other."""
    return {src, dst} == {"d1", "d3"}


def test_a_domain_holding_a_step_of_a_workflow_with_no_saga_is_told_the_end() -> None:
    """d0 took d2's FAILED end of epoch 1 (d0 follows d2). d1, whose step s2 is still
    placed on it, asks d0: the spec has no compensate block, so no plan is owed and
    none will ever come; the end is the whole end, told as for a saga that is over,
    and d1 ends the workflow and lets its hold go. Before, d0 told it nothing (it
    waited for a saga's driver that has no saga to drive), and d1 held for ever."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    won = certificate(fed, "d2", ("d0", "d2"))
    fed.step("d0", Message("d2", FinalMsg("d0.w", WorkflowState.FAILED, 1, won=won)))
    assert fed.disks["d0"].final["d0.w"] is WorkflowState.FAILED
    fed.net.clear()
    fed.step("d0", Message("d1", PlacementQuery("d0.w")))
    told = [m for to, m in fed.sent_by("d0", FinalMsg) if to == "d1"]
    assert [(m.state, m.epoch) for m in told] == [(WorkflowState.FAILED, 0)]
    fed.deliver()
    assert fed.disks["d1"].final["d0.w"] is WorkflowState.FAILED
    assert not [h for h in fed.nodes["d1"].participant.holds() if h.workflow_id == "d0.w"]


def test_a_granter_cut_off_past_the_claimants_retention_is_told_the_end_from_its_record(
        monkeypatch):
    """d3's grant of d1's claim (epoch 1) never reached d1; d1's claim and plan are
    over. d3, following d1 in epoch 1 and holding its reservation, is cut off from d1
    until d1, now with retention, has forgotten the workflow (past two windows of its
    last mark): d1 kept its end as a record, durable across a restart, and answers
    d3's ask with it in epoch 1, as it did while it kept the workflow; d3 ends and lets
    its hold go. Before, d1 answered nothing and d3 held for ever."""
    with_retention(monkeypatch)

    def denials_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d1") and isinstance(msg, ClaimAnswerMsg)

    f = granted_by_a_member_that_never_heard_the_end(lost=grant_lost)
    assert f.nodes["d1"].retain is not None and f.nodes["d3"].retain is None
    f.net = [m for m in f.net if not cut(*m)]
    assert f.disks["d3"].granted[WF] == (1, "d1") and WF not in f.disks["d1"].late_grants
    f.hold = lambda *m: cut(*m) or denials_late(*m)
    f.end("d1", True)  # the compensation ends: d0's saga is over, d1's plan closes
    f.run_until(f.now + 3.0)
    assert f.disks["d1"].plans[WF] == () and not f.nodes["d1"].takeover.live(WF)
    f.hold = cut
    d1 = f.nodes["d1"]
    f.run_until(f.now + 2 * LATE + 10.0)
    assert WF not in f.disks["d1"].final and WF not in f.disks["d1"].granted  # forgotten
    assert f.disks["d1"].ended_records[WF][:4] == (WorkflowState.FAILED, 1, "d1", 1)
    assert d1.stats["retention: end kept as a record"] == 1
    assert WF not in f.disks["d3"].final and holds(f, "d3")
    d1 = f.restart("d1")  # the record is read back with the tables
    assert d1.state.ended_records[WF][0] is WorkflowState.FAILED and d1.retain.ends.heap
    f.net = [m for m in f.net if not cut(*m)]
    f.hold = None
    f.run_until(f.now + 60.0)
    assert d1.stats["placement asked of a forgotten workflow: the end told"] >= 1
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")


def stranded(fed: rt.Federation | None = None) -> rt.Federation:
    """d0's workflow, a step on each of d1, d2, d3; d0 dies, d1 acts in epoch 1 and
    ends it, its end never reaching d3 (lost each time); d0 comes back and takes it,
    and d1, whose view says d3 is gone, makes it.
    Then d1 dies for good and d3 is cut off until d0 and d2 have forgotten the
    workflow."""
    fed = rt.Federation() if fed is None else fed
    cut = [False]
    fed.drop = lambda src, dst, msg: dst == "d3" and isinstance(msg, FinalMsg) \
        or cut[0] and "d3" in (src, dst)
    steps = {"s1": "d1", "s2": "d2", "s3": "d3"}
    fed.step("d0", Submit(rt.WF, spec_pb2.WorkflowSpec(
        name="w", steps=[step(s) for s in steps]), placement=steps))
    fed.deliver()
    fed.goes_silent_and_dead("d0")
    for name in ("d1", "d2", "d3"):
        for run in sorted(fed.running[name]):
            fed.step(name, StepEnded(*run, ok=True))
        fed.deliver()
    fed.silent.discard("d0")
    fed.restore("d0")
    fed.step("d0", *[MemberState(m, "ALIVE") for m in ("d1", "d2", "d3")])
    fed.step("d1", MemberState("d3", "DEAD"))  # made without d3's acknowledgement
    fed.run_until(fed.now + 5.0)
    assert fed.disks["d1"].final[rt.WF] is WorkflowState.SUCCEEDED
    assert rt.WF not in fed.disks["d3"].final
    cut[0] = True
    fed.goes_silent_and_dead("d1")
    fed.run_until(fed.now + 4 * LATE)
    assert rt.WF not in fed.disks["d2"].final and rt.WF not in fed.disks["d0"].final
    fed.cut = cut
    return fed


def test_a_stranded_claimant_is_answered_the_end_by_a_member_that_forgot_it():
    """d3 missed the end; the holder that made it died for good; d2 forgot the workflow.
    d3 claims epoch 2: d2 answers with the end kept as its record (with the epoch it
    held, no grant), and d3 takes it, ending the workflow. Before, d2 refused the claim
    as unknown here (no proof of the round) and d3 claimed for ever, held."""
    fed = stranded()
    assert fed.disks["d2"].ended_records[rt.WF][:3] == (WorkflowState.SUCCEEDED, 1, "d1")
    fed.cut[0] = False
    fed.run_until(fed.now + 60.0)
    assert fed.nodes["d2"].stats["takeover claim of a forgotten workflow: its end"] >= 1
    assert fed.disks["d3"].final.get(rt.WF) is WorkflowState.SUCCEEDED
    assert not [h for h in fed.nodes["d3"].participant.holds() if h.workflow_id == rt.WF]
    assert not fed.readies["d2"][-1].writes  # answered from the record: nothing written


class ShortRecords(rt.Federation):
    timing = dataclasses.replace(rt.Federation.timing, retention=dataclasses.replace(
        rt.POLICY, keep_end_records_s=60.0))


def test_a_record_goes_after_keep_end_records_s():
    """A record goes `keep_end_records_s` after it was kept (one write of retention's);
    a claim is refused then as before."""
    fed = stranded(ShortRecords())
    d2 = fed.nodes["d2"]
    assert rt.WF in d2.state.ended_records
    fed.run_until(fed.now + 70.0)
    assert rt.WF not in fed.disks["d2"].ended_records
    ready = fed.step("d2", Message("d3", ClaimMsg(rt.WF, 2)))
    assert d2.stats["takeover claim of a forgotten workflow: its end"] == 0
    assert [m.final for _, m in rt._sent(ready)] == [None]


def test_past_max_end_records_the_oldest_goes():
    """At most `max_end_records` are kept: the oldest goes as a new one comes, with its
    successor's proof where it keeps one (d0.a's, ended by d1 in epoch 1)."""
    state = SimpleNamespace(ended_records={}, final={}, epochs={}, granted={},
                            ended_proofs={})
    proofs = {"d0.a": (1, "d1", ("grant",))}
    node = SimpleNamespace(state=state, name="d2", stats=Counter(),
                           end_notices=SimpleNamespace(end_proof=proofs.get))
    retainer = SimpleNamespace(n=node, policy=Retention(max_end_records=2))
    ends = EndedRecords(retainer)
    for i, wf in enumerate(("d0.a", "d0.b", "d0.c", "d1.d")):
        state.final[wf] = WorkflowState.SUCCEEDED
        ends.keep(wf, 1000 + i)
        if wf == "d0.a":
            assert state.ended_proofs == proofs
    assert state.ended_proofs == {}
    assert state.ended_records == {"d0.c": (WorkflowState.SUCCEEDED, 0, "d0", -1, 1002),
                                   "d1.d": (WorkflowState.SUCCEEDED, 0, "d1", -1, 1003)}
    ends.keep("d0.x", 2000)  # no end here: nothing kept
    assert "d0.x" not in state.ended_records
    ends.restore()
    assert ends.heap == [(1002, "d0.c"), (1003, "d1.d")]
