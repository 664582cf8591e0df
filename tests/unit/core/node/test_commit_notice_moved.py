"""A COMMIT notice of a workflow's own round reaching a participant whose step was
placed elsewhere while it was cut off: the notice names the steps moved away from it
(Decision.moved, placed_here.py `moved_away`), and the participant takes them as a
PlacedMsg would be taken before its progress is built, so it never starts them. Nodes
driven by hand (test_domain_loss.py's four), d0 coordinates."""

from __future__ import annotations

from fedorch.core.negotiation.messages import Decision
from fedorch.core.node import MemberState, Message, Submit
from fedorch.core.node.records import PlacedMsg, PrepareMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, NoTakeover, step
from tests.unit.core.node.test_replacement import runs_of

OTHERS = ("d0", "d2", "d3")


def d1_cut_off_after_its_vote_and_s2_placed_again(fed: NoTakeover) -> str:
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


def d1_back(fed: NoTakeover) -> None:
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
