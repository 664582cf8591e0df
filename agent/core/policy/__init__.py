"""The local policy engine: admission, residency, quotas (enforced at PREPARE)."""

from fedorch.core.policy.engine import (
    JURISDICTION,
    PolicyContext,
    Verdict,
    accept_from_allows,
    accept_from_possible,
    accept_from_refusal,
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
    "accept_from_possible",
    "accept_from_refusal",
    "egress_refusal",
    "evaluate_prepare",
    "residency_allows",
    "summarize",
]
