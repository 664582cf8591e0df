"""Step executors: how a domain actually runs the steps its capabilities promise.

``build_executor`` turns a capability's executor config into an ``Executor``, and is the
one place a bad config is caught (as ``ExecutorConfigError``), so the agent refuses it at
start-up rather than when a step first runs. Every executor type, fedorch's own
included, is a plugin found through the ``fedorch.executors`` entry point group
(plugins.py); docs/executors.md says how to write one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fedorch.runtime.executors import plugins
from fedorch.runtime.executors.base import (
    MAX_ERROR_CHARS,
    Executor,
    ExecutorConfigError,
    StepInvocation,
    StepOutcome,
)
from fedorch.runtime.executors.builtin import BUILTINS
from fedorch.runtime.executors.command import CommandExecutor
from fedorch.runtime.executors.plugins import (
    ENTRY_POINT_GROUP,
    ExecutorFactory,
    ExecutorSettings,
    installed_types,
    settings_from_config,
)

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "MAX_ERROR_CHARS",
    "CommandExecutor",
    "Executor",
    "ExecutorConfigError",
    "ExecutorFactory",
    "ExecutorSettings",
    "StepInvocation",
    "StepOutcome",
    "build_executor",
    "build_from_config",
    "installed_types",
]


def build_executor(
    kind: str,
    *,
    argv: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    name: str = "",
    cwd: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Executor:
    """The executor for one capability, or ExecutorConfigError saying what to fix."""
    return plugins.build(
        ExecutorSettings(
            type=kind,
            # A string stays a string here so that the command factory can say so.
            argv=argv if isinstance(argv, str | bytes) else tuple(argv),  # type: ignore[arg-type]
            env=env if env is not None else {},
            name=name,
            cwd=cwd,
            options=options if options is not None else {},
        )
    )


def build_from_config(executor: Any) -> Executor:
    """The executor a ``config_pb2.ExecutorConfig`` describes."""
    return plugins.build(settings_from_config(executor))
