"""A compensation owed in a domain gone for good (core/node/saga_loss.py): the saga's
driver ends it COMPENSATION_FAILED, naming the domain, durable first, so the saga
ends; SUSPECT changes nothing; a report from the domain back is acknowledged and the
verdict stands; only the current driver judges; a successor elected for the open plan
judges the dead original's own domain (takeover soak seeds 1401967, 1600691)."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message, Submit
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import AckMsg, CompensatedMsg, CompensateMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node import test_compensating as plain
from tests.unit.core.node import test_compensating_takeover as taken
from tests.unit.core.node.test_compensating import WF, comp_states, failed_chain

LOST_D1 = "domain d1 was lost (DEAD) while attempt 1 of its compensation was out"
WF_T = taken.WF  # the takeover federation's workflow


def tells_to(f, name: str, dst: str) -> list:
    return [k for k in f.nodes[name].pending if k[0] == COMPENSATE and k[4] == dst]


def test_a_compensation_out_to_a_domain_gone_ends_failed_naming_it_and_the_saga_ends():
    f = failed_chain()  # s1's compensation runs at d1; s0's (d0) waits for it
    assert comp_states(f) == {"s0": ("PENDING", 0), "s1": ("RUNNING", 1)}
    ready = f.step("d0", MemberState("d1", "DEAD"))
    row = f.disks["d0"].compensations[(WF, "s1")]
    assert (row.state, row.attempts) == ("COMPENSATION_FAILED", 1)
    assert row.error.startswith(LOST_D1)
    # Durable first: the verdict's row is in the Ready of the view change, and s0's
    # tell (to d0 itself) follows it; nothing is told to d1 any more.
    assert "compensation lost" in [w.point for w in ready.writes]
    assert not tells_to(f, "d0", "d1")
    assert f.compensations[-1] == ("d0", (WF, "s0", 1, COMPENSATE))
    f.end("d0", True)
    assert comp_states(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATION_FAILED", 1)}
    assert f.nodes["d0"].compensating.of(WF)[1].value == "FAILED"
    assert WF not in f.nodes["d0"].compensating.cores  # over: told so to the others
    f.deliver()
    assert f.disks["d2"].plans[WF] == ()


def test_suspect_is_not_dead_the_compensation_waits_for_its_domain():
    f = failed_chain()
    f.step("d0", MemberState("d1", "SUSPECT"))
    f.tick(plain.NOW + 30)
    assert comp_states(f)["s1"] == ("RUNNING", 1)
    assert f.nodes["d0"].stats["compensation failed: its domain was lost"] == 0
    f.end("d1", True)
    assert comp_states(f)["s1"] == ("COMPENSATED", 1)


def test_the_drivers_own_domain_is_never_judged_and_one_left_before_the_end_never_told():
    f = failed_chain()
    f.end("d1", True)  # s1 compensated; s0's is d0's own: never judged (d0 is here)
    f.step("d0", MemberState("d0", "DEAD"))  # a view naming this Node itself
    assert comp_states(f)["s0"] == ("RUNNING", 1)
    f.end("d0", True)
    # A second saga whose domain the view already says LEFT when the saga starts.
    g = plain.Sagas()
    g.step("d0", Submit(WF, plain.chain(), placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    g.deliver()
    g.end("d0", True)
    g.end("d1", True)
    g.step("d0", MemberState("d1", "LEFT"))  # before the end: no saga yet to judge
    g.end("d2", False, "boom")
    row = g.disks["d0"].compensations[(WF, "s1")]
    assert (row.state, row.attempts) == ("COMPENSATION_FAILED", 0)
    assert row.error == "domain d1 was lost (LEFT) before its compensation could run"
    assert not [c for c in g.compensations if c[0] == "d1"]  # never told
    assert g.compensations == [("d0", (WF, "s0", 1, COMPENSATE))]


def test_the_domain_back_reports_it_ran_the_verdict_stands_and_it_is_acknowledged():
    f = failed_chain()
    f.step("d0", MemberState("d1", "DEAD"))
    f.end("d0", True)  # the saga ends FAILED on the verdict
    f.net = []
    f.step("d0", MemberState("d1", "ALIVE"))
    ready = f.step("d0", Message("d1", CompensatedMsg(WF, "s1", 1, True)))
    assert comp_states(f)["s1"] == ("COMPENSATION_FAILED", 1)
    assert f.nodes["d0"].compensating.of(WF)[1].value == "FAILED"
    assert not ready.writes
    assert [o.msg for o in ready.send_now + ready.send_after_write] == [
        AckMsg(("compensated", WF, "s1", 1, "d0"))]
    assert f.nodes["d0"].stats[
        "compensation report after its loss verdict: the verdict stands"] == 1


def test_a_restarted_driver_does_not_tell_again_an_attempt_out_to_a_domain_gone():
    f = failed_chain()
    f.restart("d0")  # its rows say s1's attempt 1 is RUNNING: told again at once...
    assert tells_to(f, "d0", "d1")
    f.step("d0", MemberState("d1", "DEAD"))  # ...until its view comes: judged
    assert comp_states(f)["s1"] == ("COMPENSATION_FAILED", 1)
    assert not tells_to(f, "d0", "d1")
    f.tick(plain.NOW + 30)
    assert not [m for m in f.net if isinstance(m[2], CompensateMsg) and m[1] == "d1"]


def test_a_coordinator_that_follows_a_later_epoch_judges_nothing():
    f = taken.running_s2()
    f.end("d2", False, "boom")  # d0 ends it FAILED; s1's compensation runs at d2
    assert f.disks["d0"].compensations[(WF_T, "s1")].state == "RUNNING"
    # A claimant told the end on in epoch 1: d0 follows it and drives no more.
    f.step("d0", Message("d1", FinalMsg(WF_T, WorkflowState.FAILED, 1)))
    assert WF_T not in f.nodes["d0"].compensating.cores
    f.step("d0", MemberState("d2", "DEAD"))
    assert f.disks["d0"].compensations[(WF_T, "s1")].state == "RUNNING"  # not its saga
    assert f.nodes["d0"].stats["compensation failed: its domain was lost"] == 0


def test_a_successor_elected_for_the_plan_fails_the_compensation_owed_in_the_dead_original():
    # d0 coordinates and ran s0 (with a compensate block) itself; s1 at d1 fails; d0
    # plans the saga, tells the plan, and dies for good before its saga's end (or its
    # compensation's report) reaches anyone. d1, whose plan is open, is elected and
    # adopts the plan: its only compensation is owed in d0, gone for good.
    f = taken.Sagas()
    f.step("d0", Submit(WF_T, plain.chain(), placement={"s0": "d0", "s1": "d1",
                                                        "s2": "d2"}))
    f.deliver()
    assert f.end("d0", True)[1] == "s0"
    assert f.end("d1", False, "boom")[1] == "s1"
    assert f.disks["d0"].rows[WF_T].state is WorkflowState.FAILED
    assert f.disks["d1"].plans[WF_T] == (("s0", "d0", 1),)
    f.kill("d0")
    f.run_until(f.now + 30.0)
    epoch, successor = f.disks["d1"].epochs[WF_T]
    assert epoch >= 1 and successor in ("d1", "d2")
    assert f.nodes[successor].stats["saga plan adopted by a successor"] == 1
    row = f.disks[successor].compensations[(WF_T, "s0")]
    assert row.state == "COMPENSATION_FAILED"
    assert row.error.startswith("domain d0 was lost (DEAD)")
    assert f.nodes[successor].compensating.of(WF_T)[1].value == "FAILED"
    assert not f.nodes[successor].compensating.cores
    assert all(f.disks[n].plans.get(WF_T) in (None, ()) for n in ("d1", "d2", "d3"))
    # Resent to the dead original only (its saga's end, as any end notice).
    assert {k[-1] for n in ("d1", "d2") for k in f.nodes[n].pending if k[1] == WF_T} \
        <= {"d0"}
