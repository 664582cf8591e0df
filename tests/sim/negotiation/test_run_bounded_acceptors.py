"""The bounded acceptor set in the simulator: participants beyond `max_acceptors` learn.

Targeted runs of a six-domain workflow with three acceptors (d0 coordinates, d1..d6 each
hold a step), and a check that the random runs draw such rounds often enough for the
2,000-seed soak to exercise them.
"""

from __future__ import annotations

import pytest
from fedorch.core.negotiation.messages import Accept, Accepted, PaxosPrepare
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import Simulation

from tests.sim.negotiation.test_run_scenarios import (
    KEY,
    LEASE,
    WF,
    assert_clean,
    crash_d0_forever_at,
    learned,
    scenario,
)

SIX = {f"s{i}": f"d{i}" for i in range(1, 7)}


def six(**faults) -> Simulation:
    return scenario(SIX, agents=7, timing=Timing(max_rounds=1, max_acceptors=3), **faults)


def _learners(sim: Simulation) -> list[str]:
    tx = sim.checker.txs[KEY]
    assert len(tx.acceptors) == 3 and "d0" in tx.acceptors
    return [p for p in tx.participants if p not in tx.acceptors]


def test_six_participants_three_acceptors_commit_and_learners_learn_from_the_acceptors():
    sim = six()
    sent = []
    sim.intercept = lambda src, dst, msg, now: sent.append((src, dst, msg)) and None
    assert_clean(sim)
    learners = _learners(sim)
    assert len(learners) == 4
    for name in SIX.values():
        assert learned(sim, name) is True, name
    assert {(WF, s, 1) for s in SIX} <= set(sim.checker.runs)  # every step ran
    # No Accept and no Paxos message at all goes to a learner but the acceptors' Accepted;
    # each learner hears from all three acceptors.
    for learner in learners:
        to_it = [(src, msg) for src, dst, msg in sent if dst == learner]
        assert not any(isinstance(m, Accept | PaxosPrepare) for _, m in to_it)
        assert {src for src, m in to_it if isinstance(m, Accepted)} == \
            set(sim.checker.txs[KEY].acceptors)


@pytest.mark.parametrize("broadcast", [True, False])
def test_the_coordinator_dies_after_the_commit_and_every_learner_still_learns(broadcast):
    sim = six()
    sim.crash_hook = crash_d0_forever_at("PersistDecision")
    if not broadcast:  # no Accepted reaches a learner: it asks the acceptors, in doubt
        sim.intercept = lambda src, dst, msg, now: (
            "drop" if isinstance(msg, Accepted) and dst not in ("d0", src)
            and dst not in sim.checker.txs[KEY].acceptors else None)
    assert_clean(sim)
    for name in SIX.values():
        assert learned(sim, name) is True, name
    last_lease = max(sim.checker.yes[KEY].values())
    for learner in _learners(sim):
        assert sim.checker.learned_at[(learner, KEY)] <= last_lease + 2 * LEASE
    assert {(WF, s, 1) for s in SIX} <= set(sim.checker.runs)


def test_the_coordinator_dies_before_deciding_and_learners_abort_with_the_acceptors():
    sim = six()
    sim.crash_hook = crash_d0_forever_at("PersistProposal")
    assert_clean(sim)
    for name in SIX.values():
        assert learned(sim, name) is False, name
        assert sim.agents[name].participant.holds() == []
    # Some learner ran a recovery ballot of its own, or learned the acceptors' outcome.
    assert sim.stats["PaxosPrepare"] > 0


def test_random_runs_draw_rounds_with_more_participants_than_acceptors():
    seeds = [s for s in range(100)
             if Simulation(s).run().stats["transaction with a learner-only participant"]]
    assert len(seeds) >= 15, seeds  # a good share of the 2,000-seed soak


def test_a_dead_coordinator_is_taken_over_and_every_learner_ends_the_workflow():
    # The successor (the lowest live participant, a learner or not) wins with the two
    # acceptors left; the learners hear its claim once it has won, send it their results
    # and take its end.
    sim = scenario(SIX, agents=7, timing=Timing(max_rounds=1, max_acceptors=3,
                                                takeover_after_s=3.0))
    fired = []

    def hook(agent, now, label):
        if agent.name == "d0" and label == "step result" and not fired:
            fired.append(now)
            return "forever"  # a result came: committed
        return None
    sim.crash_hook = hook
    assert_clean(sim)  # the checker: every live participant ends it in time
    assert sim.dead_forever == {"d0"}
    assert sim.checker.acting_in == {(WF, 1): "d1"}
    ends = {n: sim.agents[n].disk.final.get(WF) for n in SIX.values()}
    assert len(set(ends.values())) == 1 and None not in ends.values(), ends
    for learner in _learners(sim):
        if learner != "d1":
            assert sim.agents[learner].disk.epochs[WF] == (1, "d1")
