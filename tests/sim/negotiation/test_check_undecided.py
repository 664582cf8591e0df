"""The simulator's bound for the undecided whose coordinator died, and the coordinator's
early abort on a dead participant (core/node/member_loss.py), in targeted runs.

d0 coordinates one workflow of three steps on d1, d2 and d3 (Paxos Commit; the
acceptors are all four), with membership views on (takeover on: the simulator then
posts each agent's view to its Node). The checker's `check_undecided_recovery`
holds every in-doubt YES voter told its coordinator is DEAD to one recovery after the
telling; the runs here are quiet (no loss, no delay beyond the usual), so the bound
is the tight one: the voter's turn, then one ballot.
"""

from __future__ import annotations

import pytest
from fedorch.core.negotiation import termination
from fedorch.core.negotiation.messages import Promise
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import Simulation

from tests.sim.negotiation.test_takeover import WF, at_d0s_first, scenario

KEY = (WF, 1)
TIMING = Timing(max_rounds=1, takeover_after_s=3.0)
VOTERS = ("d1", "d2", "d3")


def d0_dies_with_its_votes_in(seed: int = 1) -> tuple[Simulation, list[float]]:
    """d0 dies for good as it writes its COMMIT proposal: every participant voted YES,
    nothing was accepted, nobody knows a decision."""
    sim = scenario(seed, timing=TIMING)
    died: list[float] = []
    hook = at_d0s_first("PersistProposal", "forever")

    def crash_hook(agent, now, label):
        verdict = hook(agent, now, label)
        if verdict:
            died.append(now)
        return verdict
    sim.crash_hook = crash_hook
    return sim, died


@pytest.mark.parametrize("seed", range(1, 4))
def test_the_undecided_learn_within_one_recovery_of_their_coordinators_death(seed) -> None:
    sim, died = d0_dies_with_its_votes_in(seed)
    report = sim.run()
    assert report.violations == [], report.violations
    assert died and sim.dead_forever == {"d0"}
    t = sim.config.timing
    # One recovery: DEAD in the views dead_after_s after the death, the last voter's
    # turn (rank 2: 2 × stagger_s + backoff_s), a ballot's two phases resent once.
    bound = died[0] + t.dead_after_s + 2 * t.stagger_s + t.backoff_s + 2 * t.resend_s
    for voter in VOTERS:
        learned = sim.checker.learned_at[(voter, KEY)]
        yes = sim.checker.yes_at[(voter, KEY)]
        assert learned <= bound < yes + t.lease_s, (voter, learned, bound)
        assert not sim.agents[voter].disk.learned[KEY].commit  # ABORT: nothing accepted
    assert report.stats["in doubt, coordinator gone: recovery at once"] == len(VOTERS)
    assert sum(n for k, n in report.stats.items()
               if k.startswith("undecided after coordinator DEAD: resolved")) == len(VOTERS)


def test_the_bound_fails_a_node_that_waits_its_lease(monkeypatch) -> None:
    """The check can fail: with the in-doubt part of membership's DEAD taken out (as it
    was), the voters wait their leases and the checker says so."""
    monkeypatch.setattr(termination.Termination, "coordinator_lost",
                        lambda self, now, coordinator: [])
    sim, _ = d0_dies_with_its_votes_in()
    report = sim.run()
    undecided = [v for v in report.violations if v.startswith("undecided:")]
    assert undecided and all("d0 DEAD" in v for v in undecided), report.violations


def test_a_silent_participant_dead_for_good_aborts_the_round_at_once() -> None:
    """d3 dies for good before its vote: d0 aborts the round when its view says d3 is
    DEAD (dead_after_s later), not at the prepare timeout (30 s here), naming d3; the
    participants that voted YES are told ABORT then."""
    sim = scenario(timing=Timing(max_rounds=1, takeover_after_s=3.0,
                                 prepare_timeout_s=30.0))
    died: list[float] = []

    def crash_hook(agent, now, label):
        if agent.name == "d3" and label == "reservation" and not died:
            died.append(now)
            return "forever"
        return None
    sim.crash_hook = crash_hook
    report = sim.run()
    assert report.violations == [], report.violations
    assert died and sim.dead_forever == {"d3"}
    row = sim.agents["d0"].disk.rows[WF]
    assert row.state is WorkflowState.ABORTED and "d3 is DEAD" in row.reason
    assert report.stats["round aborted: a silent participant gone"] == 1
    t = sim.config.timing
    for voter in ("d1", "d2"):
        learned = sim.checker.learned_at[(voter, KEY)]
        assert learned <= died[0] + t.dead_after_s + 1.0 < died[0] + t.prepare_timeout_s


def test_the_bound_grows_with_the_network_hits_on_a_recovery() -> None:
    """Takeover soak seed 88000620: the dead coordinator one of four acceptors, a
    ballot needs each of the other three, and the network lost or slowed fifteen of
    the recovery's messages: it took 11 s, past the fixed allowance for chaos. Here
    every Promise is dropped for 5 s after the voters see d0 DEAD: each drop costs a
    resend, which the checker counts (takeover_check.network_hit) instead of calling
    the voters slow."""
    sim, died = d0_dies_with_its_votes_in()
    t = sim.config.timing
    dropped: list[float] = []

    def drop_promises(src, dst, msg, now):
        if isinstance(msg, Promise) and src != dst and died \
                and now < died[0] + t.dead_after_s + 5.0:
            dropped.append(now)
            return "drop"
        return None
    sim.intercept = drop_promises
    report = sim.run()
    assert report.violations == [], report.violations
    assert dropped and sim.dead_forever == {"d0"}
    # The drops did slow the first voter's recovery past one quiet recovery.
    quiet = died[0] + t.dead_after_s + t.backoff_s + 2 * t.resend_s
    assert sim.checker.learned_at[("d1", KEY)] > quiet
    for voter in VOTERS:
        assert not sim.agents[voter].disk.learned[KEY].commit
