"""The blocking bound of a classic 2PC round whose coordinator died for good
(blocking_check.py, `teller_calm`): its voter can be told the decision only by another
participant that learned it (cooperative termination, core/negotiation/termination.py),
so its bound counts from when the first such one, up at the end, was up for the last
time and had learned it; not from the latest one, and never from the voter itself, a
participant that never learned, one dead for good or one down at the end.
"""

from __future__ import annotations

from types import SimpleNamespace

from fedorch.core.negotiation.messages import TxInfo
from fedorch.sim.negotiation.blocking_check import successor_calm, teller_calm
from fedorch.sim.negotiation.check import Checker

KEY = ("d0.w0", 1)
TX = TxInfo(workflow_id="d0.w0", round=1, coordinator="d0",
            participants=("d1", "d2", "d3", "d4", "d5", "d6"), acceptors=(), created_ms=0)
RETURNED = {"d1": 30.0, "d2": 12.0, "d3": 5.0, "d4": 3.0, "d5": 4.0, "d6": 0.0}


def world(dead_forever: set[str], down: set[str]) -> SimpleNamespace:
    return SimpleNamespace(
        dead_forever=dead_forever,
        agents={a: SimpleNamespace(alive=a not in down) for a in RETURNED},
        calm_since=lambda agents: max(RETURNED[a] for a in agents))


def checker(learned: dict[str, float]) -> Checker:
    c = Checker()
    c.txs[KEY] = TX
    c.learned_at.update({(a, KEY): at for a, at in learned.items()})
    return c


def test_the_bound_counts_from_the_first_participant_up_that_learned_it() -> None:
    # d1 the voter; d3 the first teller up (5.0, learned at 2.0), before d2 (12.0).
    c = checker({"d1": 40.0, "d2": 1.0, "d3": 2.0, "d4": 1.0, "d5": 1.0})
    sim = world(dead_forever={"d4"}, down={"d5"})  # neither can tell
    assert teller_calm(c, sim, KEY, "d1") == 5.0


def test_a_teller_counts_from_when_it_learned_if_later() -> None:
    c = checker({"d2": 1.0, "d3": 9.0})
    assert teller_calm(c, world(set(), set()), KEY, "d1") == 9.0


def test_no_participant_that_learned_it_leaves_the_bound_as_it_was() -> None:
    c = checker({"d1": 40.0, "d4": 1.0})  # the voter itself, and one dead for good
    assert teller_calm(c, world({"d4"}, set()), KEY, "d1") == 0.0


# A re-placement round (blocking_check.py, `successor_calm`): takeover soak seed
# 210201673, `--keep-ended-s 5 --end 300`. Round 1 committed on acceptors d0, d1, d2;
# round 2 re-placed its step on d0, acceptors d0 and d1 (its coordinator, dead for
# good), released only by the end of the successor d2, back at 37.1.
WF = "d1.w0"
COMMITTED = TxInfo(workflow_id=WF, round=1, coordinator="d1", participants=("d2",),
                   acceptors=("d0", "d1", "d2"), created_ms=0)
REPLACED = TxInfo(workflow_id=WF, round=2, coordinator="d1", participants=("d0",),
                  acceptors=("d0", "d1"), created_ms=0)
BACK = {"d0": 18.0, "d1": 0.0, "d2": 37.1}


def replaced() -> tuple[Checker, SimpleNamespace]:
    c = Checker()
    c.txs[COMMITTED.key], c.txs[REPLACED.key] = COMMITTED, REPLACED
    c._committed_rounds[WF] = {1}
    sim = SimpleNamespace(dead_forever={"d1"},
                          calm_since=lambda agents: max(BACK[a] for a in agents))
    return c, sim


def test_a_replacement_round_counts_from_its_workflows_live_electorate() -> None:
    c, sim = replaced()
    assert successor_calm(c, sim, REPLACED.key) == 37.1


def test_the_committed_round_and_an_unknown_workflow_count_nothing_more() -> None:
    c, sim = replaced()
    assert successor_calm(c, sim, COMMITTED.key) == 0.0
    assert successor_calm(c, sim, ("d9.w9", 2)) == 0.0
