"""Traces: one per workflow, across every domain it touches (OpenTelemetry).

No central service decides a workflow's trace id: it is derived from the workflow id
(:func:`trace_id_of`), so every domain computes the same one, and so do the JSON logs
(agent/runtime/logs.py). The coordinator's submit span is the root; each message that
starts work on another domain carries, inside its signed body, the W3C traceparent of the
span it comes from (PrepareRequest and StepResult ``trace_parent``; in a batch each item
carries its own), and the receiver's span continues it:

    fedorch.submit                      coordinator
      fedorch.negotiation.round         coordinator, one per round (outcome, reason)
        fedorch.negotiation.vote        each participant (verdict yes/no, reason)
          fedorch.step.attempt          the participant, one per attempt (ok, error)
            fedorch.step.result         each receiver of the result (hand-off)
            fedorch.compensation.attempt  the step's domain, one per compensation attempt
                                        run there (ok, error): it undoes that step attempt

A carried context whose trace id is not its workflow's is ignored (a peer cannot graft
one workflow onto another's trace); a span whose parent this agent no longer knows (it
restarted) starts at the top of the workflow's trace instead, still under its trace id.

With ``telemetry`` unset in the config nothing is set up: every hook returns at once and
the messages carry an empty string. Spans are exported in a background thread
(BatchSpanProcessor), to an OTLP collector and/or a file of JSON lines. The SDK half
(telemetry_sdk.py) is imported only then: an agent without tracing never loads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# The names of trace_ids.py are this module's too (callers and tests use them from here).
from fedorch.runtime.trace_ids import TelemetryError, trace_id_hex, trace_id_of  # noqa: F401

if TYPE_CHECKING:
    from fedorch.gen.fedorch.v1 import peer_pb2
    from fedorch.runtime.telemetry_sdk import Tracing
    from opentelemetry.sdk.trace.export import SpanExporter

# Names that live in telemetry_sdk.py, given from here on first use (PEP 562) so that
# importing this module does not import OpenTelemetry.
_SDK_NAMES = frozenset({"Tracing", "JsonLinesSpanExporter", "otlp_exporter", "REMEMBERED",
                        "EXPORT_DELAY_MS", "OTLP_TIMEOUT_S"})


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from fedorch.runtime import telemetry_sdk

        return getattr(telemetry_sdk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _NoAttempt:
    def ended(self, ok: bool, error: str) -> None:
        pass


_NO_ATTEMPT = _NoAttempt()
_NO_TRACE = contextlib.nullcontext(_NO_ATTEMPT)  # reusable: it holds no state
NO_TRACE = _NO_TRACE  # what an attempt is traced in while tracing is off


# ---- the agent's tracing: hooks that cost nothing while it is off ----------------------

_tracing: Tracing | None = None


def setup(config) -> Tracing | None:
    """Set up tracing as the config's ``telemetry`` says (TelemetryError if it cannot be)."""
    global _tracing
    if not config.HasField("telemetry"):
        return None
    from fedorch.runtime.telemetry_sdk import JsonLinesSpanExporter, Tracing, otlp_exporter

    exporters: list[SpanExporter] = []
    if config.telemetry.otlp_endpoint:
        exporters.append(otlp_exporter(config.telemetry.otlp_endpoint))
    if config.telemetry.file:
        try:
            exporters.append(JsonLinesSpanExporter(config.telemetry.file))
        except OSError as e:
            raise TelemetryError(f"telemetry.file: cannot open {config.telemetry.file}: "
                                 f"{e.strerror or e}") from None
    _tracing = Tracing(config.domain, exporters)
    return _tracing


def install(tracing: Tracing | None) -> None:
    """Make `tracing` the one the hooks use (None: off)."""
    global _tracing
    _tracing = tracing


def shutdown() -> None:
    global _tracing
    if _tracing is not None:
        _tracing.shutdown()
        _tracing = None


def submitted(workflow_id: str, name: str) -> None:
    if _tracing is not None:
        _tracing.submitted(workflow_id, name)


def round_started(workflow_id: str, round_: int, placement: Mapping[str, str]) -> None:
    if _tracing is not None:
        _tracing.round_started(workflow_id, round_, placement)


def round_parent(workflow_id: str) -> str:
    return _tracing.round_parent(workflow_id) if _tracing is not None else ""


def admission_ended(workflow_id: str, outcome: str, reason: str = "") -> None:
    if _tracing is not None:
        _tracing.admission_ended(workflow_id, outcome, reason)


def voted(request: peer_pb2.PrepareRequest, vote: peer_pb2.Vote) -> None:
    if _tracing is not None:
        _tracing.voted(request, vote)


def step_attempt(workflow_id: str, step_id: str, attempt: int):
    """A context manager around one attempt; ``.ended(ok, error)`` records its outcome."""
    if _tracing is None:
        return _NO_TRACE
    return _tracing.step_attempt(workflow_id, step_id, attempt)


def compensation_attempt(workflow_id: str, step_id: str, attempt: int, capability: str):
    """A context manager around one compensation attempt run here; ``.ended(ok, error)``
    records its outcome."""
    if _tracing is None:
        return _NO_TRACE
    return _tracing.compensation_attempt(workflow_id, step_id, attempt, capability)


def result_parent(workflow_id: str, step_id: str) -> str:
    return _tracing.result_parent(workflow_id, step_id) if _tracing is not None else ""


def ended(workflow_id: str) -> None:
    """Drop the round and submit spans of a workflow that ended (see Tracing.ended)."""
    if _tracing is not None:
        _tracing.ended(workflow_id)


def forget(workflow_id: str) -> None:
    """Drop everything kept of a workflow retention removed (see Tracing.forget)."""
    if _tracing is not None:
        _tracing.forget(workflow_id)


def tracing() -> Tracing | None:
    """The tracing the hooks use (None: off); the node engine's spans go straight to it
    (`Tracing.derived`, `derived_span`)."""
    return _tracing


def derived_span(workflow_id: str, name: str, key: tuple, parent_key: tuple | None,
                 attributes: Mapping[str, object]):
    """A context manager around one attempt of the node engine, a span whose id is
    derived from (workflow, `key`) under the one `parent_key` names (see Tracing)."""
    if _tracing is None:
        return _NO_TRACE
    return _tracing.derived_span(name, workflow_id, key, parent_key, attributes)


def result_received(sender: str, result: peer_pb2.StepResult) -> None:
    if _tracing is not None:
        _tracing.result_received(sender, result)
