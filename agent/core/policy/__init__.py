"""The local policy engine: admission, residency, quotas (enforced at PREPARE)."""

from fedorch.core.policy.engine import (
    JURISDICTION,
    PolicyContext,
    Verdict,
    accept_from_allows,
    egress_refusal,
    evaluate_prepare,
    residency_allows,
    summarize,
)

__all__ = [
    "JURISDICTION",
    "PolicyContext",
    "Verdict",
    "accept_from_allows",
    "egress_refusal",
    "evaluate_prepare",
    "residency_allows",
    "summarize",
]
