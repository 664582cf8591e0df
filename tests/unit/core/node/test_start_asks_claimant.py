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

from fedorch.core.node import MemberState, Tick
from fedorch.core.node.records import ClaimMsg, PlacementQuery
from fedorch.core.node.start_asks import HELD

from tests.unit.core.node.test_domain_loss import WF
from tests.unit.core.node.test_start_asks import chain, runs_of, s1_done


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
