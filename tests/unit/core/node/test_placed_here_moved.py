"""A COMMIT notice of a workflow's own round reaching a participant whose step was
placed elsewhere while it was cut off: the notice names the steps moved away from it
(Decision.moved, placed_here.py `moved_away`), and the participant takes them as a
PlacedMsg would be taken before its progress is built, so it never starts them. Nodes
driven by hand (test_domain_loss.py's four), d0 coordinates."""

from __future__ import annotations

import pytest
from fedorch.core.negotiation.messages import Decision, DecisionAnswer, DecisionQuery
from fedorch.core.node import MemberState, Message, Submit, Tick
from fedorch.core.node.records import PlacedMsg, PrepareMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import WF, Federation, NoTakeover, step
from tests.unit.core.node.test_replacement import runs_of

OTHERS = ("d0", "d2", "d3")


def d1_cut_off_after_its_vote_and_s2_placed_again(fed: Federation) -> str:
    """s1 on d2, s2 (idempotent) on d1: d1 votes YES, then hears nothing more (the
    COMMIT to it lost), and is judged DEAD; s2 is placed again. Returns its new domain."""
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1"), step("s2", idempotent=True)]), placement={"s1": "d2", "s2": "d1"}))
    fed.deliver(keep=lambda src, dst, msg: dst == "d1" and not isinstance(msg, PrepareMsg))
    fed.net = []  # lost
    fed.silent.add("d1")
    assert WF not in fed.disks["d1"].committed  # in doubt
    for n in OTHERS:
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver()
    epoch, new, lost = fed.disks["d0"].placements[WF]["s2"]
    assert lost == "d1" and new in ("d2", "d3")
    assert runs_of(fed, "s2") == [(new, 1)]
    return new


def d1_back(fed: Federation) -> None:
    fed.silent.discard("d1")
    for n in OTHERS:
        fed.step(n, MemberState("d1", "ALIVE"))
    fed.deliver()


def test_a_restored_coordinators_resent_commit_starts_no_step_placed_elsewhere() -> None:
    """d0 restarts while d1 is cut off: what it told d1 of s2's new placement was in
    memory, and its round's record was collected, so nothing tells d1 again but the
    COMMIT it sends again. That COMMIT names s2 as placed elsewhere: d1 takes the
    placement and never starts s2 (before: d1 ran s2, its result refused by its epoch,
    a second run of the step)."""
    fed = NoTakeover()
    new = d1_cut_off_after_its_vote_and_s2_placed_again(fed)
    fed.restore("d0")
    fed.step("d0", *[MemberState(m, "DEAD" if m == "d1" else "ALIVE")
                     for m in ("d1", "d2", "d3")])
    d1_back(fed)
    fed.run_until(fed.now + 10.0)
    assert fed.disks["d1"].learned[(WF, 1)].commit
    assert runs_of(fed, "s2") == [(new, 1)]  # once, in its new domain only
    assert fed.disks["d1"].placements[WF]["s2"] == fed.disks["d0"].placements[WF]["s2"]
    notices = [m for to, m in fed.sent_by("d0", Decision) if to == "d1" and m.key == (WF, 1)]
    assert notices and all(m.moved == (("s2", *fed.disks["d0"].placements[WF]["s2"]),)
                           for m in notices)
    fed.end(new, "s2")
    fed.end("d2", "s1")
    fed.run_until(fed.now + 10.0)
    for n in ("d0", "d1", new):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED


def test_a_notice_naming_steps_moved_away_is_taken_from_the_rounds_coordinator_only() -> None:
    """The same COMMIT with steps moved away, from another party of the round (d2, an
    acceptor that knows the decision): its decision counts, its list of moves does not
    (a placement is the coordinator's word)."""
    fed = NoTakeover()
    d1_cut_off_after_its_vote_and_s2_placed_again(fed)
    value = fed.disks["d0"].records.get((WF, 1)) or fed.disks["d0"].learned[(WF, 1)]
    d1_back(fed)
    fed.net = []
    fed.step("d1", Message("d2", Decision((WF, 1), value, "d2",
                                          moved=(("s2", 9, "d3", "d1"),))))
    assert fed.disks["d1"].learned[(WF, 1)].commit
    assert "s2" not in fed.disks["d1"].placements.get(WF, {})


def test_a_first_commit_names_nothing_moved() -> None:
    fed = NoTakeover()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[step("s1")]),
                          placement={"s1": "d1"}))
    fed.deliver()
    assert all(m.moved == () for _, m in fed.sent_by("d0", Decision))
    assert not [m for _, m in fed.sent_by("d0", PlacedMsg)]


def test_a_late_upstream_result_starts_no_step_placed_elsewhere_meanwhile() -> None:
    """s2 on d1 needs s1 on d2; d1, committed, is cut off and judged DEAD, and s2 (not
    started) is placed again on d3. s1 SUCCEEDS at d2 before d2 is told the new
    placement: its result goes to d1 too, resent until acknowledged. Once d2 takes the
    placement, that result is owed d1 no more (running.py, `report_needs`): d1, back,
    its new placement not yet told it, never hears s1 and never starts s2 (before: the
    resent result started s2 on d1 too, a second run of a step not idempotent)."""
    fed = Federation()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1"), step("s2", needs=("s1",))]), placement={"s1": "d2", "s2": "d1"}))
    fed.deliver()
    assert fed.disks["d1"].committed[WF] == 1
    fed.silent.add("d1")
    fed.running["d1"] = set()
    for n in OTHERS:
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PlacedMsg) and dst == "d2")
    told_d2, fed.net = fed.net, []
    epoch, new, lost = fed.disks["d0"].placements[WF]["s2"]
    assert (new, lost) == ("d3", "d1")
    fed.end("d2", "s1")  # reported to d0 and to d1, which is cut off
    assert ("result", WF, "s1", "d1") in fed.nodes["d2"].pending
    fed.net = told_d2
    fed.deliver()
    assert fed.disks["d2"].placements[WF]["s2"] == (epoch, "d3", "d1")
    fed.run_until(fed.now + 5.0)  # s1's result, sent again to d3, now committed there
    assert runs_of(fed, "s2") == [("d3", 1)]
    fed.silent.discard("d1")
    for n in OTHERS:
        fed.step(n, MemberState("d1", "ALIVE"))
    hold_placed = lambda src, dst, msg: isinstance(msg, PlacedMsg) and dst == "d1"  # noqa: E731
    fed.deliver(keep=hold_placed)
    for _ in range(8):  # every resend due, the new placement's to d1 lost each time
        fed.now += 2.0
        for n in fed.names:
            fed.step(n, Tick())
        fed.deliver(keep=hold_placed)
        fed.net = [m for m in fed.net if not hold_placed(*m)]
    assert runs_of(fed, "s2") == [("d3", 1)]  # never on d1
    assert "s1" not in fed.disks["d1"].results.get(WF, {})
    fed.run_until(fed.now + 10.0)  # the placement reaches d1 at last
    assert fed.disks["d1"].placements[WF]["s2"] == (epoch, "d3", "d1")
    fed.end("d3", "s2")
    fed.run_until(fed.now + 10.0)
    assert runs_of(fed, "s2") == [("d3", 1)]
    for n in ("d0", "d1", "d2", "d3"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED


def test_the_coordinators_commit_answer_to_a_query_names_the_steps_moved_away() -> None:
    """d1 in doubt asks the restored d0 (its record of what it told d1 is gone): the
    COMMIT comes as a notice naming s2 as placed elsewhere, and d1 never starts it."""
    fed = NoTakeover()
    new = d1_cut_off_after_its_vote_and_s2_placed_again(fed)
    fed.restore("d0")
    fed.net = []  # its COMMIT sent again at the restore: lost
    d1_back(fed)
    fed.net = []
    ready = fed.step("d0", Message("d1", DecisionQuery((WF, 1), "d1")))
    replies = [m for to, m in sent(ready) if to == "d1"]
    fed.deliver()
    assert fed.disks["d1"].learned[(WF, 1)].commit
    assert runs_of(fed, "s2") == [(new, 1)]
    assert [type(m) for m in replies] == [Decision]
    assert replies[0].moved == (("s2", *fed.disks["d0"].placements[WF]["s2"]),)


@pytest.mark.parametrize("its_own_round_first", [True, False])
def test_a_step_placed_away_and_back_runs_once_on_the_domain_it_came_back_to(
        its_own_round_first: bool) -> None:
    """s2 (idempotent) on d1, in doubt (the round's COMMIT to it late): placed on d3,
    then d2, then, d0 restored meanwhile (a lost domain is a candidate again only for a
    coordinator that no longer knows it lost the step there), back on d1. The late
    COMMIT notice names nothing moved for d1 (the step's latest placement is d1's own),
    and nothing is wrong with that: d1 takes its placement, with its epoch, only from
    that re-placement round's COMMIT (placed_here.py `committed_here`), which it holds
    a YES of; learned before the late notice, it built the progress; learned after,
    the step waits unplaced until then (`resumed`, Progress.placement_in_doubt). Either
    way s2 runs once on d1, under the latest epoch, and the workflow ends."""
    fed = NoTakeover()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s2", idempotent=True)]), placement={"s2": "d1"}))
    fed.deliver(keep=lambda src, dst, msg: dst == "d1" and not isinstance(msg, PrepareMsg))
    fed.net = []
    fed.silent.add("d1")
    for n in OTHERS:
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver()
    late: list = []

    def round_1_to_d1(src: str, dst: str, msg: object) -> bool:
        return dst == "d1" and (isinstance(msg, PlacedMsg) or getattr(msg, "key", None)
                                == (WF, 1))

    def holding(keep) -> None:  # noqa: ANN001
        fed.deliver(keep=keep)
        late.extend(fed.net)
        fed.net = []

    fed.silent.discard("d1")
    for n in OTHERS:
        fed.step(n, MemberState("d1", "ALIVE"))
        fed.step("d1", MemberState(n, "ALIVE"))
    holding(round_1_to_d1)
    first = fed.disks["d0"].placements[WF]["s2"][1]
    second = ({"d2", "d3"} - {first}).pop()
    for gone in (first, second):
        if gone == second:
            fed.restore("d0")
            fed.step("d0", *[MemberState(m, "DEAD" if m == first else "ALIVE")
                             for m in ("d1", "d2", "d3")])
            holding(round_1_to_d1)
        fed.silent.add(gone)
        fed.running[gone] = set()
        for n in {"d0", "d1", "d2", "d3"} - {gone} - fed.silent:
            fed.step(n, MemberState(gone, "DEAD"))
        holding(round_1_to_d1 if its_own_round_first or gone == first else
                lambda src, dst, msg: round_1_to_d1(src, dst, msg)
                or dst == "d1" and isinstance(msg, Decision))
    epoch, domain, lost = fed.disks["d0"].placements[WF]["s2"]
    assert (domain, lost) == ("d1", second)
    assert (WF, 1) not in fed.disks["d1"].learned  # the notice is still late
    fed.net = late
    fed.deliver()
    fed.run_until(fed.now + 10.0)
    notices = [m for to, m in fed.sent_by("d0", Decision) if to == "d1" and m.key == (WF, 1)]
    assert notices and all(m.moved == () for m in notices)
    assert runs_of(fed, "s2") == [(first, 1), (second, 1), ("d1", 1)]
    assert fed.nodes["d1"].progress[WF].steps["s2"].epoch == epoch
    fed.end("d1", "s2")
    fed.run_until(fed.now + 10.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED


def test_a_notice_late_at_a_domain_the_step_was_placed_on_between_stops_its_attempt() -> None:
    """s1 on d2, s2 (idempotent) on d1. d2 misses the round's COMMIT (in doubt); d1 is
    lost and s2 placed again on d2 (d3 gone in d0's view then), whose YES and COMMIT of
    that round have it build its progress and start s2; then d2 is cut off and lost
    too, s2 placed on d3, and d0 restarts (its tell of that placement to d2, in memory,
    gone). Back, d2 hears the round's own COMMIT, sent again: it names s2 at d3 (d2,
    the middle of d1, d2, d3, was placed it once), and d2 stops its attempt of a
    placement that is over (before: named for the steps of the round's placement on d2 only, the
    notice said nothing, and s2 ran on d2 beside d3)."""
    fed = NoTakeover()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1", idempotent=True), step("s2", idempotent=True)]),
        placement={"s1": "d2", "s2": "d1"}))
    round_1_to_d2 = lambda src, dst, msg: dst == "d2" and getattr(  # noqa: E731
        msg, "key", None) == (WF, 1)
    fed.deliver(keep=round_1_to_d2)
    fed.net = []  # lost
    assert (WF, 1) not in fed.disks["d2"].learned
    fed.silent.add("d1")
    fed.running["d1"] = set()
    fed.step("d0", MemberState("d3", "DEAD"))
    for n in OTHERS:
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver(keep=round_1_to_d2)
    fed.net = []
    assert fed.disks["d0"].placements[WF]["s2"][1:] == ("d2", "d1")
    assert [r for r in fed.running["d2"] if r[1] == "s2"]
    fed.end("d2", "s1")
    fed.net = []
    fed.silent.add("d2")
    fed.step("d0", MemberState("d3", "ALIVE"))
    for n in ("d0", "d3"):
        fed.step(n, MemberState("d2", "DEAD"))
    fed.deliver()
    epoch, new, lost = fed.disks["d0"].placements[WF]["s2"]
    assert (new, lost) == ("d3", "d2")
    fed.restore("d0")
    fed.step("d0", *[MemberState(m, "ALIVE" if m == "d3" else "DEAD")
                     for m in ("d1", "d2", "d3")])
    fed.deliver(keep=round_1_to_d2)
    fed.net = []
    fed.silent.discard("d2")
    for n in ("d0", "d3"):
        fed.step(n, MemberState("d2", "ALIVE"))
    fed.deliver()
    fed.run_until(fed.now + 10.0)
    assert fed.disks["d2"].learned[(WF, 1)].commit
    assert ("d2", (WF, "s2", 1)) in fed.stopped  # d2's attempt of its placement: over
    assert fed.disks["d2"].placements[WF]["s2"] == (epoch, "d3", "d2")
    notices = [m for to, m in fed.sent_by("d0", Decision) if to == "d2" and m.key == (WF, 1)]
    assert notices[-1].moved == (("s2", epoch, "d3", "d2"),)
    fed.end("d3", "s2")
    fed.run_until(fed.now + 10.0)
    assert runs_of(fed, "s2") == [("d1", 1), ("d2", 1), ("d3", 1)]
    for n in ("d0", "d2", "d3"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED


@pytest.mark.parametrize("learned_from", ["acceptor", "relay"])
def test_a_commit_learned_without_the_coordinator_starts_nothing_before_it_asks(
        learned_from: str) -> None:
    """d1, cut off in doubt while s2 was placed again, is back; d0 restarted meanwhile
    (what it told d1 of the new placement is gone), and no word of d0's about the round
    reaches d1: it learns the COMMIT from an acceptor's answer to its query (d2), or
    from d2 relaying the decision. Such a COMMIT says nothing of the placements since:
    d1 builds its progress, starts nothing, and asks d0 where its steps are
    (`PlacementQuery`, learned_elsewhere.py); the answer moves s2 away and d1 never
    starts it (before: it started s2 at once, beside its new domain). d0's tells of
    the placement (retold at its restore, takeover composed) are lost too."""
    fed = Federation()  # coordinator takeover on: a coordinator gone is replaced
    new = d1_cut_off_after_its_vote_and_s2_placed_again(fed)
    fed.restore("d0")
    fed.step("d0", *[MemberState(m, "DEAD" if m == "d1" else "ALIVE")
                     for m in ("d1", "d2", "d3")])
    fed.deliver()
    fed.net = []  # d0's COMMIT to d1, sent again at its restore: lost

    def no_word_of_d0s(src: str, dst: str, msg: object) -> bool:
        return src == "d0" and dst == "d1" and isinstance(
            msg, Decision | DecisionAnswer | PlacedMsg)

    d1_back(fed)
    fed.net = [m for m in fed.net if not no_word_of_d0s(*m)]
    if learned_from == "relay":
        value = fed.disks["d2"].learned[(WF, 1)]
        fed.step("d1", Message("d2", Decision((WF, 1), value, "d2")))
    for _ in range(20):  # every deadline a second apart, d0's word to d1 lost
        fed.now += 1.0
        for n in fed.names:
            fed.step(n, Tick())
        fed.deliver(keep=no_word_of_d0s)
        fed.net = [m for m in fed.net if not no_word_of_d0s(*m)]
    assert fed.disks["d1"].learned[(WF, 1)].commit
    assert runs_of(fed, "s2") == [(new, 1)]  # never on d1
    stats = fed.nodes["d1"].stats
    assert stats["COMMIT learned without its coordinator: placements asked first"] == 1
    assert stats["placement asked after a restart"] >= 1
    assert stats["placement confirmed after a restart"] == 1
    assert runs_of(fed, "s2") == [(new, 1)]  # never on d1
    assert fed.disks["d1"].placements[WF]["s2"] == fed.disks["d0"].placements[WF]["s2"]
    fed.end(new, "s2")
    fed.end("d2", "s1")
    fed.run_until(fed.now + 10.0)
    for n in ("d0", "d1", new):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
