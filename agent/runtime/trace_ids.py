"""A workflow's trace id, derived from its id so that every domain (and the JSON logs)
computes the same one with no message needed; light to import (no OpenTelemetry)."""

from __future__ import annotations

import hashlib


class TelemetryError(ValueError):
    """Telemetry as configured cannot be set up (e.g. the OTLP exporter is not installed)."""


def trace_id_of(workflow_id: str) -> int:
    """The workflow's trace id: the same on every domain, with no message needed."""
    return int.from_bytes(hashlib.sha256(workflow_id.encode()).digest()[:16], "big") or 1


def trace_id_hex(workflow_id: str) -> str:
    return f"{trace_id_of(workflow_id):032x}"
