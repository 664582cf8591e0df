"""The seeded runs' cancels (agent/sim/negotiation/cancels.py) and the checker's hold on
them (check.py, `Checker.check_cancels` and the step-start check): seeded runs cancel
workflows in every phase with no violation, and the checker names a cancelled workflow
that ended otherwise, and an attempt started after its domain learned the cancel. Under
the takeover schedule: cancels of running workflows (also while their coordinator is
dead) hold the same invariants, and one asked while the coordinator is dead for good
is taken by its successor."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from fedorch.core.negotiation.messages import Value
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.sim.negotiation import cancels
from fedorch.sim.negotiation.check import Checker
from fedorch.sim.negotiation.config import Workflow
from fedorch.sim.negotiation.run import Simulation, run, seeded_config

from tests.sim.negotiation.test_takeover import WF as TWF
from tests.sim.negotiation.test_takeover import at_d0s_first, scenario

SEEDS = range(0, 80)


def test_the_draw_is_the_seeds_and_a_small_share():
    workflows = [Workflow(f"d0.w{i}", "d0", float(i), None) for i in range(2000)]
    drawn = cancels.draw(7, workflows)
    assert drawn == cancels.draw(7, workflows)
    assert 0.1 < len(drawn) / len(workflows) < 0.2
    by_id = {w.workflow_id: w.at for w in workflows}
    assert all(0.0 <= at - by_id[wf] <= cancels.LATEST_S for at, wf, _ in drawn)


def test_seeded_runs_cancel_in_every_phase_and_hold_every_invariant():
    stats: Counter[str] = Counter()
    for seed in SEEDS:
        stats.update(run(seed).stats)  # raises SimulationFailure on any violation
    assert stats["cancel aborted a round"] > 0
    assert stats["cancel ended a running workflow"] > 0
    assert stats["cancel refused"] > 0  # ended before the cancel came


def _cancelled_run() -> tuple[Simulation, str, str]:
    """A seeded run in which a coordinator (not dead for good) took a cancel: the run,
    the workflow and its coordinator."""
    for seed in SEEDS:
        sim = Simulation(seed, seeded_config(seed), cancels=True)
        sim.run()
        for wf, coord in sim.checker.cancelled.items():
            if coord not in sim.dead_forever:
                return sim, wf, coord
    raise AssertionError("no seeded run cancelled a workflow")


def test_the_checker_names_a_cancelled_workflow_that_ended_otherwise():
    sim, wf, coord = _cancelled_run()
    checker = sim.checker
    assert checker.violations == []
    assert checker.row(sim, wf).state is WorkflowState.CANCELLED
    agent = sim.agents[coord]
    if wf in agent.disk.rows:  # planted on its disk, which the checker reads once down
        agent.crash()
        agent.durable.rows[wf] = replace(agent.durable.rows[wf], state=WorkflowState.SUCCEEDED)
    else:  # retention forgot it: the row the checker kept
        checker.compacted_rows[wf] = replace(checker.compacted_rows[wf],
                                             state=WorkflowState.SUCCEEDED)
    checker.check_cancels(sim)
    assert any(v.startswith(f"cancel: {coord} took the cancel of {wf}, which ended"
                            " SUCCEEDED") for v in checker.violations), checker.violations


def test_the_checker_names_an_attempt_started_after_the_cancel():
    checker = Checker()
    checker.decided("d0", ("d0.w1", 1), _commit(), 1.0)
    checker.learned("d1", ("d0.w1", 1), _commit(), 1.0)
    checker.step_started("d1", ("d0.w1", "s1", 1), 1.5)
    assert checker.violations == []
    checker.cancel_taken("d0", "d0.w1")
    checker.step_started("d0", ("d0.w1", "s0", 1), 2.0)  # at the coordinator that took it
    checker.ended_here("d1", "d0.w1", 2.5)
    checker.step_started("d1", ("d0.w1", "s1", 2), 3.0)  # at a domain that ended it
    assert checker.violations == [
        "cancel: d0 started ('d0.w1', 's0', 1) after it learned the cancel",
        "cancel: d1 started ('d0.w1', 's1', 2) after it learned the cancel"]


def _commit() -> Value:
    return Value(True)


def test_a_cancel_while_the_coordinator_is_dead_goes_to_its_successor():
    """takeover schedule: d0 dies for good once s1's result came; s3 runs long on d3.
    The client's cancel, asked of d0 while it is down, goes to the epoch holder the live
    agents name once d1 acts, which tells its CANCELLED end first and makes it: CANCELLED
    everywhere, s3 stopped, the checker's cancel invariants hold."""
    sim = scenario()
    sim.crash_hook = at_d0s_first("step result", "forever")
    sim.schedule_step = lambda agent, run, delay: Simulation.schedule_step(  # type: ignore
        sim, agent, run, 30.0 if run[1] == "s3" else delay)
    sim.cancel_client.push(4.0, sim.agents["d0"], TWF, 0)  # before d1 acts: asked again
    report = sim.run()
    assert report.violations == [], report.violations
    assert sim.checker.acting_in == {(TWF, 1): "d1"}
    assert sim.checker.cancels.takers[TWF] == {"d1"}
    assert report.stats["cancel sent on to the epoch holder"] >= 1
    assert {n: a.disk.final.get(TWF) for n, a in sim.agents.items() if n != "d0"} == {
        n: WorkflowState.CANCELLED for n in ("d1", "d2", "d3")}
    # s3 ran once, and its 30 s were cut short: d3 ended it (stopping the attempt) first.
    assert [r for r in sim.checker.runs if r[:2] == (TWF, "s3")] == [(TWF, "s3", 1)]
    assert sim.checker.ended_at[("d3", TWF)] < 30.0


def test_seeded_takeover_runs_cancel_running_workflows_and_hold_every_invariant():
    stats: Counter[str] = Counter()
    for seed in range(0, 60):
        stats.update(run(seed, takeover_after_s=3.0).stats)  # raises on any violation
    assert stats["cancel ended a running workflow"] > 0  # told first, then made
    assert stats["end told before it is made"] > 0
    assert stats["cancel drawn after its coordinator died"] > 0
