"""The prepare-timeout invariant (clock_check.py) against a coordinator that proposed
COMMIT and learned the participants' recovery's ABORT: no timer of its own fired, so
the ABORT may come before the prepare timeout (seed 138512237 of the one-way takeover
soak: d4, cut one way, proposed COMMIT; d2, holding it DEAD, recovered at once and
ABORT was chosen 1.6 s after d4's PREPARE). Only that pair of proposals excuses it."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
from fedorch.core.negotiation.messages import Accept, Ballot, TxInfo, Value, VoteIn
from fedorch.core.node.ready import Write
from fedorch.sim.negotiation.clock_check import ClockCheck
from fedorch.sim.negotiation.disk import PrepareMsg, Timing

TX = TxInfo("d0.w1", 1, "d0", ("d0", "d1", "d2"), ("d0", "d1", "d2"))
COMMIT = Value(True, tuple(VoteIn(1, d, True, "", b"") for d in TX.participants))
ABORT = Value(False)


def checker() -> tuple[ClockCheck, list[str]]:
    failures: list[str] = []
    sim = SimpleNamespace(
        now=0.0, names=["d0", "d1", "d2"], last_restart={}, stats=Counter(),
        config=SimpleNamespace(timing=Timing()),
        membership=SimpleNamespace(told={}),
        checker=SimpleNamespace(fail=failures.append, cancelled={}))
    return ClockCheck(sim), failures


def abort_decided_early(proposals: list[tuple[str, Ballot, Value]]) -> list[str]:
    """d0 sends its PREPAREs at 10, then the Accepts `proposals` (sender, ballot,
    value) are sent, and d0 writes its ABORT at 11.6: before its 2 s timeout."""
    check, failures = checker()
    check.sim.now = 10.0
    for d in TX.participants:
        check.sent("d0", d, PrepareMsg(TX, (), None))
    check.sim.now = 10.1
    for src, ballot, value in proposals:
        check.sent(src, "d0", Accept(TX, ballot, value))
    check.sim.now = 11.6
    check.written("d0", Write("PersistDecision", [], [("decided", TX.key, ABORT, 11.6)]))
    return failures


def test_a_coordinator_that_proposed_commit_may_learn_the_recoverys_abort_early() -> None:
    assert abort_decided_early([("d0", Ballot(0, "d0"), COMMIT),
                                ("d1", Ballot(1, "d1"), ABORT)]) == []


@pytest.mark.parametrize("proposals", [
    [],  # nobody proposed anything: its own timer
    [("d0", Ballot(0, "d0"), COMMIT)],  # no recovery proposed ABORT
    [("d1", Ballot(1, "d1"), ABORT)],  # still preparing: it takes no ballot's choice
    [("d0", Ballot(0, "d0"), COMMIT), ("liar", Ballot(1, "liar"), ABORT)],  # no agent's
    [("d0", Ballot(0, "d0"), COMMIT), ("liar", Ballot(1, "d1"), ABORT)],  # forged
    [("d0", Ballot(0, "d0"), COMMIT), ("d0", Ballot(1, "d0"), ABORT)],  # its own ABORT
], ids=["none", "commit-only", "recovery-only", "liar", "forged", "own-abort"])
def test_any_other_abort_before_the_timeout_is_caught(proposals) -> None:
    failures = abort_decided_early(proposals)
    assert len(failures) == 1 and "timeout fired early: d0 aborted" in failures[0]
