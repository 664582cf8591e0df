"""Step executors: how a domain actually runs the steps its capabilities promise.

``build_executor`` turns a capability's executor config into an ``Executor``, and is the
one place a bad config is caught (as ``ExecutorConfigError``), so the agent refuses it at
start-up rather than when a step first runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fedorch.runtime.executors.base import (
    MAX_ERROR_CHARS,
    Executor,
    ExecutorConfigError,
    StepInvocation,
    StepOutcome,
)
from fedorch.runtime.executors.builtin import BUILTINS, build_builtin
from fedorch.runtime.executors.command import CommandExecutor

EXECUTOR_KINDS = ("builtin", "command")

__all__ = [
    "BUILTINS",
    "EXECUTOR_KINDS",
    "MAX_ERROR_CHARS",
    "CommandExecutor",
    "Executor",
    "ExecutorConfigError",
    "StepInvocation",
    "StepOutcome",
    "build_executor",
]


def build_executor(
    kind: str,
    *,
    argv: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    name: str = "",
    cwd: str | None = None,
) -> Executor:
    """The executor for one capability, or ExecutorConfigError saying what to fix."""
    if kind == "command":
        return CommandExecutor(_checked_argv(argv), env=_checked_env(env), cwd=_checked_cwd(cwd))
    if kind == "builtin":
        return build_builtin(name)
    raise ExecutorConfigError(
        f"executor.type {kind!r} is not known; set it to one of: {', '.join(EXECUTOR_KINDS)}"
    )


def _checked_argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, str | bytes):
        raise ExecutorConfigError(
            "executor.argv must be a list of strings, not one string; "
            "e.g. argv: [python3, extract.py]"
        )
    argv = list(argv)
    if not argv:
        raise ExecutorConfigError(
            "executor.argv is required for type 'command': give the program and its "
            "arguments, e.g. argv: [python3, extract.py]"
        )
    if not all(isinstance(arg, str) for arg in argv) or not argv[0]:
        raise ExecutorConfigError(
            f"executor.argv must be a list of strings starting with the program, got {argv!r}"
        )
    return argv


def _checked_env(env: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(env or {})
    bad = [
        key for key, value in env.items() if not isinstance(key, str) or not isinstance(value, str)
    ]
    if bad:
        raise ExecutorConfigError(
            f"executor.env values must be strings (quote them in YAML); check {bad!r}"
        )
    return env


def _checked_cwd(cwd: str | None) -> str | None:
    if cwd is not None and (not isinstance(cwd, str) or not cwd):
        raise ExecutorConfigError(f"executor.cwd must be a directory path, got {cwd!r}")
    return cwd
