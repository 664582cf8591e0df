"""An agent switched from the shells to the node engine (`engine: node`)
refuses to start while its agent.db holds the shells' unfinished work, with one line and
touching nothing; run with `engine: shells`, it resumes that work and finishes it; once
drained, it starts on the node engine."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fedorch.runtime.node_engine.engine_switch import UnfinishedWork, shells_work

from tests.integration.federation import started_federation, state_name, step_states, wait_for
from tests.integration.test_storage_faults import _command

pytestmark = pytest.mark.integration

GATE = Path(__file__).parent / "steps" / "gate.py"

DOMAINS = {"solo": {"engine": "shells", "capabilities": [
    {"name": "test.gate", "capacity": 2,
     "executor": {"type": "command", "argv": [sys.executable, str(GATE)]}},
]}}

# Idempotent with a retry: the attempt the kill cut short runs again after the restart.
SPEC = """
name: upgraded
steps:
  - id: wait
    capability: test.gate
    params: {{gate: "{gate}", wait_s: 120}}
    retries: 1
    idempotent: true
"""


def _files(data: Path) -> dict[str, bytes]:
    """Every file's bytes; the -shm's only by name (it is SQLite's index of the WAL,
    rebuilt by any reader, and holds no data), and directories by name."""
    return {p.name: b"" if p.name.endswith("-shm") or p.is_dir() else p.read_bytes()
            for p in sorted(data.iterdir())}


async def _killed_mid_step(fed, gate) -> str:
    """A workflow submitted to solo, its step running (waiting at `gate`) when solo is
    SIGKILLed by pid: its id."""
    wid = await fed.submit("solo", SPEC.format(gate=gate))

    async def step_running():
        status = await fed.local_status("solo", wid)
        return status is not None and step_states(status)["wait"][0] == "RUNNING"

    await wait_for(step_running, 30, "the step to run, waiting at its gate")
    fed.kill("solo")
    await fed.close_channels()
    return wid


async def test_the_node_engine_refuses_the_shells_unfinished_work_until_drained(tmp_path):
    gate = tmp_path / "gate"
    async with started_federation(tmp_path, DOMAINS) as fed:
        data = fed.workdir / "data" / "solo"
        wid = await _killed_mid_step(fed, gate)

        # The same agent switched to the node engine.
        shells_config = fed.configs["solo"]
        body = yaml.safe_load(shells_config.read_text())
        body["engine"] = "node"
        upgraded = tmp_path / "upgraded.yaml"
        upgraded.write_text(yaml.safe_dump(body))
        before = _files(data)
        result = await asyncio.to_thread(
            subprocess.run, _command(upgraded), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fedorch: error: "), result.stderr
        assert f"{data}: agent.db holds 1 unfinished workflow of the shells" in lines[0]
        assert "`engine: shells`" in lines[0] and "then switch it" in lines[0], lines[0]
        assert _files(data) == before  # refusing changed nothing, made no node.db

        # With `engine: shells` it resumes the workflow and finishes it.
        await fed.start("solo")
        gate.touch()
        status = await fed.wait_state("solo", wid)
        assert state_name(status) == "SUCCEEDED", status

        # Drained (every peer's acknowledgement in): the node engine starts.
        async def drained():
            return shells_work(data / "agent.db") == UnfinishedWork()

        await wait_for(drained, 30, "the shells' work to be drained")
        fed.stop("solo")
        fed.configs["solo"] = upgraded
        await fed.start("solo")
        assert (data / "node.db").is_file()


async def test_the_shells_refuse_the_node_engines_unfinished_work(tmp_path):
    gate = tmp_path / "gate"
    node = {"solo": {**DOMAINS["solo"], "engine": "node"}}
    async with started_federation(tmp_path, node) as fed:
        data = fed.workdir / "data" / "solo"
        wid = await _killed_mid_step(fed, gate)

        body = yaml.safe_load(fed.configs["solo"].read_text())
        body["engine"] = "shells"
        moved_back = tmp_path / "shells.yaml"
        moved_back.write_text(yaml.safe_dump(body))
        before = _files(data)
        result = await asyncio.to_thread(
            subprocess.run, _command(moved_back), capture_output=True, text=True,
            timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fedorch: error: "), result.stderr
        assert f"{data}: node.db holds 1 unfinished workflow of the node engine" in lines[0]
        assert "then set `engine: shells`" in lines[0], lines[0]
        assert _files(data) == before  # refusing changed nothing

        # On the node engine again, it resumes the workflow and finishes it.
        await fed.start("solo")
        gate.touch()
        status = await fed.wait_state("solo", wid)
        assert state_name(status) == "SUCCEEDED", status
