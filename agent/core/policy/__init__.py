"""The local policy engine: admission, residency, quotas (enforced at PREPARE)."""

from fedorch.core.policy.engine import (
    JURISDICTION,
    Verdict,
    accept_from_allows,
    evaluate_prepare,
    residency_allows,
    summarize,
)

__all__ = [
    "JURISDICTION",
    "Verdict",
    "accept_from_allows",
    "evaluate_prepare",
    "residency_allows",
    "summarize",
]
