"""A participant whose view of its coordinator lapsed asks before it starts a step
(agent/core/node/start_asks.py, "A cut that heals"): test_start_asks.py's federation,
d0 coordinating s1 on d2 and s2 (not idempotent) on d1 after it. A cut both ways
isolates d1 at 2 s: d0 judges d1 DEAD and places s2 on d3, and d1's view of d0 turns
SUSPECT. Once the cut heals (d0 ALIVE again in d1's view), a message d0 sent before
the cut comes again (a resend), then, a moment later, s1's result from d2, late: the
resend says nothing of what d0 decided during the cut, yet it is a word of d0's within
the margin."""

from __future__ import annotations

from fedorch.core.node import MemberState, MemberViews, Message
from fedorch.core.node.records import AckMsg, PlacementAnswer
from fedorch.core.node.start_asks import CONFIRMED, HELD

from tests.unit.core.node.test_domain_loss import WF
from tests.unit.core.node.test_start_asks import (
    chain,
    held_asked_and_moved_to_d3,
    runs_of,
    s1_done,
)
from tests.unit.core.node.test_start_asks_doubt import end_s1


def resent_by_d0() -> Message:
    """A message d0 sent before the cut, resent after it healed."""
    return Message("d0", AckMsg(("nothing", WF, "d0")))


def cut_both_ways_then_healed(fed, *, view_lapses: bool = True) -> None:
    """d1 cut off both ways at 2 s: the others judge it DEAD, d0 places s2 on d3, s1
    ends on d2 (its result reaches d0 and d3 only); d1's own view of d0 turns SUSPECT
    (`view_lapses`) and, once the cut heals at 4 s, ALIVE again."""
    fed.now = 2.0
    fed.silent.add("d1")
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver()
    assert fed.disks["d0"].placements[WF]["s2"][1:] == ("d3", "d1")
    fed.now = 3.0
    end_s1(fed)
    fed.deliver()
    if view_lapses:
        fed.step("d1", MemberState("d0", "SUSPECT"))
    fed.now = 4.0
    fed.silent.discard("d1")
    if view_lapses:
        fed.step("d1", MemberState("d0", "ALIVE"))


def resend_then_late_result(fed) -> None:
    """d0's resend at 4.5 s, s1's result from d2 at 4.6 s (within the margin of it)."""
    fed.now = 4.5
    fed.step("d1", resent_by_d0())
    fed.now = 4.6
    fed.step("d1", s1_done())


def test_a_cut_that_heals_asks_though_a_resend_of_the_coordinator_came_just_before(
) -> None:
    """d1's view of d0 left ALIVE during the cut: the resend is no contact, so s2 is
    held and d0 asked; its answer moves s2 to d3, and s2 never runs on d1."""
    fed = chain()
    cut_both_ways_then_healed(fed)
    resend_then_late_result(fed)
    held_asked_and_moved_to_d3(fed)
    assert runs_of(fed, "s2") == [("d3", 1)]


def test_a_view_that_never_lapsed_lets_the_resend_count_as_contact() -> None:
    """The bound that remains: had d1's view of d0 stayed ALIVE through the cut (and no
    doubt of d1 reached it), the resend counts and s2 runs twice. The view's lapse, or
    the doubt, is what tells d1 of the cut (the header says when each comes)."""
    fed = chain()
    cut_both_ways_then_healed(fed, view_lapses=False)
    resend_then_late_result(fed)
    assert sorted(runs_of(fed, "s2")) == [("d1", 1), ("d3", 1)]


def test_the_doubt_after_the_heal_holds_the_start_as_well() -> None:
    """d1's view of d0 stayed ALIVE, but after the heal d1 hears the others' verdict on
    it (a push-pull) before the late result: held and asked, never run on d1."""
    fed = chain()
    cut_both_ways_then_healed(fed, view_lapses=False)
    fed.now = 4.2
    fed.step("d1", MemberViews((), doubted=True))
    resend_then_late_result(fed)
    fed.deliver()
    fed.tick(fed.now + 5.0)
    assert runs_of(fed, "s2") == [("d3", 1)]


def test_an_answer_to_a_query_sent_while_alive_again_restores_contact() -> None:
    """No cut: d0 SUSPECT a moment, then ALIVE. d1's next start asks once and starts on
    the answer; d0 is in contact again after it, without asking. An answer to a query
    sent while d0 was still SUSPECT does not restore it, nor one to a query sent before
    a new lapse."""
    fed = chain()
    asks = fed.nodes["d1"].fencing.asks
    fed.now = 0.2
    fed.step("d1", MemberState("d0", "SUSPECT"))
    fed.step("d1", MemberState("d0", "ALIVE"))
    fed.now = 0.4
    fed.step("d1", resent_by_d0())
    assert not asks.in_contact(0.5, "d0")
    fed.now = 0.5
    fed.end("d2", "s1")  # its result reaches d1: held, asked, answered, started
    assert runs_of(fed, "s2") == [("d1", 1)]
    assert fed.nodes["d1"].stats[HELD] == 1 and fed.nodes["d1"].stats[CONFIRMED] == 1
    assert asks.in_contact(fed.now + 0.1, "d0")
    fed.now += 0.2
    fed.step("d1", MemberState("d0", "SUSPECT"))
    assert not asks.in_contact(fed.now + 0.1, "d0")


def test_an_answer_to_a_query_sent_while_suspect_is_no_contact() -> None:
    """d1 asked while its view of d0 was SUSPECT; the view is ALIVE again when the
    answer comes: s2 starts (confirmed), but d0 stays out of contact."""
    fed = chain()
    fed.now = 5.0
    fed.step("d1", MemberState("d0", "SUSPECT"))
    end_s1(fed)
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PlacementAnswer))
    answers = [(src, msg) for src, _, msg in fed.net if isinstance(msg, PlacementAnswer)]
    assert answers and fed.nodes["d1"].stats[HELD] == 1
    fed.net = []
    fed.step("d1", MemberState("d0", "ALIVE"))
    fed.step("d1", *[Message(src, msg) for src, msg in answers])
    assert runs_of(fed, "s2") == [("d1", 1)]
    assert not fed.nodes["d1"].fencing.asks.in_contact(5.5, "d0")


def test_a_coordinator_first_known_after_its_commit_is_asked() -> None:
    """d1 learned s2's placement while its view did not know d0 (a new life of its
    membership, told anew): d0's first ALIVE is a lapse too, as long as a workflow here
    follows d0; a domain no workflow here follows is no lapse."""
    fed = chain()
    asks = fed.nodes["d1"].fencing.asks
    fed.nodes["d1"].members.pop("d0")
    fed.nodes["d1"].members.pop("d3")
    fed.now = 0.2
    fed.step("d1", MemberViews((MemberState("d0", "ALIVE"), MemberState("d3", "ALIVE"))))
    fed.now = 0.4
    fed.step("d1", resent_by_d0())
    assert not asks.in_contact(0.5, "d0")
    assert "d3" not in asks.lapsed
