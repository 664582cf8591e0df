"""The original coordinator restored asks its electorate before it starts a step of its
own (core/node/original_asks.py, "Its own steps"): while it was down a successor may
have won a later epoch, judged the step not started and placed it elsewhere, and the
message that makes it ready here (a need's result from a domain that has not heard of
the move) may come before anything tells the original of that epoch (takeover soak
seed 154501010: the step ran on both domains). Nodes driven by hand with coordinator
takeover on (test_domain_loss.py's)."""

from __future__ import annotations

from fedorch.core.node import MemberState, MemberViews, Message
from fedorch.core.node.records import (
    ClaimAnswerMsg,
    PlacementAnswer,
    PlacementQuery,
    ResultMsg,
)
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF, Federation, committed, dies, step

OWN = "original back asked its electorate for epoch 0"


def s1_on_d1_then_s2_on_d0() -> Federation:
    """d0's workflow: s1 (d1) running, then s2 on d0 itself, which needs it."""
    return committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d1", "s2": "d0"})


def back(fed: Federation, name: str, result_of: tuple[str, str] | None = None) -> None:
    """`name` restarts from its tables, its view saying every other Node ALIVE, and, given
    `result_of` (step, domain), hears late that step's SUCCEEDED from its domain (sent as
    that domain saw the step that needs it still placed on `name`)."""
    fed.silent.discard(name)
    fed.net.clear()
    fed.restore(name)
    fed.step(name, MemberViews(tuple(MemberState(m, "ALIVE") for m in fed.names
                                     if m != name)))
    if result_of is not None:
        sid, by = result_of
        fed.step(name, Message(by, ResultMsg(WF, sid, 1, StepState.SUCCEEDED,
                                             {"by": by}, "")))


def starts_at(fed: Federation, name: str, sid: str) -> int:
    """How many attempts of `sid` started at `name`."""
    return sum(1 for node, run in fed.started if node == name and run[:2] == (WF, sid))


def d0_back(fed: Federation) -> None:
    """d0 restarts and hears, late, s1's result from d1."""
    back(fed, "d0", ("s1", "d1"))


def s2_started_at_d0(fed: Federation) -> bool:
    return starts_at(fed, "d0", "s2") > 0


def test_an_original_back_after_a_takeover_does_not_start_the_step_placed_elsewhere() -> None:
    """d0 dies; d1 wins epoch 1, judges s2 not started (s1 has not ended) and places it
    on another domain. d0 comes back before it hears of epoch 1 and s1's result reaches
    it: s2 is held (the electors hold epoch 1, none answers epoch 0) and never starts on
    d0, which learns the later epoch and the new placement from d1."""
    fed = s1_on_d1_then_s2_on_d0()
    dies(fed, "d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.lost and fed.lost[0][1:] == ((WF, "s2"), "d0", "REPLACE")
    d0_back(fed)
    assert not s2_started_at_d0(fed)
    assert fed.nodes["d0"].stats[OWN] >= 1
    fed.deliver()
    fed.run_until(fed.now + 30.0)
    assert not s2_started_at_d0(fed)
    assert fed.disks["d0"].epochs[WF][0] >= 1  # d0 follows the later epoch


def test_an_original_back_with_nothing_taken_over_starts_its_step_once_electors_answer(
) -> None:
    """d0 restarts with nothing taken over: its electors answer that they hold epoch 0,
    which meets every majority of the electorate, and s2 starts on d0 then."""
    fed = s1_on_d1_then_s2_on_d0()
    fed.silent.add("d0")
    fed.running["d0"] = set()
    d0_back(fed)
    assert not s2_started_at_d0(fed)  # asked first
    assert fed.nodes["d0"].stats[OWN] == 1
    fed.deliver()
    assert s2_started_at_d0(fed)


def test_an_elector_answers_the_original_with_the_epoch_it_holds() -> None:
    """An elector asked by the original answers epoch 0 with no steps; once it granted
    a later epoch it answers with that epoch and its holder (a denial, as to the
    original's tell of a placement), never epoch 0."""
    fed = s1_on_d1_then_s2_on_d0()
    elector = sorted(fed.nodes["d1"].takeover.electorate_of(WF) - {"d0", "d1"})[0]
    fed.net.clear()
    fed.step(elector, Message("d0", PlacementQuery(WF)))
    (src, dst, answer), = fed.net
    assert (src, dst) == (elector, "d0") and isinstance(answer, PlacementAnswer)
    assert (answer.epoch, answer.steps) == (0, ())
    fed.net.clear()
    dies(fed, "d0")
    fed.net.clear()
    fed.step(elector, Message("d0", PlacementQuery(WF)))
    (src, dst, answer), = fed.net
    assert (src, dst) == (elector, "d0") and isinstance(answer, ClaimAnswerMsg)
    assert (answer.granted, answer.held_epoch, answer.holder) == (False, 1, "d1")


def test_an_original_holding_every_step_starts_without_an_answer() -> None:
    """Every step on d0 itself: no other domain could have claimed, so d0, restored, asks
    nobody and starts its step again at once, though no elector ever answers (takeover
    soak seed 156500577: an acceptor that had forgotten its records of the round never
    answered, and the workflow stayed held for ever)."""
    s1 = step("s1", idempotent=True)
    s1.retries = 1  # its attempt cut by the restart is tried again
    fed = committed([s1], {"s1": "d0"})
    starts = starts_at(fed, "d0", "s1")
    fed.running["d0"] = set()
    back(fed, "d0")
    fed.net.clear()  # whatever it sends is lost: no elector answers
    fed.run_until(fed.now + 5.0)
    assert starts_at(fed, "d0", "s1") == starts + 1
    assert fed.nodes["d0"].stats[OWN] == 0
