"""A successor places a lost step again (agent/core/node/replacement_successor.py),
Nodes driven by hand with coordinator takeover on: d0 coordinates and runs s0 itself;
s1 is on d1, s2 on d2; the electorate is the committed round's acceptors (d0, d1, d2);
d0 dies for good and d1 takes the workflow over in epoch 1; d3 runs nothing of it."""

from __future__ import annotations

from dataclasses import replace

from fedorch.core.negotiation.messages import AnswerStatus, DecisionAnswer, DecisionQuery
from fedorch.core.node import MemberState, Message, Submit, Tick
from fedorch.core.node.records import ClaimMsg, PrepareMsg, ResultMsg, Timing, VoteMsg
from fedorch.core.workflow.epoch_certificate import ROUNDS_PER_EPOCH, round_range
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import (
    WF,
    Federation,
    committed,
    d0_dies_for_good,
    result,
    step,
)
from tests.unit.core.node.test_replacement import end_everything, runs_of
from tests.unit.core.node.test_takeover import d0_dead_and_d1_acting


def s0_lost_with_d0(*, keep=None) -> Federation:
    """s0 (idempotent, on d0 itself) and s1, s2 committed; s1 and s2 end; d0 dies for
    good: d1 takes over, and its loss table sends s0 back to be placed again."""
    fed = committed([step("s0", idempotent=True), step("s1"), step("s2")],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    assert sorted(fed.disks["d0"].rows[WF].acceptors) == ["d0", "d1", "d2"]
    fed.end("d1", "s1")
    fed.end("d2", "s2")
    d0_dies_for_good(fed, keep=keep)
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.lost == [("d1", (WF, "s0"), "d0", "REPLACE")]
    return fed


def succeeds_with_one_run_each(fed: Federation, new: str) -> None:
    """Every step's run ended: the successor's workflow SUCCEEDED at d1 and d2, and s0
    ran once in the lost domain d0 and once in `new`, never more."""
    end_everything(fed)
    fed.tick(fed.now + 2.0)
    assert result(fed, "d1", "s0")[1] is StepState.SUCCEEDED
    for n in ("d1", "d2"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s0") == [("d0", 1), (new, 1)]


def test_a_successor_places_a_lost_step_again_on_a_fresh_majority() -> None:
    """d1 asks its electorate again, d2 grants epoch 1 again (a majority with d1), and
    d1 runs the round in epoch 1's own range: the new domain takes its PREPARE on d1's
    certificate, runs s0 once, follows d1, and the workflow SUCCEEDS (the shells' rule;
    the node engine failed the step: "this coordinator cannot run a new round")."""
    fed = s0_lost_with_d0()
    d1 = fed.nodes["d1"]
    assert d1.stats["re-placement: fresh majority granted"] == 1
    epoch, new, lost = fed.disks["d1"].placements[WF]["s0"]
    assert lost == "d0" and new in ("d2", "d3")
    assert epoch in round_range(1)  # never a number the original could use
    prepares = [m for _, m in fed.sent_by("d1", PrepareMsg)]
    assert [(m.held_epoch, bool(m.won)) for m in prepares] == [(1, True)]
    assert prepares[0].tx.coordinator == "d1" and prepares[0].info.coordinator == "d0"
    assert fed.disks[new].epochs[WF] == (1, "d1")  # it reports to the successor
    assert runs_of(fed, "s0") == [("d0", 1), (new, 1)]
    succeeds_with_one_run_each(fed, new)
    assert not fed.refused


def test_a_successor_without_a_fresh_majority_fails_the_step_and_asks_no_one() -> None:
    """d1's claims of epoch 1 shown with its certificate (the re-ask) are lost on their
    way to d2: d1 alone is no majority of (d0, d1, d2), so after one lease s0 FAILS naming d0
    and why, no PREPARE leaves (d3 never hears of the workflow), and the workflow ends
    FAILED."""
    def re_ask_lost(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, ClaimMsg) and src == "d1" and dst == "d2" and bool(msg.won)

    fed = s0_lost_with_d0(keep=re_ask_lost)
    d1 = fed.nodes["d1"]
    assert d1.stats["re-placement: fresh majority asked"] == 1
    fed.net = []  # lost
    t = fed.now
    while fed.now < t + 2 * d1.t.lease_s:
        fed.now += 1.0
        for n in ("d1", "d2", "d3"):
            fed.step(n, Tick())
        fed.deliver(keep=re_ask_lost)
        fed.net = []
    assert d1.stats["re-placement: no fresh majority"] == 1
    _, state, _, error = result(fed, "d1", "s0")
    assert state is StepState.FAILED
    assert error.startswith("domain d0 was lost (DEAD) while the step ran; could not"
                            " place the step again: no majority of the takeover electorate"
                            " (d0, d1, d2) granted coordinator epoch 1 again (granted: d1;"), \
        error
    assert not fed.sent_by("d1", PrepareMsg)
    assert WF not in fed.disks["d3"].committed and not fed.disks["d3"].holds
    assert not fed.disks["d1"].placements
    for n in ("d1", "d2"):  # d2 acknowledged the verdict's end: a majority holds it
        assert fed.disks[n].final[WF] is WorkflowState.FAILED


class D2TakesNoA(Federation):
    """d2 offers capability c only: a step of `a` lost with d0 can go to d3 alone (after
    d2 refused it: the Node's placer here knows no capabilities)."""

    timing = Timing(max_rounds=2, takeover_after_s=3.0)
    only_c = "d2"  # the domain that offers capability c only

    def capacities_of(self, name: str) -> dict[str, int]:
        return {"c": 4} if name == self.only_c else {"a": 4}


def test_a_domain_new_to_the_workflow_takes_the_successors_round_and_follows_it() -> None:
    """s0 may run on d0 or d3 only (d2 offers no `a`): d1 places it on d3, which never saw the workflow. d3
    checks d1's certificate, takes the submission the original vouched for, commits,
    follows d1 in epoch 1 (its result goes to d1, not to the dead d0), and the workflow
    SUCCEEDS."""
    fed = D2TakesNoA()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s0", idempotent=True), step("s1"),
        spec_pb2.StepSpec(id="s2", capability="c")]),
        placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    fed.deliver()
    fed.end("d1", "s1")
    fed.end("d2", "s2")
    d0_dies_for_good(fed)
    assert fed.disks["d1"].placements[WF]["s0"][1:] == ("d3", "d0")
    assert fed.disks["d3"].committed[WF] in round_range(1)
    assert fed.disks["d3"].epochs[WF] == (1, "d1")
    assert fed.nodes["d3"].stats["successor followed: its re-placement round committed here"] == 1
    end_everything(fed)
    fed.tick(fed.now + 2.0)
    for n in ("d1", "d2", "d3"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s0") == [("d0", 1), ("d3", 1)]
    assert not fed.refused


class D3TakesNoA(D2TakesNoA):
    """d3 offers capability c only."""

    only_c = "d3"


def test_the_original_back_and_following_takes_a_step_the_successor_places_on_it() -> None:
    """s2 on d2 needs s1 on d1. d0 stalls (DEAD everywhere) and d1 takes over; d0 comes
    back and follows d1; d2 dies before s2 starts. d1 places s2 again on d0 (d3 offers
    no `a`): the original, its own coordinator core of the workflow still kept, votes on
    d1's certificate as any candidate, runs s2 under d1's placement, and the workflow
    SUCCEEDS in epoch 1."""
    fed = D3TakesNoA()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1"), step("s2", needs=("s1",))]), placement={"s1": "d1", "s2": "d2"}))
    fed.deliver()
    d0_dead_and_d1_acting(fed)
    fed.silent.discard("d0")
    for n in ("d1", "d2", "d3"):
        fed.step(n, MemberState("d0", "ALIVE"))
    fed.tick(fed.now + 5.0)
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    fed.goes_silent_and_dead("d2")
    epoch, new, _ = fed.disks["d1"].placements[WF]["s2"]
    assert new == "d0" and epoch in round_range(1)
    fed.end("d1", "s1")
    assert runs_of(fed, "s2") == [("d0", 1)]
    end_everything(fed)
    fed.tick(fed.now + 2.0)
    for n in ("d0", "d1"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert not fed.refused


def test_a_prepare_of_a_later_epochs_range_needs_that_epochs_certificate() -> None:
    """The successor's PREPARE, replayed without its certificate, or by another domain,
    is refused before the Node sees it (authority.py): no vote."""
    fed = s0_lost_with_d0()
    target, prepare = fed.sent_by("d1", PrepareMsg)[0]
    other = "d3" if target == "d2" else "d2"
    fed.refused.clear()
    bare = replace(prepare, tx=replace(prepare.tx, round=prepare.tx.round + 1), won=())
    fed.step(other, Message("d1", bare))
    forged = replace(prepare, tx=replace(prepare.tx, coordinator="d2",
                                         round=prepare.tx.round + 2))
    fed.step(other, Message("d2", forged))
    assert fed.refused == [(other, "bad_certificate"), (other, "bad_certificate")]


def test_the_original_answers_nothing_of_a_successors_round() -> None:
    """Asked about a round of epoch 1's range (a new domain in doubt asks every member),
    the original coordinator, whose log never held it, does not presume ABORT: only
    the successor that ran it may answer it."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    before = len(fed.sent_by("d0", DecisionAnswer))
    fed.step("d0", Message("d3", DecisionQuery((WF, ROUNDS_PER_EPOCH + 3), "d3")))
    answers = [m for _, m in fed.sent_by("d0", DecisionAnswer)][before:]
    assert all(a.status is not AnswerStatus.DECIDED for a in answers), answers


def test_a_successor_counts_a_lost_step_started_when_a_need_may_have_reached_it_unheard():
    """s0 on d0 needs s1, which runs on d2: s1's result goes to d0 (s0's domain and the
    coordinator), never to d1. d0 takes it, starts s0 and dies for good. d1, the
    successor, has not heard s1 end, but s0 may have started at d0: not idempotent, it
    FAILS naming d0 and is never placed again to run twice (takeover soak seed 4800265:
    judged not started and placed again, it ran twice)."""
    fed = committed([step("s0", needs=("s1",)), step("s1"), step("s2")],
                    {"s0": "d0", "s1": "d2", "s2": "d1"})
    fed.end("d2", "s1")
    assert runs_of(fed, "s0") == [("d0", 1)]  # started at d0 on s1's result
    assert "s1" not in fed.disks["d1"].results.get(WF, {})  # unheard at the successor-to-be
    fed.silent.add("d0")
    fed.running["d0"] = set()
    for n in ("d1", "d2", "d3"):
        fed.step(n, MemberState("d0", "DEAD"))

    def result_of_s1_to_d1(src: str, dst: str, msg: object) -> bool:
        # d2 reports s1 to the successor once it follows it: not before d1 judges.
        return isinstance(msg, ResultMsg) and dst == "d1" and msg.step_id == "s1"

    fed.deliver(keep=result_of_s1_to_d1)
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.lost == [("d1", (WF, "s0"), "d0", "FAIL_STARTED")]
    assert runs_of(fed, "s0") == [("d0", 1)]  # never anywhere else


def test_a_successor_restarted_while_it_asks_asks_again_when_its_view_comes() -> None:
    """d1's re-ask is lost on its way to d2 and d1 restarts: the fresh majority it was
    gathering was in memory, and nothing of it is on record (no round number taken, no
    verdict). Restored, d1 still acts in epoch 1; once its view says d0 is DEAD again,
    its loss table sends s0 back again, the fresh majority is asked anew (a new lease),
    d2 grants it, and the round places s0 once: the workflow SUCCEEDS. Nothing is lost
    but the grants gathered and the time: the mandate needs no row."""
    def re_ask_lost(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, ClaimMsg) and src == "d1" and dst == "d2" and bool(msg.won)

    fed = s0_lost_with_d0(keep=re_ask_lost)
    assert WF in fed.nodes["d1"].replacement.mandates.asking
    fed.net = []  # lost
    assert WF not in fed.disks["d1"].replaced_rounds and "s0" not in fed.disks["d1"].results[WF]
    d1 = fed.restore("d1")
    assert not d1.replacement.mandates.asking
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
             MemberState("d3", "ALIVE"))
    assert fed.lost[-2:] == [("d1", (WF, "s0"), "d0", "REPLACE")] * 2  # judged again
    assert d1.stats["re-placement: fresh majority asked"] == 1
    fed.deliver()
    assert d1.stats["re-placement: fresh majority granted"] == 1
    epoch, new, lost = fed.disks["d1"].placements[WF]["s0"]
    assert lost == "d0" and epoch in round_range(1)
    end_everything(fed)
    fed.tick(fed.now + 2.0)
    for n in ("d1", "d2"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s0") == [("d0", 1), (new, 1)]
    assert not fed.refused


def test_a_successor_restarted_mid_round_releases_its_candidate_and_places_anew() -> None:
    """The fresh majority granted, d1's round for s0 runs: its candidate's YES is lost
    on the way and d1 restarts before any decision. The round's number was written
    before its PREPARE (`replaced_rounds`): the candidate's query is answered ABORT
    (presumed, d1's own range), and once d1's view says d0 is DEAD again, a new round,
    asked for on a fresh majority again, takes the next number and places s0 once."""
    def vote_lost(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, VoteMsg) and dst == "d1"

    fed = s0_lost_with_d0(keep=vote_lost)
    [(candidate, prepare)] = fed.sent_by("d1", PrepareMsg)
    first = prepare.tx.round
    assert fed.disks["d1"].replaced_rounds[WF] == first
    assert (WF, first) in fed.disks[candidate].holds
    fed.net = []  # lost
    d1 = fed.restore("d1")
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
             MemberState("d3", "ALIVE"))
    fed.deliver()
    fed.run_until(fed.now + 2 * d1.t.lease_s)  # the candidate asks at its lease
    assert (WF, first) not in fed.disks[candidate].holds  # its YES released
    epoch, new, _ = fed.disks["d1"].placements[WF]["s0"]
    assert epoch > first and epoch in round_range(1)
    assert d1.stats["re-placement: fresh majority granted"] == 1
    end_everything(fed)
    fed.tick(fed.now + 2.0)
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s0") == [("d0", 1), (new, 1)]
