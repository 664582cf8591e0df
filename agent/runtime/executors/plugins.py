"""The executor registry: every executor type is a plugin found by its entry point.

A domain that runs its own engine installs a Python package that declares, in its
``pyproject.toml``::

    [project.entry-points."fedorch.executors"]
    myengine = "mypackage.executor:build"

and then writes ``executor: {type: myengine, options: {...}}`` in the agent config; no
fork of fedorch is needed. fedorch's own executors (command, builtin, http, dask) are
declared the same way in fedorch's pyproject.toml.

The entry point's object is a factory: it takes the capability's ``ExecutorSettings`` and
returns an ``Executor``. The factory checks the settings and raises
``ExecutorConfigError`` (naming the field) when they are wrong; it must not connect to
anything, because the agent also calls it to check a config before it starts (a bad
config is refused at start-up, an unreachable engine is a failed step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from fedorch.runtime.executors.base import Executor, ExecutorConfigError

ENTRY_POINT_GROUP = "fedorch.executors"


@dataclass(frozen=True)
class ExecutorSettings:
    """A capability's ``executor`` block, as a factory receives it."""

    type: str
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    cwd: str | None = None
    # executor.options: the plugin's own settings, as JSON data (see options_from_struct).
    options: Mapping[str, Any] = field(default_factory=dict)


ExecutorFactory = Callable[[ExecutorSettings], Executor]


def installed_types() -> dict[str, metadata.EntryPoint]:
    """Every installed executor type, by name.

    The same entry point may be listed twice (an editable install next to a stale
    build); two *different* ones for one name are reported when that type is built.
    """
    found: dict[str, metadata.EntryPoint] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry)
    return found


def load_factory(kind: str) -> ExecutorFactory:
    """The factory for executor type ``kind``, or ExecutorConfigError listing the installed ones."""
    entries = {
        entry.value
        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)
        if entry.name == kind
    }
    if not entries:
        installed = ", ".join(sorted(installed_types())) or "none"
        raise ExecutorConfigError(
            f"executor.type: must be one of the installed types: {installed}, got {kind!r} "
            f"(a plugin adds a type through the entry point group {ENTRY_POINT_GROUP!r})",
            field="type",
        )
    if len(entries) > 1:
        raise ExecutorConfigError(
            f"executor type {kind!r} is registered by more than one package "
            f"({', '.join(sorted(entries))}); uninstall all but one",
            field="type",
        )
    entry = installed_types()[kind]
    try:
        factory = entry.load()
    except Exception as exc:  # a broken plugin must not take the agent down with a trace
        raise ExecutorConfigError(
            f"executor type {kind!r} ({entry.value}) cannot be loaded: "
            f"{type(exc).__name__}: {exc}",
            field="type",
        ) from exc
    if not callable(factory):
        raise ExecutorConfigError(
            f"executor type {kind!r}: {entry.value} is not callable (it must be a factory "
            "taking ExecutorSettings)",
            field="type",
        )
    return factory


def build(settings: ExecutorSettings) -> Executor:
    """Build the executor ``settings`` describe; ExecutorConfigError says what to fix."""
    factory = load_factory(settings.type)
    try:
        executor = factory(settings)
    except ExecutorConfigError:
        raise
    except Exception as exc:  # a plugin's bug, reported as a config problem, not a trace
        raise ExecutorConfigError(
            f"executor type {settings.type!r} failed to build: {type(exc).__name__}: {exc}",
            field="type",
        ) from exc
    if not callable(getattr(executor, "run", None)):
        raise ExecutorConfigError(
            f"executor type {settings.type!r}: its factory returned {type(executor).__name__}, "
            "which has no run(invocation) method",
            field="type",
        )
    return executor


def options_from_struct(struct: Any) -> dict[str, Any]:
    """``executor.options`` (a protobuf Struct) as JSON data.

    A Struct keeps every number as a double; settings such as ports, counts and sizes
    are whole numbers, so whole doubles come back as integers.
    """
    from google.protobuf import json_format

    return _whole_numbers_as_ints(json_format.MessageToDict(struct))


def _whole_numbers_as_ints(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_ints(item) for item in value]
    return value


def settings_from_config(executor: Any) -> ExecutorSettings:
    """The settings of a ``config_pb2.ExecutorConfig``."""
    return ExecutorSettings(
        type=executor.type,
        argv=tuple(executor.argv),
        env=dict(executor.env),
        name=executor.name,
        cwd=executor.cwd or None,
        options=options_from_struct(executor.options) if executor.HasField("options") else {},
    )
