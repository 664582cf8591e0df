"""The process runner's clock jumps: where a scenario steps clocks, every agent starts
under libfaketime reading its own offset file, and each jump adds to that domain's offset.
A child Python started with the runner's settings sees its wall clock stepped (and its
monotonic clock not), which is what an agent sees."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fedorch.scenario.clock import faketime_library
from fedorch.scenario.loader import load_scenario
from fedorch.scenario.process import ProcessFederation

pytestmark = pytest.mark.skipif(
    not faketime_library(),
    reason="libfaketime is not installed (Debian package faketime; `make test` installs it "
           "when run as root)")

SCENARIO = """\
name: jumps
domains:
  - name: a
    capabilities: [{name: work, capacity: 2, executor: {type: builtin, name: echo}}]
  - name: b
    capabilities: [{name: work, capacity: 2, executor: {type: builtin, name: echo}}]
workflows:
  - id: w
    to: a
    spec: {name: w, steps: [{id: s1, capability: work}]}
faults:
  - {action: clock_jump, domains: [b], seconds: -3600, at_s: 1}
  - {action: clock_jump, domains: [a, b], seconds: 7200, at_s: 2}
expect:
  - workflow: {id: w, state: SUCCEEDED}
"""

PROBE = "import time; print(time.time(), time.monotonic())"


def prepared(tmp_path: Path, text: str = SCENARIO) -> ProcessFederation:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(text))
    fed = ProcessFederation(load_scenario(path), tmp_path / "run")
    fed.check_supported()
    fed.prepare()
    return fed


def clock_seen_by(fed: ProcessFederation, name: str) -> tuple[float, float]:
    """(wall - our wall, monotonic - our monotonic) in a child run as the agent is run."""
    out = subprocess.run([*fed.wrap(name), sys.executable, "-c", PROBE], capture_output=True,
                         text=True, timeout=30, check=True)
    wall, mono = map(float, out.stdout.split())
    return wall - time.time(), mono - time.monotonic()


def test_each_jump_steps_that_domains_wall_clock_and_adds_up(tmp_path: Path) -> None:
    fed = prepared(tmp_path)
    for name in ("a", "b"):  # started at true time
        wall, mono = clock_seen_by(fed, name)
        assert abs(wall) < 30 and abs(mono) < 30

    note = asyncio.run(fed.apply("clock_jump", ["b"], 5.0, seconds=-3600))
    assert "b wall clock stepped -3600 s" in note
    wall_b, mono_b = clock_seen_by(fed, "b")
    assert abs(wall_b + 3600) < 30 and abs(mono_b) < 30
    assert abs(clock_seen_by(fed, "a")[0]) < 30  # a's clock did not move

    asyncio.run(fed.apply("clock_jump", ["a", "b"], 5.0, seconds=7200))
    assert abs(clock_seen_by(fed, "a")[0] - 7200) < 30
    assert abs(clock_seen_by(fed, "b")[0] - 3600) < 30  # -3600 then +7200


def test_steps_run_without_libfaketime_and_agents_without_jumps_run_plain(
        tmp_path: Path) -> None:
    fed = prepared(tmp_path)
    assert fed.step_env("a")["LD_PRELOAD"] == ""  # it breaks time.sleep in Python steps
    plain = prepared(tmp_path / "plain", SCENARIO.split("faults:")[0]
                     + "expect:\n  - workflow: {id: w, state: SUCCEEDED}\n")
    assert plain.wrap("a") == []
    assert "LD_PRELOAD" not in plain.step_env("a")
