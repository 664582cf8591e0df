"""Seeded takeover runs with a step placed again (core/node/replacement.py), with
Paxos Commit and with classic 2PC (`--commit 2pc`), the simulator's retention short
and the runs long (`--keep-ended-s 5 --end 300`), and the re-placement round's
decision kept from its new domain for a while (`HOLD_S`): the new domain, in doubt,
runs recovery ballots of the round, which its coordinator refuses and its own acceptor
records. That record goes by the round's life as any round's (docs/retention.md,
"Forgetting acceptor records"): its round states a creation time now, and no acceptor
record without one is left anywhere. Every invariant must hold."""

from __future__ import annotations

from collections import Counter

import pytest
from fedorch.core.negotiation.messages import Decision, DecisionAnswer, Key, PaxosPrepare
from fedorch.core.node.records import PrepareMsg
from fedorch.sim.negotiation.run import Simulation, seeded_config

HOLD_S = 20.0  # the round's decision to its new domain is lost this long after its PREPARE
# (seed, classic 2PC): runs whose first re-placement round's new domain ran a ballot.
RUNS = [(34000013, False), (34500064, True)]


@pytest.mark.parametrize("seed, classic", RUNS)
def test_the_new_domains_record_of_a_re_placement_round_goes_by_its_life(
        seed: int, classic: bool) -> None:
    sim = Simulation(seed, seeded_config(seed, 3.0, classic=classic, keep_ended_s=5.0,
                                         end=300.0), cancels=True)
    rounds: dict[Key, tuple[str, str, float, int]] = {}  # coordinator, new domain, at, created
    ballots: Counter[Key] = Counter()  # the new domain's PaxosPrepares to its own acceptor

    def intercept(src: str, dst: str, msg: object, now: float) -> str | None:
        if isinstance(msg, PrepareMsg) and msg.info.lost and msg.tx.key not in rounds:
            rounds[msg.tx.key] = (src, dst, now, msg.tx.created_ms)
        elif isinstance(msg, PaxosPrepare) and msg.tx.key in rounds and src == dst:
            ballots[msg.tx.key] += 1
        elif isinstance(msg, Decision | DecisionAnswer) and msg.key in rounds:
            _, new, at, _ = rounds[msg.key]
            if dst == new and now < at + HOLD_S:
                return "drop"
        return None

    sim.intercept = intercept
    report = sim.run()
    assert report.violations == []
    key, (coordinator, new, at, created) = next(iter(rounds.items()))
    assert ballots[key] > 0  # in doubt, it ran a ballot: its acceptor recorded the round
    d = sim.agents[new].node.state
    assert key[0] not in d.endings and key not in d.acceptor and key not in d.learned
    assert created > 0  # stated: its coordinator's wall clock as it began
    # Forgotten by its life there: the horizon of its coordinator rose to it.
    assert d.horizons[coordinator] >= created
    assert report.stats["retention: acceptor record forgotten"] > 0
    for agent in sim.agents.values():  # no record kept for good anywhere
        assert [k for k, r in agent.node.state.acceptor.items() if r.tx.created_ms <= 0] == []
