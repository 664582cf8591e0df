"""A step placed again in an epoch its saga's driver never learned of, that SUCCEEDED
in its new domain, is compensated there too (core/node/authority_steps.py,
`saga_run_elsewhere`; saga_results.late). Takeover soak seed 109463: a successor
placed s0 again on another domain, where it SUCCEEDED, and died; the saga's driver,
a claimant of a later epoch that never won (its end planned from the committed
placement it held), refused that domain's report for ever ("not_step_domain"), and
the run there was never compensated.

Here d0 coordinates s0 (compensate, on d0), s1 (d1) and s2 (d2) in parallel; d1 holds
a placement of s0 on itself that d0 never learned of, and its own run of s0 there
SUCCEEDED. s0 SUCCEEDED at d0 too; s2 FAILS: d0 ends the workflow FAILED, owing s0's
compensation in d0 only, then d1 reports its run."""

from __future__ import annotations

import pytest
from fedorch.core.node import Message, Submit
from fedorch.core.node.authority import Refused, check
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import CompensatedMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_compensating import WF, Sagas
from tests.unit.core.node.test_saga_results import s0_compensated_beside_s1_and_s2

RUN_AT_D1 = ResultMsg(WF, "s0", 1, StepState.SUCCEEDED, {"of": "s0"}, "", 0)


def s0_ran_at_d1_unknown_to_d0(end: bool = True, s0_ok: bool = True) -> Sagas:
    """The story above, up to d0's end FAILED (`end`), d1's report not sent yet; s0
    FAILED at d0 if not `s0_ok` (its outcome unknown there, say)."""
    f = Sagas()
    f.step("d0", Submit(WF, s0_compensated_beside_s1_and_s2(),
                        placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    f.deliver()
    d1 = f.nodes["d1"].state
    d1.placements[WF] = {"s0": (1, "d1", "d0")}  # an epoch d0 never learned of
    d1.succeeded_here[WF] = {"s0": (1, 1)}  # d1's own run of it SUCCEEDED
    assert f.end("d0", s0_ok, "" if s0_ok else "lost")[1] == "s0"
    assert f.end("d1", True)[1] == "s1"
    if end:
        assert f.end("d2", False, "boom")[1] == "s2"
        assert f.disks["d0"].final[WF] is WorkflowState.FAILED
        assert (WF, "s0") in f.disks["d0"].compensations or not s0_ok
    return f


def test_a_run_in_a_domain_the_driver_never_knew_the_step_on_is_compensated_there():
    f = s0_ran_at_d1_unknown_to_d0()
    check(f.nodes["d0"], "d1", RUN_AT_D1)  # before: refused, "not_step_domain"
    f.step("d0", Message("d1", RUN_AT_D1))
    assert f.disks["d0"].extra_compensations[(WF, "s0", "d1")].domain == "d1"
    f.deliver()
    assert sorted(f.compensations) == [("d0", (WF, "s0", 1, COMPENSATE)),
                                       ("d1", (WF, "s0", 1, COMPENSATE))]
    check(f.nodes["d0"], "d1", CompensatedMsg(WF, "s0", 1, True))  # its report taken
    f.end("d0", True)
    f.end("d1", True)
    d = f.disks["d0"]
    assert d.compensations[(WF, "s0")].state == "COMPENSATED"
    assert d.extra_compensations[(WF, "s0", "d1")].state == "COMPENSATED"
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    assert f.disks["d1"].comp_runs[(WF, "s0", 1)] == ("succeeded", "", True)
    # Reported again: acknowledged, nothing owed twice.
    f.step("d0", Message("d1", RUN_AT_D1))
    assert len(d.extra_compensations) == 1 and len(f.compensations) == 2


def test_only_a_succeeded_run_reported_to_the_driver_after_the_end_is_taken():
    f = s0_ran_at_d1_unknown_to_d0(end=False)
    with pytest.raises(Refused):  # before the end: the step's domain is d0's
        check(f.nodes["d0"], "d1", RUN_AT_D1)
    f.end("d2", False, "boom")
    for msg in (ResultMsg(WF, "s0", 1, StepState.FAILED, {}, "boom", 0),
                ResultMsg(WF, "s0", 1, StepState.RUNNING, {}, "", 0)):
        with pytest.raises(Refused):  # owes nothing
            check(f.nodes["d0"], "d1", msg)
    with pytest.raises(Refused):  # d2 drives no saga of it: not taken there
        check(f.nodes["d2"], "d1", RUN_AT_D1)
    with pytest.raises(Refused):  # no run of d2's is owed a compensation at d0
        check(f.nodes["d0"], "d2", CompensatedMsg(WF, "s0", 1, True))


def test_a_run_elsewhere_of_a_step_that_succeeded_nowhere_else_is_its_first_row():
    # s0 FAILED at d0: d0's saga owes nothing for it until d1 reports its own run; the
    # step's only compensation is then d1's, and d1's report of it is taken.
    f = s0_ran_at_d1_unknown_to_d0(s0_ok=False)
    assert (WF, "s0") not in f.disks["d0"].compensations
    f.step("d0", Message("d1", RUN_AT_D1))
    assert f.disks["d0"].compensations[(WF, "s0")].domain == "d1"
    f.deliver()
    assert f.compensations == [("d1", (WF, "s0", 1, COMPENSATE))]
    check(f.nodes["d0"], "d1", CompensatedMsg(WF, "s0", 1, True))
    f.end("d1", True)
    assert f.disks["d0"].compensations[(WF, "s0")].state == "COMPENSATED"
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
