"""A step placed again twice owes a compensation in every domain whose run of it
SUCCEEDED (core/node/saga_runs.py, saga_results.late, authority_steps.placed_before):
s0 (with a `compensate` block) first placed on d1, placed again on d2 (d1 lost: its
run went on), then on d0 (d2 lost: its run went on too); s1 on d0, s2 on d2. The
placement on record names only its last lost domain (d2); d1, the first, is known
from the committed placement. Each run that SUCCEEDED reports at the end and is
compensated where it ran; before, d1's report was taken as a run of the current
placement, and its compensation owed in d0, which never ran the step."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fedorch.core.node import StepEnded, Submit
from fedorch.core.node.authority import Refused, check
from fedorch.core.node.authority_steps import placed_before
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_compensating import WF, Sagas
from tests.unit.core.node.test_saga_results import s0_compensated_beside_s1_and_s2

PLACED_TWICE = {"s0": (2, "d0", "d2")}  # (epoch, current domain, last lost domain)


def s0_placed_again_twice() -> Sagas:
    """s0's placement on d1 lost, then its placement on d2 (every Node knows the last
    placement: on d0, lost with d2); d1's and d2's runs SUCCEEDED, each refused at d0
    as an older placement's (d1's told, d2's never reached it), d0's never ran; then
    s1 SUCCEEDED and s2 FAILED: d0 ends the workflow FAILED."""
    f = Sagas()
    f.step("d0", Submit(WF, s0_compensated_beside_s1_and_s2(),
                        placement={"s0": "d1", "s1": "d0", "s2": "d2"}))
    f.deliver()
    for name in ("d0", "d1", "d2"):
        f.nodes[name].state.placements[WF] = dict(PLACED_TWICE)
    f.nodes["d2"].state.succeeded_here[WF] = {"s0": (1, 1)}  # its run, placement 1
    run = f.queue["d1"].pop(0)
    assert run == (WF, "s0", 1)
    f.step("d1", StepEnded(*run, True, {"of": "s0"}, ""))
    f.deliver()
    assert f.nodes["d0"].stats["result of an older placement refused"] == 1
    assert f.end("d0", True)[1] == "s1"
    assert f.end("d2", False, "boom")[1] == "s2"
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED
    return f


def owed(f: Sagas) -> dict[str, str]:
    """Each domain d0 owes s0's compensation in, and its state there."""
    d = f.disks["d0"]
    rows = [r for k, r in d.compensations.items() if k == (WF, "s0")]
    rows += [r for k, r in d.extra_compensations.items() if k[:2] == (WF, "s0")]
    return {r.domain: r.state for r in rows}


def test_each_earlier_domain_whose_run_succeeded_is_compensated_there():
    f = s0_placed_again_twice()
    # Both reported their runs at the end, each of an older placement than d0's.
    for name in ("d1", "d2"):
        assert f.nodes[name].stats["run of a step placed elsewhere reported to the saga"] == 1
    assert owed(f) == {"d1": "RUNNING", "d2": "RUNNING"}  # never d0: it never ran s0
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s0", 1, COMPENSATE))]
    f.end("d1", True)
    assert f.nodes["d0"].compensating.of(WF)[1].value == "RUNNING"
    f.end("d2", True)
    assert owed(f) == {"d1": "COMPENSATED", "d2": "COMPENSATED"}
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    for name in ("d1", "d2"):  # each ran its own, once
        assert f.disks[name].comp_runs[(WF, "s0", 1)] == ("succeeded", "", True)
    # Reported again after a restart: acknowledged, nothing owed twice.
    f.restart("d1")
    f.deliver()
    assert len(f.compensations) == 2 and len(owed(f)) == 2


def test_the_first_domain_is_known_from_the_committed_placement():
    f = s0_placed_again_twice()
    assert placed_before(f.nodes["d0"], WF, "s0") == {"d1", "d2"}
    assert placed_before(f.nodes["d0"], WF, "s1") == set()  # never placed again


def test_a_new_domain_takes_an_earlier_domains_succeeded_run_for_the_saga_only():
    # d2 as the domain the first re-placement's round committed (its own round: s0 on
    # d2, lost with d1): the committed placement it knows does not name d1, the
    # placement on record names d2 itself as lost. d1's SUCCEEDED of its older
    # placement is taken (a compensation is owed there), nothing else of d1's is.
    f = s0_placed_again_twice()
    d2 = f.nodes["d2"]
    d = d2.state
    key = (WF, d.committed[WF])
    d.info[key] = replace(d.info[key], placement={**d.info[key].placement, "s0": "d2"},
                          lost="d1")
    ok = ResultMsg(WF, "s0", 1, StepState.SUCCEEDED, {"of": "s0"}, "", 0)
    check(d2, "d1", ok)
    for msg in (replace(ok, state=StepState.FAILED, error="boom"),  # owes nothing
                replace(ok, state=StepState.RUNNING),  # progress only
                replace(ok, epoch=2)):  # not an older placement's
        with pytest.raises(Refused):
            check(d2, "d1", msg)
    with pytest.raises(Refused):  # never placed there
        check(d2, "d1", replace(ok, step_id="s1"))
