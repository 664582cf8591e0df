"""`log_format: json` on real agents: every line they write is one JSON object."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest
import yaml
from fedorch.cli.demo import _child_env, agent_command, ensure_keys, pick_free_ports
from fedorch.runtime.telemetry import trace_id_hex

from tests.integration.conftest import DOMAINS
from tests.integration.federation import started_federation, state_name
from tests.integration.test_workflows import DEMO

pytestmark = pytest.mark.integration

FIELDS = {"time", "level", "logger", "message", "domain"}


def _records(text: str, domain: str) -> list[dict]:
    """Every line of an agent's output as a JSON record (fails on any other line)."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{domain} line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict) and FIELDS <= record.keys(), line
        assert record["domain"] == domain, line
        records.append(record)
    return records


async def test_agents_write_json_lines_naming_workflow_and_trace(tmp_path):
    domains = {name: {**body, "log_format": "json"} for name, body in DOMAINS.items()}
    async with started_federation(tmp_path, domains) as fed:
        wid = await fed.submit("eu-west", DEMO)
        status = await fed.wait_state("eu-west", wid)
        assert state_name(status) == "SUCCEEDED", status
        logs = {name: proc.log_path for name, proc in fed.procs.items()}
    # Stopped: each log is complete, shutdown lines included.
    records = {name: _records(path.read_text(), name) for name, path in logs.items()}
    assert all(records.values()), "every agent wrote records"
    assert any(r["message"].startswith("agent eu-west serving") for r in records["eu-west"])
    # us-east refused round 1 (its residency policy): the record names the workflow and
    # the trace id every domain derives for it.
    refusals = [r for r in records["us-east"] if r["message"].startswith("refused")]
    assert refusals, records["us-east"]
    assert refusals[0]["workflow"] == wid
    assert refusals[0]["trace_id"] == trace_id_hex(wid)


def _run_agent(tmp_path, **config) -> tuple[int, bytes, bytes]:
    """Run agent `solo` in JSON mode until it exits (it cannot start); stopped by pid."""
    keys = ensure_keys(["solo"], tmp_path / "keys")
    port, = pick_free_ports(1)
    path = tmp_path / "solo.yaml"
    path.write_text(yaml.safe_dump({
        "domain": "solo", "listen": f"127.0.0.1:{port}", "data_dir": str(tmp_path / "data"),
        "key_file": str(keys["solo"]), "log_format": "json", **config}))
    proc = subprocess.Popen(agent_command(path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path, env=_child_env(), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stdout, stderr


def test_a_crash_traceback_is_one_json_line(tmp_path):
    """An agent whose data dir is a file dies of an uncaught exception: the traceback
    comes out inside one JSON record, not over many lines."""
    (tmp_path / "not-a-dir").write_text("")
    code, stdout, stderr = _run_agent(tmp_path, data_dir=str(tmp_path / "not-a-dir"))
    assert code == 1
    assert stdout == b""
    records = _records(stderr.decode(), "solo")
    crashes = [r for r in records if "traceback" in r]
    assert len(crashes) == 1, records
    assert crashes[0]["level"] == "critical"
    assert crashes[0]["traceback"].startswith("Traceback (most recent call last)")
    assert "FileExistsError" in crashes[0]["traceback"]


def test_a_startup_error_is_one_json_line(tmp_path):
    """A port that is taken: the agent says so in one JSON record and exits 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, stdout, stderr = _run_agent(
            tmp_path, metrics_listen=f"127.0.0.1:{taken.getsockname()[1]}")
    assert code == 2
    records = _records(stderr.decode(), "solo")
    assert records[-1]["level"] == "error"
    assert records[-1]["message"].startswith("fedorch: error: cannot serve metrics on")
