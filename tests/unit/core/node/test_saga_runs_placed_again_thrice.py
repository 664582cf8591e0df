"""A step placed again three times owes a compensation in every domain whose run of it
SUCCEEDED, whoever drives its saga and whenever the runs report (authority_steps.
placed_before, earlier_of; replacement.py, placed_here.py write the list): s0 (with a
`compensate` block) first placed on d1 (A), placed again on d2 (B: A lost, its run went
on), on d3 (C: B lost, its run went on too), then on d0 (D: C lost before it ran s0);
s1 on d0, s2 on d3. Each placement carries every domain the step was placed on before,
in order, on record and in its tell, so the driver knows B after a restart (its
progress, which saw B lost, is rebuilt from the last placement alone: lost with C), as
does every member told, and a Node that learns the placements from a grant or an
answer. Before, only the committed placement (A) and the last lost domain (C) were on
record: B's report after the restart was refused, and B's run never undone."""

from __future__ import annotations

import random

import pytest
from fedorch.core.node import Node, StepEnded, Submit
from fedorch.core.node.authority import Refused, check
from fedorch.core.node.authority_steps import placed_before
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation
from tests.unit.core.node.test_compensating import NOW, TIMING, WF, Sagas
from tests.unit.core.node.test_saga_results import s0_compensated_beside_s1_and_s2

NAMES = ["d0", "d1", "d2", "d3"]
# (epoch, new domain, lost domain) of s0's three re-placements, in order.
PLACED = [(11, "d2", "d1"), (12, "d3", "d2"), (13, "d0", "d3")]
BEFORE = ("d1", "d2", "d3")  # s0's domains before d0, oldest first


class FourSagas(Sagas):
    """The sagas' harness on four Nodes."""

    def __init__(self) -> None:
        self.timing = TIMING
        self.queue = {n: [] for n in NAMES}
        self.compensations = []
        Federation.__init__(self, NAMES, start=NOW)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 4}, timing=self.timing, peers=NAMES,
                    rng=random.Random(NAMES.index(name)), disk=self.disks[name],
                    now=self.now)


def take(f: FourSagas, name: str, step: str) -> tuple:
    """The oldest attempt of `step` running at `name`, taken off its queue."""
    run = next(r for r in f.queue[name] if r[1] == step)
    f.queue[name].remove(run)
    return run


def s0_placed_again_thrice(spec: spec_pb2.WorkflowSpec | None = None,
                           both_ways: bool = False) -> FourSagas:
    """A's run SUCCEEDED cut off (its result never reached d0; `both_ways`: nothing
    reaches A either, the tells of the new placements included); d0 placed s0 again
    three times (each round's PREPARE, then its commit as replacement.py writes and
    tells it, every member taking the tell, the new domain the round's COMMIT as
    placed_here.py does); B's run SUCCEEDED, cut off too; C's never started before
    its placement was over; D's (d0's) SUCCEEDED, as did s1. `spec`: the workflow's
    (s0_compensated_beside_s1_and_s2 by default)."""
    f = FourSagas()
    f.step("d0", Submit(WF, spec or s0_compensated_beside_s1_and_s2(),
                        placement={"s0": "d1", "s1": "d0", "s2": "d3"}))
    f.deliver()
    f.step("d1", StepEnded(*take(f, "d1", "s0"), True, {"of": "s0"}, ""))
    if both_ways:
        f.silent.add("d1")
    else:
        f.net = [m for m in f.net if m[0] != "d1"]  # cut off: its report is lost
    d0 = f.nodes["d0"]
    for epoch, domain, lost in PLACED:
        prepared = d0.replacement._info(WF, "s0", domain, lost)  # the round's PREPARE
        d0.replacement._placed(f.now, WF, "s0", domain, epoch, lost, None)
        f.flush("d0")
        if domain != "d0":  # the new domain learns the round's COMMIT
            f.nodes[domain].state.info[(WF, epoch)] = prepared
            assert f.nodes[domain].placed_here.committed_here(f.now, (WF, epoch), [("s0", "a")])
            f.flush(domain)
        f.deliver()
        if domain == "d2":  # B runs it, cut off as A was
            f.step("d2", StepEnded(*take(f, "d2", "s0"), True, {"of": "s0"}, ""))
            f.net = [m for m in f.net if m[0] != "d2"]
    f.end("d0", True)  # s1 or s0, in start order
    f.end("d0", True)
    assert f.disks["d0"].results[WF]["s0"][1] is StepState.SUCCEEDED
    assert f.disks["d0"].results[WF]["s1"][1] is StepState.SUCCEEDED
    assert f.nodes["d0"].stats["result of an older placement refused"] == 0  # none came
    return f


def owed(f: FourSagas) -> dict[str, str]:
    """Each domain d0 owes s0's compensation in, and its state there."""
    d = f.disks["d0"]
    rows = [r for k, r in d.compensations.items() if k == (WF, "s0")]
    rows += [r for k, r in d.extra_compensations.items() if k[:2] == (WF, "s0")]
    return {r.domain: r.state for r in rows}


def test_every_domain_before_is_on_record_and_told():
    f = s0_placed_again_thrice()
    for name in NAMES:  # the driver's record, and each member's from its tells
        assert f.disks[name].placements[WF]["s0"] == (13, "d0", "d3")
        assert f.disks[name].earlier_domains[WF]["s0"] == BEFORE
    for name in NAMES[1:]:  # a member that may succeed d0 knows every one
        assert placed_before(f.nodes[name], WF, "s0") == set(BEFORE)
    # A grant and a placement answer carry the list too.
    assert f.nodes["d3"].placed_here.carried(WF)["before"] == (("s0", BEFORE),)


def test_a_restarted_driver_owes_a_compensation_in_every_domain_that_ran_it():
    f = s0_placed_again_thrice()
    # d0 restarts before A's and B's reports came: its progress, which saw B lost,
    # is rebuilt from the placement on record.
    f.restart("d0")
    f.deliver()
    assert "d2" not in f.nodes["d0"].progress[WF].steps["s0"].replaced_from
    assert placed_before(f.nodes["d0"], WF, "s0") == set(BEFORE)
    assert f.end("d3", False, "boom")[1] == "s2"
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED
    # A and B reported their runs at the end, each of an older placement than d0's.
    for name in ("d1", "d2"):
        assert f.nodes[name].stats["run of a step placed elsewhere reported to the saga"] == 1
    assert owed(f) == {"d0": "RUNNING", "d1": "RUNNING", "d2": "RUNNING"}  # never d3
    assert sorted(d for d, _ in f.compensations) == ["d0", "d1", "d2"]
    for name in ("d0", "d1", "d2"):
        f.end(name, True)
    assert owed(f) == {"d0": "COMPENSATED", "d1": "COMPENSATED", "d2": "COMPENSATED"}
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    for name in ("d0", "d1", "d2"):  # each ran its own, once
        assert f.disks[name].comp_runs[(WF, "s0", 1)] == ("succeeded", "", True)
    assert (WF, "s0", 1) not in f.disks["d3"].comp_runs
    assert all(run[0] != "d3" for run in f.compensations)
    assert f.compensations.count(("d0", (WF, "s0", 1, COMPENSATE))) == 1


def test_a_middle_domains_result_counts_for_the_saga_only():
    # B's SUCCEEDED of its older placement is taken at the restarted driver (its
    # compensation is owed there); nothing else of B's is.
    f = s0_placed_again_thrice()
    f.restart("d0")
    f.deliver()
    ok = ResultMsg(WF, "s0", 1, StepState.SUCCEEDED, {"of": "s0"}, "", 11)
    check(f.nodes["d0"], "d2", ok)
    for msg in (ResultMsg(WF, "s0", 1, StepState.FAILED, {}, "boom", 11),
                ResultMsg(WF, "s0", 1, StepState.RUNNING, {}, "", 11),
                ResultMsg(WF, "s0", 1, StepState.SUCCEEDED, {}, "", 13),  # not older
                ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {}, "", 0)):  # not placed there
        with pytest.raises(Refused):
            check(f.nodes["d0"], "d2", msg)


def test_a_placement_learned_from_a_grant_or_an_answer_carries_the_list():
    f = s0_placed_again_thrice()
    carried = f.nodes["d0"].placed_here.carried(WF)  # as a grant or an answer carries it
    assert carried["placements"] == (("s0", 13, "d0", "d3"),)
    assert carried["before"] == (("s0", BEFORE),)
    # d3 as a Node whose record was written before the list was kept, that missed the
    # last tell: its record reads as before (the committed placement's, the lost one).
    d3 = f.nodes["d3"]
    d3.state.placements[WF] = {"s0": (12, "d3", "d2")}
    d3.state.earlier_domains[WF] = {}
    f.flush("d3")
    assert placed_before(d3, WF, "s0") == {"d1", "d2"}
    d3.placed_here.learn(f.now, WF, carried["placements"], carried["before"])
    f.flush("d3")
    assert f.disks["d3"].placements[WF]["s0"] == (13, "d0", "d3")
    assert f.disks["d3"].earlier_domains[WF]["s0"] == BEFORE
    assert placed_before(d3, WF, "s0") == set(BEFORE)
