"""Each scenario domain's agent config, as the runners write it."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import yaml
from fedorch.runtime.config import parse_config_text
from fedorch.scenario.configs import RUNS_ENV, agent_config, seeds_for, trusted_domains
from fedorch.scenario.loader import parse_scenario_text

TEXT = """\
name: cfg
defaults:
  gossip: {profile: local}
  negotiation: {lease_s: 5}
domains:
  - name: hub
    labels: {zone: b, area: a}
    negotiation: {max_rounds: 2}
    capabilities:
      - {name: run, capacity: 1, executor: {type: command, argv: [python3, steps/s.py, -v]}}
  - name: edge
    count: 4
    trust: [hub]
expect:
  - members: {alive: ["*"]}
"""


def load(tmp_path: Path):
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "s.py").write_text("print('{}')\n")
    return parse_scenario_text(textwrap.dedent(TEXT), "cfg.yaml", tmp_path)


def test_seeds_trust_and_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path)
    names = list(loaded.domains)
    assert names == ["hub", "edge-01", "edge-02", "edge-03", "edge-04"]
    assert seeds_for("hub", names) == ["edge-01", "edge-02", "edge-03"]
    assert seeds_for("edge-02", names) == ["hub", "edge-01", "edge-03"]
    assert trusted_domains(loaded, "hub") == names[1:]
    assert trusted_domains(loaded, "edge-03") == ["hub"]
    addresses = {n: f"127.0.0.1:{9000 + i}" for i, n in enumerate(names)}
    config = agent_config(loaded, "hub", addresses=addresses, data_dir="d", keys_dir="k",
                          metrics_listen=None, env={RUNS_ENV: "/tmp/runs.jsonl"})
    assert config["labels"] == {"area": "a", "zone": "b"}
    assert config["trust"] == {"key_files": [f"k/{n}.pub" for n in names[1:]]}
    assert config["gossip"] == {"profile": "local"}
    assert config["negotiation"] == {"lease_s": 5.0, "max_rounds": 2}  # domain adds to defaults
    executor = config["capabilities"][0]["executor"]
    assert executor["argv"] == [sys.executable, str((tmp_path / "steps" / "s.py").resolve()),
                                "-v"]
    assert executor["env"] == {RUNS_ENV: "/tmp/runs.jsonl"}
    # What the runner writes, the agent loads.
    loaded_config = parse_config_text(yaml.safe_dump(config), "hub.yaml", tmp_path)
    assert loaded_config.negotiation.max_rounds == 2
    assert list(loaded_config.seeds) == [addresses[n] for n in names[1:4]]
