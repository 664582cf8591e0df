"""`log_format: json` on real agents: every line they write is one JSON object."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fedorch.runtime.supervisor import agent_command, child_env, ensure_keys, pick_free_ports
from fedorch.runtime.telemetry import trace_id_hex

from tests.integration.conftest import DOMAINS
from tests.integration.federation import started_federation, state_name
from tests.integration.test_workflows import DEMO

pytestmark = pytest.mark.integration

FAILING_TASK_AGENT = Path(__file__).parent / "agents" / "failing_task.py"
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


def _solo_config(tmp_path, **config):
    keys = ensure_keys(["solo"], tmp_path / "keys")
    port, = pick_free_ports(1)
    path = tmp_path / "solo.yaml"
    path.write_text(yaml.safe_dump({
        "domain": "solo", "listen": f"127.0.0.1:{port}", "data_dir": str(tmp_path / "data"),
        "key_file": str(keys["solo"]), "log_format": "json", **config}))
    return path


def _start(command, tmp_path, stderr) -> subprocess.Popen:
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr, cwd=tmp_path, env=child_env(),
                            start_new_session=True)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_traceback_is_inside_one_json_record(tmp_path):
    """A task of the agent fails (injected by tests/integration/agents/failing_task.py):
    its traceback, multi-line message included, is one JSON record; the agent goes on
    and stops cleanly on SIGTERM."""
    config = _solo_config(tmp_path)
    log_path = tmp_path / "solo.log"
    with open(log_path, "wb") as log_file:
        proc = _start([sys.executable, str(FAILING_TASK_AGENT), str(config)], tmp_path, log_file)
    try:
        deadline = time.monotonic() + 60
        while "forced-failure" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "no record of the failed task"
            time.sleep(0.1)
    finally:
        _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, log_path.read_text()
    records = _records(log_path.read_text(), "solo")
    failed = [r for r in records if "traceback" in r]
    assert len(failed) == 1, records
    assert failed[0]["level"] == "error"
    assert failed[0]["message"] == "task 'forced-failure' failed"
    assert failed[0]["traceback"].startswith("Traceback (most recent call last)")
    assert failed[0]["traceback"].endswith("RuntimeError: forced failure\nover two lines")
    assert any(r["message"] == "shutting down" for r in records)


def test_a_startup_error_is_one_json_line(tmp_path):
    """A port that is taken: the agent says so in one JSON record and exits 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = _solo_config(tmp_path, metrics_listen=f"127.0.0.1:{taken.getsockname()[1]}")
        proc = _start(agent_command(config), tmp_path, subprocess.PIPE)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            _stop(proc)
    assert proc.returncode == 2
    assert stdout == b""
    records = _records(stderr.decode(), "solo")
    assert records[-1]["level"] == "error"
    assert records[-1]["message"].startswith("fedorch: error: cannot serve metrics on")
