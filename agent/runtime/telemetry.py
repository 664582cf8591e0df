"""Traces: one per workflow, across every domain it touches (OpenTelemetry).

No central service decides a workflow's trace id: it is derived from the workflow id
(:func:`trace_id_of`), so every domain computes the same one, and so do the JSON logs
(agent/runtime/logs.py). No trace context travels in peer messages either: each span's
id is derived from what it is (telemetry_sdk.span_id_of: the workflow and, e.g.,
("vote", domain, round)), so the domain that makes a span names its parent without
being told (node_engine/observed.py and executors.py make them):

    fedorch.submit                      coordinator
      fedorch.negotiation.round         coordinator, one per round (outcome, reason)
        fedorch.negotiation.vote        each participant (verdict yes/no, reason)
          fedorch.step.attempt          the participant, one per attempt (ok, error)
            fedorch.step.result         each receiver of the result (hand-off)
            fedorch.compensation.attempt  the step's domain, one per compensation attempt
                                        run there (ok, error): it undoes that step attempt

A parent a domain did not export (tracing off there) is missing from the trace; its
children still carry the workflow's trace id.

With ``telemetry`` unset in the config nothing is set up: :func:`tracing` is None and
:func:`derived_span` returns at once. Spans are exported in a background thread
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
    from fedorch.runtime.telemetry_sdk import Tracing
    from opentelemetry.sdk.trace.export import SpanExporter

# Names that live in telemetry_sdk.py, given from here on first use (PEP 562) so that
# importing this module does not import OpenTelemetry.
_SDK_NAMES = frozenset({"Tracing", "JsonLinesSpanExporter", "otlp_exporter",
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


# ---- the agent's tracing: nothing to pay while it is off -------------------------------

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
    """Make `tracing` the agent's (None: off)."""
    global _tracing
    _tracing = tracing


def shutdown() -> None:
    global _tracing
    if _tracing is not None:
        _tracing.shutdown()
        _tracing = None


def tracing() -> Tracing | None:
    """The agent's tracing (None: off); the node engine's spans go straight to it
    (`Tracing.derived`, `derived_span`)."""
    return _tracing


def derived_span(workflow_id: str, name: str, key: tuple, parent_key: tuple | None,
                 attributes: Mapping[str, object]):
    """A context manager around one attempt of the node engine, a span whose id is
    derived from (workflow, `key`) under the one `parent_key` names (see Tracing)."""
    if _tracing is None:
        return _NO_TRACE
    return _tracing.derived_span(name, workflow_id, key, parent_key, attributes)
