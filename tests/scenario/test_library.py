"""The fastest scenarios of the library, run as `make scenarios` runs them (the rest run
there only: each of them starts more agents or waits out longer schedules)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from fedorch.cli.main import cli

pytestmark = pytest.mark.integration

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
FAST = ["demo", "quota-backpressure"]


@pytest.mark.parametrize("name", FAST)
def test_library_scenario_holds(name: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["scenario", "run", str(LIBRARY / name / "scenario.yaml"), "--json",
              "--workdir", str(tmp_path)], catch_exceptions=False)
    report = json.loads(result.stdout)
    failed = [e for e in report["expectations"] if not e["ok"]]
    assert result.exit_code == 0, (report["error"], failed)
    assert report["expectations"] and not failed
    for pids in report["pids"].values():  # every agent it started is gone
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
