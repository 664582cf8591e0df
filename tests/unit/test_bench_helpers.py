"""Small parts of the benchmarks that can be checked without running them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fedorch.bench.commit import forced_write_ms, run_commit_bench
from fedorch.cli.main import cli


def test_forced_write_probe_measures_and_leaves_nothing_behind(tmp_path):
    ms = forced_write_ms(tmp_path, writes=3)
    assert ms > 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given", ["0", "64,-1", "many", "64,,512", ""])
def test_bench_commit_refuses_submitter_counts_that_are_not_positive(given, monkeypatch):
    started = []
    monkeypatch.setattr("fedorch.bench.commit.run_commit_bench",
                        lambda *a, **k: started.append(a))  # must never be reached
    result = CliRunner().invoke(cli, ["bench", "commit", "--concurrency", given])
    assert result.exit_code == 2
    assert "--concurrency" in result.stderr and "positive whole numbers" in result.stderr
    assert started == []


def test_bench_commit_passes_each_submitter_count_on(monkeypatch):
    seen = {}

    async def fake_bench(**kwargs):
        seen.update(kwargs)
        return {}

    monkeypatch.setattr("fedorch.bench.commit.run_commit_bench", fake_bench)
    result = CliRunner().invoke(cli, ["bench", "commit", "--json", "--workflows", "50",
                                      "--concurrency", "8,32"])
    assert result.exit_code == 0, result.output
    assert (seen["total"], seen["concurrency"]) == (50, (8, 32))


async def test_the_commit_bench_refuses_an_empty_climb_before_starting_anything():
    with pytest.raises(ValueError, match="at least one"):
        await run_commit_bench(concurrency=())
