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
# slow-disk runs in its own test below, which also reads its measurements.
FAST = ["demo", "quota-backpressure", "egress", "compensation", "revocation"]


def run_library(name: str, tmp_path: Path) -> dict:
    """Run one library scenario as `make scenarios` does; its JSON report, once every
    expectation held and every agent it started is gone."""
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
    return report


@pytest.mark.parametrize("name", FAST)
def test_library_scenario_holds(name: str, tmp_path: Path) -> None:
    run_library(name, tmp_path)


def test_slow_disk_reports_what_it_delayed(tmp_path: Path) -> None:
    """The delayed syncs are counted and each submission's times reported (the times
    are shown, never compared: speed is not a test's business)."""
    report = run_library("slow-disk", tmp_path)
    metrics = report["metrics"]
    assert metrics["slowpoke: fsyncs delayed (slow_disk)"] > 0
    assert metrics["slowpoke: seconds spent in delayed fsyncs"] > 0
    for name in ("on-brisk", "on-slowpoke"):
        assert f"{name}: mean seconds from submission to admission (5 of 5)" in metrics
        assert f"{name}: mean seconds from submission to end (5 of 5)" in metrics
    assert "brisk: fsyncs delayed (slow_disk)" not in metrics  # only the slowed domain


def test_failover_moves_work_off_a_domain_that_stays_down(tmp_path: Path) -> None:
    """Beyond its expectations: the status says where crunch was taken from, worker-1
    was killed once and never started again, and its audit log was among those read."""
    report = run_library("failover", tmp_path)
    [status] = [w["status"] for w in report["workflows"] if w["submission"] == "report"]
    crunch = next(s for s in status["steps"] if s["id"] == "crunch")
    assert crunch["domain"] == "worker-2" and crunch["replaced_from"] == ["worker-1"]
    assert len(report["pids"]["worker-1"]) == 1  # never restarted
    [audit] = [e for e in report["expectations"] if "audit log" in e["name"]]
    assert [part.split(":")[0] for part in audit["seen"].split("; ")] == [
        "office", "worker-1", "worker-2", "hub"]
