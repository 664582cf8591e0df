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

from collections import Counter
from types import SimpleNamespace

from fedorch.core.node.ended_records import NOTHING, EndedRecords
from fedorch.core.node.records import FinalMsg
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_compensating_takeover import WF, Held, spec
from tests.unit.core.node.test_ended_records import LATE, with_retention
from tests.unit.core.node.test_takeover_late_grants import holds
from tests.unit.core.node.test_takeover_late_grants_yielded import (
    granted_after_the_yield,
    granter_ended_and_quiet,
)


def with_s3() -> spec_pb2.WorkflowSpec:
    """spec(), and s3 after s2, with no compensate block: never ready once s2 fails."""
    s = spec()
    s.steps.append(spec_pb2.StepSpec(id="s3", capability="a", needs=["s2"]))
    return s


def cut(src: str, dst: str, msg: object) -> bool:
    """d2 and d3 cut off from each other."""
    return {src, dst} == {"d2", "d3"}


def yielded_and_forgotten() -> Held:
    """test_takeover_late_grants_yielded.py's story with s3 on d3 (so d3 holds a
    reservation), d2 and d3 cut off from each other from the yield on, until d2 forgot
    the workflow by retention."""
    f = granted_after_the_yield(
        with_s3(), {"s0": "d1", "s1": "d2", "s2": "d3", "s3": "d3"}, cut)
    assert f.nodes["d2"].retain is not None
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
    with_retention(monkeypatch, "d2")
    f = yielded_and_forgotten()
    assert f.disks["d2"].ended_records[WF][:4] == (WorkflowState.FAILED, 1, "d1", 1)
    d2 = f.restart("d2")
    assert d2.state.ended_records[WF][3] == 1
    f.net = [m for m in f.net if not cut(*m)]
    f.hold = None
    f.run_until(f.now + 60.0)
    assert ("d3", FinalMsg(WF, WorkflowState.FAILED, 1)) in f.sent_by("d2", FinalMsg)
    assert d2.stats["placement asked of a forgotten workflow: the end told"] >= 1
    granter_ended_and_quiet(f)



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
