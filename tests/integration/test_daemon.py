"""The daemon refuses bad configs and bad surroundings before it starts anything."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import yaml
from fedorch.core.identity.keys import init_keys

pytestmark = pytest.mark.integration


def _run_agent(config_path, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "fedorch.cli.main", "agent", "run", "--config", str(config_path)],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def _config(tmp_path, **overrides):
    init_keys("solo", tmp_path / "keys")
    body = {
        "domain": "solo", "listen": "127.0.0.1:1", "data_dir": str(tmp_path / "data"),
        "key_file": str(tmp_path / "keys" / "solo.key"),
        "capabilities": [{"name": "x", "capacity": 1,
                          "executor": {"type": "builtin", "name": "echo"}}],
        **overrides,
    }
    path = tmp_path / "solo.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize("overrides, needle", [
    ({"capabilities": [{"name": "x", "capacity": -1,
                        "executor": {"type": "builtin", "name": "echo"}}]},
     "capabilities[0].capacity"),
    ({"listen": "nowhere"}, "listen"),
    ({"colour": "blue"}, "colour"),
    ({"capabilities": [{"name": "x", "capacity": 1, "executor": {"type": "teleport"}}]},
     "executor.type"),
])
def test_invalid_config_exits_2_with_one_line_naming_the_field(tmp_path, overrides, needle):
    result = _run_agent(_config(tmp_path, **overrides))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedorch: error: "), result.stderr
    assert "solo.yaml" in lines[0] and needle in lines[0]
    assert not (tmp_path / "data").exists()  # nothing started, nothing written


def test_missing_key_file_exits_2(tmp_path):
    path = _config(tmp_path, key_file=str(tmp_path / "keys" / "absent.key"))
    result = _run_agent(path)
    assert result.returncode == 2
    assert "absent.key" in result.stderr
    assert not (tmp_path / "data").exists()


def test_port_in_use_exits_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_agent(_config(tmp_path, listen=f"127.0.0.1:{port}"))
    assert result.returncode == 2, result.stderr
    assert "cannot listen" in result.stderr


def test_cli_against_an_unreachable_agent_exits_3(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    result = subprocess.run(
        [sys.executable, "-m", "fedorch.cli.main", "--rpc-timeout", "2", "members", "--peer",
         f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert result.stderr.startswith("fedorch: error: ")


def test_cli_submit_of_a_malformed_file_exits_2(tmp_path):
    bad = tmp_path / "wf.yaml"
    bad.write_text("name: x\nsteps:\n  - id: a\n    capability: c\n    needs: [a]\n")
    result = subprocess.run(
        [sys.executable, "-m", "fedorch.cli.main", "submit", str(bad), "--peer", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "wf.yaml" in result.stderr and "needs" in result.stderr
