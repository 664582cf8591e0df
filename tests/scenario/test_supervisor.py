"""The process supervisor shared by the demo, scenarios and integration tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from fedorch.cli.demo import terminal_last
from fedorch.runtime import supervisor


def _ready_child() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def test_stop_agents_stops_a_paused_agent_with_sigterm(tmp_path: Path) -> None:
    """A SIGSTOPped agent cannot act on SIGTERM until resumed: stop resumes it, so it
    ends by SIGTERM within the grace period instead of waiting for SIGKILL."""
    child = _ready_child()
    proc = supervisor.AgentProcess("a", "127.0.0.1:1", tmp_path / "a.yaml",
                                   tmp_path / "a.log", child)
    try:
        assert supervisor.send_signal(proc, signal.SIGSTOP)
        supervisor.stop_agents([proc], grace_s=20)
        assert child.returncode == -signal.SIGTERM
        assert not supervisor.send_signal(proc, signal.SIGCONT)  # gone: nothing to signal
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_the_terminal_line_comes_after_the_last_steps_line() -> None:
    lines = ["workflow w1 SUCCEEDED", "step report SUCCEEDED on partner (attempt 1)"]
    assert terminal_last(lines, {"id": "w1", "state": "SUCCEEDED"}) == [
        "step report SUCCEEDED on partner (attempt 1)", "workflow w1 SUCCEEDED"]
    running = ["workflow w1 RUNNING", "step a RUNNING on x (attempt 1)"]
    assert terminal_last(running, {"id": "w1", "state": "RUNNING"}) == running
