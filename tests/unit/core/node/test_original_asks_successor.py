"""A successor restored while it acts asks its electorate before it starts a step of its
own (core/node/original_asks.py, "Its own steps"), as the restored original does: while
it was down a member may have won a later epoch, judged the step not started and placed
it elsewhere, and the message that makes it ready here (a need's result from a domain
that has not heard of the move) may come before anything tells the successor of that
epoch. Nodes driven by hand with coordinator takeover on (test_domain_loss.py's)."""

from __future__ import annotations

from fedorch.core.node import MemberState, MemberViews, Message
from fedorch.core.node.records import ClaimAnswerMsg, PlacementAnswer, PlacementQuery

from tests.unit.core.node.test_domain_loss import WF, Federation, committed, dies, step
from tests.unit.core.node.test_original_asks_own_steps import back, starts_at

OWN = "successor back asked its electorate for its epoch"


def d1_acting_with_s1_waiting() -> Federation:
    """d0's workflow: s2 running on d2, then s1 on d1, which needs it; d0 dies for good
    and d1 acts in epoch 1, s1 of its own waiting for s2."""
    fed = committed([step("s2"), step("s1", needs=("s2",))], {"s1": "d1", "s2": "d2"})
    dies(fed, "d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    return fed


def d1_back(fed: Federation) -> None:
    """d1 restarts and hears, late, s2's result from d2 (test_original_asks_own_steps.py)."""
    back(fed, "d1", ("s2", "d2"))


def d1_overtaken(fed: Federation) -> None:
    """d0 comes back and follows d1; then d1 dies for good in every view, and a member
    wins epoch 2."""
    fed.silent.discard("d0")
    fed.restore("d0")
    fed.step("d0", MemberViews(tuple(MemberState(m, "ALIVE") for m in ("d1", "d2", "d3"))))
    fed.deliver()
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    dies(fed, "d1")
    assert (WF, 2) in fed.evidence.acting and fed.evidence.acting[(WF, 2)] != "d1"


def s1_started_at_d1(fed: Federation) -> bool:
    return starts_at(fed, "d1", "s1") > 0


def test_a_successor_back_after_a_later_epoch_does_not_start_the_step_placed_elsewhere(
) -> None:
    """d0 comes back and follows d1; then d1 dies, a member wins epoch 2, judges s1 not
    started and places it on another domain. d1 comes back before it hears of epoch 2
    and s2's result reaches it: s1 is held (the electors hold epoch 2, none answers
    epoch 1 for d1) and never starts on d1, which learns the later epoch."""
    fed = d1_acting_with_s1_waiting()
    d1_overtaken(fed)
    assert any(x[1:] == ((WF, "s1"), "d1", "REPLACE") for x in fed.lost)
    d1_back(fed)
    assert not s1_started_at_d1(fed)
    assert fed.nodes["d1"].stats[OWN] >= 1
    fed.deliver()
    fed.run_until(fed.now + 30.0)
    assert not s1_started_at_d1(fed)
    assert fed.disks["d1"].epochs[WF][0] >= 2  # d1 follows the later epoch


def test_a_successor_back_with_nothing_moved_starts_its_step_once_electors_answer() -> None:
    """d1 restarts with nothing taken over from it: its electors answer that they hold
    no epoch above 1, which meets every majority of the electorate, and s1 starts on d1
    then."""
    fed = d1_acting_with_s1_waiting()
    fed.silent.add("d1")
    fed.running["d1"] = set()
    d1_back(fed)
    assert not s1_started_at_d1(fed)  # asked first
    assert fed.nodes["d1"].stats[OWN] == 1
    fed.deliver()
    assert s1_started_at_d1(fed)


def test_an_elector_answers_the_successor_with_the_epoch_it_holds() -> None:
    """An elector asked by the successor driving in epoch 1 answers epoch 1 with no
    steps; once it granted a later epoch it denies with that epoch and its holder; a
    restarted participant's question (no epoch driven) it answers nothing here."""
    fed = d1_acting_with_s1_waiting()
    fed.net.clear()
    fed.step("d2", Message("d1", PlacementQuery(WF, drives_in=1)))
    (src, dst, answer), = fed.net
    assert (src, dst) == ("d2", "d1") and isinstance(answer, PlacementAnswer)
    assert (answer.epoch, answer.steps) == (1, ())
    fed.net.clear()
    fed.step("d2", Message("d1", PlacementQuery(WF)))
    assert not [m for s, _, m in fed.net if s == "d2" and isinstance(m, PlacementAnswer)]
    d1_overtaken(fed)
    holder = fed.evidence.acting[(WF, 2)]
    elector = sorted({"d0", "d2", "d3"} - {holder})[0]
    fed.net.clear()
    fed.step(elector, Message("d1", PlacementQuery(WF, drives_in=1)))
    (src, dst, answer), = fed.net
    assert (src, dst) == (elector, "d1") and isinstance(answer, ClaimAnswerMsg)
    assert (answer.epoch, answer.granted, answer.held_epoch, answer.holder) \
        == (1, False, 2, holder)
    assert answer.won  # its proof, which d1 follows
