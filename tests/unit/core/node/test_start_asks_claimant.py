"""A claimant drives nothing (agent/core/node/start_asks.py, "A claimant drives
nothing"): a participant cut off from its coordinator claims the next epoch, and its
own grant of that claim makes it the holder it reports to (`coordinator_now`), but
not one that drives the workflow. A step made ready here while the claim has not won
is held, not started: the coordinator, meanwhile, may have judged this domain lost and
placed the step elsewhere (takeover soak seed 165402137 with a cut one way: d0,
claiming epoch 1 cut off from the original, started a step the original had placed
again on d3, which ran it too). Nodes driven by hand (test_start_asks.py's federation):
d0 coordinates; s1 on d2 (running), s2 on d1 after it, not idempotent."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message, StepEnded, Tick
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg, PlacementQuery
from fedorch.core.node.start_asks import HELD

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import WF
from tests.unit.core.node.test_start_asks import Federation, chain, runs_of, s1_done
from tests.unit.core.node.test_takeover import certificate


def test_a_claimant_not_won_holds_a_step_the_coordinator_placed_elsewhere() -> None:
    """d1 is cut off at 2 s (nothing reaches it, nothing of its leaves): d0, d2 and d3
    see it DEAD and d0 places s2 again, on d3; d1's view of d0 goes SUSPECT and, past
    the takeover delay, d1 claims epoch 1, granting it to itself. s1's result then
    reaches d1 late. Without the rule d1, holding epoch 1 itself, took itself for the
    coordinator and started s2 at once: a step that is not idempotent ran on d1 and on
    d3. With it s2 is held; d1 asks nobody (the coordinator it would ask is its own
    claim) and never starts it while the claim has not won."""
    fed = chain()
    fed.now = 2.0
    fed.silent.add("d1")
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver()
    assert fed.disks["d0"].placements[WF]["s2"][1:] == ("d3", "d1")
    fed.end("d2", "s1")  # reaches d0 and d3, not d1 (cut off)
    assert runs_of(fed, "s2") == [("d3", 1)]
    fed.step("d1", MemberState("d0", "SUSPECT"))
    fed.now = 6.0
    fed.step("d1", Tick())
    d1 = fed.nodes["d1"]
    assert fed.disks["d1"].granted[WF] == (1, "d1")  # claiming: its own grant
    assert WF not in fed.disks["d1"].epochs  # not acting
    assert d1.takeover.coordinator_now(WF) == "d1"
    assert fed.sent_by("d1", ClaimMsg)
    fed.step("d1", s1_done())  # the late copy
    assert runs_of(fed, "s2") == [("d3", 1)]
    assert d1.stats[HELD] == 1
    for at in (7.0, 9.0, 13.0, 17.0):  # the claim goes on, unanswered (d1 cut off)
        fed.now = at
        fed.step("d1", Tick())
    assert not fed.sent_by("d1", PlacementQuery)
    assert runs_of(fed, "s2") == [("d3", 1)]  # once, at its new domain only


def grants_to_d1(src: str, dst: str, msg: object) -> bool:
    return dst == "d1" and isinstance(msg, ClaimAnswerMsg)


def d1_claiming_holds_s2() -> Federation:
    """d0 dies at 2 s: d1, the lowest participant, claims epoch 1 at once, its grants
    held on their way back; s1 then ends at d2 and its result reaches d1, which holds
    s2 (its claim has not won) and asks nobody."""
    fed = chain()
    fed.now = 2.0
    fed.goes_silent_and_dead("d0", keep=grants_to_d1)
    assert fed.disks["d1"].granted[WF] == (1, "d1") and WF not in fed.disks["d1"].epochs
    [run] = fed.running["d2"]
    fed.step("d2", StepEnded(*run, ok=True))
    fed.deliver(keep=grants_to_d1)
    assert fed.nodes["d1"].stats[HELD] == 1
    assert runs_of(fed, "s2") == []
    assert not fed.sent_by("d1", PlacementQuery)
    return fed


def test_a_held_start_goes_on_in_the_step_its_claim_wins() -> None:
    """The grants then reach d1, the clock still at 2 s: the one that makes d1's claim
    win starts s2 in that very step, with the Act that writes epoch 1 (its grants'
    placements taken before it counts: s2 is still d1's). Without the look at the win
    s2 waited for the held attempt's next ask (`reliable_resend_s` later, up to 4 s
    once the asks had backed off)."""
    fed = d1_claiming_holds_s2()
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert runs_of(fed, "s2") == [("d1", 1)]
    [won] = [r for r in fed.readies["d1"] if any(w.point == "takeover act" for w in r.writes)]
    assert (WF, "s2", 1) in won.start_steps  # the same Ready as the Act
    assert not fed.sent_by("d1", PlacementQuery)  # the driver asks nobody


def test_a_claimant_that_follows_a_proven_holder_asks_it_at_once() -> None:
    """d1, holding s2 for its own claim of epoch 1, is shown that d2 won epoch 2 (d3
    relays d2's certificate): it follows d2 and asks d2 about s2 in that very step, not
    at the held attempt's next ask's time; nothing starts before d2 answers."""
    fed = d1_claiming_holds_s2()
    fed.net = []  # the grants lost
    proof = certificate(fed, 2, "d2", ["d1", "d2", "d3"])
    ready = fed.step("d1", Message("d3", ClaimAnswerMsg(WF, 1, False, 2, "d2", won=proof)))
    assert fed.disks["d1"].epochs[WF] == (2, "d2")
    assert ("d2", PlacementQuery(WF, starting=(("s2", 0),))) in sent(ready)
    assert runs_of(fed, "s2") == []
