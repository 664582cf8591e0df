"""2,000 seeded simulation runs of the commit protocol, each checked for every invariant.

A failure names its seed; `python -m fedorch.sim.negotiation.run --seed N` replays it exactly.
`python -m fedorch.sim.negotiation.run --seeds 100000` is the soak.
"""

from __future__ import annotations

from collections import Counter

import pytest
from fedorch.sim.negotiation.run import Simulation, main, run

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
                 "decision record collected", "coordinator proposed commit, abort chosen"):
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
