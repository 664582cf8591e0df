"""A start held while asking one holder asks the new holder at once when the holder
changes (agent/core/node/start_asks.py, `holder_stepped`): Nodes driven by hand
(test_start_asks.py's federation), d0 coordinating; s1 on d2 (running), s2 on d1
after it, not idempotent."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message
from fedorch.core.node.records import ClaimMsg, PlacementQuery
from fedorch.core.node.start_asks import HELD

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import WF
from tests.unit.core.node.test_start_asks import chain, runs_of, s1_done
from tests.unit.core.node.test_takeover import certificate


def test_a_start_held_asking_the_original_asks_a_successor_shown_won_at_once() -> None:
    """d1's view of d0 is SUSPECT when s1's result makes s2 ready: it holds s2 and asks
    d0, which does not answer (its answer lost). A moment later d2's claim of epoch 1
    reaches d1 with its certificate: d1 follows d2 and asks d2 about s2 in that very
    step, its wait from the shortest again. Before, the held start waited for its next
    ask's time (`reliable_resend_s`, doubling up to 4 s) to ask the new holder; only a
    start held for our own claim was looked at again at once."""
    fed = chain()
    fed.now = 5.0
    fed.step("d1", MemberState("d0", "SUSPECT"))
    fed.step("d1", s1_done())
    assert fed.nodes["d1"].stats[HELD] == 1
    assert fed.sent_by("d1", PlacementQuery) == [("d0", PlacementQuery(WF, (("s2", 0),)))]
    fed.net = []  # d0's answer lost
    fed.now = 5.2
    proof = certificate(fed, 1, "d2", ["d0", "d2"])
    ready = fed.step("d1", Message("d2", ClaimMsg(WF, 1, won=proof)))
    assert fed.disks["d1"].epochs[WF] == (1, "d2")
    assert ("d2", PlacementQuery(WF, starting=(("s2", 0),))) in sent(ready)
    asks = fed.nodes["d1"].fencing.asks
    assert asks.asked_of[WF] == "d2"
    assert asks.due[WF] == fed.now + fed.timing.reliable_resend_s  # the shortest wait
    assert runs_of(fed, "s2") == []  # nothing starts before d2 answers
