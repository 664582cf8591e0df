"""The negotiation simulator: two claimants of one coordinator epoch whose votes split.

d0 coordinates a workflow of three steps on d1, d2 and d3 (Paxos Commit; the acceptors
are all four, three make a majority) and dies for good once a result came. d1, the
lowest live participant, claims coordinator epoch 1; so does d2, whose membership view
holds d1 DEAD until it has claimed (views differ, as in a partition). d3 grants the
claim that reaches it first, d1 and d2 each refuse the other's: two of four at best,
no majority for either.

A claim timeout (`prepare_timeout_s`) of 20 s, as in tests/integration/test_nonblocking.py.
Before, both claimants waited it out, then d1, the lower name, claimed epoch 2 and d2
followed it: the workflow ended about 20 s after the claims, past the checker's
takeover deadline (the `before` test below keeps that code path, the split rule off,
and shows it). Now the denials settle it at once (agent/core/workflow/takeover_split.py):
d2 yields to d1 as soon as d1's own denial of its claim reaches it, and d1 either asks
d2 again at its next look (a second) and wins epoch 1 with it, or, when d3 holds the
epoch for d2, finds epoch 1 lost and claims epoch 2 at once. Either way one member acts,
within two looks of the claims, and no claim timeout passes.
"""

from __future__ import annotations

from collections import Counter

import pytest
from fedorch.core.workflow import takeover_claiming
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import Simulation

from tests.sim.negotiation.test_takeover import WF
from tests.sim.negotiation.test_takeover import scenario as takeover_scenario

SLOW_CLAIMS = Timing(max_rounds=1, takeover_after_s=3.0, prepare_timeout_s=20.0)
LOOK_S = 1.0  # a bound per exchange: the takeover shell once looked at its cores this often


def split(seed: int) -> tuple[Simulation, dict[str, list[float]]]:
    sim = takeover_scenario(seed, SLOW_CLAIMS)
    seen: dict[str, list[float]] = {"d0 dead": [], "d2 moved": []}
    real_state = sim.member_state

    def member_state(observer: str, name: str) -> str:
        # d2 sees d1 DEAD from d0's death until it has claimed (or granted d1 first).
        if (observer, name) == ("d2", "d1") and seen["d0 dead"] and not seen["d2 moved"]:
            return "DEAD"
        return real_state(observer, name)

    def crash_hook(agent, now, label):
        if agent.name == "d0" and label == "step result" and not seen["d0 dead"]:
            seen["d0 dead"].append(now)
            return "forever"
        if agent.name == "d2" and label == "takeover epoch" and not seen["d2 moved"]:
            seen["d2 moved"].append(now)
            sim.view_change_at(now)  # d1 is ALIVE in d2's view again: it is told
        return None

    sim.member_state = member_state  # type: ignore[method-assign]
    sim.crash_hook = crash_hook
    return sim, seen


def claims_of_epoch_1(sim: Simulation) -> dict[str, float]:
    """Who claimed epoch 1 (wrote its own grant of it), and when."""
    return {agent: at for (agent, wf, epoch), at in sim.clock_check.claimed_at.items()
            if wf == WF and epoch == 1}


# The seeds whose schedule splits (d1 and d2 both claim epoch 1 before either hears of
# the other); the test checks it, so that a change of the simulator's draws shows.
SPLIT_SEEDS = (1, 2, 3, 4, 7, 9, 10, 12, 13, 14)


@pytest.mark.parametrize("seed", SPLIT_SEEDS)
def test_split_claimants_settle_within_two_looks(seed) -> None:
    sim, seen = split(seed)
    acting: list[tuple[float, int, str]] = []
    real_acting = sim.checker.acting

    def record(agent, wf, epoch, now):
        acting.append((now, epoch, agent))
        real_acting(agent, wf, epoch, now)
    sim.checker.acting = record  # type: ignore[method-assign]
    report = sim.run()
    assert report.violations == [], report.violations  # the takeover deadline included
    assert sim.dead_forever == {"d0"}
    claims = claims_of_epoch_1(sim)
    assert set(claims) == {"d1", "d2"}, claims  # both claimed epoch 1: the votes split
    assert [(epoch, who) for _, epoch, who in acting] in ([(1, "d1")], [(2, "d1")])
    settled = acting[0][0] - max(claims.values())
    assert settled <= 2 * LOOK_S, settled  # not the claim timeout (20 s)
    d2 = sim.agents["d2"]
    assert d2.disk.epochs[WF] == (acting[0][1], "d1")
    finals = {n: sim.agents[n].disk.final.get(WF) for n in ("d1", "d2", "d3")}
    assert finals["d1"] in TERMINAL and set(finals.values()) == {finals["d1"]}
    # Tighter than the checker's takeover deadline for any schedule (takeover_after_s +
    # DEAD's delay + two leases: 20.5 s here): DEAD's delay, then three looks (the
    # claims, the answers and the ask again, the grant), the steps left being short.
    bound = seen["d0 dead"][0] + SLOW_CLAIMS.dead_after_s + 3 * LOOK_S
    for name in ("d1", "d2", "d3"):
        assert sim.checker.ended_at[(name, WF)] <= bound, (name, bound)


def test_before_split_claimants_waited_out_the_claim_timeout(monkeypatch) -> None:
    """The same schedule with the split rule off (the denials recorded, nothing decided
    from them): d1 claims epoch 2 only at its claim timeout, and the workflow ends past
    the checker's takeover deadline."""
    monkeypatch.setattr(takeover_claiming, "split", lambda t, now: [])
    sim, seen = split(1)
    report = sim.run()
    assert sim.checker.acting_in == {(WF, 2): "d1"}, sim.checker.acting_in
    assert any("takeover: " in v and "deadline" in v for v in report.violations), \
        report.violations
    assert set(claims_of_epoch_1(sim)) == {"d1", "d2"}
    ended = sim.checker.ended_at[("d1", WF)]
    assert ended >= claims_of_epoch_1(sim)["d1"] + SLOW_CLAIMS.prepare_timeout_s


def test_the_split_schedule_holds_every_invariant_over_seeds() -> None:
    """200 seeds of the schedule: no violation, and both ways out are taken (a claimant
    yields to the better-ranked one; the better-ranked one claims the next epoch on
    the denials)."""
    stats: Counter[str] = Counter()
    split_runs = 0
    for seed in range(200):
        sim, _ = split(seed)
        report = sim.run()
        assert report.violations == [], f"seed {seed}: {report.violations}"
        stats.update(report.stats)
        split_runs += set(claims_of_epoch_1(sim)) == {"d1", "d2"}
    assert split_runs > 100, split_runs
    assert stats["takeover claimant yielded to a better-ranked rival"] > 50, stats
    assert stats["takeover next epoch claimed on the denials"] > 50, stats
