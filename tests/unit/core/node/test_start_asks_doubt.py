"""A participant that heard its own doubt asks before it starts a step
(agent/core/node/start_asks.py, "A cut one way"): test_start_asks.py's federation, d0
coordinating s1 on d2 and s2 (not idempotent) on d1 after it. In a cut one way d1's
messages reach nobody while d0's still reach d1: d0 judges d1 DEAD and places s2 on
d3, and d1, hearing d0 all along, would start s2 too when s1's result reaches it."""

from __future__ import annotations

from fedorch.core.node import MemberState, MemberViews, Message, StepEnded
from fedorch.core.node.records import AckMsg, PlacedMsg, PlacementAnswer, PlacementQuery
from fedorch.core.node.start_asks import CONFIRMED, DROPPED, HELD

from tests.unit.core.node.test_domain_loss import WF
from tests.unit.core.node.test_start_asks import Federation, chain, runs_of, s1_done


def word_of_d0() -> Message:
    """Any message of d0's reaching d1: contact as d1 hears it."""
    return Message("d0", AckMsg(("nothing", WF, "d0")))


def out_of_d1(src: str, dst: str, msg: object) -> bool:
    return src == "d1"


def deliver_one_way(fed: Federation) -> None:
    """What is on the network, but nothing of d1's (cut one way: dropped), and d0's
    news of s2's new placement to d1 held on its way (late)."""
    def held(src: str, dst: str, msg: object) -> bool:
        return out_of_d1(src, dst, msg) or dst == "d1" and isinstance(msg, PlacedMsg)

    fed.deliver(keep=held)
    fed.net = [m for m in fed.net if not out_of_d1(*m)]


def cut_one_way(fed: Federation, *, doubt_told: bool) -> None:
    """At 2 s d1's messages stop getting out; the others' views go DEAD and d0 places
    s2 on d3. `doubt_told`: d1's membership tells its Node it heard its own doubt."""
    fed.now = 2.0
    if doubt_told:
        fed.step("d1", MemberViews((), doubted=True))
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    deliver_one_way(fed)
    assert fed.disks["d0"].placements[WF]["s2"][1:] == ("d3", "d1")


def s1_ends_while_d1_hears_d0(fed: Federation) -> None:
    """s1 ends on d2 at 3 s, d1 having just heard d0, and a copy of its result sent
    before d2 learned of s2's new placement reaches d1 (late)."""
    fed.now = 2.9
    fed.step("d1", word_of_d0())
    fed.now = 3.0
    end_s1(fed)
    deliver_one_way(fed)
    fed.step("d1", s1_done())
    deliver_one_way(fed)


def end_s1(fed: Federation) -> None:
    """s1's attempt on d2 ends well (what it sends left on the network)."""
    [run] = [r for r in fed.running["d2"] if r[1] == "s1"]
    fed.step("d2", StepEnded(*run, ok=True))


def test_a_participant_cut_off_one_way_never_runs_a_step_placed_elsewhere() -> None:
    """d1 heard its own doubt: though it hears d0 within the margin, it holds s2 and
    asks; the query never arrives while the cut lasts, so s2 runs on d3 only. Once the
    cut heals the query gets through and the answer moves s2 away from d1."""
    fed = chain()
    cut_one_way(fed, doubt_told=True)
    s1_ends_while_d1_hears_d0(fed)
    assert runs_of(fed, "s2") == [("d3", 1)]
    assert fed.nodes["d1"].stats[HELD] == 1
    fed.run_until(fed.now + 3.0)  # asked again and again, nothing arrives
    assert runs_of(fed, "s2") == [("d3", 1)]
    fed.net = []
    fed.run_until(fed.now + 5.0)  # healed: the next ask is answered
    assert fed.nodes["d1"].progress[WF].steps["s2"].domain == "d3"
    assert fed.nodes["d1"].stats[DROPPED] == 1
    fed.tick(fed.now + 5.0)
    assert runs_of(fed, "s2") == [("d3", 1)]


def test_without_the_doubt_told_the_same_cut_runs_the_step_twice() -> None:
    """The gap the doubt closes: told nothing, d1 judges its contact by what it hears
    and starts s2 while d3 runs it (the membership view alone cannot see the cut)."""
    fed = chain()
    cut_one_way(fed, doubt_told=False)
    s1_ends_while_d1_hears_d0(fed)
    assert sorted(runs_of(fed, "s2")) == [("d1", 1), ("d3", 1)]


def test_an_answer_to_a_query_sent_after_the_doubt_restores_contact() -> None:
    """A doubt on the usual path (a slow moment, refuted at once): d1 asks before its
    next start, d0 answers, s2 starts; d0 is then in contact again, without asking.
    A new doubt asks again."""
    fed = chain()
    asks = fed.nodes["d1"].fencing.asks
    fed.now = 0.2
    fed.step("d1", MemberViews((), doubted=True))
    fed.now = 0.4
    fed.step("d1", word_of_d0())
    assert not asks.in_contact(0.5, "d0")
    fed.now = 0.5
    fed.end("d2", "s1")  # its result reaches d1: held, asked, answered, started
    assert runs_of(fed, "s2") == [("d1", 1)]
    assert fed.nodes["d1"].stats[HELD] == 1 and fed.nodes["d1"].stats[CONFIRMED] == 1
    assert [to for to, _ in fed.sent_by("d1", PlacementQuery)] == ["d0"]
    assert asks.in_contact(fed.now + 0.1, "d0")
    fed.now += 0.2
    fed.step("d1", MemberViews((), doubted=True))
    assert not asks.in_contact(fed.now + 0.1, "d0")


def test_an_answer_to_a_query_sent_before_the_doubt_is_no_contact() -> None:
    """d1 asked (quiet past the margin), then heard its doubt before the answer came:
    the answer still says where s2 is (it starts, confirmed), but not that d1's
    messages get out now: d0 stays out of contact."""
    fed = chain()
    fed.now = 5.0
    end_s1(fed)
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PlacementAnswer))
    answers = [(src, msg) for src, _, msg in fed.net if isinstance(msg, PlacementAnswer)]
    assert answers and fed.nodes["d1"].stats[HELD] == 1
    fed.net = []
    fed.step("d1", MemberViews((), doubted=True))
    fed.step("d1", *[Message(src, msg) for src, msg in answers])
    assert runs_of(fed, "s2") == [("d1", 1)]
    assert not fed.nodes["d1"].fencing.asks.in_contact(5.5, "d0")
