"""What every step executor takes and returns.

The workflow runner only knows this contract: it hands an executor one attempt of one
step and gets back an outcome. Step-level trouble (a crash, bad output, a timeout) is an
outcome with ``ok=False``, never an exception, so one bad step cannot take the agent down.
Only a bad executor *configuration* raises, and it does so when the executor is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

MAX_ERROR_CHARS = 2000
"""Longest error text an outcome carries; longer reasons keep their tail."""


@dataclass(frozen=True)
class StepInvocation:
    """One attempt of one step, as handed to an executor."""

    workflow_id: str
    step_id: str
    attempt: int  # 1-based
    params: dict  # JSON-like
    inputs: dict  # {upstream_step_id: outputs_dict}
    timeout_s: float | None  # per attempt; None = no limit
    # Names this attempt among processes (the command executor puts it in the step's
    # environment as STEP_RUN_ENV), so a restarted agent can find what is left of it.
    run_marker: str = ""
    # Told the process group id once the attempt's processes exist (command executor).
    on_started: Callable[[int], None] | None = field(default=None, compare=False)
    # A compensation (docs/sagas.md): the compensated step's outputs; None for a step.
    compensating: dict | None = None


STEP_RUN_ENV = "FEDORCH_STEP_RUN"


@dataclass(frozen=True)
class StepOutcome:
    """How an attempt ended: outputs on success, a short reason on failure."""

    ok: bool
    outputs: dict  # {} on failure
    error: str  # "" on success; a short human-readable reason on failure

    @classmethod
    def success(cls, outputs: dict) -> StepOutcome:
        return cls(ok=True, outputs=outputs, error="")

    @classmethod
    def failure(cls, error: str) -> StepOutcome:
        return cls(ok=False, outputs={}, error=clip_error(error) or "failed (no reason given)")


class Executor(Protocol):
    async def run(self, inv: StepInvocation) -> StepOutcome: ...


class ExecutorConfigError(ValueError):
    """A bad executor configuration; the message names the field and the fix.

    ``field`` is the offending field under the capability's ``executor`` block (e.g.
    ``options.url``), so the config loader can point at it; "" when the message says it.
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def clip_error(text: str) -> str:
    """The stripped tail of ``text``, at most MAX_ERROR_CHARS long (the end says most)."""
    text = text.strip()
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return "…" + text[-(MAX_ERROR_CHARS - 1) :].lstrip()


def timed_out_error(timeout_s: float) -> str:
    return f"timed out after {float(timeout_s)}s"


def invocation_document(inv: StepInvocation) -> dict:
    """The step as JSON data, as every executor hands it over (the command executor's
    stdin, the http executor's request body, the argument of a Dask function)."""
    return {
        "params": inv.params,
        "inputs": inv.inputs,
        "workflow": inv.workflow_id,
        "step": inv.step_id,
        "attempt": inv.attempt,
        "timeout_s": inv.timeout_s,
        "run": inv.run_marker,
    }
