"""Step executors: the command stdin/stdout contract, process cleanup, and the builtins."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fedorch.runtime.executors import (
    MAX_ERROR_CHARS,
    ExecutorConfigError,
    StepInvocation,
    StepOutcome,
    build_executor,
)
from fedorch.runtime.executors.command import TailBuffer


def invocation(**overrides: object) -> StepInvocation:
    fields: dict[str, object] = {
        "workflow_id": "wf-1",
        "step_id": "train",
        "attempt": 1,
        "params": {},
        "inputs": {},
        "timeout_s": 10.0,
    }
    fields.update(overrides)
    return StepInvocation(**fields)  # type: ignore[arg-type]


def python_step(tmp_path: Path, body: str, *args: str) -> list[str]:
    """argv running ``body`` as a Python script (with the test's interpreter)."""
    script = tmp_path / "step.py"
    script.write_text(textwrap.dedent(body))
    return [sys.executable, str(script), *args]


async def run_command(argv: list[str], **overrides: object) -> StepOutcome:
    return await build_executor("command", argv=argv).run(invocation(**overrides))


async def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = 5.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {deadline_s}s waiting for: {what}")
        await asyncio.sleep(0.01)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def process_is_dead(pid: int) -> bool:
    """Gone, or a zombie: a killed orphan is re-parented to PID 1, and an init that does
    not reap (as in many containers) leaves it a zombie - dead, but still listed."""
    if not process_exists(pid):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state in {"Z", "X"}


# A step that starts a grandchild in its own process group (inheriting stdout), records
# both pids in the file named by argv[1], then does whatever argv[2] says.
SPAWNS_GRANDCHILD = """
    import json, os, subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pid_file = sys.argv[1]
    with open(pid_file + ".tmp", "w") as f:
        json.dump({"child": os.getpid(), "grandchild": grandchild.pid}, f)
    os.replace(pid_file + ".tmp", pid_file)
    if sys.argv[2] == "hang":
        time.sleep(60)
    print(json.dumps({"done": True}))
"""


def read_pids(pid_file: Path) -> tuple[int, int]:
    pids = json.loads(pid_file.read_text())
    return pids["child"], pids["grandchild"]


# --- command executor: the stdin/stdout contract ---------------------------------------


async def test_stdin_carries_one_json_document_and_is_closed(tmp_path: Path) -> None:
    argv = python_step(
        tmp_path,
        """
        import json, sys
        received = json.loads(sys.stdin.read())  # returns only at EOF: stdin was closed
        print(json.dumps({"received": received}))
        """,
    )
    outcome = await run_command(
        argv,
        workflow_id="wf-42",
        step_id="train",
        attempt=3,
        params={"table": "sales", "n": [1, 2.5, None]},
        inputs={"extract": {"rows": 10}},
    )
    assert outcome == StepOutcome(
        ok=True,
        outputs={
            "received": {
                "params": {"table": "sales", "n": [1, 2.5, None]},
                "inputs": {"extract": {"rows": 10}},
                "workflow": "wf-42",
                "step": "train",
                "attempt": 3,
            }
        },
        error="",
    )


async def test_last_non_empty_stdout_line_is_the_outputs(tmp_path: Path) -> None:
    argv = python_step(
        tmp_path,
        """
        import json, sys
        print("starting up")
        print(json.dumps({"not": "this one"}))
        print("noise on stderr", file=sys.stderr)
        print(json.dumps({"rows": 3, "path": "/tmp/x"}))
        print("")
        print("   ")
        """,
    )
    outcome = await run_command(argv)
    assert outcome.ok, outcome.error
    assert outcome.outputs == {"rows": 3, "path": "/tmp/x"}
    assert outcome.error == ""


async def test_non_zero_exit_reports_the_tail_of_stderr(tmp_path: Path) -> None:
    argv = python_step(
        tmp_path,
        """
        import json, sys
        print(json.dumps({"ignored": True}))
        sys.stderr.write("x" * 10000 + "\\n")
        sys.stderr.write("the real reason\\n")
        sys.exit(3)
        """,
    )
    outcome = await run_command(argv)
    assert not outcome.ok
    assert outcome.outputs == {}
    assert outcome.error.endswith("the real reason")
    assert len(outcome.error) <= MAX_ERROR_CHARS


async def test_non_zero_exit_without_stderr_names_the_exit_code(tmp_path: Path) -> None:
    outcome = await run_command(python_step(tmp_path, "import sys; sys.exit(3)"))
    assert outcome == StepOutcome(ok=False, outputs={}, error="exit code 3")


async def test_death_by_signal_is_a_failure(tmp_path: Path) -> None:
    argv = python_step(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    outcome = await run_command(argv)
    assert outcome == StepOutcome(ok=False, outputs={}, error="killed by signal SIGKILL")


@pytest.mark.parametrize(
    "last_line",
    ["all done", "[1, 2, 3]", '"a string"', "42", "null", '{"truncated": '],
)
async def test_last_stdout_line_that_is_not_a_json_object_fails(
    tmp_path: Path, last_line: str
) -> None:
    argv = python_step(
        tmp_path,
        f"""
        import json
        print(json.dumps({{"early": 1}}))
        print({last_line!r})
        """,
    )
    outcome = await run_command(argv)
    assert not outcome.ok
    assert outcome.outputs == {}
    assert outcome.error.startswith("last stdout line is not a JSON object")
    assert last_line.strip() in outcome.error


async def test_empty_stdout_fails(tmp_path: Path) -> None:
    outcome = await run_command(python_step(tmp_path, "pass"))
    assert not outcome.ok
    assert "stdout is empty" in outcome.error


async def test_huge_output_is_capped_but_the_last_line_still_counts(tmp_path: Path) -> None:
    argv = python_step(
        tmp_path,
        """
        import json, sys
        sys.stderr.write("e" * (8 * 1024 * 1024))
        for _ in range(3 * 1024):
            sys.stdout.write("o" * 1023 + "\\n")
        print(json.dumps({"ok": "yes"}))
        """,
    )
    outcome = await run_command(argv)
    assert outcome == StepOutcome(ok=True, outputs={"ok": "yes"}, error="")


def test_tail_buffer_keeps_only_the_last_bytes() -> None:
    tail = TailBuffer(limit=8)
    tail.append(b"0123")
    assert not tail.truncated
    tail.append(b"456789abc")
    assert len(tail) == 8
    assert tail.text() == "23456789abc"[-8:]
    assert tail.truncated


async def test_env_is_added_to_the_parent_environment_and_cwd_is_used(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    argv = python_step(
        tmp_path,
        """
        import json, os
        print(json.dumps({
            "var": os.environ.get("FEDORCH_EXECUTOR_TEST"),
            "has_path": "PATH" in os.environ,
            "cwd": os.getcwd(),
        }))
        """,
    )
    executor = build_executor(
        "command", argv=argv, env={"FEDORCH_EXECUTOR_TEST": "hello"}, cwd=str(workdir)
    )
    outcome = await executor.run(invocation())
    assert outcome.ok, outcome.error
    assert outcome.outputs == {
        "var": "hello",
        "has_path": "PATH" in os.environ,
        "cwd": str(workdir.resolve()),
    }


async def test_missing_program_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    outcome = await run_command([str(tmp_path / "no-such-program")])
    assert not outcome.ok
    assert outcome.error.startswith("cannot start")
    assert "no-such-program" in outcome.error


async def test_params_that_are_not_json_fail_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    argv = python_step(tmp_path, f"open({str(marker)!r}, 'w').close()")
    outcome = await run_command(argv, params={"when": object()})
    assert not outcome.ok
    assert "not JSON-serialisable" in outcome.error
    assert not marker.exists()


# --- command executor: timeouts, cancellation, leftovers -------------------------------


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.json"
    argv = python_step(tmp_path, SPAWNS_GRANDCHILD, str(pid_file), "hang")
    started = time.monotonic()
    # Long enough for three interpreters to start on a busy machine (the step guard, the
    # step, its grandchild), far below the step's 60 s hang.
    outcome = await run_command(argv, timeout_s=3.0)
    elapsed = time.monotonic() - started

    assert outcome == StepOutcome(ok=False, outputs={}, error="timed out after 3.0s")
    assert elapsed < 30.0, "the executor waited on the grandchild instead of killing it"
    assert pid_file.exists(), "the step did not get to record its pids within the timeout"
    child, grandchild = read_pids(pid_file)
    # The program is the step guard's child (the guard, the group's leader, is reaped
    # before run() returns): it dies with the group.
    await wait_until(lambda: process_is_dead(child), "the program to die")
    await wait_until(lambda: process_is_dead(grandchild), "the grandchild to die")


async def test_cancellation_kills_the_process_group_and_propagates(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.json"
    argv = python_step(tmp_path, SPAWNS_GRANDCHILD, str(pid_file), "hang")
    run = asyncio.create_task(run_command(argv, timeout_s=None))
    try:
        await wait_until(pid_file.exists, "the step to record its pids")
        child, grandchild = read_pids(pid_file)
        assert process_exists(child)
    finally:
        run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    await wait_until(lambda: process_is_dead(child), "the program to die")
    await wait_until(lambda: process_is_dead(grandchild), "the grandchild to die")


async def test_leftover_processes_are_killed_after_a_successful_exit(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.json"
    # The grandchild keeps stdout open; the step must not wait for it (nor leave it running).
    argv = python_step(tmp_path, SPAWNS_GRANDCHILD, str(pid_file), "exit")
    started = time.monotonic()
    outcome = await run_command(argv, timeout_s=None)

    assert outcome == StepOutcome(ok=True, outputs={"done": True}, error="")
    assert time.monotonic() - started < 4.0
    child, grandchild = read_pids(pid_file)
    await wait_until(lambda: process_is_dead(child), "the program to die")
    await wait_until(lambda: process_is_dead(grandchild), "the grandchild to die")


# --- builtins ---------------------------------------------------------------------------


async def test_echo_returns_params_upstream_ids_step_and_attempt() -> None:
    executor = build_executor("builtin", name="echo")
    params = {"table": "sales", "nested": {"k": [1, 2]}}
    outcome = await executor.run(
        invocation(params=params, inputs={"b": {"x": 1}, "a": {}}, attempt=2)
    )
    assert outcome == StepOutcome(
        ok=True,
        outputs={"echo": params, "inputs": ["a", "b"], "step": "train", "attempt": 2},
        error="",
    )
    outcome.outputs["echo"]["nested"]["k"].append(3)
    assert params["nested"]["k"] == [1, 2], "outputs must not alias the invocation's params"


async def test_sleep_sleeps_and_reports_seconds() -> None:
    executor = build_executor("builtin", name="sleep")
    assert await executor.run(invocation(params={"seconds": 0.01})) == StepOutcome(
        ok=True, outputs={"slept": 0.01}, error=""
    )
    assert await executor.run(invocation(params={})) == StepOutcome(
        ok=True, outputs={"slept": 0.1}, error=""
    )


async def test_sleep_respects_the_timeout() -> None:
    executor = build_executor("builtin", name="sleep")
    started = time.monotonic()
    outcome = await executor.run(invocation(params={"seconds": 30}, timeout_s=0.05))
    assert outcome == StepOutcome(ok=False, outputs={}, error="timed out after 0.05s")
    assert time.monotonic() - started < 5.0


async def test_sleep_can_be_cancelled() -> None:
    executor = build_executor("builtin", name="sleep")
    run = asyncio.create_task(executor.run(invocation(params={"seconds": 30}, timeout_s=None)))
    await asyncio.sleep(0)  # let it start sleeping
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


@pytest.mark.parametrize("seconds", ["abc", -1, True, None, float("nan"), [1]])
async def test_sleep_with_bad_seconds_is_a_failure(seconds: object) -> None:
    outcome = await build_executor("builtin", name="sleep").run(
        invocation(params={"seconds": seconds})
    )
    assert not outcome.ok
    assert outcome.outputs == {}
    assert "params.seconds must be a non-negative number" in outcome.error


async def test_fail_without_times_always_fails() -> None:
    executor = build_executor("builtin", name="fail")
    for attempt in (1, 2, 10):
        outcome = await executor.run(invocation(attempt=attempt))
        assert outcome == StepOutcome(ok=False, outputs={}, error="failed on purpose")
    custom = await executor.run(invocation(params={"message": "disk full"}))
    assert custom.error == "disk full"


@pytest.mark.parametrize("times", [1, 1.0])  # 1.0: numbers that came through a protobuf Struct
async def test_fail_with_times_fails_that_many_attempts_then_echoes(times: object) -> None:
    executor = build_executor("builtin", name="fail")
    params = {"times": times, "message": "flaky"}
    first = await executor.run(invocation(params=params, attempt=1))
    assert first == StepOutcome(ok=False, outputs={}, error="flaky")
    second = await executor.run(invocation(params=params, attempt=2, inputs={"up": {}}))
    assert second == StepOutcome(
        ok=True,
        outputs={"echo": params, "inputs": ["up"], "step": "train", "attempt": 2},
        error="",
    )


async def test_fail_with_times_zero_succeeds_at_once() -> None:
    outcome = await build_executor("builtin", name="fail").run(invocation(params={"times": 0}))
    assert outcome.ok


@pytest.mark.parametrize("times", ["twice", -1, 1.5, True])
async def test_fail_with_bad_times_is_a_failure_that_says_so(times: object) -> None:
    outcome = await build_executor("builtin", name="fail").run(
        invocation(params={"times": times}, attempt=5)
    )
    assert not outcome.ok
    assert "params.times must be a non-negative integer" in outcome.error


async def test_long_errors_are_clipped_to_their_tail() -> None:
    message = "a" * 5000 + "the end"
    outcome = await build_executor("builtin", name="fail").run(
        invocation(params={"message": message})
    )
    assert len(outcome.error) <= MAX_ERROR_CHARS
    assert outcome.error.endswith("the end")


# --- configuration errors ---------------------------------------------------------------


def test_unknown_kind_names_the_valid_kinds() -> None:
    with pytest.raises(ExecutorConfigError) as err:
        build_executor("docker", argv=["docker"])
    assert "'docker'" in str(err.value)
    assert "builtin" in str(err.value) and "command" in str(err.value)


def test_command_requires_argv() -> None:
    with pytest.raises(ExecutorConfigError, match="executor.argv is required"):
        build_executor("command")


def test_command_argv_must_be_a_list_not_a_string() -> None:
    with pytest.raises(ExecutorConfigError, match="executor.argv must be a list"):
        build_executor("command", argv="python3 extract.py")
    with pytest.raises(ExecutorConfigError, match="executor.argv must be a list"):
        build_executor("command", argv=["python3", 3])  # type: ignore[list-item]


def test_command_env_values_must_be_strings() -> None:
    with pytest.raises(ExecutorConfigError, match="executor.env"):
        build_executor("command", argv=["true"], env={"PORT": 8080})  # type: ignore[dict-item]


def test_unknown_builtin_lists_the_valid_names() -> None:
    with pytest.raises(ExecutorConfigError) as err:
        build_executor("builtin", name="explode")
    message = str(err.value)
    assert "executor.name 'explode'" in message
    assert "echo, fail, sleep" in message
    with pytest.raises(ExecutorConfigError):
        build_executor("builtin")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ExecutorConfigError, ValueError)
