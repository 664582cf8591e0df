"""Policy rules: CEL expressions a domain's votes must satisfy (``policy.rules``).

CEL (the Common Expression Language, used by Kubernetes admission policies) is evaluated
by the ``common-expression-language`` binding. Each rule is evaluated once per step
asked of this domain, over these variables:

============  ===============================  ==========================================
variable      CEL type                         value
============  ===============================  ==========================================
principal     string                           the submitter, verified from its signed spec
                                               and qualified (alice@eu-west, domain:eu-west)
coordinator   string                           the coordinating domain
workflow      string                           the workflow's name
step          string                           the step's id
capability    string                           the step's capability
labels        map(string, list(string))        the labels the step would receive
time          timestamp                        the voting domain's wall clock (UTC)
load          map(string, double)              per capability: slots in use / capacity
============  ===============================  ==========================================

A rule allows when its expression is exactly ``true``; ``false``, another value, or an
error (a missing map key, a type mismatch) refuses with the rule's message: a rule fails
closed. Cost is bounded by construction: CEL has no loops or recursion, comprehensions
range only over the (bounded) inputs, and an expression is at most
:data:`MAX_EXPRESSION_CHARS` long, with at most :data:`MAX_RULES` rules.

Rules are compiled once per distinct expression (cached) and checked when the config is
loaded (:func:`check_rule`): a syntax error, an unknown variable or function, or a
result that is not a boolean is a config error naming the rule.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedorch.gen.fedorch.v1 import config_pb2

__all__ = [
    "MAX_EXPRESSION_CHARS",
    "MAX_RULES",
    "RULE_NAME_RE",
    "VARIABLES",
    "RuleError",
    "RuleInput",
    "check_rule",
    "first_refusal",
]

MAX_RULES = 64
MAX_EXPRESSION_CHARS = 2048
MAX_MESSAGE_CHARS = 512
RULE_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
VARIABLES = ("principal", "coordinator", "workflow", "step", "capability", "labels", "time",
             "load")

_UNDEFINED = re.compile(r"Undefined variable or function: '([^']*)'")


class RuleError(ValueError):
    """A rule that cannot be used: one line, without the rule's name (the caller adds it)."""


@dataclass(frozen=True)
class RuleInput:
    """What one rule evaluation sees (see the module docstring)."""

    principal: str
    coordinator: str
    workflow: str
    step: str
    capability: str
    labels: Mapping[str, frozenset[str]]
    load: Mapping[str, float]
    wall_time_s: float | None  # None: `time` is undefined, and a rule using it refuses

    def activation(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "principal": self.principal,
            "coordinator": self.coordinator,
            "workflow": self.workflow,
            "step": self.step,
            "capability": self.capability,
            "labels": {k: sorted(v) for k, v in self.labels.items()},
            "load": dict(self.load),
        }
        if self.wall_time_s is not None:
            values["time"] = datetime.datetime.fromtimestamp(self.wall_time_s, datetime.UTC)
        return values


@functools.lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    # Imported on first use: the package's __init__ also imports its command line (about
    # 0.3 s and 0.5 s of CPU), which every agent start and CLI call would pay otherwise,
    # while most domains have no rules.
    import cel

    try:
        return cel.compile(expression)
    except Exception as exc:  # the binding raises ValueError; any failure is a bad rule
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RuleError(f"does not compile: {first}") from None


_SAMPLE = RuleInput("", "example", "example", "example", "example", {}, {}, 0.0)


def check_rule(rule: config_pb2.PolicyRule) -> None:
    """Raise RuleError when ``rule`` can never work: bad syntax, an unknown name, a
    non-boolean result on a sample request, or an expression over the size limit."""
    if not rule.expression.strip():
        raise RuleError("expression is required")
    if len(rule.expression) > MAX_EXPRESSION_CHARS:
        raise RuleError(f"expression is over {MAX_EXPRESSION_CHARS} characters")
    program = _compiled(rule.expression)
    try:
        result = program.execute(_SAMPLE.activation())
    except Exception as exc:
        unknown = _UNDEFINED.search(str(exc))
        if unknown:
            raise RuleError(f"unknown name '{unknown.group(1)}' (known: "
                            f"{', '.join(VARIABLES)} and CEL's functions)") from None
        return  # a missing key or such on the sample: the real request may have it
    if not isinstance(result, bool):
        raise RuleError(f"must evaluate to true or false, got {type(result).__name__}")


def _holds(rule: config_pb2.PolicyRule, activation: Mapping[str, Any]) -> tuple[bool, str]:
    try:
        result = _compiled(rule.expression).execute(dict(activation))
    except RuleError as exc:
        return False, str(exc)
    except Exception as exc:  # evaluation errors fail closed
        return False, f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return result is True, ""


def first_refusal(rules: Sequence[config_pb2.PolicyRule],
                  inputs: Sequence[RuleInput]) -> str | None:
    """The reason of the first rule (in config order) that does not hold for some input
    (in order), or None when every rule holds for every input."""
    for item in inputs:
        activation = item.activation()
        for rule in rules:
            ok, error = _holds(rule, activation)
            if not ok:
                message = rule.message or f"expression {rule.expression!r} is not true"
                detail = f" ({error})" if error else ""
                return f"rule {rule.name}: {message} (step '{item.step}'){detail}"
    return None
