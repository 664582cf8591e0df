"""2,000 seeded simulation runs of the commit protocol, each checked for every invariant.

A failure names its seed; `python -m fedorch.sim.negotiation.run --seed N` replays it exactly.
`python -m fedorch.sim.negotiation.run --seeds 100000` is the soak.
"""

from __future__ import annotations

from collections import Counter

import pytest
from fedorch.sim.negotiation.run import Simulation, main, run, tracer

RUNS = 2_000
BLOCK = 100


@pytest.mark.parametrize("first", range(0, RUNS, BLOCK))
def test_seeded_runs_hold_every_invariant(first: int) -> None:
    for seed in range(first, first + BLOCK):
        run(seed)  # raises SimulationFailure("seed N: ...") on any violation


def test_seeded_runs_reach_the_hard_paths() -> None:
    """The random runs are not all easy: the paths that matter do happen."""
    stats: Counter[str] = Counter()
    committed = aborted = dead = 0
    for seed in range(300):
        report = Simulation(seed).run()
        stats.update(report.stats)
        committed += report.committed
        aborted += report.aborted
        dead += len(report.dead_forever)
    assert committed > 100 and aborted > 100 and dead > 50
    for path in ("coordinator restored DECIDING", "coordinator restored COMMITTED",
                 "termination learned ABORT", "termination learned COMMIT",
                 "late PREPARE refused", "reservation expired unvoted",
                 "decision record collected", "coordinator proposed commit, abort chosen",
                 # a step's result before its COMMIT, held (core/node/early_results.py)
                 "result held until its COMMIT"):
        assert stats[path] > 0, path
    assert stats["Reject"] > 0 and stats["PaxosPrepare"] > 0 and stats["DecisionQuery"] > 0


def test_a_seed_replays_exactly() -> None:
    assert Simulation(1234).run() == Simulation(1234).run()


def test_the_soak_command_runs_the_takeover_schedule_on_request(capsys) -> None:
    # `--takeover 3` is the takeover schedule (make soak runs it too): claims happen.
    assert main(["--seeds", "40", "--start", "1000", "--jobs", "1", "--takeover", "3"]) == 0
    paths = capsys.readouterr().out
    assert "takeover granted" in paths
    assert main(["--seeds", "40", "--start", "1000", "--jobs", "1"]) == 0
    assert "takeover granted" not in capsys.readouterr().out  # off by default


def test_a_trace_shows_a_workflows_messages_and_every_crash_without_changing_the_run(
        capsys) -> None:
    seed = next(s for s in range(100) if Simulation(s).run().crashes > 0)
    plain = Simulation(seed).run()
    traced = Simulation(seed)
    lines: list[str] = []
    workflow = next(iter(traced.workflows))
    traced.trace = tracer(workflow, lines.append)
    assert traced.run() == plain  # watching changes nothing
    kinds = [line.split()[1] for line in lines]
    assert kinds.count("crash") == plain.crashes
    assert "deliver" in kinds and "submit" in kinds
    for line, kind in zip(lines, kinds, strict=True):
        assert kind in ("crash", "restart", "clock") or workflow in line, line
    times = [float(line.split()[0]) for line in lines]
    assert times == sorted(times)
    # From the command line: the replay's report follows its trace.
    assert main(["--seed", str(seed), "--trace", workflow]) in (0, 1)
    out = capsys.readouterr().out.splitlines()
    assert any(" deliver " in line and workflow in line for line in out)
    assert out[-1].startswith("Report(")
