"""Where a SUCCEEDED result written by re-placement ran is recorded with it
(core/node/saga_results.py, `ran_in`): a need's result carried by a placement's tell
(placed_here.py, `take`) is recorded in the need's placement as known when it is
written, so a saga planned after the need moved owes its compensation where it ran,
not in its new domain (`domain_of`); a loss verdict (domain_loss_verdict.py,
replacement.py `failed`) drops what was recorded of the step's result it replaces.

test_compensating_takeover.py's federation: d0 coordinates; s0 (d1) and s1 (d2,
needs s0) have a compensate block; s2 (d2) needs s1."""

from __future__ import annotations

from fedorch.core.node import Message, StepEnded, Submit
from fedorch.core.node.records import FinalMsg, PlacedMsg, ResultMsg
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.stories import s1_on_d1_then_s2_on_d0
from tests.unit.core.node.test_compensating_takeover import WF, Sagas, spec
from tests.unit.core.node.test_domain_loss import OnlyD1TakesA, dies

PLACEMENT = {"s0": "d1", "s1": "d2", "s2": "d2"}


def committed() -> Sagas:
    f = Sagas()
    f.step("d0", Submit(WF, spec(), placement=PLACEMENT))
    f.deliver()
    assert all(WF in f.disks[n].committed or WF in f.disks[n].rows for n in PLACEMENT.values())
    return f


def test_a_needs_result_carried_by_a_tell_is_planned_where_it_ran_after_it_moved():
    """d2 is told s1 is placed again on d3 (d2 lost, back), the tell carrying s0's
    result, which d1 ran: recorded so. s0 is placed again on d3 later (d1 lost, its
    run made before): d2's plan still owes s0's compensation at d1, where it ran, not
    at d3, which never ran it."""
    f = committed()
    f.step("d2", Message("d0", PlacedMsg(WF, "s1", "d3", 1, "d2",
                                         needs=(("s0", 1, {"of": "s0"}),))))
    d2 = f.nodes["d2"]
    assert f.disks["d2"].results[WF]["s0"][1] is StepState.SUCCEEDED
    assert f.disks["d2"].result_domains[WF] == {"s0": "d1"}
    f.step("d2", Message("d0", PlacedMsg(WF, "s0", "d3", 2, "d1")))
    assert f.disks["d2"].placements[WF]["s0"][1] == "d3"
    assert d2.compensating.results.domain_of(WF)["s0"] == "d1"


def test_a_loss_verdict_drops_what_was_recorded_of_the_result_it_replaces():
    """A record of where s0's result ran, left from a result no longer held (as a
    results row dropped for an older placement leaves it): d1 is lost while s0 runs
    there, and the verdict written as s0's result takes the record with it, so the
    table says nothing of a run that the results no longer hold."""
    f = committed()
    f.nodes["d0"].state.result_domains[WF] = {"s0": "d1"}
    f.kill("d1")
    f.deliver()
    result = f.disks["d0"].results[WF]["s0"]
    assert result[1] is StepState.FAILED and result[3].startswith("domain d1 was lost (")
    assert "s0" not in f.nodes["d0"].state.result_domains.get(WF, {})


def test_a_new_domain_told_before_its_commit_records_no_domain_it_cannot_know():
    """d3, new to the workflow (its round's COMMIT not learned), is told its placement
    of s1 with s0's result: it keeps the result, and, knowing no placement of s0,
    records no domain for it (its plan falls back to s0's placement then)."""
    f = committed()
    assert WF not in f.disks["d3"].committed
    f.step("d3", Message("d0", PlacedMsg(WF, "s1", "d3", 1, "d2",
                                         needs=(("s0", 1, {"of": "s0"}),))))
    assert f.disks["d3"].results[WF]["s0"][1] is StepState.SUCCEEDED
    assert WF not in f.disks["d3"].result_domains


def test_a_failed_re_placement_drops_what_was_recorded_of_the_result_it_replaces():
    """As test_domain_loss.py's `lost_where_no_other_domain_takes_it`: s1's SUCCEEDED
    at d1 never reaches d0, d1 is lost, no domain takes s1 again: the verdict written
    as s1's result (replacement.py, `failed`) takes the record left of an older
    result with it."""
    fed = s1_on_d1_then_s2_on_d0(OnlyD1TakesA())
    fed.nodes["d0"].state.result_domains[WF] = {"s1": "d1"}
    fed.step("d1", StepEnded(*sorted(fed.running["d1"])[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, ResultMsg))
    fed.net = []  # lost
    dies(fed, "d1", keep=lambda src, dst, msg: isinstance(msg, FinalMsg) and dst == "d2")
    assert fed.nodes["d0"].stats["re-placement failed"] == 1
    assert fed.disks["d0"].results[WF]["s1"][1] is StepState.FAILED
    assert "s1" not in fed.nodes["d0"].state.result_domains.get(WF, {})
