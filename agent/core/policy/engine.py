"""The local policy a domain enforces when it votes at PREPARE.

Pure functions: no I/O, no clock, no randomness. The participant core calls
:func:`evaluate_prepare` with its configured policy, the request, and its current
reservation counts, and votes YES or NO with the verdict's reason. :func:`summarize`
builds the (optional) public summary a domain gossips in its record, which the
coordinator's placement uses to avoid asking domains that would refuse anyway.

Checks run in this order; the first that fails gives the reason:

1. ``accept_from``: is the coordinator a domain whose work this domain takes?
2. ``residency``: is the data's jurisdiction label one this domain accepts?
3. ``capability``: does this domain offer every capability asked of it?
4. ``quota``: would the coordinator hold more than ``max_steps_per_coordinator`` steps here?
5. ``capacity``: are there enough free slots for every capability asked (several
   steps of the same capability count several times)?
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2

__all__ = [
    "JURISDICTION",
    "Verdict",
    "accept_from_allows",
    "evaluate_prepare",
    "residency_allows",
    "summarize",
]

#: The data label that residency policies look at.
JURISDICTION = "jurisdiction"


@dataclass(frozen=True)
class Verdict:
    """A domain's answer to a PREPARE: ``reason`` is "" when ``yes``, else one sentence."""

    yes: bool
    reason: str = ""

    @classmethod
    def accept(cls) -> Verdict:
        return cls(True, "")

    @classmethod
    def refuse(cls, reason: str) -> Verdict:
        return cls(False, reason)


def residency_allows(accept: Sequence[str], data_labels: Mapping[str, str]) -> bool:
    """Whether data with these labels may enter a domain that accepts ``accept``.

    Data labelled ``jurisdiction: X`` is allowed iff ``accept`` is empty or contains X.
    Data without a jurisdiction label is allowed everywhere.
    """
    if JURISDICTION not in data_labels:
        return True
    return not accept or data_labels[JURISDICTION] in accept


def accept_from_allows(accept_from: Sequence[str], coordinator: str) -> bool:
    """Whether work coordinated by ``coordinator`` is taken: "*" or its exact name.

    An empty list means "*" (any trusted coordinator).
    """
    return not accept_from or "*" in accept_from or coordinator in accept_from


def _listing(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def evaluate_prepare(
    policy: config_pb2.Policy,
    *,
    coordinator: str,
    data_labels: Mapping[str, str],
    steps: Sequence[tuple[str, str]],
    capacities: Mapping[str, int],
    in_use: Mapping[str, int],
    coordinator_in_use: int,
) -> Verdict:
    """Decide whether this domain takes ``steps`` (pairs of step id and capability).

    ``capacities`` maps each offered capability to its configured capacity, ``in_use``
    each capability to the slots reserved or running now, and ``coordinator_in_use`` is
    the number of steps ``coordinator`` already holds here (reserved or running).
    """
    accept_from = list(policy.accept_from)
    if not accept_from_allows(accept_from, coordinator):
        return Verdict.refuse(
            f"accept_from: coordinator '{coordinator}' is not accepted "
            f"(accepts: {_listing(accept_from)})"
        )

    residency = list(policy.residency.accept)
    if not residency_allows(residency, data_labels):
        return Verdict.refuse(
            f"residency: data jurisdiction {data_labels[JURISDICTION]} is not accepted here "
            f"(accepts: {_listing(residency)})"
        )

    # Capabilities in the order the steps ask for them, so reasons are deterministic.
    needed: Counter[str] = Counter(capability for _, capability in steps)
    for capability in needed:
        if capability not in capacities:
            return Verdict.refuse(f"capability: this domain does not offer '{capability}'")

    limit = policy.quotas.max_steps_per_coordinator
    if limit and coordinator_in_use + len(steps) > limit:
        return Verdict.refuse(
            f"quota: coordinator '{coordinator}' already holds {coordinator_in_use} of "
            f"{limit} steps here, {len(steps)} more asked"
        )

    for capability, count in needed.items():
        capacity = capacities[capability]
        free = max(0, capacity - in_use.get(capability, 0))
        if free < count:
            return Verdict.refuse(
                f"capacity: {capability} has {free} of {capacity} slots free, {count} needed"
            )

    return Verdict.accept()


def summarize(policy: config_pb2.Policy) -> peer_pb2.PolicySummary:
    """The public summary gossiped in the domain record.

    Published unless ``policy.publish`` is set to false; an unpublished policy yields
    only ``published=False`` (nothing about the policy leaks).
    """
    published = policy.publish if policy.HasField("publish") else True
    if not published:
        return peer_pb2.PolicySummary(published=False)
    return peer_pb2.PolicySummary(
        published=True,
        accept_from=list(policy.accept_from),
        residency_accept=list(policy.residency.accept),
    )
