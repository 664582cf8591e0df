"""The netns runner: each domain in a network namespace of its own, partitions made of
blackhole routes. Needs root and `ip`; skipped otherwise."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from fedorch.cli.main import cli
from fedorch.scenario.netns_check import netns_problem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(netns_problem()), reason=netns_problem() or "netns available"),
]

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "partition-heals" / "scenario.yaml"
OURS = re.compile(r"^fo\d+-")


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=True).stdout
    return {line.split()[0] for line in listed.splitlines() if OURS.match(line)}


def test_a_partition_that_heals(tmp_path: Path) -> None:
    before = namespaces()
    result = CliRunner().invoke(cli, ["scenario", "run", str(SCENARIO), "--runner", "netns",
                                      "--json", "--workdir", str(tmp_path)],
                                catch_exceptions=False)
    report = json.loads(result.stdout)
    failed = [e for e in report["expectations"] if not e["ok"]]
    assert result.exit_code == 0, (report["error"], failed)
    assert report["runner"] == "netns" and not failed
    events = [e["event"] for e in report["timeline"]]
    assert "west, central cut off from east, south (blackhole routes)" in events
    assert "healed: 8 blackhole route(s) removed" in events
    # Each agent had an address of its own, not loopback.
    configs = [p.read_text() for p in tmp_path.glob("*.yaml")]
    assert configs and not any("127.0.0.1" in c for c in configs)
    for pids in report["pids"].values():
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    assert namespaces() <= before  # the run's namespaces are gone
