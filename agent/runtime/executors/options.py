"""Reading a plugin's ``executor.options`` with errors that name the field.

Every executor type checks its options the same way: unknown keys are refused (a typo
must not silently fall back to a default), each value has one type, and the error says
``executor.options.KEY: what is wrong``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from fedorch.runtime.executors.base import ExecutorConfigError

_MISSING = object()


class Options:
    """The options of one executor type; ``kind`` names it in errors."""

    def __init__(self, kind: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
        self.kind = kind
        self.options = dict(options)
        known = sorted(known)
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            self.fail(
                unknown[0],
                f"unknown option for type {kind}; valid options: {', '.join(known) or 'none'}",
            )

    def fail(self, key: str, problem: str) -> None:
        raise ExecutorConfigError(f"executor.options.{key}: {problem}", field=f"options.{key}")

    def _get(self, key: str, default: Any, example: str) -> Any:
        value = self.options.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.fail(key, f"required for type {self.kind}, e.g. {key}: {example}")
            return default
        return value

    def string(self, key: str, *, default: Any = _MISSING, example: str = "...") -> str:
        value = self._get(key, default, example)
        if not isinstance(value, str) or (value == "" and default is _MISSING):
            self.fail(key, f"must be a non-empty string, e.g. {key}: {example}; got {value!r}")
        return value

    def number(
        self, key: str, *, default: Any = _MISSING, minimum: float = 0.0, example: str = "1"
    ) -> float:
        value = self._get(key, default, example)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= minimum
        ):
            self.fail(key, f"must be a number greater than {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, key: str, *, default: Any = _MISSING, minimum: int = 1) -> int:
        value = self._get(key, default, str(minimum))
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.fail(key, f"must be an integer of at least {minimum}, got {value!r}")
        return value

    def string_map(self, key: str) -> dict[str, str]:
        value = self._get(key, {}, "{NAME: value}")
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
        ):
            self.fail(key, f"must be a mapping of names to strings (quote numbers), got {value!r}")
        return dict(value)

    def number_map(self, key: str) -> dict[str, float]:
        value = self._get(key, {}, "{GPU: 1}")
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and k and isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(v) and v >= 0
            for k, v in value.items()
        ):
            self.fail(key, f"must be a mapping of names to non-negative numbers, got {value!r}")
        return dict(value)

    def string_list(self, key: str) -> list[str]:
        value = self._get(key, [], "[--flag, value]")
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, f"must be a list of non-empty strings, got {value!r}")
        return list(value)


def refuse_unused(kind: str, settings: Any, *, allowed: Iterable[str] = ()) -> None:
    """Refuse the executor fields (argv, env, name, cwd) that type ``kind`` does not use."""
    allowed = set(allowed)
    present = {
        "argv": bool(settings.argv),
        "env": bool(settings.env),
        "name": bool(settings.name),
        "cwd": bool(settings.cwd),
    }
    for name, given in present.items():
        if given and name not in allowed:
            raise ExecutorConfigError(
                f"executor.{name} is not used by type {kind}; remove it "
                "(its settings go under executor.options)",
                field=name,
            )
