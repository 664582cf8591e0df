"""A participant's side of re-placement (agent/core/node/placed_here.py): Nodes driven
by hand with coordinator takeover on, d0 coordinating (test_domain_loss.py's
federation); step attempts end only when a test says so."""

from __future__ import annotations

from fedorch.core.negotiation.messages import Accept, PaxosPrepare
from fedorch.core.node import MemberState, Message, StepEnded, Submit
from fedorch.core.node.records import (
    AckMsg,
    ClaimAnswerMsg,
    FinalMsg,
    PlacedMsg,
    ResultMsg,
    Timing,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_compensating_takeover import two_claimants_told_the_end_on
from tests.unit.core.node.test_domain_loss import (
    NAMES,
    WF,
    Federation,
    committed,
    dies,
    step,
)
from tests.unit.core.node.test_replacement import in_doubt_with_the_coordinator_gone


def s1_placed_again_told_d2_held() -> tuple[Federation, list]:
    """s1 (idempotent) on d1, s2 on d2 needs it; d1 dies and d0 places s1 again: the
    tells of that placement to d2, held (the rest of the net dropped)."""
    fed = committed([step("s1", idempotent=True), step("s2", needs=("s1",))],
                    {"s1": "d1", "s2": "d2"})

    def placed_to_d2(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, PlacedMsg) and dst == "d2"

    dies(fed, "d1", keep=placed_to_d2)
    held = [m for m in fed.net if placed_to_d2(*m)]
    assert held, "d0 placed s1 again"
    fed.net = []
    return fed, held


def test_a_lost_domains_failure_told_before_the_new_placement_is_dropped_with_it() -> None:
    """s1 (idempotent) runs on d1, s2 on d2 needs it. d1 dies, and d0 places s1 again;
    d1 comes back and reports its attempt FAILED (interrupted by its restart) to d2
    before d2 hears of the new placement. Kept, that failure skips s2 here for ever and
    the new domain's result is refused after it (takeover soak seed 4900902): it is
    dropped when the placement comes, and s2 runs on the new domain's result."""
    fed, held = s1_placed_again_told_d2_held()
    new_domain = held[0][2].domain
    failed = ResultMsg(WF, "s1", 1, StepState.FAILED, {}, "interrupted by an agent restart", 0)
    fed.step("d2", Message("d1", failed))
    assert fed.nodes["d2"].progress[WF].steps["s2"].state is StepState.SKIPPED
    for src, dst, msg in held:
        fed.step(dst, Message(src, msg))
    assert fed.nodes["d2"].stats["result of an older placement dropped here"] == 1
    assert "s1" not in fed.disks["d2"].results.get(WF, {})
    assert fed.nodes["d2"].progress[WF].steps["s2"].state is not StepState.SKIPPED
    fed.deliver()
    fed.end(new_domain, "s1")
    assert fed.nodes["d2"].progress[WF].steps["s1"].state is StepState.SUCCEEDED
    fed.end("d2", "s2")
    fed.tick(fed.now + 2.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED



def test_an_older_epochs_placement_is_refused_with_the_epoch_granted_and_its_proof(
) -> None:
    """d2 granted d1's epoch 1: a new placement told by the original (epoch 0) is
    neither taken nor acknowledged (test_replacement.py), and now answered with the
    epoch granted, its holder and the holder's certificate kept here, so that the
    original follows a live holder or claims past a gone one (takeover soak seed
    4900724: the refusal said nothing, and the original told it for ever)."""
    fed, key = in_doubt_with_the_coordinator_gone()
    fed.net = []
    fed.step("d2", Message("d0", PlacedMsg(WF, "s1", "d3", key[1], "d1")))
    answers = [m for dst, m in fed.sent_by("d2", ClaimAnswerMsg) if dst == "d0"]
    assert len(answers) == 1
    a = answers[0]
    assert (a.epoch, a.granted, a.held_epoch, a.holder) == (0, False, 1, "d1")
    assert a.won == fed.nodes["d1"].takeover.proof.own_certificate(WF, 1)
    assert WF not in fed.disks["d2"].placements


def test_the_original_back_claims_past_a_gone_holder_of_a_later_epoch() -> None:
    """d1 won epoch 1 and dies for good; the original d0 comes back acting at epoch 0,
    its view holding d1 DEAD, and is answered, as above, with d1's epoch 1 and its
    proof: it claims epoch 2 (agent/core/workflow/takeover_overtaken.py) and wins it
    with d2's grant, where before it followed d1, dead, and nobody claimed past it."""
    fed, key = in_doubt_with_the_coordinator_gone()
    fed.silent.add("d1")
    fed.net = []
    fed.silent.discard("d0")
    fed.restore("d0")
    fed.step("d0", *[MemberState(m, "DEAD" if m == "d1" else "ALIVE")
                     for m in NAMES if m != "d0"])
    fed.step("d2", MemberState("d0", "ALIVE"))
    fed.net = []
    fed.step("d2", Message("d0", PlacedMsg(WF, "s1", "d3", key[1], "d1")))

    def recovery(src: str, dst: str, msg: object) -> bool:
        # d3's own recovery ballot of its round, which d0 refuses (the coordinator
        # decides a re-placement round alone): held back.
        return isinstance(msg, (PaxosPrepare, Accept)) and msg.tx.key == key

    fed.deliver(keep=recovery)
    assert fed.evidence.acting.get((WF, 2)) == "d0"
    assert fed.disks["d2"].granted[WF] == (2, "d0")
    assert fed.disks["d0"].epochs[WF] == (2, "d0")


class OnlyD1AndD2TakeA(Federation):
    """d1 and d2 offer a (d0 b, d3 c): a step of d1's can be placed again on d2 only
    (a round refused at d3 is followed by another)."""

    timing = Timing(max_rounds=3, takeover_after_s=3.0)

    def capacities_of(self, name: str) -> dict[str, int]:
        return {"d0": {"b": 4}, "d1": {"a": 4}, "d2": {"a": 4}}.get(name, {"c": 4})


def test_the_new_domain_runs_a_step_whose_lost_domain_reported_success_to_it_only(
) -> None:
    """s1 (idempotent) on d1 SUCCEEDS; its result reaches d2 (s2 there needs it) and not
    d0. d1 dies: d0, not knowing s1 ran, places it again on d2, the only other domain
    offering a. d2 held d1's SUCCEEDED, a result of a placement that is over, which d0
    refuses: kept, d2 would never run s1 and d0 would wait for it for ever (takeover
    soak seed 8101903). It is dropped when d2 takes its placement, and s1 runs there."""
    fed = OnlyD1AndD2TakeA()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1", idempotent=True), step("s2", needs=("s1",))]),
        placement={"s1": "d1", "s2": "d2"}))
    fed.deliver()
    fed.step("d1", StepEnded(*sorted(fed.running["d1"])[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: (src, dst) == ("d1", "d0"))
    fed.net = []
    assert fed.disks["d2"].results[WF]["s1"][1] is StepState.SUCCEEDED
    assert "s1" not in fed.disks["d0"].results.get(WF, {})
    dies(fed, "d1")
    assert fed.disks["d0"].placements[WF]["s1"][1] == "d2"
    assert fed.nodes["d2"].stats["result of an older placement dropped here"] == 1
    assert [run for node, run in fed.started if node == "d2" and run[1] == "s1"] == [
        (WF, "s1", 1)]
    fed.end("d2", "s1")
    fed.end("d2", "s2")
    fed.tick(fed.now + 3.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED


def test_the_new_domain_runs_a_step_it_held_unplaced_with_the_lost_domains_result() -> None:
    """As above, but the step is unplaced in d2's progress when the new placement
    commits there (PENDING, domain "": as the original coordinator's own loss verdict
    leaves it, that verdict void once it follows a successor, which then takes the lost
    domain's report: takeover soak seed 158000164, classic 2PC). The result held is of a
    placement that is over all the same: dropped, and s1 runs on d2."""
    fed = OnlyD1AndD2TakeA()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1", idempotent=True), step("s2", needs=("s1",))]),
        placement={"s1": "d1", "s2": "d2"}))
    fed.deliver()
    fed.step("d1", StepEnded(*sorted(fed.running["d1"])[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: (src, dst) == ("d1", "d0"))
    fed.net = []
    held = fed.nodes["d2"].progress[WF].steps["s1"]
    assert held.state is StepState.SUCCEEDED
    held.domain = ""  # unplaced here, its lost domain's result taken
    dies(fed, "d1")
    assert fed.disks["d0"].placements[WF]["s1"][1] == "d2"
    assert fed.nodes["d2"].stats["result of an older placement dropped here"] == 1
    assert [run for node, run in fed.started if node == "d2" and run[1] == "s1"] == [
        (WF, "s1", 1)]
    fed.end("d2", "s1")
    fed.end("d2", "s2")
    fed.tick(fed.now + 3.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED


def test_a_placement_refused_after_an_end_in_a_later_epoch_names_a_domain_whose_end_is_judged(
) -> None:
    """d2 told the original's end on in epoch 1, its claim not won (a claimant's end),
    and drives the saga. The original, back at epoch 0, tells d2 a placement of its
    re-placement round on d3: refused (an older epoch's), yet a committed round's fact,
    so d3 is written as one of the workflow's domains here. A rival claimant of epoch 1
    there, its end is judged (and acknowledged, the worse one) where it was refused as
    a non-member's, and the members following it refused d2's tells for ever (takeover
    soak seed 119616: d2 and d1, the new domain, both drove the saga of epoch 1)."""
    f, late = two_claimants_told_the_end_on()
    for dst, msg in late:
        if dst == "d2":
            f.step("d2", Message("d0", msg))
    assert f.disks["d2"].epochs[WF] == (1, "d2")
    assert WF in f.disks["d2"].final
    f.net = []
    rival = FinalMsg(WF, f.disks["d2"].final[WF], 1)
    f.step("d2", Message("d3", rival))
    # Not a member yet: acknowledged and answered with d2's end, never followed
    # (saga_plans.rival_end); before, refused as a stranger's.
    assert not [m for n, src, m in f.refused if (n, src) == ("d2", "d3")]
    assert ("d3", rival) in f.sent_by("d2", FinalMsg)
    f.step("d2", Message("d0", PlacedMsg(WF, "s1", "d3", 2, "d2")))
    assert not [m for dst, m in f.sent_by("d2", AckMsg) if m.msg_id[0] == "placed"]
    f.net = []
    f.step("d2", Message("d3", rival))
    assert not [m for n, src, m in f.refused if (n, src) == ("d2", "d3")]
    assert [m.msg_id for dst, m in f.sent_by("d2", AckMsg) if dst == "d3"] == [
        ("final", WF, "d2")] * 2  # both times
    assert f.disks["d2"].epochs[WF] == (1, "d2")  # d2 ranks better: it drives on
    assert f.disks["d2"].placements[WF]["s1"] == (2, "d3", "d2")


def test_a_placement_is_acknowledged_with_the_generation_of_the_tell_it_answers() -> None:
    """d0 tells d2 that s1 is placed again (a reliable send: a generation of its own);
    d2's acknowledgement names that generation, so a late one of an earlier tell under
    the same id would leave a newer tell kept at d0 (pending.py, "Generations")."""
    fed, held = s1_placed_again_told_d2_held()
    src, dst, tell = held[0]
    assert tell.gen != 0
    fed.step(dst, Message(src, tell))
    acks = [m for to, m in fed.sent_by("d2", AckMsg) if to == "d0" and m.msg_id[0] == "placed"]
    assert [m.gen for m in acks] == [tell.gen]
