"""Wall-clock steps of +-2 s and +-1 h in the negotiation simulator (clock_check.py):
no agent raises on one and no lease or timeout fires early; an agent whose leases ran
on its wall clock is caught. Self-fencing, in the re-placement world with partitions
(fencing.py): no step is fenced before its lease in true time; a worker reading the
rule's times off its wall clock is caught. (Takeover claims:
test_clock_check_takeover.py.)"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from fedorch.core.negotiation.messages import DecisionQuery
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation import fencing
from fedorch.sim.negotiation.agent import SimAgent
from fedorch.sim.negotiation.clock_check import fenced_early
from fedorch.sim.negotiation.config import Config, Workflow
from fedorch.sim.negotiation.disk import PrepareMsg, Timing, VoteMsg
from fedorch.sim.negotiation.ports import SimClock
from fedorch.sim.negotiation.replacement_check import ReplacementFailure
from fedorch.sim.negotiation.run import Simulation, run

WF = "d0.w0"
SCHEDULE_RUNS = 150
HOUR = 3600.0


class WallLeases(SimClock):
    """A broken host: its agent's 'monotonic' time is its wall clock, so its leases
    and timeouts are computed from wall time (what the daemon did before its Clock)."""

    def monotonic(self) -> float:
        return super().monotonic() + self.offset_s


@pytest.fixture
def wall_leases(monkeypatch):
    monkeypatch.setattr(SimAgent, "clock_type", WallLeases)


def scenario(clock_steps, *, drop=lambda src, msg: False, no_capacity: str = "",
             max_rounds: int = 1) -> Simulation:
    """d0 coordinates one workflow of two steps on d1 and d2 at t=1; `drop(src, msg)`
    says which messages the network loses; `no_capacity`: a domain that votes NO."""
    names = ["d0", "d1", "d2"]
    spec = spec_pb2.WorkflowSpec(name="w0", steps=[
        spec_pb2.StepSpec(id="s1", capability="a"), spec_pb2.StepSpec(id="s2", capability="a")])
    config = Config(names=names,
                    policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
                    capacities={n: {} if n == no_capacity else {"a": 4} for n in names},
                    workflows=[Workflow(WF, "d0", 1.0, spec, {"s1": "d1", "s2": "d2"})],
                    timing=Timing(max_rounds=max_rounds), clock_steps=tuple(clock_steps))
    sim = Simulation(1, config)
    sim.intercept = lambda src, dst, msg, now: "drop" if drop(src, msg) else None
    return sim


def in_doubt(step_s: float) -> Simulation:
    """d0 dies for good as it would write its proposal: d1 and d2 stay in doubt until
    their leases; d1's clock steps 2 s after it voted."""
    sim = scenario([("d1", 3.0, step_s)])
    sim.crash_hook = lambda agent, now, what: \
        "forever" if agent.name == "d0" and what == "PersistProposal" else None
    return sim


def unanswered(step_s: float) -> Simulation:
    """The votes are lost: d0 aborts at its prepare timeout; its clock steps meanwhile."""
    return scenario([("d0", 1.5, step_s)], drop=lambda src, msg: isinstance(msg, VoteMsg))


@pytest.mark.parametrize("step_s", [2.0, -2.0, HOUR, -HOUR])
def test_a_participant_in_doubt_asks_only_after_its_lease(step_s):
    sim = in_doubt(step_s)
    asked = []
    inner = sim.intercept
    sim.intercept = lambda src, dst, msg, now: (
        asked.append((src, now)) if isinstance(msg, DecisionQuery) else None) \
        or inner(src, dst, msg, now)
    report = sim.run()
    assert report.violations == []
    first = min(now for src, now in asked if src == "d1")
    assert first >= 1.0 + Timing().lease_s
    assert sim.clock_check.fired >= 2 and sim.clock_check.steps[0][2] == step_s


@pytest.mark.parametrize("step_s", [2.0, -2.0, HOUR, -HOUR])
def test_a_coordinator_aborts_only_at_its_prepare_timeout(step_s):
    sim = unanswered(step_s)
    report = sim.run()
    assert report.violations == []
    assert report.aborted == 1 and sim.clock_check.fired == 1


def test_leases_on_the_wall_clock_are_caught(wall_leases):
    report = in_doubt(HOUR).run()
    assert any("lease fired early: d1" in v for v in report.violations), report.violations


def test_timeouts_on_the_wall_clock_are_caught(wall_leases):
    report = unanswered(HOUR).run()
    assert any("timeout fired early: d0" in v for v in report.violations), report.violations


def test_the_schedule_of_clock_steps_holds_every_invariant():
    stats: Counter[str] = Counter()
    fired = 0
    for seed in range(SCHEDULE_RUNS):
        sim = Simulation(seed, Config.clock_stepped(random.Random(seed)))
        report = sim.run()
        assert report.violations == [], f"seed {seed} (clock-step schedule): {report.violations}"
        stats.update(report.stats)
        fired += sim.clock_check.fired
    # Every size of step happened, and leases and timeouts fired after steps.
    for step_s in (2, -2, 3600, -3600):
        assert stats[f"clock stepped {step_s:+g} s"] > 0, step_s
    assert fired > 50


def test_the_schedule_with_wall_clock_leases_fails():
    """The schedule can fail: the same seeds with leases on the wall clock do."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SimAgent, "clock_type", WallLeases)
        failed = next((seed for seed in range(40) if Simulation(
            seed, Config.clock_stepped(random.Random(seed))).run().violations), None)
    assert failed is not None


def test_the_random_fault_mix_steps_clocks_at_a_modest_rate():
    """make test's 2,000 seeded runs (test_run_seeds.py) include clock steps."""
    stepped = [seed for seed in range(400) if Config.random(random.Random(seed)).clock_steps]
    assert 10 < len(stepped) < 100
    for seed in stepped[:5]:
        assert run(seed).stats[f"clock stepped {Config.random(random.Random(seed)).clock_steps[0][2]:+g} s"] == 1


def test_a_step_leaves_the_protocol_messages_alone():
    """The clock step changes nothing the Node decides here: the same PREPAREs leave."""
    prepares = []
    for step_s in (0.0, HOUR):
        sim = unanswered(step_s)
        sent = []
        inner = sim.intercept
        sim.intercept = lambda src, dst, msg, now, sent=sent, inner=inner: (
            sent.append((dst, now)) if isinstance(msg, PrepareMsg) else None) \
            or inner(src, dst, msg, now)
        sim.run()
        prepares.append(sent)
    assert prepares[0] == prepares[1] and prepares[0]


def test_a_clock_step_does_not_refuse_a_submission_already_admitted():
    """d2 votes NO: round 1 aborts and round 2 asks d1 again for s1, with the same signed
    submission. d1's clock steps +1 h right after its YES of round 1 is written."""
    sim = scenario([], no_capacity="d2", max_rounds=2)
    stepped = []

    def hook(agent, now, what):
        if agent.name == "d1" and what == "send VoteMsg" and not stepped:
            stepped.append(now)
            agent.clock.offset_s += HOUR
            sim.clock_check.stepped("d1", HOUR)
    sim.crash_hook = hook
    report = sim.run()
    assert stepped and report.violations == []
    assert report.stats["refused replayed submission"] == 0
    assert report.committed == 1
    assert sim.agents["d1"].disk.admitted  # the admission it kept


def test_an_hour_off_refuses_new_submissions_visibly():
    """The decision (docs/decisions.md): a clock an hour ahead judges a fresh submission
    older than its window and refuses it with that reason; the workflow, with nowhere
    else to go, aborts."""
    sim = scenario([("d1", 0.5, HOUR)])
    refused = []
    sim.checker.refused = lambda agent, error: refused.append((agent, str(error)))
    report = sim.run()
    assert report.violations == []
    assert any(a == "d1" and "older than the 3600 s window" in e for a, e in refused), refused
    assert not sim.agents["d1"].disk.admitted and report.aborted == 1


# ---- self-fencing (fencing.py: the rule runs on each cut worker's clock) -------------

FENCING_RUNS = 100


def test_self_fencing_on_the_monotonic_clock_holds_through_clock_steps():
    """Every cut worker's wall clock steps while it is cut; the rule reads the monotonic
    clock, so no fence comes before its lease (fenced_early) and no two copies overlap."""
    stats: Counter[str] = Counter()
    for seed in range(FENCING_RUNS):
        stats.update(fencing.run(seed).stats)  # ReplacementFailure names the seed
    for step_s in (2, -2, 3600, -3600):
        assert stats[f"clock stepped {step_s:+g} s"] > 0, step_s
    assert stats["fenced"] > 20, stats


def test_self_fencing_on_the_wall_clock_is_caught():
    """The same schedules with the rule reading the wall clock: a step forward fences a
    step before its lease, reported at once in true time."""
    early = None
    for seed in range(FENCING_RUNS):
        try:
            fencing.run(seed, fence_clock="wall")
        except ReplacementFailure as e:
            if "fenced early" in str(e):
                early = str(e)
                break
    assert early is not None
    seed = int(early.split(":")[0].removeprefix("seed "))
    assert fencing.run(seed).stats["fenced"] >= 1  # the agent's clock: in time


@pytest.mark.parametrize("heard, now, early", [
    (None, 5.0, False), (None, 4.9, True), (2.0, 5.9, True), (2.0, 6.0, False),
    (0.5, 4.9, True)])
def test_fenced_early_counts_the_lease_from_the_later_of_start_and_last_heard(
        heard, now, early):
    verdict = fenced_early(1.0, heard, now, 4.0)
    assert (verdict is not None) is early, verdict
    if early:
        assert verdict.startswith("fenced early: stopped at") and "lease 4 s" in verdict
