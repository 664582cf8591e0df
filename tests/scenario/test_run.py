"""`fedorch scenario run` with the process runner: real agents on 127.0.0.1.

Each run stops every agent it started (by pid); the tests check that too, from the pids
the agents' logs and the run's report name.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fedorch.cli.main import cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "scenarios" / "steps" / "record.py"

SMALL = f"""\
name: small-kill
defaults:
  gossip: {{profile: local}}
  negotiation: {{prepare_timeout_s: 2, lease_s: 4}}
domains:
  - name: a
    capabilities:
      - {{name: work, capacity: 2, executor: {{type: command, argv: [python3, {RECORD}]}}}}
  - name: b
    capabilities:
      - {{name: work, capacity: 2, executor: {{type: command, argv: [python3, {RECORD}]}}}}
  - name: c
    capabilities: [{{name: spare, capacity: 1, executor: {{type: builtin, name: echo}}}}]
workflows:
  - id: w
    to: a
    at_s: 0.5
    spec:
      name: w
      steps:
        - {{id: first, capability: work, constraints: {{domains: [a]}}}}
        - {{id: second, capability: work, needs: [first], constraints: {{domains: [b]}},
           params: {{seconds: 0.2}}}}
faults:
  - {{action: kill, domains: [c], at_s: 0}}
expect:
  - workflow: {{id: w, state: SUCCEEDED, steps_on: {{first: a, second: b}}, within_s: 60}}
  - step_runs: {{workflow: w, step: second, equals: 1, domain: b}}
  - members: {{seen_by: [a, b], alive: [a, b], not_alive: [c], within_s: 30}}
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def assert_all_stopped(pids: dict[str, list[int]]) -> None:
    """Every agent the run started is gone (and was reaped)."""
    assert pids
    for started in pids.values():
        for pid in started:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_a_small_scenario_holds(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    result = invoke("scenario", "run", str(write(tmp_path, SMALL)), "--json",
                    "--workdir", str(workdir))
    report = json.loads(result.stdout)
    assert result.exit_code == 0, json.dumps(report, indent=1)
    assert report["passed"] is True
    assert [e["ok"] for e in report["expectations"]] == [True, True, True]
    events = [e["event"] for e in report["timeline"]]
    assert "c SIGKILLed" in events
    assert any(e.endswith("SUCCEEDED") and e.startswith("w: workflow") for e in events)
    (run,) = report["workflows"]
    assert run["status"]["state"] == "SUCCEEDED"
    # The side-effect file holds exactly the runs the expectation counted.
    lines = (workdir / "runs" / "b.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == ["second"]
    assert_all_stopped(report["pids"])


def test_a_run_under_host_load_stops_its_busy_processes_and_reports_the_load(
        tmp_path: Path) -> None:
    path = write(tmp_path, SMALL.replace("name: small-kill",
                                         "name: small-kill\nload: {busy_processes: 1}"))
    result = invoke("scenario", "run", str(path), "--json", "--busy", "2",
                    "--workdir", str(tmp_path / "run"))
    report = json.loads(result.stdout)
    assert result.exit_code == 0, json.dumps(report, indent=1)
    assert report["metrics"]["busy_processes"] == 2  # --busy overrides the file
    assert len(report["pids"]["busy load"]) == 2
    for key in ("load_1m_when_serving", "load_1m_when_converged", "load_1m_at_end"):
        assert report["metrics"][key] >= 0
    assert_all_stopped(report["pids"])  # the agents and the busy processes


def test_a_failing_expectation_exits_1_and_says_what_was_seen(tmp_path: Path) -> None:
    import subprocess
    import sys

    wrong = SMALL.replace("steps_on: {first: a, second: b}", "steps_on: {first: b}").replace(
        "equals: 1, domain: b", "at_least: 2")
    workdir = tmp_path / "run"
    path = write(tmp_path, wrong)
    # Two runs of the same scenario, each with its own agents and ports: the report as
    # JSON (a process of its own) while the same run as people read it goes on here.
    as_json = subprocess.Popen(
        [sys.executable, "-m", "fedorch.cli.main", "scenario", "run", str(path), "--json",
         "--workdir", str(workdir / "j")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        result = invoke("scenario", "run", str(path), "--workdir", str(workdir / "t"))
        stdout, stderr = as_json.communicate(timeout=300)
    finally:
        if as_json.poll() is None:  # it stops its agents on SIGTERM
            as_json.terminate()
            try:
                as_json.wait(timeout=60)
            except subprocess.TimeoutExpired:
                as_json.kill()
                as_json.wait()
    assert as_json.returncode == 1, (stdout, stderr)
    report = json.loads(stdout)
    assert report["passed"] is False
    assert [e["ok"] for e in report["expectations"]] == [False, False, True]
    assert_all_stopped(report["pids"])
    assert result.exit_code == 1, result.stdout
    out = result.stdout
    assert "✗ w SUCCEEDED with first on b within 60s  (seen: step first ran on a)" in out
    assert "✗ step w/second ran at least 2 time(s) per copy" in out
    assert "(seen: runs 1)" in out
    assert "✓ a, b sees a, b ALIVE and c not ALIVE" in out
    assert "scenario small-kill FAILED: 1 of 3 expectation(s) held" in out


def processes_naming(text: str) -> list[int]:
    """Pids of live processes whose command line contains `text` (read-only check)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


def test_sigterm_mid_run_stops_every_agent(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    workdir = tmp_path / "run"
    out = tmp_path / "out.txt"
    slow = SMALL.replace("at_s: 0.5", "at_s: 60")  # nothing happens before the signal
    with open(out, "wb") as sink:
        runner = subprocess.Popen(
            [sys.executable, "-m", "fedorch.cli.main", "scenario", "run",
             str(write(tmp_path, slow)), "--workdir", str(workdir)],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "converged" not in out.read_text() and runner.poll() is None:
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        assert len(processes_naming(str(workdir))) == 3  # a, b and c are running
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=60) != 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert processes_naming(str(workdir)) == []
