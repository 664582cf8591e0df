"""`bench commit --unloaded N`: the unloaded sample's size, 30 unless asked."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fedorch.bench.commit import UNLOADED_WORKFLOWS, run_commit_bench
from fedorch.cli.main import cli


@pytest.mark.parametrize(("args", "expected"), [([], UNLOADED_WORKFLOWS),
                                                (["--unloaded", "400"], 400)])
def test_bench_commit_passes_the_unloaded_sample_on(args, expected, monkeypatch):
    seen = {}

    async def fake_bench(**kwargs):
        seen.update(kwargs)
        return {}

    monkeypatch.setattr("fedorch.bench.commit.run_commit_bench", fake_bench)
    result = CliRunner().invoke(cli, ["bench", "commit", "--json", *args])
    assert result.exit_code == 0, result.output
    assert seen["unloaded"] == expected
    assert UNLOADED_WORKFLOWS == 30  # the default sample stays what earlier runs used


def test_bench_commit_refuses_an_empty_unloaded_sample(monkeypatch):
    started = []
    monkeypatch.setattr("fedorch.bench.commit.run_commit_bench",
                        lambda *a, **k: started.append(a))
    result = CliRunner().invoke(cli, ["bench", "commit", "--unloaded", "0"])
    assert result.exit_code == 2 and "--unloaded" in result.output
    assert started == []


async def test_the_commit_bench_refuses_an_empty_unloaded_sample_before_starting():
    with pytest.raises(ValueError, match="at least one"):
        await run_commit_bench(unloaded=0)
