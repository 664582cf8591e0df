"""The factories of fedorch's own local executors, registered as entry points.

``command`` and ``builtin`` are plugins like any other (see plugins.py); these functions
are what pyproject.toml's ``fedorch.executors`` entries point at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fedorch.runtime.executors.base import Executor, ExecutorConfigError
from fedorch.runtime.executors.builtin import build_builtin
from fedorch.runtime.executors.command import CommandExecutor
from fedorch.runtime.executors.options import refuse_unused
from fedorch.runtime.executors.plugins import ExecutorSettings


def command(settings: ExecutorSettings) -> Executor:
    _no_options(settings)
    if settings.name:
        raise ExecutorConfigError(
            "executor.name is only for type builtin; remove it", field="name"
        )
    return CommandExecutor(
        _checked_argv(settings.argv),
        env=_checked_env(settings.env),
        cwd=_checked_cwd(settings.cwd),
    )


def builtin(settings: ExecutorSettings) -> Executor:
    _no_options(settings)
    # env is accepted (and unused) as before, so existing configs keep loading.
    refuse_unused("builtin", settings, allowed=("name", "env"))
    return build_builtin(settings.name)


def _no_options(settings: ExecutorSettings) -> None:
    if settings.options:
        raise ExecutorConfigError(
            f"executor.options is not used by type {settings.type}; remove it",
            field="options",
        )


def _checked_argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, str | bytes):
        raise ExecutorConfigError(
            "executor.argv must be a list of strings, not one string; "
            "e.g. argv: [python3, extract.py]",
            field="argv",
        )
    argv = list(argv)
    if not argv:
        raise ExecutorConfigError(
            "executor.argv is required for type 'command': give the program and its "
            "arguments, e.g. argv: [python3, extract.py]",
            field="argv",
        )
    if not all(isinstance(arg, str) for arg in argv) or not argv[0]:
        raise ExecutorConfigError(
            f"executor.argv must be a list of strings starting with the program, got {argv!r}",
            field="argv",
        )
    return argv


def _checked_env(env: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(env or {})
    bad = [
        key for key, value in env.items() if not isinstance(key, str) or not isinstance(value, str)
    ]
    if bad:
        raise ExecutorConfigError(
            f"executor.env values must be strings (quote them in YAML); check {bad!r}",
            field="env",
        )
    return env


def _checked_cwd(cwd: str | None) -> str | None:
    if cwd is not None and (not isinstance(cwd, str) or not cwd):
        raise ExecutorConfigError(f"executor.cwd must be a directory path, got {cwd!r}",
                                  field="cwd")
    return cwd
